//! The certificate a server presents, swappable while it runs: new
//! handshakes get the new one, established connections keep their session.

use crate::certs::{self, CertError, LoadedCert};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

/// The server's certificate and key, loaded from PEM files and replaceable
/// at any time ([`CertStore::reload`]) by any thread: it is the
/// [`ResolvesServerCert`] of every [`rustls::ServerConfig`] made by
/// [`crate::server_config`] with it, so one reload serves every listener.
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    current: RwLock<Current>,
}

struct Current {
    key: Arc<CertifiedKey>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cert, key) = self.files();
        f.debug_struct("CertStore").field("cert_file", &cert).field("key_file", &key).finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads and checks `cert_file` and `key_file` (see [`certs::load`]).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<(Arc<CertStore>, LoadedCert), CertError> {
        let provider = crate::provider();
        let loaded = certs::load(cert_file, key_file, &provider, SystemTime::now())?;
        let current = Current {
            key: loaded.key.clone(),
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
        };
        Ok((Arc::new(CertStore { provider, current: RwLock::new(current) }), loaded))
    }

    /// Loads `cert_file` and `key_file` (the same paths or new ones) and,
    /// if they pass every check, serves them from the next handshake on.
    /// On error the certificate in use stays. Safe from any thread.
    pub fn reload(&self, cert_file: &Path, key_file: &Path) -> Result<LoadedCert, CertError> {
        let loaded = certs::load(cert_file, key_file, &self.provider, SystemTime::now())?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Current {
            key: loaded.key.clone(),
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
        };
        Ok(loaded)
    }

    /// The files the certificate in use came from.
    pub fn files(&self) -> (PathBuf, PathBuf) {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (current.cert_file.clone(), current.key_file.clone())
    }

    /// The certificate in use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).key.clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
