//! The byte stream under a [`ChatClient`](super::ChatClient): plain TCP, or
//! TLS (rustls) over it.
//!
//! A client reads on one thread and writes from any (its
//! [`ChatSender`](super::ChatSender)s), so the two halves of a TLS session
//! share one rustls `ClientConnection` behind a lock, which is never held
//! across a blocking socket read: the reader waits for ciphertext unlocked,
//! then takes the lock to decrypt it.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How a client speaks TLS: whom it trusts and which name it expects the
/// server's certificate to carry. Cheap to clone.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| format!("{name:?} is not a server name: {e}"))
}

fn with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let config = ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl TlsClient {
    /// Trusts the certificates of the PEM file `ca` alone (a private CA, or
    /// a self-signed server certificate) and expects `server_name` (a DNS
    /// name or an IP address) in the server's certificate.
    pub fn with_ca_file(ca: &Path, server_name_: &str) -> Result<TlsClient, String> {
        let certs = tls::certs::load_chain(ca).map_err(|e| e.to_string())?;
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| format!("{}: not a usable CA certificate: {e}", ca.display()))?;
        }
        Ok(TlsClient { config: with_roots(roots)?, server_name: server_name(server_name_)? })
    }

    /// Trusts the system's certificate authorities (as curl does).
    pub fn with_system_roots(server_name_: &str) -> Result<TlsClient, String> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err("no trusted certificate authorities found on this system (give one with --ca)".into());
        }
        Ok(TlsClient { config: with_roots(roots)?, server_name: server_name(server_name_)? })
    }

    /// Uses a rustls configuration as it is.
    pub fn with_config(config: Arc<ClientConfig>, server_name_: &str) -> Result<TlsClient, String> {
        Ok(TlsClient { config, server_name: server_name(server_name_)? })
    }

    /// Runs the handshake on `socket` (with its timeouts) and splits the
    /// session into the client's two halves.
    pub(crate) fn handshake(&self, socket: &TcpStream) -> io::Result<(Reader, Sink)> {
        let mut conn = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut io = socket;
        while conn.is_handshaking() {
            conn.complete_io(&mut io)?;
        }
        let session = Arc::new(Session { conn: Mutex::new(conn), socket: socket.try_clone()? });
        let reader =
            Reader::Tls { session: session.clone(), socket: socket.try_clone()?, buf: vec![0; 16 << 10] };
        Ok((reader, Sink::Tls(session)))
    }
}

/// A TLS session both halves use.
pub(crate) struct Session {
    conn: Mutex<ClientConnection>,
    /// The write side of the socket.
    socket: TcpStream,
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, ClientConnection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes what rustls holds for the socket (records, alerts).
    fn flush(&self, conn: &mut ClientConnection) -> io::Result<()> {
        let mut socket = &self.socket;
        while conn.wants_write() {
            conn.write_tls(&mut socket)?;
        }
        Ok(())
    }
}

/// The read half.
pub(crate) enum Reader {
    Plain(TcpStream),
    Tls { session: Arc<Session>, socket: TcpStream, buf: Vec<u8> },
}

impl Read for Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let (session, socket, buf) = match self {
            Reader::Plain(s) => return s.read(out),
            Reader::Tls { session, socket, buf } => (session, socket, buf),
        };
        loop {
            {
                let mut conn = session.lock();
                match conn.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // Closed without close_notify: the framing above tells
                    // whether the last frame was whole.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            // Wait for ciphertext without the lock (writers go on meanwhile).
            let n = socket.read(buf)?;
            let mut conn = session.lock();
            let mut rest = &buf[..n];
            if n == 0 {
                conn.read_tls(&mut rest)?;
            }
            while !rest.is_empty() {
                conn.read_tls(&mut rest)?;
                if let Err(e) = conn.process_new_packets() {
                    let _ = session.flush(&mut conn);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            session.flush(&mut conn)?;
        }
    }
}

/// The write half.
pub(crate) enum Sink {
    Plain(TcpStream),
    Tls(Arc<Session>),
}

impl Sink {
    pub(crate) fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let session = match self {
            Sink::Plain(s) => return s.write_all(bytes),
            Sink::Tls(session) => session,
        };
        let mut conn = session.lock();
        while !bytes.is_empty() {
            let n = conn.writer().write(bytes)?;
            bytes = &bytes[n..];
            session.flush(&mut conn)?;
        }
        Ok(())
    }

    /// Says goodbye (TLS close_notify) and shuts the socket down both ways.
    pub(crate) fn shutdown(&mut self) -> io::Result<()> {
        let socket = match self {
            Sink::Plain(s) => s,
            Sink::Tls(session) => {
                let mut conn = session.lock();
                conn.send_close_notify();
                let _ = session.flush(&mut conn);
                &session.socket
            }
        };
        match socket.shutdown(Shutdown::Both) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        }
    }
}
