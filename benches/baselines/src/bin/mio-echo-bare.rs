//! Baseline: a bare mio echo loop, no framework. The floor of the
//! architecture switchboard builds on.
//!
//! One thread, one `Poll`, a `Slab` of connections. Each connection is
//! registered once for READABLE | WRITABLE (edge-triggered), so partial
//! writes never cost an `epoll_ctl`. On readiness: read until the socket is
//! drained (`WouldBlock`, or by default a short read, as tokio does; see
//! `--read-until-would-block`) into the connection's 16 KiB input buffer,
//! then write every complete frame (4-byte big-endian length + payload, max
//! payload 1 MiB) straight out of the input buffer with one `write`: no copy
//! and no output buffer while the socket takes everything. Only what the
//! socket did not take is copied to the output buffer, which goes out on
//! the next WRITABLE event (and while it is not empty, new frames queue
//! behind it, to keep their order). EOF, a read or write error, or an
//! over-long frame close the connection.
//!
//! A client that does not read cannot make the output buffer grow without
//! bound: above `MAX_PENDING_OUT` the connection stops reading until its
//! output drains.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// Length-prefixed echo server on bare mio: one thread, one Poll, a Slab.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// After a read, always read again until `WouldBlock` (one extra
    /// `read` per readiness). By default a read that returns less than the
    /// free buffer space is taken to have drained the socket, tokio's rule
    /// on Linux: with edge-triggered epoll, bytes arriving later raise a
    /// new event.
    #[arg(long)]
    read_until_would_block: bool,
}

const LISTENER: Token = Token(usize::MAX);
/// `--read-until-would-block`.
static READ_UNTIL_WOULD_BLOCK: AtomicBool = AtomicBool::new(false);
const HEAD: usize = 4;
const MAX_FRAME: usize = 1 << 20;
const READ_BUF: usize = 16 * 1024;
/// Stop reading from a connection whose unsent output exceeds this.
const MAX_PENDING_OUT: usize = 4 << 20;

struct Conn {
    stream: TcpStream,
    /// Received bytes; `inbuf[..in_len]` is valid. 16 KiB, grown only for
    /// a frame larger than that (up to `HEAD + MAX_FRAME`).
    inbuf: Vec<u8>,
    in_len: usize,
    /// Output not yet written: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// Reading paused because too much output is pending.
    paused: bool,
}

enum Status {
    Open,
    Close,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    READ_UNTIL_WOULD_BLOCK.store(args.read_until_would_block, Ordering::Relaxed);
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(args.listen)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("listening on {}", listener.local_addr()?);

