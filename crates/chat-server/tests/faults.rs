//! Bad input and faults: slowloris, clients that never read while others
//! are broadcast to, garbage, length bombs, resets mid-frame, descriptor
//! floods past RLIMIT_NOFILE, half-open peers. In each, the offender is
//! closed with a reason, memory stays bounded, every other client keeps
//! being served, and no acknowledged message is lost.

mod common;

use chat_server::client::{ChatClient, ClientError};
use chat_server::config::{Config, SlowConsumer};
use chat_server::protocol::{Push, ServerFrame};
use chat_server::server::ChatServer;
use common::{free_addr, temp_dir, write_config, TIMEOUT};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

fn start(edit: impl FnOnce(&mut Config)) -> (ChatServer, SocketAddr) {
    common::start_server(edit)
}

fn login(addr: SocketAddr, nick: &str) -> ChatClient {
    let mut c = ChatClient::connect(addr, TIMEOUT).unwrap();
    c.login(nick, None).unwrap();
    c
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A pair of well-behaved clients in room "ok": every message `a` gets
/// acknowledged, `b` must receive. Returns the number checked.
fn exchange(a: &mut ChatClient, b: &mut ChatClient, n: usize, tag: &str) -> usize {
    let mut acked = Vec::new();
    for i in 0..n {
        acked.push(a.say("ok", &format!("{tag}{i}")).expect("acknowledged").id);
    }
    let mut got = Vec::new();
    while got.len() < acked.len() {
        match b.next_event().expect("delivery") {
            ServerFrame::Push(Push::Message { id, room, .. }) if room == "ok" => got.push(id),
            _ => {}
        }
    }
    assert_eq!(got, acked, "every acknowledged message arrives, in order");
    n
}

fn pair(addr: SocketAddr, tag: &str) -> (ChatClient, ChatClient) {
    let mut a = login(addr, &format!("{tag}a"));
    let mut b = login(addr, &format!("{tag}b"));
    a.join("ok").unwrap();
    b.join("ok").unwrap();
    (a, b)
}

#[test]
fn slowloris_on_the_chat_protocol_is_closed_by_the_idle_timeout() {
    let (server, addr) = start(|c| {
        c.chat.idle_timeout_ms = 600;
        c.chat.ping_interval_ms = 200;
    });
    let (mut a, mut b) = pair(addr, "s");
    let mut slow: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Each sends a frame header announcing 1000 bytes, then one byte at a
    // time: the frame never completes, so the connection counts as silent.
    for s in &mut slow {
        s.write_all(&1000u32.to_be_bytes()).unwrap();
    }
    let started = Instant::now();
    let mut closed = 0;
    'outer: while started.elapsed() < Duration::from_secs(5) {
        for s in &mut slow {
            if s.write_all(&[0]).is_err() {
                closed += 1;
            }
        }
        if closed == slow.len() {
            break 'outer;
        }
        closed = 0;
        exchange(&mut a, &mut b, 2, "x");
        thread::sleep(Duration::from_millis(50));
    }
    wait_for("slowloris connections closed", || {
        server.handle().stats(reactor::ServiceId::from_index(0)).unwrap().idle_timeouts >= 20
    });
    exchange(&mut a, &mut b, 10, "after");
    server.shutdown();
}

#[test]
fn a_client_that_never_reads_is_cut_off_and_the_room_goes_on() {
    let (server, addr) = start(|c| {
        c.chat.slow_consumer = SlowConsumer::Pause;
        c.chat.write_high_watermark = 64 << 10;
        c.chat.max_write_queue = 256 << 10;
    });
    let (mut a, mut b) = pair(addr, "n");
    // The non-reader: small receive buffer, joins, then never reads again.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut hog = ChatClient::from_stream(sock.into(), TIMEOUT).unwrap();
    hog.login("hog", None).unwrap();
    hog.join("ok").unwrap();
    let rss_before = rss_kib();
    let text = "y".repeat(1000);
    let mut acked = 0;
    let end = Instant::now() + TIMEOUT;
    while server.handle().stats(reactor::ServiceId::from_index(0)).unwrap().slow_consumers == 0 {
        assert!(Instant::now() < end, "the non-reader was never cut off");
        for _ in 0..50 {
            a.say("ok", &text).unwrap();
            acked += 1;
        }
        // b reads everything; only the hog falls behind.
        let mut got = 0;
        while got < 50 {
            if let ServerFrame::Push(Push::Message { .. }) = b.next_event().unwrap() {
                got += 1;
            }
        }
    }
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 32 << 10, "server memory grew {grown} KiB for one non-reader");
    assert!(acked >= 50);
    exchange(&mut a, &mut b, 20, "after");
    server.shutdown();
}

