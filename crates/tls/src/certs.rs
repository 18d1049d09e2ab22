//! Loading and checking a certificate chain and its private key from PEM
//! files, with errors that name the file and the problem: what `-t`
//! reports, and what a reload refuses.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A certificate or key that cannot be used: which file, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.problem)
    }
}

impl std::error::Error for CertError {}

/// A certificate chain and key that load, match and are valid now.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
    /// The leaf certificate's subject, for the log.
    pub subject: String,
    /// The leaf certificate's last valid moment.
    pub not_after: SystemTime,
}

fn error(file: &Path, problem: impl Into<String>) -> CertError {
    CertError { file: file.to_path_buf(), problem: problem.into() }
}

fn read(file: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(file).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "cannot read it: permission denied".to_string(),
            _ => format!("cannot read it: {e}"),
        };
        error(file, what)
    })
}

fn pem_problem(e: pem::Error) -> String {
    match e {
        pem::Error::NoItemsFound => "no PEM section found in it".into(),
        other => format!("not valid PEM: {other}"),
    }
}

/// Reads every certificate of a PEM file (the leaf first, then its chain).
pub fn load_chain(file: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let text = read(file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| error(file, pem_problem(e)))?;
    if chain.is_empty() {
        let problem = if text.starts_with(b"-----BEGIN") {
            "no certificate in it (a PEM file without a \"BEGIN CERTIFICATE\" section: a key given as the certificate?)"
        } else {
            "not a PEM file (expected \"-----BEGIN CERTIFICATE-----\")"
        };
        return Err(error(file, problem));
    }
    Ok(chain)
}

/// Reads the first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(file: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let text = read(file)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        let problem = match e {
            pem::Error::NoItemsFound if text.starts_with(b"-----BEGIN") => {
                "no private key in it (a PEM file without a \"BEGIN PRIVATE KEY\" section: a certificate given as the key?)".to_string()
            }
            pem::Error::NoItemsFound => "not a PEM file (expected \"-----BEGIN PRIVATE KEY-----\")".to_string(),
            other => pem_problem(other),
        };
        error(file, problem)
    })
}

/// A certificate's validity window and subject.
struct Validity {
    not_before: SystemTime,
    not_after: SystemTime,
    /// The two, as the certificate says them.
    not_before_text: String,
    not_after_text: String,
    subject: String,
}

/// The validity window of a DER certificate, and its subject.
fn validity(der: &[u8]) -> Result<Validity, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let at = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    };
    let v = cert.validity();
    Ok(Validity {
        not_before: at(v.not_before),
        not_after: at(v.not_after),
        not_before_text: v.not_before.to_string(),
        not_after_text: v.not_after.to_string(),
        subject: cert.subject().to_string(),
    })
}

/// Loads `cert_file` (PEM chain, leaf first) and `key_file` (PEM private
/// key) and checks them as a server needs them, at time `now`: both parse,
/// the key is one `provider` can sign with, it matches the leaf
/// certificate, and the leaf is valid now (not expired, not yet valid).
pub fn load(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<LoadedCert, CertError> {
    let chain = load_chain(cert_file)?;
    let key = load_key(key_file)?;
    let v = validity(&chain[0]).map_err(|p| error(cert_file, p))?;
    if now < v.not_before {
        return Err(error(cert_file, format!("not valid yet: valid from {}", v.not_before_text)));
    }
    if now > v.not_after {
        return Err(error(cert_file, format!("expired on {}", v.not_after_text)));
    }
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| error(key_file, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(error(
                key_file,
                format!(
                    "does not match the certificate in {} (a key for another certificate?)",
                    cert_file.display()
                ),
            ))
        }
        // The provider cannot tell the key's public half: nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(error(key_file, format!("cannot be checked against the certificate: {e}"))),
    }
    Ok(LoadedCert { key: Arc::new(certified), subject: v.subject, not_after: v.not_after })
}
