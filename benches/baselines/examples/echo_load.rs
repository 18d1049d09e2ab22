//! Minimal closed-loop load client for the baselines (a measuring aid, not a
//! baseline; the project's own instrument is `crates/loadgen`).
//!
//! One thread, mio. Each connection keeps `--depth` requests in flight: it
//! starts by sending `depth` requests in one write, and sends one new request
//! for every complete reply, batched into one write per readiness. Replies
//! are counted by size, so every reply must have the same length. Prints
//! replies per second.
//!
//! * `--mode echo`: a frame of `--size` payload bytes, echoed.
//! * `--mode http`: `GET / HTTP/1.1` (reply size learned from one probe).
//! * `--mode chat-ping`: a chat protocol `Ping` (allowed before login);
//!   the reply is an 18-byte `OK`/`Pong` frame.
//!
//! ```text
//! cargo run --release --example echo_load -- --addr 127.0.0.1:9000 \
//!     --connections 100 --size 64 --depth 16 --duration 5
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Mode {
    Echo,
    Http,
    ChatPing,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: SocketAddr,
    #[arg(long, default_value_t = 100)]
    connections: usize,
    #[arg(long, default_value_t = 64)]
    size: usize,
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// Seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

struct Conn {
    stream: TcpStream,
    /// Bytes of the reply being received (mod reply size).
    partial: usize,
    /// Requests owed to the server (replies received, not yet re-sent), in bytes.
    owed: usize,
}

fn main() -> std::io::Result<()> {
    let a = Args::parse();
    let one: Vec<u8> = match a.mode {
        Mode::Echo => {
            let mut f = (a.size as u32).to_be_bytes().to_vec();
            f.resize(4 + a.size, b'x');
            f
        }
        Mode::Http => b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(),
        Mode::ChatPing => [&[0, 0, 0, 13, 0x08, 0, 0, 0, 1][..], &42u64.to_be_bytes()].concat(),
    };
    let reply_len = match a.mode {
        Mode::Echo => one.len(),
        Mode::Http => probe_http(a.addr, &one)?,
        Mode::ChatPing => 18,
    };
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * a.depth).collect();

    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        let std = std::net::TcpStream::connect(a.addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std);
        poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        conns.push(Conn { stream, partial: 0, owed: batch.len() });
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut received: u64 = 0;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.duration);
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() {
                loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => {
                            eprintln!("server closed a connection");
                            std::process::exit(1);
                        }
                        Ok(n) => {
                            let total = c.partial + n;
                            received += (total / reply_len) as u64;
                            c.owed += (total / reply_len) * one.len();
                            c.partial = total % reply_len;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            // Send what is owed, at most `depth` frames are ever outstanding.
            while c.owed > 0 {
                let n = c.owed.min(batch.len());
                match c.stream.write(&batch[batch.len() - n..]) {
                    Ok(w) => c.owed -= w,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.0} replies/s ({received} in {secs:.2}s, {} conns, request {} B, reply {reply_len} B, depth {})",
        received as f64 / secs,
        a.connections,
        one.len(),
        a.depth
    );
    Ok(())
}

/// Length of the server's answer to one HTTP request (read until the body,
/// whose length comes from `content-length`, is complete).
fn probe_http(addr: SocketAddr, request: &[u8]) -> std::io::Result<usize> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.write_all(request)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        let body = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if got.len() >= end + 4 + body {
            return Ok(end + 4 + body);
        }
    }
}