    let mut conns: Slab<Conn> = Slab::with_capacity(1024);
    let mut events = Events::with_capacity(1024);
    // Set after a resource error on accept (EMFILE...): retry on a timer
    // rather than spin, since the edge-triggered listener will not fire
    // again for connections already queued.
    let mut accept_backoff = false;
    loop {
        let timeout = accept_backoff.then(|| Duration::from_millis(10));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == ErrorKind::Interrupted {
                continue; // a signal: SIGTERM/SIGINT keep their default action and end the process
            }
            return Err(e);
        }
        if accept_backoff || events.iter().any(|e| e.token() == LISTENER) {
            accept_backoff = accept_all(&listener, &mut conns, &poll);
        }
        for event in events.iter() {
            let token = event.token();
            if token == LISTENER {
                continue;
            }
            // A connection closed earlier in this batch has no entry (and
            // its slot is not reused before the next poll: accepting
            // happened above), so a stale event is skipped.
            let Some(conn) = conns.get_mut(token.0) else { continue };
            let mut status = Status::Open;
            if event.is_writable() || event.is_write_closed() {
                status = conn.on_writable();
            }
            if matches!(status, Status::Open)
                && (event.is_readable() || event.is_read_closed() || event.is_error())
            {
                status = conn.on_readable();
            }
            if matches!(status, Status::Close) {
                let mut conn = conns.remove(token.0);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

/// Accepts until `WouldBlock`. Returns true when accepting must be retried
/// later (resource exhaustion).
fn accept_all(listener: &TcpListener, conns: &mut Slab<Conn>, poll: &Poll) -> bool {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nodelay(true);
                let entry = conns.vacant_entry();
                let token = Token(entry.key());
                if let Err(e) =
                    poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                {
                    eprintln!("register: {e}");
                    continue;
                }
                entry.insert(Conn {
                    stream,
                    inbuf: vec![0; READ_BUF],
                    in_len: 0,
                    out: Vec::new(),
                    out_pos: 0,
                    paused: false,
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                eprintln!("accept: {e}");
                return true;
            }
        }
    }
}

impl Conn {
    /// Reads until the socket is drained; after each read, echoes every
    /// complete frame straight out of the input buffer.
    fn on_readable(&mut self) -> Status {
        if self.paused {
            return Status::Open;
        }
        loop {
            if self.in_len == self.inbuf.len() {
                self.grow_for_frame();
            }
            match self.stream.read(&mut self.inbuf[self.in_len..]) {
                Ok(0) => {
                    // EOF: echo what is complete, then close.
                    let _ = self.echo_frames();
                    let _ = self.write_out();
                    return Status::Close;
                }
                Ok(n) => {
                    let short = self.in_len + n < self.inbuf.len();
                    self.in_len += n;
                    match self.echo_frames() {
                        Ok(true) => {}
                        // A frame over MAX_FRAME, or a write error.
                        _ => return Status::Close,
                    }
                    if self.pending_out() > MAX_PENDING_OUT {
                        self.paused = true;
                        break;
                    }
                    if short && !READ_UNTIL_WOULD_BLOCK.load(Ordering::Relaxed) {
                        break; // drained: saves the read that would return WouldBlock
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Status::Close,
            }
        }
        Status::Open
    }

    /// Writes the pending tail; resumes reading once the output drained.
    fn on_writable(&mut self) -> Status {
        if matches!(self.write_out(), Status::Close) {
            return Status::Close;
        }
        if self.paused && self.pending_out() == 0 {
            self.paused = false;
            // Edge-triggered: bytes that arrived while paused raise no new
            // event, so read them now.
            return self.on_readable();
        }
        Status::Open
    }

    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Sends every complete frame (head included) at the front of the input
    /// buffer: written straight from it when no older output is pending
    /// (the unsent rest, if any, is copied to the output buffer), else
    /// appended behind that output. Then compacts the input buffer.
    /// `Ok(false)` if a frame announces more than `MAX_FRAME` bytes.
    fn echo_frames(&mut self) -> io::Result<bool> {
        let mut pos = 0;
        let mut ok = true;
        while self.in_len - pos >= HEAD {
            let len = frame_len(&self.inbuf[pos..]);
            if len > MAX_FRAME {
                ok = false;
                break;
            }
            if self.in_len - pos < HEAD + len {
                break;
            }
            pos += HEAD + len;
        }
        if pos == 0 {
            return Ok(ok);
        }
        let mut sent = 0;
        if self.pending_out() == 0 {
            while sent < pos {
                match self.stream.write(&self.inbuf[sent..pos]) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if sent < pos {
            if self.out_pos > 0 {
                // Drop what was written; keeps `out` bounded by the pending bytes.
                self.out.drain(..self.out_pos);
                self.out_pos = 0;
            }
            self.out.extend_from_slice(&self.inbuf[sent..pos]);
        }
        self.inbuf.copy_within(pos..self.in_len, 0);
        self.in_len -= pos;
        // Shrink the input buffer back after a large frame went through.
        if self.inbuf.len() > READ_BUF && self.in_len <= READ_BUF {
            self.inbuf.truncate(READ_BUF);
            self.inbuf.shrink_to_fit();
        }
        Ok(ok)
    }

    /// Called with a full input buffer, which then holds no complete frame
    /// (`echo_frames` ran) and starts with a frame of at most `MAX_FRAME`
    /// bytes that needs more room: grows the buffer to fit it.
    fn grow_for_frame(&mut self) {
        let len = frame_len(&self.inbuf);
        self.inbuf.resize(HEAD + len, 0);
    }

    /// One `write` of everything pending; keeps the unsent tail.
    fn write_out(&mut self) -> Status {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Status::Close,
                Ok(n) => {
                    self.out_pos += n;
                    if self.out_pos < self.out.len() {
                        // Partial write: the socket buffer is full; the rest
                        // goes on the next WRITABLE edge.
                        return Status::Open;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Status::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Status::Close,
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Status::Open
    }
}

fn frame_len(buf: &[u8]) -> usize {
    u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
}