#[test]
fn garbage_resets_and_length_bombs_hurt_no_one_else() {
    let (server, addr) = start(|_| {});
    let (mut a, mut b) = pair(addr, "g");
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..30 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        match round % 3 {
            0 => {
                // Random bytes.
                let junk: Vec<u8> = (0..(rand() % 4096) as usize).map(|_| rand() as u8).collect();
                let _ = s.write_all(&junk);
            }
            1 => {
                // A 4 GiB length header: refused before anything is allocated.
                let _ = s.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
            }
            _ => {
                // Half a frame, then a reset (SO_LINGER 0 makes close send RST).
                let _ = s.write_all(&[0, 0, 0, 100, 0x04, 0, 0]);
                socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
                drop(s);
                continue;
            }
        }
        // Whatever it sent, it is answered with an error or closed, not left hanging.
        let mut buf = [0u8; 1024];
        let end = Instant::now() + TIMEOUT;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) if Instant::now() < end => continue,
                Ok(_) => panic!("garbage connection never closed"),
            }
        }
        exchange(&mut a, &mut b, 2, &format!("r{round}"));
    }
    let h = server.handle();
    wait_for("all offenders closed", || h.stats(reactor::ServiceId::from_index(0)).unwrap().open == 2);
    assert!(
        h.stats(reactor::ServiceId::from_index(0)).unwrap().protocol_errors >= 10,
        "{:?}",
        h.stats(reactor::ServiceId::from_index(0))
    );
    exchange(&mut a, &mut b, 20, "after");
    server.shutdown();
}

fn server_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap() // utime + stime
}

#[test]
fn a_connection_flood_past_the_descriptor_limit_neither_spins_nor_stops_service() {
    let dir = temp_dir("flood");
    let config = dir.join("chat.toml");
    let addr = free_addr();
    write_config(&config, addr, "");
    // The server runs with at most 64 descriptors.
    let mut child = unsafe {
        Command::new(common::BIN)
            .arg("-c")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 64, rlim_max: 64 };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
            .spawn()
            .unwrap()
    };
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let log = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let end = Instant::now() + TIMEOUT;
    let (mut a, mut b) = loop {
        if let (Ok(mut a), Ok(mut b)) =
            (ChatClient::connect(addr, TIMEOUT), ChatClient::connect(addr, TIMEOUT))
        {
            a.login("fa", None).unwrap();
            b.login("fb", None).unwrap();
            a.join("ok").unwrap();
            b.join("ok").unwrap();
            break (a, b);
        }
        assert!(Instant::now() < end, "server did not start");
        thread::sleep(Duration::from_millis(20));
    };
    // 200 connections: far past what the server can accept.
    let flood: Vec<TcpStream> = (0..200).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    assert!(flood.len() > 100);
    thread::sleep(Duration::from_millis(200));
    let ticks_before = server_cpu_ticks(pid);
    let t0 = Instant::now();
    exchange(&mut a, &mut b, 20, "during");
    thread::sleep(Duration::from_secs(1));
    let ticks = server_cpu_ticks(pid) - ticks_before;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = ticks as f64 / hz / t0.elapsed().as_secs_f64();
    assert!(cpu < 0.5, "server used {:.0}% of a core while out of descriptors", cpu * 100.0);
    drop(flood);
    // Once descriptors free up, new clients get in again.
    let end = Instant::now() + TIMEOUT;
    loop {
        let ok = ChatClient::connect(addr, Duration::from_secs(2))
            .map_err(ClientError::from)
            .and_then(|mut c| c.login("late", None).map(|_| c));
        if ok.is_ok() {
            break;
        }
        assert!(Instant::now() < end, "listener did not recover");
        thread::sleep(Duration::from_millis(50));
    }
    exchange(&mut a, &mut b, 20, "after");
    let _ = child.kill();
    let _ = child.wait();
    let log = log.join().unwrap();
    assert!(log.contains("accept failed"), "the server hit its descriptor limit and said so: {log}");
}

