//! A one-thread load client for TLS benchmarks (mio + rustls), plain or
//! TLS with the same code, reading the server's CPU time and memory from
//! /proc:
//!
//! ```text
//! # framed echo: N connections, D frames in flight each, S-byte payloads
//! tls_load echo --addr 127.0.0.1:9443 --tls --ca CERT --server-pid P --connections 100 --depth 16 --size 64
//! # idle: open N connections (TLS: handshake done), hold them, report RSS per connection
//! tls_load idle --addr 127.0.0.1:9443 --tls --ca CERT --server-pid P --connections 10000
//! ```
//!
//! Prints one line of `key=value` fields. Loopback only: it is a benchmark.

use clap::{Parser, Subcommand};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Server address (loopback).
    #[arg(long)]
    addr: SocketAddr,
    /// Speak TLS.
    #[arg(long)]
    tls: bool,
    /// The certificate to trust (PEM), with --tls.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Name the certificate carries.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// The server's pid, for its CPU time and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    connections: usize,
}

#[derive(Subcommand)]
enum Mode {
    /// Framed echo at a fixed depth.
    Echo {
        #[command(flatten)]
        common: Common,
        /// Frames in flight per connection.
        #[arg(long, default_value_t = 1)]
        depth: usize,
        /// Payload bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Warm-up, then measured, seconds.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Hold connections idle and report the server's RSS per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Seconds to hold them after the last one is open.
        #[arg(long, default_value_t = 2.0)]
        hold: f64,
    },
}

/// utime + stime of a process, in seconds (clock ticks of 10 ms).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn client_config(common: &Common) -> Option<Arc<ClientConfig>> {
    if !common.tls {
        return None;
    }
    let mut roots = rustls::RootCertStore::empty();
    let ca = common.ca.as_ref().expect("--tls needs --ca");
    for cert in tls::certs::load_chain(ca).expect("--ca") {
        roots.add(cert).expect("a usable CA certificate");
    }
    let config = ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}

/// One client connection: its socket and, over TLS, its session.
struct Conn {
    sock: TcpStream,
    tls: Option<ClientConnection>,
    /// Bytes received and not yet counted as whole frames.
    inbuf: Vec<u8>,
    /// Plaintext not yet written (plain) or handed to rustls (TLS).
    out: Vec<u8>,
    in_flight: usize,
}

