//! The reactor over real loopback sockets: echo under load, partial writes,
//! backpressure, limits, cross-thread send, shutdown, panics, timers.

mod common;

use bytes::Bytes;
use common::{frame, init_logs, wait_until, Client, DEADLINE};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use switchboard::framing::FrameConfig;
use switchboard::reactor::{
    CloseReason, ConnId, Context, Frame, FrameCodec, FramedContext, Handler, Reactor, ReactorHandle, Service,
    ServiceConfig, ServiceId, SlowConsumerPolicy,
};

const FIRST: ServiceId = ServiceId::from_index(0);

/// Echo, plus a few commands that exercise the reactor from a handler.
#[derive(Clone, Default)]
struct TestService {
    /// Open connections, in the order opened.
    conns: Arc<Mutex<Vec<ConnId>>>,
}

impl Handler for TestService {
    type Codec = FrameCodec;
    type Conn = ();

    fn on_open(&mut self, cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {
        self.conns.lock().unwrap().push(cx.id());
    }

    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        match &frame[..] {
            b"panic" => panic!("test handler asked to panic"),
            b"whoami" => {
                let id = cx.id();
                cx.send_frame(&id.as_u64().to_be_bytes()).unwrap();
            }
            b"timer" => {
                cx.set_timer(Duration::from_millis(50), 42);
            }
            b"cancelled-timer" => {
                let key = cx.set_timer(Duration::from_millis(20), 1);
                cx.cancel_timer(key);
                cx.set_timer(Duration::from_millis(60), 2);
            }
            b"notify-me" => {
                let (handle, id) = (cx.handle(), cx.id());
                thread::spawn(move || handle.notify(id, 7));
            }
            b"notify-loops" => {
                // Every loop answers this connection from on_loop_notify.
                let me = cx.id().as_u64();
                let loops = cx.handle().loops();
                for l in 0..loops {
                    if l % 2 == 0 {
                        cx.notify_loop(l, FIRST, me);
                    } else {
                        let handle = cx.handle();
                        thread::spawn(move || handle.notify_loop(l, FIRST, me));
                    }
                }
            }
            b"relay" => {
                let ids = self.conns.lock().unwrap().clone();
                cx.broadcast(&ids, &Bytes::from_static(b"relayed"));
            }
            f if f.starts_with(b"flood:") => {
                let n: usize = std::str::from_utf8(&f[6..]).unwrap().parse().unwrap();
                for i in 0..n {
                    cx.send_frame(&vec![(i % 251) as u8; 64 << 10]).unwrap();
                }
            }
            _ => cx.send_frame(&frame).unwrap(),
        }
    }

    fn on_timer(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), token: u64) {
        cx.send_frame(format!("tick {token}").as_bytes()).unwrap();
    }

    fn on_notify(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), token: u64) {
        cx.send_frame(format!("notified {token}").as_bytes()).unwrap();
    }

    fn on_loop_notify(&mut self, cx: &mut Context<'_>, token: u64) {
        // No current connection: a send to "itself" goes nowhere.
        let none = cx.id();
        cx.send_to(none, Bytes::from_static(b"lost"));
        let payload = Bytes::from(format!("loop {}", cx.loop_index()));
        cx.broadcast(&[ConnId::from_u64(token)], &payload);
    }

    fn on_shutdown(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut ()) {
        cx.send_frame(b"bye").unwrap();
    }

    fn on_close(&mut self, cx: &mut Context<'_>, _conn: (), _reason: &CloseReason) {
        self.conns.lock().unwrap().retain(|&id| id != cx.id());
    }
}

fn start(threads: usize, config: ServiceConfig, frames: FrameConfig) -> (Reactor, SocketAddr, TestService) {
    init_logs();
    let service = TestService::default();
    let s = service.clone();
    let reactor = Reactor::builder()
        .threads(threads)
        .service(config, "127.0.0.1:0", move |_| Service::new(FrameCodec::new(frames), s.clone()))
        .build()
        .expect("start reactor");
    let addr = reactor.local_addr(FIRST).unwrap();
    (reactor, addr, service)
}

fn start_default(threads: usize) -> (Reactor, SocketAddr, TestService) {
    start(threads, ServiceConfig::new("test"), FrameConfig::default())
}

