//! The rustls server configuration every listener of a server shares (but
//! for its ALPN list), on one crypto provider.

use crate::cert_store::CertStore;
use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use std::sync::{Arc, OnceLock};

/// The crypto provider: aws-lc-rs, rustls' default. It builds with a C
/// compiler alone on Linux, costs the server as much per handshake as ring
/// did here (ECDSA P-256 certificate), and prefers the post-quantum hybrid
/// key exchange X25519MLKEM768 when the client offers it.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())).clone()
}

/// A server configuration presenting `certs`' certificate (swappable while
/// running), offering `alpn` in order of preference (`[b"http/1.1"]` for
/// HTTP; empty: no ALPN, as for the chat protocol), TLS 1.2 and 1.3, and
/// session resumption by stateless tickets.
pub fn server_config(certs: Arc<CertStore>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}
