//! TLS for the reactor, on rustls: a [`reactor::Transport`] that puts
//! rustls' `ServerConnection` between the socket and any codec, so that a
//! handler and its codec (frames, HTTP) run unchanged over TLS; a
//! [`CertStore`] whose certificate can be replaced while connections stay
//! open; and certificate checks that name the file and the problem.
//!
//! ```text
//! socket ⇄ TlsTransport (rustls) ⇄ codec ⇄ handler
//! ```
//!
//! - Backpressure, the slow-consumer policy and the read budget see the
//!   ciphertext: the loop counts what rustls holds as queued output and the
//!   bytes read from the wire against the budget and the idle timeout.
//! - A handshake that stalls is closed at the service's
//!   [`handshake_timeout`](reactor::ServiceConfig::handshake_timeout)
//!   ([`reactor::CloseReason::HandshakeTimeout`]); bytes that are not TLS,
//!   a record that does not decrypt, a peer closing mid-handshake or
//!   mid-record close the connection as a protocol error with the reason
//!   in the log, counted in [`TlsStats`].
//! - Memory: a connection owns rustls' session (boxed) and nothing else of
//!   ours; ciphertext is read into one scratch buffer per loop. rustls 0.23
//!   frees its plaintext and ciphertext queues when they empty, but keeps a
//!   4 KiB receive buffer per session once it has read (its buffered API
//!   has no way to release it).
//!
//! # Example
//!
//! ```no_run
//! use reactor::{Frame, FrameCodec, FramedContext, Handler, Reactor, Service, ServiceConfig};
//! use std::path::Path;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tls::{CertStore, TlsStats, TlsTransport};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type Codec = FrameCodec;
//!     type Conn = ();
//!     fn on_open(&mut self, _: &mut FramedContext<'_, '_>, _: std::net::SocketAddr) {}
//!     fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _: &mut (), frame: Frame<'_>) {
//!         let _ = cx.send_frame(&frame);
//!     }
//! }
//!
//! let (certs, loaded) = CertStore::load(Path::new("cert.pem"), Path::new("key.pem"))?;
//! println!("serving {}", loaded.subject);
//! let config = tls::server_config(certs.clone(), &[])?;
//! let stats = Arc::new(TlsStats::default());
//! let service = ServiceConfig { handshake_timeout: Some(Duration::from_secs(10)), ..ServiceConfig::new("echo-tls") };
//! let reactor = Reactor::builder()
//!     .service(service, "127.0.0.1:7443", move |_loop| {
//!         Service::new(FrameCodec::default(), Echo).with_transport(TlsTransport::new(config.clone(), stats.clone()))
//!     })
//!     .build()?;
//! // Later (on SIGHUP, say): new handshakes present the new certificate.
//! certs.reload(Path::new("cert.pem"), Path::new("key.pem"))?;
//! reactor.join();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod cert_store;
pub mod certs;
mod record;
mod server_config;
mod stats;
#[cfg(feature = "test-cert")]
pub mod test_cert;
mod transport;

pub use crate::cert_store::CertStore;
pub use crate::certs::{CertError, LoadedCert};
pub use crate::server_config::{provider, server_config};
pub use crate::stats::{TlsCounts, TlsStats};
pub use crate::transport::{TlsConn, TlsTransport};
pub use rustls;