fn small_buffer_client(addr: SocketAddr, size: usize) -> Client {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_send_buffer_size(size).unwrap();
    sock.set_recv_buffer_size(size).unwrap();
    sock.connect(&addr.into()).unwrap();
    let stream: std::net::TcpStream = sock.into();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    Client { stream }
}

fn stats(h: &ReactorHandle) -> switchboard::reactor::ServiceStats {
    h.stats(FIRST).unwrap()
}

#[test]
fn many_connections_echo_many_frames_concurrently() {
    let (reactor, addr, _) = start_default(2);
    let workers: Vec<_> = (0..64)
        .map(|c| {
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut reader = Client { stream: client.stream.try_clone().unwrap() };
                let frames: Vec<Vec<u8>> =
                    (0..200).map(|i| vec![(c * 7 + i) as u8; (c * 31 + i * 17) % 3000]).collect();
                let expected = frames.clone();
                let writer = thread::spawn(move || {
                    // Pipelined: many frames per write, split at odd places.
                    let all: Vec<u8> = frames.iter().flat_map(|f| frame(f)).collect();
                    for chunk in all.chunks(1000 + c * 13) {
                        client.stream.write_all(chunk).unwrap();
                    }
                });
                for want in expected {
                    assert_eq!(reader.recv().unwrap(), want);
                }
                writer.join().unwrap();
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let h = reactor.handle();
    wait_until("all closed", || stats(&h).open == 0);
    let s = stats(&h);
    assert_eq!(s.accepted, 64);
    assert_eq!(s.frames_in, 64 * 200);
    assert_eq!(s.frames_out, 64 * 200);
    assert_eq!(s.bytes_in, s.bytes_out);
    reactor.shutdown(DEADLINE);
}

#[test]
fn eight_mib_frame_through_small_socket_buffers() {
    let config = ServiceConfig {
        // Far smaller than the frame, so every write is partial; not so small
        // that loopback crawls on delayed ACKs.
        send_buffer_size: Some(32 << 10),
        recv_buffer_size: Some(32 << 10),
        ..ServiceConfig::new("big")
    };
    let frames = FrameConfig::builder().max_frame_length(16 << 20).build().unwrap();
    let (reactor, addr, _) = start(1, config, frames);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_send_buffer_size(32 << 10).unwrap();
    sock.set_recv_buffer_size(32 << 10).unwrap();
    sock.connect(&addr.into()).unwrap();
    let stream: std::net::TcpStream = sock.into();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let payload: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 253) as u8).collect();
    let mut writer = stream.try_clone().unwrap();
    let to_send = frame(&payload);
    let w = thread::spawn(move || writer.write_all(&to_send).unwrap());
    let mut client = Client { stream };
    let echoed = client.recv().unwrap();
    w.join().unwrap();
    assert!(echoed == payload, "8 MiB frame came back changed");
    reactor.shutdown(DEADLINE);
}

