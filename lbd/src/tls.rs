//! TLS with rustls: certificates and keys read from PEM files (or by name from
//! the SSL tab's certificate store), SNI selection among several certificates,
//! the protocol, cipher and group choices of `bind ... ssl` and of the SSL tab,
//! and the client side used toward servers (`server ... ssl`).
//!
//! Everything here runs when a configuration is checked, so `lbd -c` finds a
//! missing file, a bad PEM or a key that does not belong to its certificate,
//! and a reload with a bad certificate keeps the old one serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the SSL tab keeps certificates by name: `<STORE>/<name>/{crt,key}.pem`.
pub const CERT_STORE: &str = "/etc/ssl/frontends";

/// Sessions remembered for resumption by session ID, shared by every TLS
/// listener and kept across reloads (HAProxy's `tune.ssl.cachesize` default).
const SESSION_CACHE: usize = 20_000;

/// A certificate chain with its private key, and what it says about itself.
#[derive(Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// The DNS names it is valid for (subject CN and SANs), lower case.
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    /// End of validity, seconds since the epoch.
    pub not_after: i64,
    /// The file the certificate came from.
    pub file: PathBuf,
}

impl std::fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoadedCert({}, {:?})", self.file.display(), self.names)
    }
}

impl LoadedCert {
    /// Whether the certificate's validity has ended.
    pub fn expired(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.not_after < now
    }

    /// The end of validity as a date, for messages.
    pub fn not_after_text(&self) -> String {
        x509_parser::time::ASN1Time::from_timestamp(self.not_after)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| self.not_after.to_string())
    }
}

pub fn provider() -> &'static Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(aws_lc_rs::default_provider()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))
}

/// The certificates (leaf first) and the private key, if any, of one PEM text.
fn parse_pem(path: &Path, pem: &[u8]) -> Result<(Vec<CertificateDer<'static>>, Option<PrivateKeyDer<'static>>), String> {
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem) {
        certs.push(c.map_err(|e| format!("'{}': bad PEM certificate: {e}", path.display()))?);
    }
    let key = match PrivateKeyDer::from_pem_slice(pem) {
        Ok(k) => Some(k),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => None,
        Err(e) => return Err(format!("'{}': bad PEM private key: {e}", path.display())),
    };
    Ok((certs, key))
}

/// Reads a certificate file and its key: `key` when given, else a key in the
/// same file, else `FILE.key` (as HAProxy does), else `key.pem` beside a
/// `crt.pem` (the SSL tab's store).
pub fn load_pair(crt: &Path, key: Option<&Path>) -> Result<LoadedCert, String> {
    let pem = read(crt)?;
    let (certs, inline_key) = parse_pem(crt, &pem)?;
    if certs.is_empty() {
        return Err(format!("'{}': no PEM certificate found", crt.display()));
    }
    let key = match key {
        Some(k) => {
            let (_, kd) = parse_pem(k, &read(k)?)?;
            kd.ok_or_else(|| format!("'{}': no PEM private key found", k.display()))?
        }
        None => match inline_key {
            Some(k) => k,
            None => {
                let mut candidates = vec![PathBuf::from(format!("{}.key", crt.display()))];
                if crt.file_name().is_some_and(|n| n == "crt.pem") {
                    candidates.push(crt.with_file_name("key.pem"));
                }
                let found = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                    format!(
                        "'{}': no private key in the file, nor in {}",
                        crt.display(),
                        candidates
                            .iter()
                            .map(|p| format!("'{}'", p.display()))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                })?;
                let (_, kd) = parse_pem(found, &read(found)?)?;
                kd.ok_or_else(|| format!("'{}': no PEM private key found", found.display()))?
            }
        },
    };
    for c in &certs {
        if let Err(e) = x509_parser::parse_x509_certificate(c.as_ref()) {
            return Err(format!("'{}': not a valid certificate ({e})", crt.display()));
        }
    }
    let ck = CertifiedKey::from_der(certs, key, provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("'{}': the private key does not match the certificate", crt.display())
        }
        other => format!("'{}': unusable certificate or key: {other}", crt.display()),
    })?;
    describe(crt, ck)
}

