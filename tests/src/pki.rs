//! Test certificates: a private CA and leaf certificates signed by it, made
//! with Debian's python3-cryptography (RSA, ECDSA P-256 and Ed25519 keys,
//! SANs, validity in the past for "expired").

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::Scratch;

const MAKER: &str = r#"
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519

def key_of(kind):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise SystemExit("unknown key kind " + kind)

def pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

def digest(k):
    return None if isinstance(k, ed25519.Ed25519PrivateKey) else hashes.SHA256()

out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
ca_key = key_of("ecdsa")
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lbd test CA")])
ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                   key_encipherment=False, data_encipherment=False, key_agreement=False,
                                   encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
open(out + "/ca.pem", "wb").write(ca.public_bytes(serialization.Encoding.PEM))
# Each leaf: FILE:KIND:NAME[,NAME...][:expired][:org=ORG]
for spec in sys.argv[2:]:
    parts = spec.split(":")
    file, kind, names = parts[0], parts[1], parts[2].split(",")
    expired = "expired" in parts[3:]
    org = next((p[4:] for p in parts[3:] if p.startswith("org=")), "lbd tests")
    key = key_of(kind)
    if expired:
        before, after = now - datetime.timedelta(days=60), now - datetime.timedelta(days=30)
    else:
        before, after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=90)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    open(out + "/" + file + ".crt.pem", "wb").write(chain)
    open(out + "/" + file + ".key.pem", "wb").write(pem_key(key))
    open(out + "/" + file + ".pem", "wb").write(chain + pem_key(key))
"#;

/// Key algorithms of leaf certificates.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Rsa,
    Ecdsa,
    Ed25519,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Rsa => "rsa",
            Kind::Ecdsa => "ecdsa",
            Kind::Ed25519 => "ed25519",
        }
    }
}

/// A leaf to make: its file stem, key kind, DNS names (the first is the CN).
pub struct Leaf<'a> {
    pub file: &'a str,
    pub kind: Kind,
    pub names: &'a [&'a str],
    pub expired: bool,
    /// The subject's organisation, to tell two certificates for one name apart.
    pub org: &'a str,
}

/// A CA and its leaves in a scratch folder: `ca.pem`, and per leaf
/// `FILE.crt.pem` (leaf + CA), `FILE.key.pem`, and `FILE.pem` (both, HAProxy style).
pub struct Pki {
    pub dir: Scratch,
}

impl Pki {
    pub fn new(leaves: &[Leaf<'_>]) -> Pki {
        let dir = Scratch::new("pki");
        let specs: Vec<String> = leaves
            .iter()
            .map(|l| {
                let mut s = format!("{}:{}:{}", l.file, l.kind.word(), l.names.join(","));
                if l.expired {
                    s.push_str(":expired");
                }
                s.push_str(&format!(":org={}", l.org));
                s
            })
            .collect();
        let out = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(MAKER)
            .arg(&dir.path)
            .args(&specs)
            .output()
            .expect("run /usr/bin/python3 (python3-cryptography)");
        assert!(
            out.status.success(),
            "certificate maker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pki { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path.join(file)
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// `FILE.crt.pem`, `FILE.key.pem`.
    pub fn pair(&self, file: &str) -> (PathBuf, PathBuf) {
        (self.path(&format!("{file}.crt.pem")), self.path(&format!("{file}.key.pem")))
    }

    /// Lays out `FILE` as the SSL tab's store does: `DIR/NAME/{crt,key}.pem`.
    pub fn store(&self, file: &str, dir: &Path, name: &str) -> PathBuf {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("store dir");
        let (c, k) = self.pair(file);
        std::fs::copy(c, d.join("crt.pem")).expect("copy crt");
        std::fs::copy(k, d.join("key.pem")).expect("copy key");
        d
    }
}