#[test]
fn client_that_never_reads_is_paused_and_others_are_served() {
    let config = ServiceConfig {
        write_high_watermark: 64 << 10,
        write_low_watermark: 16 << 10,
        max_write_queue: 4 << 20,
        slow_consumer: SlowConsumerPolicy::PauseReading,
        send_buffer_size: Some(8192),
        recv_buffer_size: Some(8192),
        ..ServiceConfig::new("pause")
    };
    let (reactor, addr, _) = start(1, config.clone(), FrameConfig::default());
    let h = reactor.handle();
    // Small buffers on the hog's side too, or loopback autotuning lets its
    // kernel buffer swallow megabytes before the server's queue grows.
    let mut hog = small_buffer_client(addr, 8192);
    hog.stream.set_write_timeout(Some(Duration::from_millis(1500))).unwrap();
    let chunk = frame(&[9u8; 16 << 10]);
    let mut sent = 0usize;
    for _ in 0..1024 {
        // 16 MiB in all, unless the server stops reading first (it must).
        if hog.stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(sent < 16 << 20, "the server kept reading from a client that never reads");
    let mut other = Client::connect(addr);
    other.send(b"still served");
    assert_eq!(other.recv().unwrap(), b"still served");
    let s = stats(&h);
    assert_eq!(s.slow_consumers, 0, "pause policy must not disconnect");
    assert_eq!(s.open, 2);
    // What the server holds for the hog: read but not yet written back.
    let held = s.bytes_in - s.bytes_out;
    let bound = (config.write_high_watermark + config.read_budget + (64 << 10)) as u64;
    assert!(held <= bound, "server holds {held} bytes for a non-reader, over {bound}");
    // Once the hog reads, everything it sent comes back.
    let mut got = 0usize;
    let mut rest = sent;
    hog.stream.set_read_timeout(Some(DEADLINE)).unwrap();
    while rest > 0 {
        let f = hog.recv().unwrap();
        got += f.len() + 4;
        rest -= f.len() + 4;
    }
    assert_eq!(got, sent);
    reactor.shutdown(DEADLINE);
}

#[test]
fn slow_consumer_is_disconnected_and_others_get_every_broadcast() {
    let config = ServiceConfig {
        write_high_watermark: 256 << 10,
        write_low_watermark: 64 << 10,
        max_write_queue: 1 << 20,
        slow_consumer: SlowConsumerPolicy::Disconnect,
        send_buffer_size: Some(8192),
        ..ServiceConfig::new("disconnect")
    };
    let (reactor, addr, service) = start(2, config, FrameConfig::default());
    let h = reactor.handle();
    let mut slow = small_buffer_client(addr, 4096);
    let mut good = Client::connect(addr);
    wait_until("both open", || service.conns.lock().unwrap().len() == 2);
    let ids = service.conns.lock().unwrap().clone();
    let chunk = Bytes::from(vec![5u8; 32 << 10]);
    for i in 0..64 {
        h.broadcast(&ids, &chunk).unwrap();
        let f = good.recv().unwrap_or_else(|e| panic!("good client lost broadcast {i}: {e}"));
        assert_eq!(f.len(), 32 << 10);
    }
    wait_until("slow consumer dropped", || stats(&h).slow_consumers == 1);
    assert!(slow.closed_by_server());
    good.send(b"ok?");
    assert_eq!(good.recv().unwrap(), b"ok?");
    reactor.shutdown(DEADLINE);
}

#[test]
fn oversized_length_header_closes_only_that_connection() {
    let (reactor, addr, _) = start_default(1);
    let h = reactor.handle();
    let mut good = Client::connect(addr);
    let mut bad = Client::connect(addr);
    bad.stream.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]).unwrap();
    assert!(bad.closed_by_server());
    wait_until("protocol error counted", || stats(&h).protocol_errors == 1);
    good.send(b"fine");
    assert_eq!(good.recv().unwrap(), b"fine");
    assert!(stats(&h).bytes_in < 1024, "nothing was read for the announced 4 GiB");
    reactor.shutdown(DEADLINE);
}

#[test]
fn connections_over_the_limit_are_closed_at_once() {
    let config = ServiceConfig { max_connections: 4, ..ServiceConfig::new("limited") };
    let (reactor, addr, _) = start(2, config, FrameConfig::default());
    let h = reactor.handle();
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
    for c in &mut clients {
        c.send(b"in");
        assert_eq!(c.recv().unwrap(), b"in");
    }
    let mut extra = Client::connect(addr);
    assert!(extra.closed_by_server(), "fifth connection must be closed");
    assert_eq!(stats(&h).rejected, 1);
    drop(clients.pop());
    wait_until("one closed", || stats(&h).open == 3);
    let mut again = Client::connect(addr);
    again.send(b"room again");
    assert_eq!(again.recv().unwrap(), b"room again");
    reactor.shutdown(DEADLINE);
}

#[test]
fn cross_thread_send_and_broadcast_reach_every_loop() {
    let (reactor, addr, service) = start_default(2);
    let h = reactor.handle();
    let mut clients: Vec<Client> = (0..8).map(|_| Client::connect(addr)).collect();
    wait_until("all open", || service.conns.lock().unwrap().len() == 8);
    let ids: Vec<ConnId> = clients
        .iter_mut()
        .map(|c| {
            c.send(b"whoami");
            ConnId::from_u64(u64::from_be_bytes(c.recv().unwrap().try_into().unwrap()))
        })
        .collect();
    let loops: HashSet<usize> = ids.iter().map(|id| id.loop_index()).collect();
    assert_eq!(loops.len(), 2, "connections spread over both loops: {ids:?}");
    for (i, &id) in ids.iter().enumerate() {
        assert!(h.send(id, Bytes::from(format!("to {i}"))).is_ok());
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.recv().unwrap(), format!("to {i}").as_bytes());
    }
    h.broadcast(&ids, &Bytes::from_static(b"everyone")).unwrap();
    for c in &mut clients {
        assert_eq!(c.recv().unwrap(), b"everyone");
    }
    // From a handler on one loop to connections on both.
    clients[0].send(b"relay");
    for c in &mut clients {
        assert_eq!(c.recv().unwrap(), b"relayed");
        c.send(b"end");
        assert_eq!(c.recv().unwrap(), b"end", "no duplicate deliveries");
    }
    reactor.shutdown(DEADLINE);
}