/// Checks a certificate chain and its private key given as PEM text (an
/// upload, before anything is saved): both parse, and the key is the
/// certificate's. `label` names them in messages.
pub fn check_pem_pair(label: &str, crt_pem: &[u8], key_pem: &[u8]) -> Result<LoadedCert, String> {
    let crt_label = PathBuf::from(format!("{label} certificate"));
    let key_label = PathBuf::from(format!("{label} key"));
    let (certs, _) = parse_pem(&crt_label, crt_pem)?;
    if certs.is_empty() {
        return Err(format!("'{}': no PEM certificate found", crt_label.display()));
    }
    let (_, key) = parse_pem(&key_label, key_pem)?;
    let key = key.ok_or_else(|| format!("'{}': no PEM private key found", key_label.display()))?;
    for c in &certs {
        if let Err(e) = x509_parser::parse_x509_certificate(c.as_ref()) {
            return Err(format!("'{}': not a valid certificate ({e})", crt_label.display()));
        }
    }
    let ck = CertifiedKey::from_der(certs, key, provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!("{label}: the private key does not match the certificate"),
        other => format!("{label}: unusable certificate or key: {other}"),
    })?;
    describe(&crt_label, ck)
}

fn describe(file: &Path, ck: CertifiedKey) -> Result<LoadedCert, String> {
    let leaf = ck
        .cert
        .first()
        .ok_or_else(|| format!("'{}': empty certificate chain", file.display()))?;
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("'{}': cannot parse the certificate: {e}", file.display()))?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    for cn in x.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            let s = s.to_ascii_lowercase();
            if !names.contains(&s) {
                names.push(s);
            }
        }
    }
    Ok(LoadedCert {
        names,
        subject: x.subject().to_string(),
        issuer: x.issuer().to_string(),
        not_after: x.validity().not_after.timestamp(),
        key: Arc::new(ck),
        file: file.to_path_buf(),
    })
}

/// Resolves a `crt` argument: a PEM file, a directory (every certificate in it,
/// or the store layout `crt.pem` + `key.pem`), or a certificate name from the
/// SSL tab's store.
pub fn load_crt(spec: &str, key: Option<&Path>, base: Option<&str>) -> Result<Vec<LoadedCert>, String> {
    let base = Path::new(base.unwrap_or(CERT_STORE));
    let path = if spec.starts_with('/') {
        PathBuf::from(spec)
    } else {
        base.join(spec)
    };
    if path.is_dir() {
        let pair = path.join("crt.pem");
        if pair.is_file() {
            return Ok(vec![load_pair(&pair, key)?]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .map_err(|e| format!("cannot list '{}': {e}", path.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && !p
                        .extension()
                        .is_some_and(|x| x == "key" || x == "ocsp" || x == "issuer" || x == "sctl")
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("'{}': no certificate in this directory", path.display()));
        }
        return files.iter().map(|f| load_pair(f, None)).collect();
    }
    if !path.exists() {
        return Err(format!(
            "certificate '{spec}' not found (neither a file nor a certificate name in {})",
            base.display()
        ));
    }
    Ok(vec![load_pair(&path, key)?])
}

/// Picks the certificate whose names match the client's SNI (exact, then
/// wildcard); the first certificate otherwise.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    /// `strict-sni`: no certificate (the handshake fails) when the SNI matches none.
    strict: bool,
}

impl SniResolver {
    pub fn new(certs: &[LoadedCert]) -> Option<Self> {
        let default = Arc::clone(&certs.first()?.key);
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for n in &c.names {
                match n.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert_with(|| Arc::clone(&c.key)),
                    None => exact.entry(n.clone()).or_insert_with(|| Arc::clone(&c.key)),
                };
            }
        }
        Some(SniResolver {
            exact,
            wildcard,
            default,
            strict: false,
        })
    }

    pub fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(Arc::clone(k));
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return Some(Arc::clone(k));
                }
            }
        }
        (!self.strict).then(|| Arc::clone(&self.default))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// Protocol and algorithm choices, in the words of HAProxy and stunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsChoices {
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    /// TLS 1.2 suites, OpenSSL names separated by `:`.
    pub ciphers: Option<String>,
    /// TLS 1.3 suites, separated by `:`.
    pub ciphersuites: Option<String>,
    /// Key exchange groups, separated by `:`.
    pub curves: Option<String>,
    /// ALPN protocols, separated by `,`.
    pub alpn: Option<String>,
}

impl TlsChoices {
    /// Whether `v` names a TLS version lbd speaks (or `all`).
    pub fn check_version(v: &str) -> Result<(), String> {
        version(v).map(|_| ())
    }

    /// Whether these choices leave something to negotiate.
    pub fn check(&self) -> Result<(), String> {
        narrowed(self).map(|_| ())
    }
}

/// A version name as HAProxy (`TLSv1.2`) or stunnel (`TLSv1.2`, `all`) writes it:
/// `Some(12)` or `Some(13)`; older versions are refused (rustls does not speak them).
fn version(v: &str) -> Result<Option<u8>, String> {
    match v.to_ascii_lowercase().as_str() {
        "tlsv1.2" | "tls1.2" | "tls1_2" => Ok(Some(12)),
        "tlsv1.3" | "tls1.3" | "tls1_3" => Ok(Some(13)),
        "all" | "none" => Ok(None),
        "sslv3" | "tlsv1.0" | "tlsv1" | "tlsv1.1" => Err(format!(
            "'{v}': lbd speaks TLS 1.2 and 1.3 only (older versions are broken and disabled)"
        )),
        _ => Err(format!("'{v}': unknown TLS version (TLSv1.2 or TLSv1.3)")),
    }
}

