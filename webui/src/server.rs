//! HTTPS on port 4444: the GUI's certificate (self-signed at first start,
//! kept beside the state), TLS with rustls, HTTP/1.1 with hyper's timer
//! installed so the header and idle timeouts hold.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::app::{router, AppState, ClientAddr};
use crate::auth::bootstrap_admin;
use crate::config::{recover, Paths};
use crate::store::SledStore;

/// A client gets this long to finish its request head (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// And this long for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (an administration GUI has few users).
pub const MAX_CONNECTIONS: usize = 256;

#[derive(Debug, Clone)]
pub struct Options {
    pub listen: std::net::SocketAddr,
    /// Where the GUI keeps its database, certificate and first password.
    pub state_dir: PathBuf,
    pub paths: Paths,
    pub box_name: String,
    /// The syslog file the Logs tab shows, and the text its lines must hold.
    pub log_file: PathBuf,
    pub log_match: String,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// netcfg's file and program.
    pub network_file: PathBuf,
    pub netcfg: PathBuf,
    /// A folder of extra templates for the Templates page (`*.toml`), beside the built-in ones.
    pub templates_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Bootstrap(#[from] crate::auth::BootstrapError),
    #[error("GUI certificate: {0}")]
    Cert(String),
}

/// The GUI's certificate and key: read from `dir`, or made (self-signed, for
/// the box's name and `localhost`) and written there, the key mode 0600.
pub fn load_or_make_cert(dir: &Path, name: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServerError> {
    let (crt, key) = (dir.join("webui.crt"), dir.join("webui.key"));
    if !crt.exists() || !key.exists() {
        let mut names = vec!["localhost".to_owned()];
        if name != "localhost" && !name.is_empty() {
            names.insert(0, name.to_owned());
        }
        let made = rcgen::generate_simple_self_signed(names).map_err(|e| ServerError::Cert(e.to_string()))?;
        crate::files::write_atomic(&key, made.key_pair.serialize_pem().as_bytes(), 0o600)
            .map_err(|e| ServerError::Io(key.display().to_string(), e))?;
        crate::files::write_atomic(&crt, made.cert.pem().as_bytes(), 0o644).map_err(|e| ServerError::Io(crt.display().to_string(), e))?;
        eprintln!("webui: made a self-signed certificate for {}", crt.display());
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&crt)
        .map_err(|e| ServerError::Cert(format!("{}: {e}", crt.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Cert(format!("{}: {e}", crt.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| ServerError::Cert(format!("{}: {e}", key.display())))?;
    Ok((certs, key))
}

/// The GUI's certificate behind the TLS listener, replaceable from the Setup
/// page while serving: new handshakes get the new one at once.
pub struct CertSwap {
    current: std::sync::RwLock<(Arc<rustls::sign::CertifiedKey>, String)>,
    dir: PathBuf,
}

impl std::fmt::Debug for CertSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertSwap({})", self.dir.display())
    }
}

fn describe(c: &lbd::tls::LoadedCert) -> String {
    format!("{} ({}), valid until {}", c.subject, c.names.join(", "), c.not_after_text())
}

impl CertSwap {
    /// The certificate in `dir` (made there first if missing).
    pub fn load(dir: &Path, name: &str) -> Result<CertSwap, ServerError> {
        load_or_make_cert(dir, name)?;
        let c = lbd::tls::load_pair(&dir.join("webui.crt"), Some(&dir.join("webui.key"))).map_err(ServerError::Cert)?;
        Ok(CertSwap {
            current: std::sync::RwLock::new((c.key.clone(), describe(&c))),
            dir: dir.to_owned(),
        })
    }

    /// A self-signed certificate in memory only.
    pub fn temporary(dir: &Path, name: &str) -> Result<CertSwap, ServerError> {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned(), "localhost".to_owned()])
            .map_err(|e| ServerError::Cert(e.to_string()))?;
        let c = lbd::tls::check_pem_pair("temporary", made.cert.pem().as_bytes(), made.key_pair.serialize_pem().as_bytes())
            .map_err(ServerError::Cert)?;
        Ok(CertSwap {
            current: std::sync::RwLock::new((c.key.clone(), format!("a temporary self-signed certificate ({})", describe(&c)))),
            dir: dir.to_owned(),
        })
    }

    pub fn describe(&self) -> Option<String> {
        self.current.read().ok().map(|c| c.1.clone())
    }

    /// Checks the pair, writes it (key 0600) and serves it from now on.
    pub fn replace(&self, crt_pem: &[u8], key_pem: &[u8]) -> Result<String, String> {
        let c = lbd::tls::check_pem_pair("the GUI's", crt_pem, key_pem)?;
        crate::files::write_pair(&self.dir, "webui.crt", crt_pem, "webui.key", key_pem).map_err(|e| e.to_string())?;
        let desc = describe(&c);
        if let Ok(mut cur) = self.current.write() {
            *cur = (c.key.clone(), desc.clone());
        }
        Ok(desc)
    }
}

impl rustls::server::ResolvesServerCert for CertSwap {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }
}

/// Keeps the header's line about lbd current: uptime, sessions and the live
/// configuration's hash, or that its runtime socket does not answer.
async fn watch_lbd(state: Arc<AppState>) {
    loop {
        let line = match crate::config::lbd_command(&state.paths.socket, "show info").await {
            Ok(info) => {
                let field = |k: &str| {
                    info.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                };
                let up: u64 = field("Uptime_sec").parse().unwrap_or(0);
                let uptime = match up {
                    0..=59 => format!("{up}s"),
                    60..=3599 => format!("{}m", up / 60),
                    3600..=86399 => format!("{}h", up / 3600),
                    _ => format!("{}d", up / 86400),
                };
                let hash: String = field("Config_hash").chars().take(8).collect();
                format!("lbd up {uptime} · {} sessions · config {hash}", field("CurrConns"))
            }
            Err(_) => "lbd not reachable".to_owned(),
        };
        *state.lbd_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = line;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Opens the state, makes the first admin if needed, finishes an interrupted
/// apply, then serves until the process ends.
pub async fn run(opts: Options) -> Result<(), ServerError> {
    std::fs::create_dir_all(&opts.state_dir).map_err(|e| ServerError::Io(opts.state_dir.display().to_string(), e))?;
    // The database holds password hashes and the audit log: for root only.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&opts.state_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ServerError::Io(opts.state_dir.display().to_string(), e))?;
    }
    let store = Arc::new(SledStore::open(&opts.state_dir.join("webui.db"))?);
    let pw_file = opts.state_dir.join("initial-admin-password");
    if let Some(pw) = bootstrap_admin(&*store, &pw_file)? {
        eprintln!(
            "webui: first start: log in as admin with the password {pw} (also in {}, mode 0600); you will be asked to change it",
            pw_file.display()
        );
    }
    let mut state = AppState::new(store.clone(), opts.paths.clone(), opts.box_name.clone());
    state.log_file = opts.log_file.clone();
    state.log_match = opts.log_match.clone();
    state.sessions.idle = opts.session_idle;
    state.first_password_file = Some(pw_file.clone());
    let (templates, template_errors) = crate::deploy::load(opts.templates_dir.as_deref());
    for e in &template_errors {
        eprintln!("webui: template not loaded: {e}");
    }
    state.templates = templates;
    state.template_errors = template_errors;
    state.network = crate::app::NetworkPaths {
        file: opts.network_file.clone(),
        netcfg: opts.netcfg.clone(),
        scratch: opts.state_dir.clone(),
    };
    let swap = Arc::new(match CertSwap::load(&opts.state_dir, &opts.box_name) {
        Ok(s) => s,
        Err(e) => {
            // A damaged certificate must not lock the operator out: serve a
            // fresh self-signed one (not written) and say so.
            eprintln!("webui: {e}; serving a temporary self-signed certificate");
            CertSwap::temporary(&opts.state_dir, &opts.box_name)?
        }
    });
    state.gui_cert = Some(swap.clone());
    let state = Arc::new(state);
    if let Some(msg) = recover(&*store, &opts.paths, crate::app::now()).await? {
        eprintln!("webui: {msg}");
        *state.notice.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(msg);
    }
    let tls = rustls::ServerConfig::builder_with_provider(lbd::tls::provider().clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Cert(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(swap);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| ServerError::Io(opts.listen.to_string(), e))?;
    eprintln!("webui: serving https://{}", opts.listen);
    tokio::spawn(watch_lbd(state.clone()));
    let app = router(state.clone());
    // At most this many connections at once: the rest wait in the backlog.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin or die.
                eprintln!("webui: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone().layer(axum::Extension(ClientAddr(peer)));
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