#[test]
fn stale_id_never_reaches_a_newer_connection() {
    let (reactor, addr, service) = start_default(1);
    let h = reactor.handle();
    let old = Client::connect(addr);
    wait_until("open", || service.conns.lock().unwrap().len() == 1);
    let old_id = service.conns.lock().unwrap()[0];
    drop(old);
    wait_until("closed", || service.conns.lock().unwrap().is_empty());
    let mut new = Client::connect(addr);
    wait_until("new open", || service.conns.lock().unwrap().len() == 1);
    let new_id = service.conns.lock().unwrap()[0];
    assert_eq!(new_id.loop_index(), old_id.loop_index());
    assert_ne!(new_id, old_id);
    h.send(old_id, Bytes::from_static(b"stale")).unwrap();
    h.send(new_id, Bytes::from_static(b"fresh")).unwrap();
    assert_eq!(new.recv().unwrap(), b"fresh");
    reactor.shutdown(DEADLINE);
}

#[test]
fn graceful_shutdown_delivers_what_was_queued() {
    let (reactor, addr, _) = start_default(2);
    let mut client = Client::connect(addr);
    // 4 MiB queued for a client that is not reading yet, then "last". One
    // write, so that the server reads both before the flood's backpressure
    // stops it reading: what this test checks is that what was queued when
    // the shutdown began is delivered, not input the server never read.
    let both = [frame(b"flood:64"), frame(b"last")].concat();
    client.stream.write_all(&both).unwrap();
    thread::sleep(Duration::from_millis(200));
    let h = reactor.handle();
    let started = Instant::now();
    let stopper = thread::spawn(move || reactor.shutdown(Duration::from_secs(10)));
    for i in 0..64 {
        let f = client.recv().unwrap_or_else(|e| panic!("frame {i} lost in shutdown: {e}"));
        assert_eq!(f.len(), 64 << 10);
        assert!(f.iter().all(|&b| b == (i % 251) as u8));
    }
    assert_eq!(client.recv().unwrap(), b"last");
    assert_eq!(client.recv().unwrap(), b"bye");
    assert!(client.closed_by_server());
    stopper.join().unwrap();
    assert!(started.elapsed() < DEADLINE);
    assert!(h.is_shutting_down());
    assert_eq!(stats(&h).open, 0);
}

