//! Zero-downtime restart: SIGUSR2 hands the listening sockets to a new
//! process; clients connecting all the while are never refused; a new
//! process with a bad config leaves the old one serving.

mod common;

use chat_server::client::{ChatClient, ClientError};
use chat_server::protocol::{ErrorCode, Position, Push, ServerFrame};
use common::{free_addr, temp_dir, write_config, write_config_store, Server, TIMEOUT};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[derive(Default, Debug)]
struct Tally {
    logins: usize,
    refused: usize,
    /// Sessions cut by the old process draining (the client is told to come
    /// back, and does); not a refusal.
    drained: usize,
    other: Vec<String>,
}

/// Connects and logs in over and over until `stop`, as many clients would.
fn client_loop(id: usize, addr: SocketAddr, stop: Arc<AtomicBool>) -> Tally {
    let mut t = Tally::default();
    let end = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        n += 1;
        let mut c = match ChatClient::connect(addr, TIMEOUT) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                t.refused += 1;
                continue;
            }
            Err(e) => {
                if t.other.len() < 5 {
                    t.other.push(format!("connect: {e}"));
                }
                continue;
            }
        };
        match c.login(&format!("l{id}u{n}"), None).and_then(|_| c.ping()) {
            Ok(_) => t.logins += 1,
            Err(ClientError::Closed) => t.drained += 1,
            Err(ClientError::Server { code: chat_server::protocol::ErrorCode::ShuttingDown, .. }) => {
                t.drained += 1
            }
            Err(e) if t.other.len() < 5 => t.other.push(format!("login: {e}")),
            Err(_) => {}
        }
    }
    t
}

#[test]
fn sigusr2_hands_over_without_refusing_anyone() {
    let dir = temp_dir("upgrade");
    let (config, pid_file) = (dir.join("chat.toml"), dir.join("chat.pid"));
    let addr = free_addr();
    write_config(&config, addr, "");
    let old = Server::start_with(&config, &["--pid-file", pid_file.to_str().unwrap()]);
    let old_pid = old.child.id();
    wait_for("pid file", || read_pid(&pid_file) == Some(old_pid));
    // A client connected before the upgrade is told to come back.
    let mut early = ChatClient::connect(addr, TIMEOUT).unwrap();
    early.login("early", None).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..2)
        .map(|id| {
            let stop = stop.clone();
            thread::spawn(move || client_loop(id, addr, stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    old.signal(libc::SIGUSR2);
    old.wait_log("is ready; handing it the room log");
    wait_for("the new pid file", || read_pid(&pid_file).is_some_and(|p| p != old_pid));
    let new_pid = read_pid(&pid_file).unwrap();
    assert!(dir.join("chat.pid.oldbin").exists(), "the old pid file is renamed during the upgrade");
    match early.next_event() {
        Ok(chat_server::protocol::ServerFrame::Push(chat_server::protocol::Push::GoingAway {
            retry_after_ms,
            reason,
        })) => {
            assert!(retry_after_ms > 0, "a reconnect hint");
            assert!(reason.contains("restart"), "{reason}");
        }
        other => panic!("expected going-away, got {other:?}"),
    }
    let mut old = old;
    let end = Instant::now() + TIMEOUT;
    while old.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "old process did not exit");
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(300)); // keep connecting to the new one
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = loops.into_iter().map(|l| l.join().unwrap()).collect();
    // SAFETY: ending the successor we started through the old process.
    unsafe { libc::kill(new_pid as i32, libc::SIGTERM) };
    wait_for("the new process to exit", || !alive(new_pid));
    for t in &tallies {
        assert_eq!(t.refused, 0, "refused connections during the upgrade: {t:?}");
        assert!(t.other.is_empty(), "{t:?}");
        assert!(t.logins > 5, "{t:?}");
    }
    assert!(!dir.join("chat.pid.oldbin").exists(), "the old process removed its .oldbin");
}

#[test]
fn a_successor_with_a_bad_config_leaves_the_old_process_serving() {
    let dir = temp_dir("bad-upgrade");
    let (config, pid_file) = (dir.join("chat.toml"), dir.join("chat.pid"));
    let addr = free_addr();
    write_config(&config, addr, "");
    let old = Server::start_with(&config, &["--pid-file", pid_file.to_str().unwrap()]);
    wait_for("pid file", || read_pid(&pid_file) == Some(old.child.id()));
    let mut before = ChatClient::connect(addr, TIMEOUT).unwrap();
    before.login("before", None).unwrap();
    std::fs::write(&config, "[chat]\nhistory_len = \"lots\"\n").unwrap();
    old.signal(libc::SIGUSR2);
    let line = old.wait_log("upgrade failed, still serving");
    assert!(line.contains("exited"), "{line}");
    assert_eq!(read_pid(&pid_file), Some(old.child.id()), "pid file restored");
    before.ping().expect("existing client still served");
    let mut after = ChatClient::connect(addr, TIMEOUT).unwrap();
    after.login("after", None).expect("new clients still served");
}

/// Connects and logs in as `nick`, retrying while the server is away.
fn reconnect(addr: SocketAddr, nick: &str, deadline: Instant) -> ChatClient {
    let mut pause = Duration::from_millis(5);
    loop {
        let attempt = ChatClient::connect(addr, TIMEOUT).map_err(ClientError::Io).and_then(|mut c| {
            c.login(nick, None)?;
            Ok(c)
        });
        match attempt {
            Ok(c) => return c,
            // The old connection may still hold the nickname for a moment.
            Err(_) if Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => panic!("{nick}: cannot reconnect: {e}"),
        }
    }
}

/// Closes `old` (releasing its nickname once the server sees it), then
/// reconnects.
fn reconnect_after_close(old: &ChatClient, addr: SocketAddr, nick: &str, deadline: Instant) -> ChatClient {
    let _ = old.sender().close();
    reconnect(addr, nick, deadline)
}

/// A member that reads the room until `stop`, reconnecting and resuming
/// from the last message it saw. Returns every (offset, text) it was shown.
fn resuming_member(addr: SocketAddr, nick: String, stop: Arc<AtomicBool>) -> (Vec<(u64, String)>, usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut position: Option<Position> = None;
    let mut reconnects = 0;
    'connection: while Instant::now() < deadline {
        let mut c = reconnect(addr, &nick, deadline);
        let joined = match c.join_from("live", position) {
            Ok(j) => j,
            Err(_) => continue,
        };
        if position.is_some() {
            reconnects += 1;
            assert!(joined.recovered, "{nick}: resume from {position:?} not recovered");
        }
        for m in joined.history {
            seen.push((m.offset, m.text));
        }
        position =
            Some(Position { epoch: joined.epoch, offset: seen.last().map_or(joined.last_offset, |m| m.0) });
        loop {
            match c.poll_event(Duration::from_millis(50)) {
                Ok(Some(ServerFrame::Push(Push::Message { offset, text, .. }))) => {
                    seen.push((offset, text));
                    position = position.map(|p| Position { offset, ..p });
                }
                Ok(Some(ServerFrame::Push(Push::GoingAway { .. }))) | Err(_) => continue 'connection,
                Ok(_) => {}
            }
            if stop.load(Ordering::Relaxed)
                && c.poll_event(Duration::from_millis(300)).ok().flatten().is_none()
            {
                break 'connection;
            }
        }
    }
    (seen, reconnects)
}

