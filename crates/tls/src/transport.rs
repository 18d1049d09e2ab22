//! The TLS transport: rustls' `ServerConnection` between the socket and the
//! codec, driven the way rustls' `tlsserver-mio` example drives it
//! (`read_tls`, `process_new_packets`, `reader`, `writer`, `write_tls`).
//!
//! Ciphertext is read into one scratch buffer per loop (the transport value
//! is per loop), then fed to rustls; plaintext goes straight into the
//! loop's read buffer. Output is sealed in batches: everything the handler
//! queued in a turn goes to rustls in one vectored write (so it is cut into
//! as few records as its size needs) and leaves in one `write_tls`.

use crate::record::RecordCursor;
use crate::stats::{Event, TlsStats};
use bytes::BytesMut;
use reactor::{Received, Socket, Transport, Unsent, SHORT_READ_DRAINS};
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// Ciphertext read from the socket per read call (one per loop).
const WIRE_SCRATCH: usize = 64 << 10;
/// Plaintext sealed per round: rustls' own buffer limit (64 KiB by default)
/// holds the records until `write_tls` takes them.
const SEAL_BATCH: usize = 48 << 10;
/// A TLS 1.3 record's overhead (header, content type, AEAD tag): enough to
/// estimate the ciphertext rustls holds.
const RECORD_OVERHEAD: usize = 5 + 1 + 16;
/// The largest plaintext of one record.
const MAX_FRAGMENT: usize = 16 << 10;
/// TLS record content type of a handshake message (a ClientHello's first byte).
const CONTENT_HANDSHAKE: u8 = 0x16;

/// TLS under a service's codec: one value per loop, one [`TlsConn`] per
/// connection. Build it with [`TlsTransport::new`] from a
/// [`ServerConfig`] (usually [`crate::server_config`], whose certificate
/// can be swapped while connections stay open) and put it under a service
/// with [`reactor::Service::with_transport`].
pub struct TlsTransport {
    config: Arc<ServerConfig>,
    stats: Arc<TlsStats>,
    /// Ciphertext scratch, shared by this loop's connections.
    wire: Box<[u8]>,
}

/// One connection's TLS state: rustls' session and a few bytes of ours.
/// Boxed, so that the loop's connection table stays small.
pub struct TlsConn {
    tls: ServerConnection,
    records: RecordCursor,
    /// Estimated bytes rustls holds for the socket (ciphertext of sealed
    /// plaintext, or 1 for a handshake message of unknown size).
    held: usize,
    flags: u8,
}

/// Bytes arrived from the peer (an empty connection that closes is not an error).
const ANY_INPUT: u8 = 1 << 0;
/// The handshake finished (counted, logged).
const ESTABLISHED: u8 = 1 << 1;
/// The handshake just finished: flush once, for output that waited for it.
const FLUSH_OWED: u8 = 1 << 2;
/// The transport was told the connection is closing: nothing more is sealed.
const CLOSING: u8 = 1 << 3;

impl TlsTransport {
    /// A transport for one loop, counting into `stats` (share one
    /// [`TlsStats`] between a service's loops).
    pub fn new(config: Arc<ServerConfig>, stats: Arc<TlsStats>) -> TlsTransport {
        TlsTransport { config, stats, wire: vec![0; WIRE_SCRATCH].into_boxed_slice() }
    }

    /// The counters this transport adds to.
    pub fn stats(&self) -> &Arc<TlsStats> {
        &self.stats
    }

    /// The peer's bytes broke TLS: count it, tell the peer (best effort: the
    /// alert rustls queued), and return the error the loop closes with.
    fn fail(&self, conn: &mut TlsConn, socket: &mut Socket<'_>, why: String) -> io::Error {
        let event = if conn.flags & ESTABLISHED == 0 { Event::FailedHandshake } else { Event::RecordError };
        self.stats.count(event);
        while conn.tls.wants_write() {
            if conn.tls.write_tls(socket).is_err() {
                break;
            }
        }
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    /// The peer closed its side (or sent close_notify).
    fn end_of_stream(&self, conn: &mut TlsConn) -> io::Result<Received> {
        let eof = Received { wire: 0, drained: true, eof: true };
        if conn.flags & ANY_INPUT == 0 {
            // Connected and went away without a byte (a port check).
            return Ok(eof);
        }
        if conn.tls.is_handshaking() {
            self.stats.count(Event::FailedHandshake);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "tls: the peer closed during the handshake",
            ));
        }
        if conn.records.mid_record() {
            self.stats.count(Event::Truncated);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "tls: the peer closed in the middle of a record (truncated)",
            ));
        }
        // Without close_notify is fine here: the codec above knows whether
        // its last message was whole (frames, HTTP bodies carry lengths).
        Ok(eof)
    }

    /// The handshake has just finished: count and log it.
    fn established(&self, conn: &mut TlsConn) {
        conn.flags |= ESTABLISHED | FLUSH_OWED;
        self.stats.count(Event::Handshake);
        if log::log_enabled!(log::Level::Debug) {
            let t = &conn.tls;
            log::debug!(
                "tls: handshake done: {:?} {:?}, alpn {:?}, sni {:?}",
                t.protocol_version(),
                t.negotiated_cipher_suite().map(|s| s.suite()),
                t.alpn_protocol().map(String::from_utf8_lossy),
                t.server_name(),
            );
        }
    }
}