#[test]
fn shutdown_deadline_closes_clients_that_never_read() {
    let (reactor, addr, _) = start_default(1);
    let mut client = Client::connect(addr);
    client.send(b"flood:256"); // 16 MiB: more than the kernel buffers take
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    reactor.shutdown(Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited past its deadline");
}

#[test]
fn panicking_handler_closes_only_its_connection() {
    let (reactor, addr, _) = start_default(1);
    let h = reactor.handle();
    let mut good = Client::connect(addr);
    let mut bad = Client::connect(addr);
    good.send(b"before");
    assert_eq!(good.recv().unwrap(), b"before");
    bad.send(b"panic");
    assert!(bad.closed_by_server());
    wait_until("panic counted", || stats(&h).panics == 1);
    good.send(b"after");
    assert_eq!(good.recv().unwrap(), b"after");
    reactor.shutdown(DEADLINE);
}

#[test]
fn idle_timeout_closes_silent_connections_only() {
    let config =
        ServiceConfig { idle_timeout: Some(Duration::from_millis(300)), ..ServiceConfig::new("idle") };
    let (reactor, addr, _) = start(1, config, FrameConfig::default());
    let h = reactor.handle();
    let mut silent = Client::connect(addr);
    let mut chatty = Client::connect(addr);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(900) {
        chatty.send(b"ping");
        assert_eq!(chatty.recv().unwrap(), b"ping");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(silent.closed_by_server());
    assert_eq!(stats(&h).idle_timeouts, 1);
    chatty.send(b"still here");
    assert_eq!(chatty.recv().unwrap(), b"still here");
    reactor.shutdown(DEADLINE);
}

#[test]
fn timers_and_notify_call_the_handler() {
    let (reactor, addr, _) = start_default(2);
    let mut c = Client::connect(addr);
    c.send(b"timer");
    assert_eq!(c.recv().unwrap(), b"tick 42");
    c.send(b"cancelled-timer");
    assert_eq!(c.recv().unwrap(), b"tick 2", "the cancelled timer must not fire");
    c.send(b"notify-me");
    assert_eq!(c.recv().unwrap(), b"notified 7");
    reactor.shutdown(DEADLINE);
}

#[test]
fn notify_loop_reaches_the_service_on_every_loop() {
    let (reactor, addr, _) = start_default(3);
    let mut c = Client::connect(addr);
    c.send(b"notify-loops");
    let mut got: Vec<Vec<u8>> = (0..3).map(|_| c.recv().unwrap()).collect();
    got.sort();
    assert_eq!(got, vec![b"loop 0".to_vec(), b"loop 1".to_vec(), b"loop 2".to_vec()]);
    c.send(b"ping");
    assert_eq!(c.recv().unwrap(), b"ping", "nothing else was sent, \"lost\" least of all");
    reactor.shutdown(DEADLINE);
}

#[test]
fn half_closed_peer_gets_its_replies_then_a_close() {
    let (reactor, addr, _) = start_default(1);
    let mut c = Client::connect(addr);
    c.stream.write_all(&[frame(b"one"), frame(b"two")].concat()).unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.recv().unwrap(), b"one");
    assert_eq!(c.recv().unwrap(), b"two");
    let mut rest = Vec::new();
    assert_eq!(c.stream.read_to_end(&mut rest).unwrap(), 0);
    reactor.shutdown(DEADLINE);
}

#[test]
fn eof_inside_a_frame_is_a_protocol_error() {
    let (reactor, addr, _) = start_default(1);
    let h = reactor.handle();
    let mut c = Client::connect(addr);
    c.stream.write_all(&[0, 0, 0, 10, 1, 2]).unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.closed_by_server());
    wait_until("counted", || stats(&h).protocol_errors == 1);
    reactor.shutdown(DEADLINE);
}

/// Uppercases each frame: a second service on the same reactor.
struct Upper;

impl Handler for Upper {
    type Codec = FrameCodec;
    type Conn = ();
    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {}
    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        cx.send_frame(&frame.to_ascii_uppercase()).unwrap();
    }
}

#[test]
fn several_services_share_one_reactor_with_their_own_limits() {
    init_logs();
    let reactor = Reactor::builder()
        .threads(2)
        .service(ServiceConfig::new("echo"), "127.0.0.1:0", |_| {
            Service::new(FrameCodec::default(), TestService::default())
        })
        .service(ServiceConfig { max_connections: 1, ..ServiceConfig::new("upper") }, "127.0.0.1:0", |_| {
            Service::new(
                FrameCodec::new(FrameConfig::builder().length_field_length(2).build().unwrap()),
                Upper,
            )
        })
        .build()
        .unwrap();
    let h = reactor.handle();
    let upper = ServiceId::from_index(1);
    let (echo_addr, upper_addr) = (reactor.local_addr(FIRST).unwrap(), reactor.local_addr(upper).unwrap());
    assert_eq!(h.service_id("upper"), Some(upper));
    let mut e = Client::connect(echo_addr);
    e.send(b"abc");
    assert_eq!(e.recv().unwrap(), b"abc");
    let mut u = std::net::TcpStream::connect(upper_addr).unwrap();
    u.set_read_timeout(Some(DEADLINE)).unwrap();
    u.write_all(&[0, 3, b'a', b'b', b'c']).unwrap();
    let mut reply = [0u8; 5];
    u.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, &[0, 3, b'A', b'B', b'C']);
    let mut second = Client::connect(upper_addr);
    assert!(second.closed_by_server(), "upper allows one connection");
    let all = h.all_stats();
    assert_eq!((all[0].name.as_str(), all[0].accepted, all[0].rejected), ("echo", 1, 0));
    assert_eq!((all[1].name.as_str(), all[1].accepted, all[1].rejected), ("upper", 1, 1));
    reactor.shutdown(DEADLINE);
}

