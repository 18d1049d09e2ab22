//! The room log end to end: one order per room across loops, offsets and
//! ids that survive restarts and crashes, resume, bounds, bad data
//! directories, a full disk, and the protocol's answers.

mod common;

use chat_server::client::{ChatClient, ClientError};
use chat_server::protocol::{ErrorCode, OkBody, Position, Push, Reply, RequestRef, ServerFrame};
use chat_server::store::{RedbLog, RoomLog};
use common::{free_addr, login, start_server, temp_dir, write_config_store, Server, BIN, TIMEOUT};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The next room message push: (offset, id, text).
fn next_message(c: &mut ChatClient) -> (u64, u64, String) {
    loop {
        match c.next_event().expect("event") {
            ServerFrame::Push(Push::Message { offset, id, text, history: false, .. }) => {
                return (offset, id, text)
            }
            ServerFrame::Push(Push::Presence { .. } | Push::MemberCount { .. }) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Sends `n` messages without waiting, then collects the `Sent` replies
/// (in request order) and every message of the others seen meanwhile.
fn say_many(c: &mut ChatClient, room: &str, me: &str, n: usize) -> (Vec<(u64, u64)>, Vec<u64>) {
    for i in 0..n {
        c.send_request(RequestRef::Say { room, text: &format!("{me}-{i}") }).unwrap();
    }
    let (mut acked, mut seen) = (Vec::new(), Vec::new());
    while acked.len() < n {
        match c.next_event().expect("event") {
            ServerFrame::Reply { reply: Reply::Ok(OkBody::Sent { offset, id, .. }), .. } => {
                acked.push((offset, id))
            }
            ServerFrame::Push(Push::Message { offset, .. }) => seen.push(offset),
            ServerFrame::Push(_) => {}
            other => panic!("{me}: unexpected {other:?}"),
        }
    }
    (acked, seen)
}

fn order_test(durable: bool) {
    let dir = temp_dir(if durable { "order-durable" } else { "order-memory" });
    let data = dir.display().to_string();
    let (server, addr) = start_server(|c| {
        c.threads = 2;
        if durable {
            c.store.data_dir = data.clone();
        }
    });
    const SENDERS: usize = 8;
    const EACH: usize = 200;
    // Connections go round-robin to the loops: members on both.
    let listeners: Vec<ChatClient> = (0..8)
        .map(|i| {
            let mut c = login(addr, &format!("listener{i}"), None).unwrap();
            c.join("busy").unwrap();
            c
        })
        .collect();
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            let mut c = login(addr, &format!("sender{i}"), None).unwrap();
            c.join("busy").unwrap();
            thread::spawn(move || say_many(&mut c, "busy", &format!("s{i}"), EACH))
        })
        .collect();
    let readers: Vec<_> = listeners
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || (0..SENDERS * EACH).map(|_| next_message(&mut c).0).collect::<Vec<u64>>())
        })
        .collect();
    let mut acked: Vec<u64> = Vec::new();
    for s in senders {
        let (mine, seen) = s.join().unwrap();
        let offsets: Vec<u64> = mine.iter().map(|(o, _)| *o).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "a sender's messages keep their order");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "a sender sees the others in room order");
        acked.extend(offsets);
    }
    acked.sort_unstable();
    let sequences: Vec<Vec<u64>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    for (i, seq) in sequences.iter().enumerate() {
        assert_eq!(seq, &sequences[0], "listener {i} saw another order");
    }
    assert!(sequences[0].windows(2).all(|w| w[0] < w[1]), "offsets increase");
    assert_eq!(sequences[0], acked, "exactly the acknowledged messages, in offset order");
    assert_eq!(acked, (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>(), "offsets without gaps");
    server.shutdown();
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn every_member_on_every_loop_sees_one_order() {
    order_test(false);
}

#[test]
fn every_member_sees_one_order_with_a_durable_log() {
    order_test(true);
}

#[test]
fn a_restart_keeps_history_offsets_and_ids() {
    let dir = temp_dir("restart");
    let data = dir.display().to_string();
    let (server, addr) = start_server(|c| c.store.data_dir = data.clone());
    let mut a = login(addr, "alice", None).unwrap();
    let joined = a.join("kept").unwrap();
    let epoch = joined.epoch;
    let sent: Vec<_> = (0..5).map(|i| a.say("kept", &format!("m{i}")).unwrap()).collect();
    assert_eq!(sent.iter().map(|s| s.offset).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    drop(a);
    server.shutdown();

    let (server, addr) = start_server(|c| c.store.data_dir = data.clone());
    let mut b = login(addr, "bob", None).unwrap();
    let joined = b.join("kept").unwrap();
    assert_eq!((joined.epoch, joined.last_offset), (epoch, 5), "same log, same epoch");
    let history: Vec<(u64, u64)> = joined.history.iter().map(|m| (m.offset, m.id)).collect();
    assert_eq!(history, sent.iter().map(|s| (s.offset, s.id)).collect::<Vec<_>>());
    let next = b.say("kept", "after").unwrap();
    assert_eq!(next.offset, 6, "offsets continue");
    assert!(next.id > sent[4].id, "ids never come back");
    let rooms = b.list_rooms().unwrap();
    assert!(rooms.iter().any(|r| r.name == "kept"));
    server.shutdown();
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn resume_replays_exactly_what_was_missed_or_says_it_cannot() {
    let dir = temp_dir("resume");
    let data = dir.display().to_string();
    let (server, addr) = start_server(|c| {
        c.store.data_dir = data.clone();
        c.store.retain_messages = 20;
        c.store.recover_limit = 10;
        c.chat.history_len = 3;
    });
    let mut bob = login(addr, "bob", None).unwrap();
    bob.join("r").unwrap();
    let mut alice = login(addr, "alice", None).unwrap();
    let joined = alice.join("r").unwrap();
    for i in 0..4 {
        bob.say("r", &format!("a{i}")).unwrap();
    }
    let (last, _, _) = (0..4).map(|_| next_message(&mut alice)).last().unwrap();
    let seen = Position { epoch: joined.epoch, offset: last };
    drop(alice); // a dropped connection
    let missed: Vec<u64> = (0..5).map(|i| bob.say("r", &format!("b{i}")).unwrap().offset).collect();

    let mut alice = login(addr, "alice", None).unwrap();
    let back = alice.join_from("r", Some(seen)).unwrap();
    assert!(back.recovered);
    assert_eq!(back.history.iter().map(|m| m.offset).collect::<Vec<_>>(), missed, "no gap, no duplicate");
    alice.leave("r").unwrap();

    // Up to date: nothing to replay, recovered.
    let now = Position { epoch: joined.epoch, offset: *missed.last().unwrap() };
    let back = alice.join_from("r", Some(now)).unwrap();
    assert!(back.recovered && back.history.is_empty());
    alice.leave("r").unwrap();
    // Another epoch, a position ahead, or more than recover_limit behind:
    // the recent history, marked not recovered.
    for (p, why) in [
        (Position { epoch: joined.epoch ^ 1, offset: 2 }, "another epoch"),
        (Position { epoch: joined.epoch, offset: 999 }, "ahead"),
        (Position { epoch: joined.epoch, offset: 0 }, "over recover_limit behind"),
    ] {
        if why == "over recover_limit behind" {
            for i in 0..3 {
                bob.say("r", &format!("c{i}")).unwrap();
            }
        }
        let back = alice.join_from("r", Some(p)).unwrap();
        assert!(!back.recovered, "{why}");
        assert_eq!(back.history.len(), 3, "{why}: the recent history");
        alice.leave("r").unwrap();
    }
    // Older than what is kept.
    for i in 0..25 {
        bob.say("r", &format!("d{i}")).unwrap();
    }
    let back = alice.join_from("r", Some(Position { epoch: joined.epoch, offset: seen.offset })).unwrap();
    assert!(!back.recovered, "trimmed away");
    server.shutdown();
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_resume_beyond_the_tail_reads_the_log() {
    let dir = temp_dir("resume-log");
    let data = dir.display().to_string();
    let (server, addr) = start_server(|c| {
        c.store.data_dir = data.clone();
        c.chat.history_len = 2;
    });
    let mut bob = login(addr, "bob", None).unwrap();
    let joined = bob.join("deep").unwrap();
    let sent: Vec<u64> = (0..50).map(|i| bob.say("deep", &format!("m{i}")).unwrap().offset).collect();
    let mut alice = login(addr, "alice", None).unwrap();
    let back = alice.join_from("deep", Some(Position { epoch: joined.epoch, offset: 10 })).unwrap();
    assert!(back.recovered);
    assert_eq!(back.history.iter().map(|m| m.offset).collect::<Vec<_>>(), sent[10..].to_vec());
    assert_eq!(back.history[0].text, "m10");
    server.shutdown();
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_room_creation_flood_is_bounded_and_empty_rooms_leave_memory() {
    let (server, addr) = start_server(|c| {
        c.chat.room_creations_per_minute = 5;
        c.chat.max_rooms = 50;
    });
    let mut c = login(addr, "flooder", None).unwrap();
    let mut refused = None;
    for i in 0..20 {
        match c.join(&format!("flood-{i}")) {
            Ok(_) => c.leave(&format!("flood-{i}")).unwrap(),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    match refused {
        Some((5, ClientError::Server { code: ErrorCode::TooManyRooms, message })) => {
            assert!(message.contains("new rooms per minute"), "{message}")
        }
        other => panic!("expected the sixth creation refused, got {other:?}"),
    }
    assert_eq!(server.core().room_count(), 0, "rooms without members left memory");
    // Joining a room that exists (in memory) is not a creation.
    let mut other = login(addr, "other", None).unwrap();
    other.join("busy").unwrap();
    c.join("busy").unwrap();
    assert_eq!(server.core().room_count(), 1);
    server.shutdown();
}

#[test]
fn the_protocol_answers_unknown_room_not_member_and_old_versions() {
    let (server, addr) = start_server(|_| {});
    let mut a = login(addr, "a", None).unwrap();
    let err = |r: Result<_, ClientError>| match r {
        Err(ClientError::Server { code, .. }) => code,
        other => panic!("expected an error reply, got {other:?}"),
    };
    assert_eq!(err(a.leave("nowhere").map(|_| ())), ErrorCode::UnknownRoom);
    assert_eq!(err(a.say("nowhere", "x").map(|_| ())), ErrorCode::UnknownRoom);
    let mut b = login(addr, "b", None).unwrap();
    b.join("somewhere").unwrap();
    assert_eq!(err(a.leave("somewhere").map(|_| ())), ErrorCode::NotMember);
    assert_eq!(err(a.say("somewhere", "x").map(|_| ())), ErrorCode::NotMember);
    // A version 1 login: refused, and the connection is closed.
    let c = ChatClient::connect(addr, TIMEOUT).unwrap();
    let mut c = c;
    c.send_raw(&[0, 0, 0, 9, 0x01, 0, 0, 0, 7, 1, 2, b'o', b'k', 0]).unwrap();
    match c.next_event().unwrap() {
        ServerFrame::Reply { request_id: 7, reply: Reply::Error { code, message } } => {
            assert_eq!(code, ErrorCode::UnsupportedVersion);
            assert!(message.contains('2'), "names the version spoken: {message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.next_event(), Err(ClientError::Closed)), "closed after the reply");
    server.shutdown();
}

#[test]
fn large_rooms_get_member_counts_instead_of_presence() {
    let (server, addr) = start_server(|c| c.chat.presence_max_members = 3);
    let mut first = login(addr, "first", None).unwrap();
    first.join("big").unwrap();
    let mut others: Vec<ChatClient> = (0..6)
        .map(|i| {
            let mut c = login(addr, &format!("m{i}"), None).unwrap();
            c.join("big").unwrap();
            c
        })
        .collect();
    // Presence for the joins up to the threshold, then one count push.
    let end = Instant::now() + Duration::from_secs(5);
    let (mut presence, mut counts) = (Vec::new(), Vec::new());
    while Instant::now() < end && counts.last() != Some(&7) {
        match first.poll_event(Duration::from_millis(100)).unwrap() {
            Some(ServerFrame::Push(Push::Presence { nick, .. })) => presence.push(nick),
            Some(ServerFrame::Push(Push::MemberCount { room, members })) => {
                assert_eq!(room, "big");
                counts.push(members);
            }
            Some(other) => panic!("{other:?}"),
            None => {}
        }
    }
    assert_eq!(presence, ["m0", "m1"], "presence while the room is small");
    assert_eq!(counts.last(), Some(&7), "then the count: {counts:?}");
    assert!(counts.len() <= 2, "coalesced, at most one a second: {counts:?}");
    assert_eq!(first.who("big").unwrap().len(), 7, "Who lists every member");
    others.clear();
    server.shutdown();
}

/// A binary server on a durable log in `dir`, fsync always.
fn durable_server(dir: &Path, addr: std::net::SocketAddr, name: &str) -> Server {
    let config = dir.join(format!("{name}.toml"));
    let store = format!("data_dir = \"{}\"\nfsync = \"always\"", dir.join("data").display());
    write_config_store(&config, addr, &store, "");
    Server::start(&config)
}

/// Every message in room `room` of the log in `dir`: offset -> id.
fn stored(dir: &Path, room: &str) -> BTreeMap<u64, u64> {
    let log = RedbLog::open(&dir.join("data"), 1 << 30, 1 << 20, false).expect("open the log");
    let all = log.read(room, 0, usize::MAX).unwrap();
    log.close(log.first_id()).unwrap();
    all.into_iter().map(|e| (e.offset, e.id)).collect()
}

#[test]
fn kill_9_loses_no_acknowledged_message_and_offsets_continue() {
    let dir = temp_dir("kill9");
    let addr = free_addr();
    let mut server = durable_server(&dir, addr, "a");
    let mut c = login(addr, "writer", None).unwrap();
    c.join("safe").unwrap();
    for i in 0..2000 {
        c.send_request(RequestRef::Say { room: "safe", text: &format!("m{i}") }).unwrap();
    }
    // Take some acknowledgements, then kill the server mid-stream.
    let mut acked = BTreeMap::new();
    while acked.len() < 300 {
        if let ServerFrame::Reply { reply: Reply::Ok(OkBody::Sent { offset, id, .. }), .. } =
            c.next_event().unwrap()
        {
            acked.insert(offset, id);
        }
    }
    server.signal(libc::SIGKILL);
    let _ = server.child.wait();
    // Replies already on their way count too.
    while let Ok(ServerFrame::Reply { reply: Reply::Ok(OkBody::Sent { offset, id, .. }), .. }) =
        c.next_event()
    {
        acked.insert(offset, id);
    }
    let kept = stored(&dir, "safe");
    for (offset, id) in &acked {
        assert_eq!(kept.get(offset), Some(id), "acknowledged message {offset} is in the log");
    }
    let last = *kept.keys().last().unwrap();
    let server = durable_server(&dir, addr, "b");
    let mut c = login(addr, "writer2", None).unwrap();
    let joined = c.join("safe").unwrap();
    assert_eq!(joined.last_offset, last);
    let next = c.say("safe", "after the crash").unwrap();
    assert_eq!(next.offset, last + 1, "offsets continue");
    assert!(next.id > *acked.values().max().unwrap(), "ids never come back");
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

/// `chat-server -t` on a config whose data directory is `data_dir`.
fn check_data_dir(data_dir: &str) -> (bool, String) {
    let dir = temp_dir("check");
    let config = dir.join(format!("check-{}.toml", data_dir.len()));
    write_config_store(&config, free_addr(), &format!("data_dir = \"{data_dir}\""), "");
    common::check(&config)
}

#[test]
fn bad_data_directories_are_named_at_start_and_by_the_check() {
    let dir = temp_dir("bad-dirs");
    let file = dir.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("rooms.redb"), vec![0x42; 100_000]).unwrap();
    let cases = [
        (file.display().to_string(), "not a directory"),
        (corrupt.display().to_string(), "rooms.redb"),
        ("/proc/chat-server-data".to_string(), "/proc/chat-server-data"),
    ];
    for (data_dir, says) in &cases {
        let (ok, text) = check_data_dir(data_dir);
        assert!(!ok && text.contains("store.data_dir") && text.contains(says), "-t on {data_dir}: {text}");
        let out = Command::new(BIN)
            .args(["--listen", &free_addr().to_string(), "--http-listen", "none", "--data-dir", data_dir])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "start on {data_dir}: {err}");
    }
    let (ok, text) = check_data_dir(&dir.join("new/sub").display().to_string());
    assert!(ok && text.contains("will be created"), "{text}");
    assert!(!dir.join("new").exists(), "the check leaves nothing behind");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let dir = temp_dir("two-servers");
    let first = durable_server(&dir, free_addr(), "one");
    let out = Command::new(BIN)
        .args(["--listen", &free_addr().to_string(), "--http-listen", "none"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("in use by another process"), "{err}");
    drop(first);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_full_disk_gets_error_replies_and_loses_no_acknowledged_message() {
    let dir = temp_dir("full-disk");
    let addr = free_addr();
    let config = dir.join("full.toml");
    let store = format!("data_dir = \"{}\"\nfsync = \"always\"", dir.join("data").display());
    write_config_store(&config, addr, &store, "");
    // The log file may not grow past 4 MiB.
    let mut cmd = Command::new(BIN);
    cmd.arg("-c").arg(&config).env("RUST_LOG", "error").stderr(Stdio::null()).stdout(Stdio::null());
    // SAFETY: setrlimit in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 4 << 20, rlim_max: 4 << 20 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let end = Instant::now() + TIMEOUT;
    let mut c = loop {
        match login(addr, "filler", None) {
            Ok(c) => break c,
            Err(_) if Instant::now() < end => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("server did not start: {e}"),
        }
    };
    c.join("big").unwrap();
    let text = "x".repeat(8000);
    let mut acked = BTreeMap::new();
    let mut failures = 0;
    for round in 0..100 {
        for _ in 0..50 {
            c.send_request(RequestRef::Say { room: "big", text: &text }).unwrap();
        }
        let mut answers = 0;
        while answers < 50 {
            match c.next_event().unwrap() {
                ServerFrame::Reply { reply: Reply::Ok(OkBody::Sent { offset, id, .. }), .. } => {
                    acked.insert(offset, id);
                    answers += 1;
                }
                ServerFrame::Reply { reply: Reply::Error { code: ErrorCode::StoreFailed, .. }, .. } => {
                    failures += 1;
                    answers += 1;
                }
                ServerFrame::Push(_) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        if failures > 0 {
            break;
        }
    }
    assert!(failures > 0, "the disk never filled: {} messages stored", acked.len());
    // Still serving: a ping, a join, a direct message.
    c.ping().unwrap();
    let mut other = login(addr, "other", None).unwrap();
    other.join("big").unwrap();
    c.direct("other", "still here").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let kept = stored(&dir, "big");
    for (offset, id) in &acked {
        assert_eq!(kept.get(offset), Some(id), "acknowledged message {offset} is stored");
    }
    std::fs::remove_dir_all(dir).ok();
}