/// A network namespace joined to ours by a veth pair: a test host that can
/// vanish without sending FIN.
struct TestHost {
    ns: String,
    link: String,
}

impl TestHost {
    const SERVER_IP: &'static str = "169.254.77.1";
    const CLIENT_IP: &'static str = "169.254.77.2";

    fn create() -> Option<TestHost> {
        let id = std::process::id() % 100_000;
        let host = TestHost { ns: format!("sbtest{id}"), link: format!("sbv{id}") };
        let peer = format!("sbp{id}");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), host.ns.clone()],
            vec![
                "link".into(),
                "add".into(),
                host.link.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                peer.clone(),
            ],
            vec!["link".into(), "set".into(), peer.clone(), "netns".into(), host.ns.clone()],
            vec![
                "addr".into(),
                "add".into(),
                format!("{}/30", Self::SERVER_IP),
                "dev".into(),
                host.link.clone(),
            ],
            vec!["link".into(), "set".into(), host.link.clone(), "up".into()],
            vec![
                "-n".into(),
                host.ns.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/30", Self::CLIENT_IP),
                "dev".into(),
                peer.clone(),
            ],
            vec!["-n".into(), host.ns.clone(), "link".into(), "set".into(), peer, "up".into()],
        ];
        for args in steps {
            let ok = Command::new("ip").args(&args).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
            if !ok {
                drop(host);
                return None;
            }
        }
        Some(host)
    }

    /// Connects from inside the namespace (a thread may switch its own
    /// network namespace; the socket keeps it).
    fn connect(&self, addr: SocketAddr) -> ChatClient {
        let ns = self.ns.clone();
        thread::spawn(move || {
            let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns");
            ChatClient::connect(addr, TIMEOUT).unwrap()
        })
        .join()
        .unwrap()
    }

    /// The host vanishes: its link is gone, so nothing it had open says goodbye.
    fn vanish(&self) {
        let _ = Command::new("ip").args(["link", "del", &self.link]).status();
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.link]).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).stderr(Stdio::null()).status();
    }
}

/// Needs root and iproute2 (a network namespace), so it is ignored by a
/// plain `cargo test`; `.ci/run` runs it as root with `--ignored`, and then
/// a namespace that cannot be made is a failure, never a silent pass.
#[test]
#[ignore = "needs root and iproute2: run with --ignored (.ci/run does)"]
fn a_half_open_peer_is_detected_and_closed() {
    let host = TestHost::create().expect("cannot create a network namespace (needs root and iproute2)");
    let (server, addr) = start(|c| {
        c.chat.listen = vec!["127.0.0.1:0".into(), format!("{}:0", TestHost::SERVER_IP)];
        c.chat.idle_timeout_ms = 800;
        c.chat.ping_interval_ms = 200;
    });
    let remote_addr = server.local_addrs()[1];
    let mut remote = host.connect(remote_addr);
    remote.login("remote", None).unwrap();
    remote.join("ok").unwrap();
    let (mut a, mut b) = pair(addr, "h");
    let h = server.handle();
    let remote_service = reactor::ServiceId::from_index(1);
    assert_eq!(h.stats(remote_service).unwrap().open, 1);
    host.vanish();
    // No FIN ever comes; the heartbeat finds out.
    let started = Instant::now();
    while h.stats(remote_service).unwrap().open == 1 {
        assert!(started.elapsed() < TIMEOUT, "half-open peer never closed");
        exchange(&mut a, &mut b, 1, "x");
        thread::sleep(Duration::from_millis(50));
    }
    let stats = h.stats(remote_service).unwrap();
    assert_eq!((stats.closed, stats.idle_timeouts), (1, 1), "closed by the heartbeat, not by a FIN");
    // Its nickname and room membership were released.
    assert!(!a.who("ok").unwrap().contains(&"remote".to_string()));
    exchange(&mut a, &mut b, 10, "after");
    drop(remote);
    server.shutdown();
}
