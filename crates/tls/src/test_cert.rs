//! Self-signed certificates for tests and trials (feature `test-cert`):
//! what a test needs to run a TLS server and a client that trusts it,
//! without files from anywhere else. Not for production.

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A self-signed certificate (ECDSA P-256) and its private key.
#[derive(Clone, Debug)]
pub struct TestCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
}

/// A calendar day: year, month, day.
pub type Day = (i32, u8, u8);

/// A certificate for `names` (DNS names or IP addresses), valid from 1975
/// to 4096.
pub fn self_signed(names: &[&str]) -> TestCert {
    make(names, None)
}

/// A certificate for `names` valid only from `not_before` to `not_after`
/// (year, month, day): an expired or a not-yet-valid one.
pub fn self_signed_between(names: &[&str], not_before: Day, not_after: Day) -> TestCert {
    make(names, Some((not_before, not_after)))
}

fn make(names: &[&str], window: Option<(Day, Day)>) -> TestCert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    // Generation fails only on invalid names or a broken RNG: a test's bug.
    let mut params = rcgen::CertificateParams::new(names).expect("test certificate names");
    params.distinguished_name.push(rcgen::DnType::CommonName, "switchboard test certificate");
    if let Some(((y0, m0, d0), (y1, m1, d1))) = window {
        params.not_before = rcgen::date_time_ymd(y0, m0, d0);
        params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    }
    let key = rcgen::KeyPair::generate().expect("test key");
    let cert = params.self_signed(&key).expect("self-signed test certificate");
    TestCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().clone() }
}

impl TestCert {
    /// Writes `STEM.crt` and `STEM.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> io::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }

    /// A client configuration that trusts this certificate alone and
    /// offers `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der.clone()).expect("a test certificate is a valid root");
        let mut config = ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .expect("the provider's default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}