impl Conn {
    fn open(
        addr: SocketAddr,
        config: &Option<Arc<ClientConfig>>,
        name: &ServerName<'static>,
    ) -> io::Result<Conn> {
        let std = std::net::TcpStream::connect(addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let tls = match config {
            Some(c) => Some(ClientConnection::new(c.clone(), name.clone()).map_err(io::Error::other)?),
            None => None,
        };
        Ok(Conn { sock: TcpStream::from_std(std), tls, inbuf: Vec::new(), out: Vec::new(), in_flight: 0 })
    }

    fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Writes what it can; false on a fatal error.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.tls {
            None => {
                while !self.out.is_empty() {
                    match self.sock.write(&self.out) {
                        Ok(n) => {
                            self.out.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            Some(tls) => {
                if !self.out.is_empty() && !tls.is_handshaking() {
                    let n = tls.writer().write(&self.out)?;
                    self.out.drain(..n);
                }
                while tls.wants_write() {
                    match tls.write_tls(&mut self.sock) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads what is there; returns plaintext bytes appended to `inbuf`.
    fn fill(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let n = match self.sock.read(scratch) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) => return Err(e),
            };
            match &mut self.tls {
                None => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    total += n;
                }
                Some(tls) => {
                    let mut rest = &scratch[..n];
                    while !rest.is_empty() {
                        tls.read_tls(&mut rest)?;
                        let state = tls.process_new_packets().map_err(io::Error::other)?;
                        let ready = state.plaintext_bytes_to_read();
                        if ready > 0 {
                            let start = self.inbuf.len();
                            self.inbuf.resize(start + ready, 0);
                            tls.reader().read_exact(&mut self.inbuf[start..])?;
                            total += ready;
                        }
                    }
                }
            }
        }
    }

    /// Whole frames at the front of `inbuf`, removed.
    fn take_frames(&mut self) -> usize {
        let (mut at, mut frames) = (0, 0);
        while self.inbuf.len() - at >= 4 {
            let len = u32::from_be_bytes(self.inbuf[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
            if self.inbuf.len() - at < 4 + len {
                break;
            }
            at += 4 + len;
            frames += 1;
        }
        self.inbuf.drain(..at);
        frames
    }
}

fn open_all(common: &Common, poll: &Poll) -> Vec<Conn> {
    let config = client_config(common);
    let name = ServerName::try_from(common.server_name.clone()).expect("--server-name");
    let mut conns = Vec::with_capacity(common.connections);
    for i in 0..common.connections {
        let mut c = Conn::open(common.addr, &config, &name).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        poll.registry()
            .register(&mut c.sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .expect("register");
        conns.push(c);
    }
    conns
}

/// Drives every connection until each has finished its handshake.
fn handshake_all(conns: &mut [Conn], poll: &mut Poll, events: &mut Events, scratch: &mut [u8]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending = conns.iter().filter(|c| c.handshaking()).count();
    for c in conns.iter_mut() {
        let _ = c.flush();
    }
    while pending > 0 {
        assert!(Instant::now() < deadline, "{pending} handshakes did not finish");
        poll.poll(events, Some(Duration::from_millis(100))).expect("poll");
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if !c.handshaking() {
                continue;
            }
            if let Err(e) = c.fill(scratch).and_then(|_| c.flush()) {
                panic!("handshake: {e}");
            }
            if !c.handshaking() {
                pending -= 1;
            }
        }
    }
}

fn echo(common: Common, depth: usize, size: usize, warmup: f64, seconds: f64) {
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; 256 << 10];
    let mut conns = open_all(&common, &poll);
    handshake_all(&mut conns, &mut poll, &mut events, &mut scratch);
    let mut frame = (size as u32).to_be_bytes().to_vec();
    frame.extend(std::iter::repeat_n(0x5a, size));
    for c in conns.iter_mut() {
        for _ in 0..depth {
            c.out.extend_from_slice(&frame);
        }
        c.in_flight = depth;
        c.flush().expect("first write");
    }
    let start = Instant::now();
    let (warm_end, end) =
        (start + Duration::from_secs_f64(warmup), start + Duration::from_secs_f64(warmup + seconds));
    let (mut counted, mut measuring, mut cpu0, mut t0) = (0u64, false, 0.0, start);
    loop {
        let now = Instant::now();
        if !measuring && now >= warm_end {
            measuring = true;
            t0 = now;
            cpu0 = common.server_pid.map_or(0.0, cpu_seconds);
        }
        if now >= end {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(50))).expect("poll");
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() {
                c.fill(&mut scratch).expect("read");
                let got = c.take_frames();
                if measuring {
                    counted += got as u64;
                }
                for _ in 0..got {
                    c.out.extend_from_slice(&frame);
                }
            }
            c.flush().expect("write");
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = common.server_pid.map_or(0.0, |p| cpu_seconds(p) - cpu0);
    println!(
        "mode=echo tls={} connections={} depth={depth} size={size} frames_per_s={:.0} server_cpu_pct={:.0} server_us_per_frame={:.3}",
        common.tls,
        common.connections,
        counted as f64 / elapsed,
        cpu / elapsed * 100.0,
        cpu * 1e6 / counted.max(1) as f64
    );
}

fn idle(common: Common, hold: f64) {
    let pid = common.server_pid.expect("idle needs --server-pid");
    let before = rss_bytes(pid);
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; 64 << 10];
    let mut conns = open_all(&common, &poll);
    handshake_all(&mut conns, &mut poll, &mut events, &mut scratch);
    // Let the server take its post-handshake turn (tickets) and settle.
    let settle = Instant::now() + Duration::from_secs_f64(hold);
    while Instant::now() < settle {
        poll.poll(&mut events, Some(Duration::from_millis(100))).expect("poll");
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            let _ = c.fill(&mut scratch);
            let _ = c.flush();
        }
    }
    let after = rss_bytes(pid);
    println!(
        "mode=idle tls={} connections={} rss_before={before} rss_after={after} bytes_per_conn={:.0}",
        common.tls,
        conns.len(),
        (after as f64 - before as f64) / conns.len() as f64
    );
}

fn main() {
    match Args::parse().mode {
        Mode::Echo { common, depth, size, warmup, seconds } => echo(common, depth, size, warmup, seconds),
        Mode::Idle { common, hold } => idle(common, hold),
    }
}
