//! The TLS transport under an unchanged framed echo, with the rustls client
//! over loopback: data both ways (pipelined, and larger than the socket
//! buffers), ALPN, close_notify before FIN, certificate reload, and every
//! kind of bad input closed, counted and gone.

use reactor::{
    Frame, FrameCodec, FramedContext, Handler, Reactor, ReactorHandle, Service, ServiceConfig, ServiceId,
    ServiceStats,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tls::test_cert::{self, TestCert};
use tls::{CertStore, TlsStats, TlsTransport};

const DEADLINE: Duration = Duration::from_secs(20);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(400);

struct Echo;

impl Handler for Echo {
    type Codec = FrameCodec;
    type Conn = ();
    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {}
    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        cx.send_frame(&frame).unwrap();
        if &frame[..] == b"close" {
            cx.close();
        }
    }
}

/// Answers `flood` with 12 frames of 60,000 bytes; echoes anything else.
struct Flood;

impl Handler for Flood {
    type Codec = FrameCodec;
    type Conn = ();
    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {}
    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        if &frame[..] == b"flood" {
            let big = vec![7u8; 60_000];
            for _ in 0..12 {
                let _ = cx.send_frame(&big);
            }
        } else {
            let _ = cx.send_frame(&frame);
        }
    }
}

struct Server {
    reactor: Option<Reactor>,
    addr: SocketAddr,
    http_addr: SocketAddr,
    flood_addr: SocketAddr,
    stats: Arc<TlsStats>,
    certs: Arc<CertStore>,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.reactor.take() {
            r.shutdown(Duration::from_secs(1));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tls-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A two-loop reactor: a framed echo over TLS (service 0) and the same
/// with ALPN http/1.1 (service 1), both presenting `cert`.
fn start(name: &str, cert: &TestCert) -> Server {
    let dir = temp_dir(name);
    let (cert_file, key_file) = cert.write(&dir, "server").unwrap();
    let (certs, _) = CertStore::load(&cert_file, &key_file).unwrap();
    let chat = tls::server_config(certs.clone(), &[]).unwrap();
    let http = tls::server_config(certs.clone(), &[b"http/1.1"]).unwrap();
    let stats = Arc::new(TlsStats::default());
    let config = |name: &str| ServiceConfig {
        handshake_timeout: Some(HANDSHAKE_TIMEOUT),
        linger: Duration::from_millis(500),
        ..ServiceConfig::new(name)
    };
    let frames = reactor::framing::FrameConfig::builder().max_frame_length(4 << 20).build().unwrap();
    let (s1, s2, s3) = (stats.clone(), stats.clone(), stats.clone());
    let flood_config = tls::server_config(certs.clone(), &[]).unwrap();
    let reactor = Reactor::builder()
        .threads(2)
        .service(config("echo-tls"), "127.0.0.1:0", move |_| {
            Service::new(FrameCodec::new(frames), Echo)
                .with_transport(TlsTransport::new(chat.clone(), s1.clone()))
        })
        .service(config("alpn-tls"), "127.0.0.1:0", move |_| {
            Service::new(FrameCodec::default(), Echo)
                .with_transport(TlsTransport::new(http.clone(), s2.clone()))
        })
        // Small output limits: past 1 MiB queued a client is disconnected.
        .service(
            ServiceConfig {
                write_high_watermark: 1 << 20,
                write_low_watermark: 256 << 10,
                max_write_queue: 2 << 20,
                slow_consumer: reactor::SlowConsumerPolicy::Disconnect,
                send_buffer_size: Some(64 << 10),
                ..config("flood-tls")
            },
            "127.0.0.1:0",
            move |_| {
                Service::new(FrameCodec::default(), Flood)
                    .with_transport(TlsTransport::new(flood_config.clone(), s3.clone()))
            },
        )
        .build()
        .unwrap();
    let addr = reactor.local_addr(ServiceId::from_index(0)).unwrap();
    let http_addr = reactor.local_addr(ServiceId::from_index(1)).unwrap();
    let flood_addr = reactor.local_addr(ServiceId::from_index(2)).unwrap();
    Server { reactor: Some(reactor), addr, http_addr, flood_addr, stats, certs, dir }
}

impl Server {
    fn handle(&self) -> ReactorHandle {
        self.reactor.as_ref().unwrap().handle()
    }

    fn stats(&self) -> ServiceStats {
        self.handle().stats(ServiceId::from_index(0)).unwrap()
    }

    /// Waits until `check` holds for the echo service's counters.
    fn wait_for(&self, what: &str, check: impl Fn(&ServiceStats) -> bool) -> ServiceStats {
        let start = Instant::now();
        loop {
            let s = self.stats();
            if check(&s) {
                return s;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}: {s:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

fn connect(addr: SocketAddr, cert: &TestCert, alpn: &[&[u8]]) -> StreamOwned<ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(cert.client_config(alpn), name).unwrap();
    let mut stream = StreamOwned::new(conn, tcp(addr));
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn recv(s: &mut impl Read) -> Vec<u8> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
    s.read_exact(&mut body).unwrap();
    body
}

/// Reads until the server closes: true if it closed cleanly (close_notify
/// then FIN), false if it just went away.
fn closed_cleanly(s: &mut StreamOwned<ClientConnection, TcpStream>) -> bool {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => false,
        Err(e) => panic!("reading to the close: {e}"),
    }
}

#[test]
fn echo_over_tls_pipelined_large_and_closed_with_close_notify() {
    let cert = test_cert::self_signed(&["localhost"]);
    let server = start("echo", &cert);
    let mut c = connect(server.addr, &cert, &[]);
    assert_eq!(c.conn.alpn_protocol(), None);

    // Small frames, pipelined in one write.
    let payloads: Vec<Vec<u8>> = (0..300).map(|i| vec![(i % 251) as u8; i * 7 % 500]).collect();
    let wire: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
    c.write_all(&wire).unwrap();
    for p in &payloads {
        assert_eq!(&recv(&mut c), p);
    }

    // A frame far larger than rustls' buffers and the socket's.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8).collect();
    let wire = frame(&big);
    // rustls' client session is one object: interleave writes and reads.
    let mut reader = c;
    let mut sent = 0;
    let mut got = Vec::with_capacity(big.len() + 4);
    reader.sock.set_nonblocking(true).unwrap();
    let start = Instant::now();
    while got.len() < wire.len() {
        assert!(start.elapsed() < DEADLINE, "3 MiB echo stalled at {} of {}", got.len(), wire.len());
        if sent < wire.len() {
            match reader.conn.writer().write(&wire[sent..(sent + 64 * 1024).min(wire.len())]) {
                Ok(n) => sent += n,
                Err(e) => panic!("{e}"),
            }
        }
        while reader.conn.wants_write() {
            match reader.conn.write_tls(&mut reader.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        match reader.conn.read_tls(&mut reader.sock) {
            Ok(0) => panic!("server closed during the big echo"),
            Ok(_) => {
                reader.conn.process_new_packets().unwrap();
                let mut buf = vec![0; 256 << 10];
                loop {
                    match reader.conn.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(got == wire, "3 MiB frame came back changed");
    reader.sock.set_nonblocking(false).unwrap();
    let mut c = reader;

    // The server closes: the last reply, then close_notify, then FIN.
    c.write_all(&frame(b"close")).unwrap();
    assert_eq!(recv(&mut c), b"close");
    assert!(closed_cleanly(&mut c), "no close_notify before FIN");
    let counts = server.stats.snapshot();
    assert_eq!(counts.handshakes, 1);
    assert_eq!(counts.failed_handshakes, 0);
    server.wait_for("the close", |s| s.open == 0 && s.closing == 0 && s.closed == 1);
}

/// Reads raw records from `sock` into `conn` until `want` plaintext bytes
/// came out; returns the plaintext and how many records carried some.
fn records_until(conn: &mut ClientConnection, sock: &mut TcpStream, want: usize) -> (Vec<u8>, usize) {
    let (mut plain, mut wire, mut carrying) = (Vec::new(), Vec::new(), 0);
    let mut buf = [0u8; 4096];
    while plain.len() < want {
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} of {want} bytes", plain.len());
        wire.extend_from_slice(&buf[..n]);
        // Feed whole records one at a time, to see which carry plaintext.
        while wire.len() >= 5 {
            let len = 5 + u16::from_be_bytes([wire[3], wire[4]]) as usize;
            if wire.len() < len {
                break;
            }
            let record: Vec<u8> = wire.drain(..len).collect();
            let mut rest = &record[..];
            while !rest.is_empty() {
                conn.read_tls(&mut rest).unwrap(); // at most 4 KiB a call
            }
            let state = conn.process_new_packets().unwrap();
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                carrying += 1;
                let start = plain.len();
                plain.resize(start + ready, 0);
                conn.reader().read_exact(&mut plain[start..]).unwrap();
            }
        }
    }
    (plain, carrying)
}

#[test]
fn replies_of_one_turn_leave_in_one_record() {
    let cert = test_cert::self_signed(&["localhost"]);
    let server = start("records", &cert);
    let c = connect(server.addr, &cert, &[]);
    let (mut conn, mut sock) = c.into_parts();
    // 50 small frames in one record: one read, 50 replies in one turn.
    let wire: Vec<u8> = (0..50u8).flat_map(|i| frame(&[i; 10])).collect();
    conn.writer().write_all(&wire).unwrap();
    while conn.wants_write() {
        conn.write_tls(&mut sock).unwrap();
    }
    let (plain, records) = records_until(&mut conn, &mut sock, wire.len());
    assert_eq!(plain, wire);
    assert_eq!(records, 1, "50 replies of one turn were cut into {records} records");
    // 200 KB of replies in one turn: records of the full 16 KiB each.
    let big: Vec<u8> = (0..20u8).flat_map(|i| frame(&[i; 10_000])).collect();
    for chunk in big.chunks(32 << 10) {
        conn.writer().write_all(chunk).unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut sock).unwrap();
        }
    }
    let (plain, records) = records_until(&mut conn, &mut sock, big.len());
    assert_eq!(plain, big);
    let fewest = big.len().div_ceil(16 << 10);
    // Input arrives in several reads, so replies leave in a few turns.
    assert!(records <= fewest + 6, "{} bytes in {records} records (at least {fewest})", big.len());
}

#[test]
fn write_limits_and_the_slow_consumer_policy_apply_over_tls() {
    let cert = test_cert::self_signed(&["localhost"]);
    let server = start("flood", &cert);
    let flood = ServiceId::from_index(2);
    // A client that reads keeps up: 720 KB per request, three times.
    let mut reader = connect(server.flood_addr, &cert, &[]);
    for _ in 0..3 {
        reader.write_all(&frame(b"flood")).unwrap();
        for _ in 0..12 {
            assert_eq!(recv(&mut reader).len(), 60_000);
        }
    }
    reader.write_all(&frame(b"after")).unwrap();
    assert_eq!(recv(&mut reader), b"after");
    // A client that asks for 2.2 MB and never reads: the server's queue
    // (plaintext queued and ciphertext rustls holds) passes 1 MiB and it is
    // closed as a slow consumer, its memory freed.
    let mut sleeper = connect(server.flood_addr, &cert, &[]);
    let three: Vec<u8> = [frame(b"flood"), frame(b"flood"), frame(b"flood")].concat();
    sleeper.write_all(&three).unwrap();
    let start = Instant::now();
    loop {
        let s = server.handle().stats(flood).unwrap();
        if s.slow_consumers == 1 && s.open == 1 {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "no slow-consumer close: {s:?}");
        thread::sleep(Duration::from_millis(10));
    }
    drop(sleeper);
    reader.write_all(&frame(b"still")).unwrap();
    assert_eq!(recv(&mut reader), b"still");
}

#[test]
fn alpn_offers_http_1_1_where_configured() {
    let cert = test_cert::self_signed(&["localhost"]);
    let server = start("alpn", &cert);
    let mut c = connect(server.http_addr, &cert, &[b"h2", b"http/1.1"]);
    assert_eq!(c.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    c.write_all(&frame(b"hi")).unwrap();
    assert_eq!(recv(&mut c), b"hi");
    // A client that speaks only a protocol the server lacks is refused.
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(cert.client_config(&[b"h2"]), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp(server.http_addr));
    let refused = loop {
        match s.conn.complete_io(&mut s.sock) {
            Ok(_) if s.conn.is_handshaking() => continue,
            Ok(_) => break false,
            Err(_) => break true,
        }
    };
    assert!(refused, "a handshake without a common ALPN protocol went through");
}

#[test]
fn a_reloaded_certificate_serves_new_handshakes_and_keeps_old_connections() {
    let old = test_cert::self_signed(&["localhost"]);
    let server = start("reload", &old);
    let mut before = connect(server.addr, &old, &[]);
    before.write_all(&frame(b"one")).unwrap();
    assert_eq!(recv(&mut before), b"one");

    let new = test_cert::self_signed(&["localhost"]);
    let (cert_file, key_file) = new.write(&server.dir, "new").unwrap();
    server.certs.reload(&cert_file, &key_file).unwrap();

    // New handshakes present the new certificate: a client trusting only
    // the old one fails, one trusting the new one succeeds.
    let mut after = connect(server.addr, &new, &[]);
    let presented = after.conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(presented, new.cert_der);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(old.client_config(&[]), name).unwrap();
    let mut stale = StreamOwned::new(conn, tcp(server.addr));
    assert!(
        stale.conn.complete_io(&mut stale.sock).is_err() || stale.write_all(b"x").is_err() || {
            let mut b = [0u8; 1];
            stale.read(&mut b).is_err()
        }
    );

    // The connection made before the reload goes on.
    before.write_all(&frame(b"two")).unwrap();
    assert_eq!(recv(&mut before), b"two");
    after.write_all(&frame(b"three")).unwrap();
    assert_eq!(recv(&mut after), b"three");

    // A reload that fails keeps the certificate in use.
    let garbage = server.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let e = server.certs.reload(&garbage, &key_file).unwrap_err();
    assert!(e.to_string().contains("garbage.pem"), "{e}");
    let again = connect(server.addr, &new, &[]);
    assert_eq!(again.conn.peer_certificates().unwrap()[0], new.cert_der);
}

/// Sends `bytes` on a fresh socket and reads until the server closes it;
/// true if it did within the deadline.
fn closed_after(addr: SocketAddr, bytes: &[u8], then_shut: bool) -> bool {
    let mut s = tcp(addr);
    if !bytes.is_empty() {
        s.write_all(bytes).unwrap();
    }
    if then_shut {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn bad_input_is_closed_counted_and_leaves_nothing() {
    let cert = test_cert::self_signed(&["localhost"]);
    let server = start("bad", &cert);
    let addr = server.addr;

    // Garbage instead of a ClientHello, and plaintext (HTTP, or the chat
    // protocol's frames) on the TLS port.
    assert!(closed_after(addr, &[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01], false));
    assert!(closed_after(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false));
    assert!(closed_after(addr, &frame(b"hello"), false));
    // A handshake record holding garbage.
    assert!(closed_after(addr, &[0x16, 0x03, 0x01, 0x00, 0x04, 0xff, 0xff, 0xff, 0xff], false));
    let s = server.wait_for("4 protocol errors", |s| s.protocol_errors == 4 && s.open == 0);
    assert_eq!(s.handshake_timeouts, 0);
    let counts = server.stats.snapshot();
    assert_eq!(counts.not_tls, 3, "{counts:?}");
    assert_eq!(counts.failed_handshakes, 4, "{counts:?}");

    // A handshake that stalls: nothing at all, or half a ClientHello.
    let started = Instant::now();
    assert!(closed_after(addr, &[], false));
    assert!(closed_after(addr, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00], false));
    assert!(started.elapsed() >= HANDSHAKE_TIMEOUT);
    server.wait_for("2 handshake timeouts", |s| s.handshake_timeouts == 2 && s.open == 0);

    // The peer stops during the handshake (half a ClientHello, then FIN).
    assert!(closed_after(addr, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00], true));
    server.wait_for("a close mid-handshake", |s| s.protocol_errors == 5);

    // An established session whose peer stops mid-record: half a record, FIN.
    let c = connect(addr, &cert, &[]);
    let (conn, mut sock) = c.into_parts();
    drop(conn);
    sock.write_all(&[0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3]).unwrap();
    sock.shutdown(Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = sock.read_to_end(&mut sink);
    server.wait_for("a truncated record", |s| s.protocol_errors == 6 && s.open == 0);
    // And one that sends a record that does not decrypt.
    let c = connect(addr, &cert, &[]);
    let (_, mut sock) = c.into_parts();
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&[0x55; 0x20]);
    sock.write_all(&forged).unwrap();
    let _ = sock.read_to_end(&mut sink);
    let s = server.wait_for("a bad record", |s| s.protocol_errors == 7 && s.open == 0 && s.closing == 0);
    let counts = server.stats.snapshot();
    assert_eq!((counts.truncated, counts.record_errors), (1, 1), "{counts:?}");
    assert_eq!(counts.handshakes, 2);

    // A port check (connect, close) is no error; and the server still serves.
    drop(tcp(addr));
    let mut ok = connect(addr, &cert, &[]);
    ok.write_all(&frame(b"still here")).unwrap();
    assert_eq!(recv(&mut ok), b"still here");
    assert_eq!(server.stats().protocol_errors, s.protocol_errors);
}