/// OpenSSL's names for the TLS 1.2 suites rustls offers.
fn suite12(name: &str) -> Option<SupportedCipherSuite> {
    use aws_lc_rs::cipher_suite as cs;
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES256-GCM-SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-RSA-AES128-GCM-SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES256-GCM-SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

fn suite13(name: &str) -> Option<SupportedCipherSuite> {
    use aws_lc_rs::cipher_suite as cs;
    Some(match name {
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

fn group(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    use aws_lc_rs::kx_group as g;
    Some(match name.to_ascii_lowercase().as_str() {
        "x25519" => g::X25519,
        "p-256" | "prime256v1" | "secp256r1" => g::SECP256R1,
        "p-384" | "secp384r1" => g::SECP384R1,
        "x25519mlkem768" => g::X25519MLKEM768,
        _ => return None,
    })
}

/// OpenSSL cipher-string words that select families rather than suites: lbd
/// keeps rustls's modern set for them.
fn is_family_word(w: &str) -> bool {
    let w = w.trim_start_matches(['!', '-', '+']);
    w.chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '@' || c == '=')
        || matches!(
            w,
            "aNULL" | "eNULL" | "kRSA" | "aRSA" | "aECDSA" | "kECDHE" | "ECDHE" | "EECDH" | "EDH"
        )
}

/// The crypto provider narrowed to `choices`; also the protocol versions to offer.
fn narrowed(choices: &TlsChoices) -> Result<(CryptoProvider, Vec<&'static SupportedProtocolVersion>), String> {
    let mut p = aws_lc_rs::default_provider();
    let min = choices.min_version.as_deref().map(version).transpose()?.flatten().unwrap_or(12);
    let max = choices.max_version.as_deref().map(version).transpose()?.flatten().unwrap_or(13);
    if min > max {
        return Err("the minimum TLS version is above the maximum".into());
    }
    let mut versions = Vec::new();
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    let mut suites: Vec<SupportedCipherSuite> = Vec::new();
    let pick = |list: &str, f: fn(&str) -> Option<SupportedCipherSuite>, out: &mut Vec<SupportedCipherSuite>| -> Result<bool, String> {
        let mut named = false;
        for w in list.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
            if let Some(s) = f(w) {
                out.push(s);
                named = true;
            } else if !w.starts_with(['!', '-']) && !is_family_word(w) {
                return Err(format!(
                    "cipher '{w}' is not supported (rustls offers ECDHE with AES-GCM or ChaCha20-Poly1305)"
                ));
            }
        }
        Ok(named)
    };
    let defaults12: Vec<SupportedCipherSuite> = p
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| s.version() == &rustls::version::TLS12)
        .collect();
    let defaults13: Vec<SupportedCipherSuite> = p
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .collect();
    match &choices.ciphersuites {
        Some(l) if pick(l, suite13, &mut suites)? => {}
        _ => suites.extend(defaults13),
    }
    match &choices.ciphers {
        Some(l) if pick(l, suite12, &mut suites)? => {}
        _ => suites.extend(defaults12),
    }
    p.cipher_suites = suites;
    if let Some(c) = &choices.curves {
        let mut groups = Vec::new();
        for w in c.split([':', ',']).filter(|w| !w.is_empty()) {
            groups.push(group(w).ok_or_else(|| format!("curve '{w}' is not supported (X25519, P-256, P-384, X25519MLKEM768)"))?);
        }
        p.kx_groups = groups;
    }
    Ok((p, versions))
}

fn alpn_list(choices: &TlsChoices) -> Vec<Vec<u8>> {
    choices
        .alpn
        .as_deref()
        .map(|a| a.split(',').filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect())
        .unwrap_or_default()
}

fn session_cache() -> Arc<dyn StoresServerSessions> {
    static C: OnceLock<Arc<dyn StoresServerSessions>> = OnceLock::new();
    Arc::clone(C.get_or_init(|| rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE)))
}

fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, String> {
    static T: OnceLock<Arc<dyn rustls::server::ProducesTickets>> = OnceLock::new();
    if let Some(t) = T.get() {
        return Ok(Arc::clone(t));
    }
    let t = aws_lc_rs::Ticketer::new().map_err(|e| format!("cannot set up session tickets: {e}"))?;
    Ok(Arc::clone(T.get_or_init(|| t)))
}

