//! The transport seam: between the socket and the codec. Plain TCP passes
//! bytes through; TLS (rustls' `ServerConnection`: ciphertext in, plaintext
//! out, and back) or any other byte-stream transformation plugs in here
//! without the loop, the codec or the handler changing.
//!
//! The loop owns the socket and every policy: read budgets and idle
//! timeouts count the bytes a transport reads from the wire (a handshake
//! included), backpressure and the slow-consumer limit count what the
//! handler queued plus what the transport holds, and a close lets the
//! transport say goodbye (a TLS `close_notify`) before FIN.

use crate::write_queue::{BufferPool, WriteQueue};
use bytes::{BufMut, BytesMut};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// A byte-stream transformation under the codec (TLS, say).
///
/// Like a [`Codec`](crate::Codec): one value per service per loop, and a
/// [`Transport::Conn`] per connection.
pub trait Transport: Send + 'static {
    /// Per-connection state (a TLS session). Keep what an idle connection
    /// does not need out of it.
    type Conn: Send + 'static;

    /// State for a connection just accepted from `peer`.
    fn open(&mut self, peer: SocketAddr) -> io::Result<Self::Conn>;

    /// Reads once from `socket` and appends the plaintext it yields (maybe
    /// none, during a handshake) to `plain`. `WouldBlock` and other errors
    /// come back as `Err`; a peer's EOF as `Received { eof: true, .. }`.
    fn read(
        &mut self,
        conn: &mut Self::Conn,
        socket: &mut Socket<'_>,
        plain: &mut BytesMut,
    ) -> io::Result<Received>;

    /// Writes as much as the socket takes: bytes the transport holds first,
    /// then the plaintext the connection queued (`plain`, consuming what it
    /// takes). Stops at `WouldBlock` (not an error). Returns the bytes
    /// written to the socket.
    fn write(
        &mut self,
        conn: &mut Self::Conn,
        plain: &mut Unsent<'_>,
        socket: &mut Socket<'_>,
    ) -> io::Result<usize>;

    /// Bytes the transport holds for the socket (handshake messages,
    /// ciphertext not yet written). Counted with the queued output.
    fn pending(&self, conn: &Self::Conn) -> usize {
        let _ = conn;
        0
    }

    /// The connection is closing and every byte the handler queued has been
    /// written: queue whatever must precede FIN (a TLS `close_notify`).
    fn close(&mut self, conn: &mut Self::Conn) {
        let _ = conn;
    }

    /// True while the transport's handshake is unfinished: the loop closes
    /// a connection still handshaking at the service's
    /// [`handshake_timeout`](crate::ServiceConfig::handshake_timeout)
    /// ([`CloseReason::HandshakeTimeout`](crate::CloseReason::HandshakeTimeout)).
    fn is_handshaking(&self, conn: &Self::Conn) -> bool {
        let _ = conn;
        false
    }
}

/// What one [`Transport::read`] did.
///
/// A transport that finds the peer's bytes invalid (a broken TLS record)
/// returns an error of kind [`io::ErrorKind::InvalidData`] instead: the
/// loop closes the connection as a protocol error
/// ([`CloseReason::Protocol`](crate::CloseReason::Protocol), counted and
/// logged with the error's text).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes read from the socket: what read budgets and idle timeouts count.
    pub wire: usize,
    /// True if the socket is known to hold nothing more now, so the loop
    /// need not read again until the next readiness event.
    pub drained: bool,
    /// The peer closed its side.
    pub eof: bool,
}

/// Plain TCP: bytes pass through untouched, with no state and no copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Transport for Plain {
    type Conn = ();

    fn open(&mut self, _peer: SocketAddr) -> io::Result<()> {
        Ok(())
    }

    #[inline]
    fn read(&mut self, _: &mut (), socket: &mut Socket<'_>, plain: &mut BytesMut) -> io::Result<Received> {
        let room = plain.capacity() - plain.len();
        let n = socket.read_into(plain)?;
        Ok(Received { wire: n, drained: n < room && SHORT_READ_DRAINS, eof: n == 0 && room > 0 })
    }

    #[inline]
    fn write(&mut self, _: &mut (), plain: &mut Unsent<'_>, socket: &mut Socket<'_>) -> io::Result<usize> {
        plain.write_to(socket)
    }
}

/// Whether a read that returns less than the buffer's room means the socket
/// is empty for now.
///
/// mio's contract does not promise it: after an edge-triggered event it
/// says to read until `WouldBlock`, or no further event is guaranteed. The
/// backends behind it on these systems do promise it: epoll with EPOLLET
/// (Linux, Android) and kqueue with EV_CLEAR (the BSDs, macOS) report an
/// event for every arrival of new bytes, whether or not earlier bytes were
/// left unread; tokio relies on the same on those systems. A short read
/// then saves the extra `read` that would only say `WouldBlock`. Elsewhere
/// the loop reads until `WouldBlock`. (A read after the peer's FIN is never
/// taken as drained: the loop is told by the event and reads to EOF.)
pub const SHORT_READ_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
));

/// A connection's socket, as a transport reads and writes it.
pub struct Socket<'s> {
    stream: &'s TcpStream,
}

impl<'s> Socket<'s> {
    pub(crate) fn new(stream: &'s TcpStream) -> Socket<'s> {
        Socket { stream }
    }

    /// Reads once into the spare capacity of `buf` (without zeroing it
    /// first) and returns the bytes read; 0 with room left is EOF.
    pub fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        if spare.is_empty() {
            return Ok(0);
        }
        let n = socket2::SockRef::from(self.stream).recv(spare)?;
        // SAFETY: recv initialised the first n bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(n)
    }
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.stream).read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.stream).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self.stream).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The plaintext a connection queued and has not written yet, as a
/// transport takes it: in order, in chunks.
pub struct Unsent<'q> {
    queue: &'q mut WriteQueue,
    pool: &'q mut BufferPool,
}

impl<'q> Unsent<'q> {
    pub(crate) fn new(queue: &'q mut WriteQueue, pool: &'q mut BufferPool) -> Unsent<'q> {
        Unsent { queue, pool }
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The first queued chunk (empty if none).
    pub fn front(&self) -> &[u8] {
        self.queue.front()
    }

    /// Removes the first `n` queued bytes (taken by the transport).
    pub fn consume(&mut self, n: usize) {
        self.queue.consume(n, self.pool);
    }

    /// Moves up to `max` queued bytes to the end of `dst`, in order; returns
    /// how many.
    pub fn take_into(&mut self, dst: &mut BytesMut, max: usize) -> usize {
        let mut moved = 0;
        while moved < max && !self.is_empty() {
            let chunk = self.front();
            let n = chunk.len().min(max - moved);
            dst.put_slice(&chunk[..n]);
            self.consume(n);
            moved += n;
        }
        moved
    }

    /// Writes the queue straight to `socket` with vectored writes (what the
    /// plain transport does). Stops at `WouldBlock`; returns bytes written.
    pub fn write_to(&mut self, socket: &mut Socket<'_>) -> io::Result<usize> {
        self.queue.write_to(socket, self.pool)
    }

    /// Writes the queue into any writer (an encrypting one, say), as
    /// [`Unsent::write_to`] does: the queued chunks go out with one
    /// `write_vectored` call per round, so a writer that seals records can
    /// cut as few as the bytes need. Stops when `w` says `WouldBlock`;
    /// `Ok(0)` from `w` is an error (`WriteZero`).
    pub fn write_into<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        self.queue.write_to(w, self.pool)
    }
}