/// Posts `n` numbered messages, one at a time; a message refused or whose
/// answer was lost to a closed connection is sent again on a new one.
/// Returns text -> offset of every acknowledged message.
fn resending_sender(addr: SocketAddr, nick: String, n: usize) -> HashMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut acked = HashMap::new();
    let mut c = reconnect(addr, &nick, deadline);
    c.join("live").unwrap();
    let mut i = 0;
    while i < n {
        let text = format!("{nick}:{i}");
        match c.say("live", &text) {
            Ok(sent) => {
                acked.insert(text, sent.offset);
                i += 1;
                thread::sleep(Duration::from_millis(3));
            }
            Err(ClientError::Server { code: ErrorCode::StoreFailed | ErrorCode::ShuttingDown, .. })
            | Err(ClientError::Closed)
            | Err(ClientError::Io(_))
            | Err(ClientError::Server { code: ErrorCode::NotMember, .. }) => {
                assert!(Instant::now() < deadline, "{nick}: no end to the upgrade");
                // Let go of the nickname before taking it again.
                let fresh = reconnect_after_close(&c, addr, &nick, deadline);
                c = fresh;
                let _ = c.join("live");
            }
            Err(e) => panic!("{nick}: {e}"),
        }
    }
    acked
}

#[test]
fn an_upgrade_under_chat_load_loses_and_repeats_nothing() {
    let dir = temp_dir("upgrade-load");
    let (config, pid_file) = (dir.join("chat.toml"), dir.join("chat.pid"));
    let addr = free_addr();
    let store = format!("data_dir = \"{}\"\nfsync = \"always\"", dir.join("data").display());
    write_config_store(&config, addr, &store, "");
    let old = Server::start_with(&config, &["--pid-file", pid_file.to_str().unwrap()]);
    let old_pid = old.child.id();
    wait_for("pid file", || read_pid(&pid_file) == Some(old_pid));

    let stop = Arc::new(AtomicBool::new(false));
    let members: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            thread::spawn(move || resuming_member(addr, format!("member{i}"), stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let senders: Vec<_> =
        (0..3).map(|i| thread::spawn(move || resending_sender(addr, format!("sender{i}"), 300))).collect();
    thread::sleep(Duration::from_millis(400));
    old.signal(libc::SIGUSR2);
    old.wait_log("is ready; handing it the room log");
    wait_for("the new pid file", || read_pid(&pid_file).is_some_and(|p| p != old_pid));
    let new_pid = read_pid(&pid_file).unwrap();

    let mut acked: Vec<(u64, String)> = Vec::new();
    for s in senders {
        acked.extend(s.join().unwrap().into_iter().map(|(text, offset)| (offset, text)));
    }
    acked.sort();
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(Vec<(u64, String)>, usize)> = members.into_iter().map(|m| m.join().unwrap()).collect();
    // SAFETY: ending the successor we started through the old process.
    unsafe { libc::kill(new_pid as i32, libc::SIGTERM) };
    wait_for("the new process to exit", || !alive(new_pid));
    assert_eq!(acked.len(), 900);
    for (i, (seen, reconnects)) in results.iter().enumerate() {
        assert!(*reconnects >= 1, "member {i} went through the upgrade");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "member {i}: no duplicate, order kept");
        assert_eq!(seen, &acked, "member {i}: exactly every acknowledged message");
    }
}