/// What a peer that does not speak TLS sent, for the log.
fn not_tls(first: &[u8]) -> String {
    let head = &first[..first.len().min(8)];
    let printable = head.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if printable {
        let text = String::from_utf8_lossy(head);
        format!("tls: not a TLS handshake: the client sent plaintext ({text:?}...) to a TLS port")
    } else {
        format!("tls: not a TLS handshake: first bytes {head:02x?}")
    }
}

impl Transport for TlsTransport {
    type Conn = Box<TlsConn>;

    fn open(&mut self, _peer: SocketAddr) -> io::Result<Box<TlsConn>> {
        let tls = ServerConnection::new(self.config.clone()).map_err(io::Error::other)?;
        Ok(Box::new(TlsConn { tls, records: RecordCursor::default(), held: 0, flags: 0 }))
    }

    fn read(
        &mut self,
        conn: &mut Box<TlsConn>,
        socket: &mut Socket<'_>,
        plain: &mut BytesMut,
    ) -> io::Result<Received> {
        let n = socket.read(&mut self.wire)?;
        if n == 0 {
            // Tell rustls, so that it refuses to read further.
            let _ = conn.tls.read_tls(&mut io::empty());
            return self.end_of_stream(conn);
        }
        let bytes = &self.wire[..n];
        if conn.flags & ANY_INPUT == 0 {
            conn.flags |= ANY_INPUT;
            if bytes[0] != CONTENT_HANDSHAKE {
                self.stats.count(Event::NotTls);
                return Err(io::Error::new(io::ErrorKind::InvalidData, not_tls(bytes)));
            }
        }
        conn.records.feed(bytes);
        let mut rest = bytes;
        let mut peer_closed = false;
        while !rest.is_empty() {
            match conn.tls.read_tls(&mut rest) {
                // rustls takes nothing more (after close_notify): the rest is dropped.
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    let why = format!("tls: {e}");
                    return Err(self.fail(conn, socket, why));
                }
            }
            let state = match conn.tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    let why = format!("tls: {e}");
                    return Err(self.fail(conn, socket, why));
                }
            };
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plain.len();
                plain.resize(start + ready, 0);
                let got = conn.tls.reader().read(&mut plain[start..]).unwrap_or(0);
                plain.truncate(start + got);
            }
            if state.peer_has_closed() {
                peer_closed = true;
                break;
            }
        }
        if conn.flags & ESTABLISHED == 0 && !conn.tls.is_handshaking() {
            self.established(conn);
        }
        if conn.tls.wants_write() {
            conn.held = conn.held.max(1);
        }
        Ok(Received { wire: n, drained: n < self.wire.len() && SHORT_READ_DRAINS, eof: peer_closed })
    }

    fn write(
        &mut self,
        conn: &mut Box<TlsConn>,
        plain: &mut Unsent<'_>,
        socket: &mut Socket<'_>,
    ) -> io::Result<usize> {
        conn.flags &= !FLUSH_OWED;
        let mut written = 0;
        loop {
            while conn.tls.wants_write() {
                match conn.tls.write_tls(socket) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        written += n;
                        conn.held = conn.held.saturating_sub(n).max(1);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            conn.held = 0;
            // Plaintext waits in the loop's queue, not in rustls, until the
            // handshake is done and while the goodbye is being said.
            if plain.is_empty() || conn.tls.is_handshaking() || conn.flags & CLOSING != 0 {
                return Ok(written);
            }
            let sealed = plain.write_into(&mut Seal { tls: &mut conn.tls, budget: SEAL_BATCH })?;
            if sealed == 0 {
                return Ok(written);
            }
            conn.held = sealed + sealed.div_ceil(MAX_FRAGMENT) * RECORD_OVERHEAD;
        }
    }

    fn pending(&self, conn: &Box<TlsConn>) -> usize {
        if conn.tls.wants_write() {
            conn.held.max(1)
        } else {
            usize::from(conn.flags & FLUSH_OWED != 0)
        }
    }

    fn close(&mut self, conn: &mut Box<TlsConn>) {
        conn.flags |= CLOSING;
        conn.tls.send_close_notify();
        conn.held = conn.held.max(1);
    }

    fn is_handshaking(&self, conn: &Box<TlsConn>) -> bool {
        conn.tls.is_handshaking()
    }
}

/// Hands plaintext to rustls to seal into records, up to a budget; says
/// `WouldBlock` when the budget or rustls' buffer is full.
struct Seal<'a> {
    tls: &'a mut ServerConnection,
    budget: usize,
}

impl Write for Seal<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // The slices that fit in the budget, the last one cut to it.
        let mut fit = [IoSlice::new(&[]); 64];
        let (mut count, mut total) = (0, 0);
        for b in bufs.iter().take(fit.len()) {
            let take = b.len().min(self.budget - total);
            fit[count] = IoSlice::new(&b[..take]);
            count += 1;
            total += take;
            if total == self.budget {
                break;
            }
        }
        let n = self.tls.writer().write_vectored(&fit[..count])?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.budget -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// What a connection keeps inline (rustls' session and ours), besides
    /// rustls' heap parts: it is multiplied by every connection held.
    #[test]
    fn a_session_is_small() {
        let size = std::mem::size_of::<super::TlsConn>();
        assert!(size <= 1280, "TlsConn grew to {size} bytes");
        assert!(std::mem::size_of::<<super::TlsTransport as reactor::Transport>::Conn>() == 8, "boxed");
    }
}