#[test]
fn reconfigure_applies_new_limits_without_dropping_connections() {
    let (reactor, addr, _) =
        start(1, ServiceConfig { max_connections: 2, ..ServiceConfig::new("r") }, FrameConfig::default());
    let h = reactor.handle();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    a.send(b"a");
    assert_eq!(a.recv().unwrap(), b"a");
    b.send(b"b");
    assert_eq!(b.recv().unwrap(), b"b");
    assert!(Client::connect(addr).closed_by_server());
    let mut cfg = (*h.config(FIRST).unwrap()).clone();
    cfg.max_connections = 3;
    h.reconfigure(FIRST, cfg.clone()).unwrap();
    let mut c = Client::connect(addr);
    c.send(b"c");
    assert_eq!(c.recv().unwrap(), b"c");
    cfg.write_low_watermark = cfg.write_high_watermark + 1;
    assert!(h.reconfigure(FIRST, cfg).is_err(), "invalid limits are refused");
    a.send(b"a2");
    assert_eq!(a.recv().unwrap(), b"a2");
    reactor.shutdown(DEADLINE);
}

#[test]
fn build_errors_are_typed_and_nothing_is_clamped() {
    use switchboard::reactor::BuildError;
    let echo = |_| Service::new(FrameCodec::default(), TestService::default());
    let err = |b: switchboard::reactor::ReactorBuilder| b.build().err().expect("refused");
    assert!(matches!(err(Reactor::builder().threads(0)), BuildError::Threads { requested: 0, .. }));
    assert!(matches!(err(Reactor::builder().threads(257)), BuildError::Threads { requested: 257, .. }));
    assert!(matches!(err(Reactor::builder().mailbox_capacity(0)), BuildError::MailboxCapacity));
    let bad = ServiceConfig { write_low_watermark: 10, write_high_watermark: 5, ..ServiceConfig::new("bad") };
    assert!(matches!(
        err(Reactor::builder().threads(1).service(bad, "127.0.0.1:0", echo)),
        BuildError::Config { .. }
    ));
    // A name that does not resolve is reported, not taken for "no address".
    let e =
        err(Reactor::builder().threads(1).service(ServiceConfig::new("dns"), "no-such-host.invalid:1", echo));
    assert!(matches!(e, BuildError::Resolve { .. }), "{e}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = err(Reactor::builder().threads(1).service(ServiceConfig::new("busy"), addr, echo));
    assert!(matches!(e, BuildError::Listen { addr: Some(a), .. } if a == addr), "{e}");
    assert_eq!(
        std::io::Error::from(e).kind(),
        std::io::ErrorKind::AddrInUse,
        "the kind survives into io::Error"
    );
}

#[test]
fn a_full_mailbox_refuses_at_once_and_counts_it() {
    use switchboard::reactor::SendError;
    let reactor = Reactor::builder()
        .threads(1)
        .mailbox_capacity(4)
        .service(ServiceConfig::new("mb"), "127.0.0.1:0", |_| {
            Service::new(FrameCodec::default(), TestService::default())
        })
        .build()
        .unwrap();
    let h = reactor.handle();
    let mut c = Client::connect(reactor.local_addr(FIRST).unwrap());
    c.send(b"whoami");
    let id = ConnId::from_u64(u64::from_be_bytes(c.recv().unwrap().try_into().unwrap()));
    // Far more than four, faster than a loop drains them: some are refused,
    // none blocks, and what was accepted arrives in order.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..10_000u32 {
        match h.send(id, Bytes::from(i.to_be_bytes().to_vec())) {
            Ok(()) => accepted.push(i),
            Err(SendError::Full) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0, "a mailbox of 4 took 10,000 messages at once");
    assert_eq!(h.mailbox_refusals(), refused);
    for want in accepted {
        assert_eq!(c.recv().unwrap(), want.to_be_bytes());
    }
    reactor.shutdown(DEADLINE);
}
