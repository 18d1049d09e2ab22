//! The TLS of a running server: its certificate (loaded and checked at
//! start and by `-t`, loaded again on SIGHUP) and the rustls configuration
//! of each kind of door: the chat protocol (no ALPN) and HTTPS (ALPN
//! `http/1.1`). WebSocket rides on HTTPS (`wss://`).

use crate::config::Config;
use crate::listeners::ServiceKind;
use std::path::Path;
use std::sync::Arc;
use tls::rustls::ServerConfig;
use tls::{CertError, CertStore, LoadedCert, TlsCounts, TlsStats, TlsTransport};

/// The TLS state every TLS listener of a server shares.
pub struct ServerTls {
    certs: Arc<CertStore>,
    chat: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    stats: Arc<TlsStats>,
}

/// A certificate error as the config names it: `tls.cert: FILE: problem`.
fn describe(config: &Config, e: &CertError) -> String {
    let key = if e.file == Path::new(&config.tls.key) && e.file != Path::new(&config.tls.cert) {
        "tls.key"
    } else {
        "tls.cert"
    };
    format!("{key}: {e}")
}

/// One line about a certificate, for the log and `-t`.
fn summary(loaded: &LoadedCert) -> String {
    let days =
        loaded.not_after.duration_since(std::time::SystemTime::now()).map_or(0, |d| d.as_secs() / 86_400);
    format!("certificate \"{}\", valid for {days} more days", loaded.subject)
}

/// Checks the configured certificate and key as `-t` does: `Ok(None)` if
/// none is configured and no listener needs one, else a one-line summary
/// or the problem, naming the key and the file.
pub fn check(config: &Config) -> Result<Option<String>, String> {
    if !config.uses_tls() && config.tls.cert.is_empty() && config.tls.key.is_empty() {
        return Ok(None);
    }
    let (cert, key) = (Path::new(&config.tls.cert), Path::new(&config.tls.key));
    let loaded = tls::certs::load(cert, key, &tls::provider(), std::time::SystemTime::now())
        .map_err(|e| describe(config, &e))?;
    Ok(Some(summary(&loaded)))
}

impl ServerTls {
    /// Loads the configured certificate and key and builds the doors'
    /// configurations.
    pub fn load(config: &Config) -> Result<ServerTls, String> {
        let (cert, key) = (Path::new(&config.tls.cert), Path::new(&config.tls.key));
        let (certs, loaded) = CertStore::load(cert, key).map_err(|e| describe(config, &e))?;
        log::info!("tls: {}", summary(&loaded));
        let chat = tls::server_config(certs.clone(), &[]).map_err(|e| format!("tls: {e}"))?;
        let http = tls::server_config(certs.clone(), &[b"http/1.1"]).map_err(|e| format!("tls: {e}"))?;
        Ok(ServerTls { certs, chat, http, stats: Arc::new(TlsStats::default()) })
    }

    /// A transport for one loop of a listener of `kind` (a TLS kind).
    pub fn transport(&self, kind: ServiceKind) -> TlsTransport {
        let config = match kind {
            ServiceKind::HttpTls | ServiceKind::Http => &self.http,
            ServiceKind::ChatTls | ServiceKind::Chat => &self.chat,
        };
        TlsTransport::new(config.clone(), self.stats.clone())
    }

    /// Loads the certificate and key `config` names; if they pass every
    /// check, new handshakes present them (open connections keep their
    /// session). On error the certificate in use stays.
    pub fn reload(&self, config: &Config) -> Result<String, String> {
        let (cert, key) = (Path::new(&config.tls.cert), Path::new(&config.tls.key));
        let loaded = self.certs.reload(cert, key).map_err(|e| describe(config, &e))?;
        Ok(summary(&loaded))
    }

    /// Handshakes and TLS failures so far, over every TLS listener.
    pub fn counts(&self) -> TlsCounts {
        self.stats.snapshot()
    }
}