/// The server side of a TLS listener: SNI among `certs`, the given choices,
/// resumption by session ID and by ticket (both kept across reloads).
/// `client_ca`: ask clients for a certificate signed by this CA file; `true`
/// refuses clients without one (`verify required`), `false` lets them in (`optional`).
pub fn server_config(
    certs: &[LoadedCert],
    choices: &TlsChoices,
    client_ca: Option<(&Path, bool)>,
    strict_sni: bool,
) -> Result<Arc<ServerConfig>, String> {
    let mut resolver = SniResolver::new(certs).ok_or("no certificate")?;
    resolver.strict = strict_sni;
    let (provider, versions) = narrowed(choices)?;
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS settings: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((ca, required)) => {
            let roots = Arc::new(roots_from(ca)?);
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let v = if required { v } else { v.allow_unauthenticated() };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("client verification: {e}"))?)
        }
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = alpn_list(choices);
    if client_ca.is_some() {
        // A session resumed skips the client-certificate check: a listener that asks for
        // certificates keeps its sessions and ticket key to itself, so a session made
        // elsewhere (without a certificate) never resumes here.
        cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        cfg.ticketer = aws_lc_rs::Ticketer::new().map_err(|e| format!("cannot set up session tickets: {e}"))?;
    } else {
        cfg.session_storage = session_cache();
        cfg.ticketer = ticketer()?;
    }
    Ok(Arc::new(cfg))
}

/// Whether `ca` holds at least one usable CA certificate.
pub fn check_ca(ca: &Path) -> Result<(), String> {
    roots_from(ca).map(|_| ())
}

/// The CA certificates of a PEM file.
fn roots_from(ca: &Path) -> Result<rustls::RootCertStore, String> {
    let pem = read(ca)?;
    let (certs, _) = parse_pem(ca, &pem)?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("'{}': no usable CA certificate", ca.display()));
    }
    Ok(roots)
}

/// The server check of `verify none` (no chain given: any certificate) and of
/// `verify required` without `sni` (the chain only, not the name, as HAProxy does).
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The client side toward a server: `verify` the server's chain against
/// `ca_file` (and its name when `check_name`: an `sni` was given), or
/// (`verify none`) accept any certificate.
pub fn client_config(
    verify: bool,
    ca_file: Option<&Path>,
    choices: &TlsChoices,
    check_name: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let (provider, versions) = narrowed(choices)?;
    let provider = Arc::new(provider);
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS settings: {e}"))?;
    let mut cfg = if verify {
        let ca = ca_file.ok_or("verify required needs a ca-file")?;
        let roots = roots_from(ca)?;
        if check_name {
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("server verification: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient {
                    chain: Some(inner),
                    provider: Arc::clone(&provider),
                }))
                .with_no_client_auth()
        }
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient {
                chain: None,
                provider: Arc::clone(&provider),
            }))
            .with_no_client_auth()
    };
    cfg.alpn_protocols = alpn_list(choices);
    Ok(Arc::new(cfg))
}

/// What a TLS connection negotiated, for the `ssl_fc*` fetches and the logs.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub sni: Option<String>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'static str,
    pub cipher: String,
    pub alpn: Option<String>,
}

impl TlsInfo {
    pub fn of(conn: &rustls::ServerConnection) -> Self {
        TlsInfo {
            sni: conn.server_name().map(str::to_owned),
            protocol: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                _ => "TLSv1.2",
            },
            cipher: conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("")
                .to_owned(),
            alpn: conn.alpn_protocol().map(|a| String::from_utf8_lossy(a).into_owned()),
        }
    }
}

/// A loaded TLS configuration inside the configuration model: compared by
/// identity, printed by name only.
pub struct Shared<T>(pub Option<Arc<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared(None)
    }
}

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl<T> Eq for Shared<T> {}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Shared(loaded)" } else { "Shared(none)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_choices() {
        assert_eq!(version("TLSv1.3"), Ok(Some(13)));
        assert!(version("TLSv1.0").is_err());
        let c = TlsChoices {
            ciphers: Some("HIGH:!aNULL:ECDHE-RSA-AES128-GCM-SHA256".into()),
            curves: Some("X25519:P-256".into()),
            ..Default::default()
        };
        let (p, v) = narrowed(&c).expect("narrowed");
        assert_eq!(v.len(), 2);
        assert_eq!(p.kx_groups.len(), 2);
        assert!(p
            .cipher_suites
            .iter()
            .any(|s| s.suite() == rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(!p
            .cipher_suites
            .iter()
            .any(|s| s.suite() == rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384));
        let bad = TlsChoices {
            ciphers: Some("RC4-MD5".into()),
            ..Default::default()
        };
        assert!(narrowed(&bad).is_err());
    }
}
