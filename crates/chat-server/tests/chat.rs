//! The chat server in-process, over loopback, with many clients spread over
//! the event loops. Every wait is bounded by the clients' timeouts.

mod common;

use chat_server::client::{ChatClient, ClientError};
use chat_server::config::Config;
use chat_server::protocol::{ErrorCode, Push, ServerFrame};
use chat_server::server::ChatServer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::TIMEOUT;

fn start(edit: impl FnOnce(&mut Config)) -> (ChatServer, SocketAddr) {
    common::start_server(edit)
}

fn login(addr: SocketAddr, nick: &str) -> ChatClient {
    let mut c = ChatClient::connect(addr, TIMEOUT).expect("connect");
    c.login(nick, None).expect("login");
    c
}

/// The next push that is a room or direct message, skipping presence.
fn next_message(c: &mut ChatClient) -> Push {
    loop {
        match c.next_event().expect("event") {
            ServerFrame::Push(p @ (Push::Message { .. } | Push::Direct { .. })) => return p,
            ServerFrame::Push(Push::Presence { .. }) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn server_error(r: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match r {
        Err(e) => e.code().unwrap_or_else(|| panic!("expected a server error, got {e}")),
        Ok(v) => panic!("expected a server error, got {v:?}"),
    }
}

#[test]
fn broadcast_reaches_every_member_once_in_per_sender_order() {
    let (server, addr) = start(|_| {});
    const MEMBERS: usize = 24;
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 100;
    let mut clients: Vec<ChatClient> = (0..MEMBERS).map(|i| login(addr, &format!("u{i}"))).collect();
    for c in &mut clients {
        c.join("lobby").expect("join");
    }
    // Every member sees the joins of those after it; drain them before counting.
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        if i < SENDERS {
            let sender = c.sender();
            senders.push(thread::spawn(move || {
                for n in 0..PER_SENDER {
                    let req =
                        chat_server::protocol::RequestRef::Say { room: "lobby", text: &format!("u{i} {n}") };
                    sender.send_request(req).expect("say");
                }
            }));
        }
        receivers.push(thread::spawn(move || {
            let expected = if i < SENDERS { (SENDERS - 1) * PER_SENDER } else { SENDERS * PER_SENDER };
            let mut next_from: HashMap<String, usize> = HashMap::new();
            let mut got = 0;
            let mut sent_ok = 0;
            while got < expected || (i < SENDERS && sent_ok < PER_SENDER) {
                match c.next_event().expect("event") {
                    ServerFrame::Push(Push::Message { from, text, room, .. }) => {
                        assert_eq!(room, "lobby");
                        assert_ne!(from, format!("u{i}"), "no echo to the sender");
                        let (who, n) = text.split_once(' ').expect("text");
                        assert_eq!(who, from);
                        let n: usize = n.parse().expect("number");
                        let want = next_from.entry(from.clone()).or_insert(0);
                        assert_eq!(n, *want, "member u{i}: {from}'s messages out of order or duplicated");
                        *want += 1;
                        got += 1;
                    }
                    ServerFrame::Reply { .. } => sent_ok += 1,
                    ServerFrame::Push(Push::Presence { .. }) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            // Nothing more may come: no duplicates.
            // (Others finishing first may leave the room meanwhile.)
            while let Some(extra) = c.poll_event(Duration::from_millis(100)).expect("poll") {
                let leaving = matches!(extra, ServerFrame::Push(Push::Presence { .. }));
                assert!(leaving, "member u{i} got more than expected: {extra:?}");
            }
            next_from.values().sum::<usize>()
        }));
    }
    for s in senders {
        s.join().expect("sender");
    }
    let delivered: usize = receivers.into_iter().map(|r| r.join().expect("receiver")).sum();
    assert_eq!(delivered, SENDERS * PER_SENDER * (MEMBERS - 1));
    server.shutdown();
}

#[test]
fn history_is_replayed_on_join_oldest_first() {
    let (server, addr) = start(|c| c.chat.history_len = 3);
    let mut alice = login(addr, "alice");
    alice.join("r").unwrap();
    let ids: Vec<u64> = (0..5).map(|i| alice.say("r", &format!("m{i}")).unwrap().id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    let mut bob = login(addr, "bob");
    let joined = bob.join("r").unwrap();
    assert_eq!(joined.members, 2);
    let texts: Vec<&str> = joined.history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m2", "m3", "m4"]);
    assert_eq!(joined.history.iter().map(|m| m.id).collect::<Vec<_>>(), ids[2..]);
    assert!(joined.history.iter().all(|m| m.from == "alice" && m.ts_us > 0));
    // Live messages after the join are not history.
    alice.say("r", "live").unwrap();
    match next_message(&mut bob) {
        Push::Message { text, history, .. } => assert_eq!((text.as_str(), history), ("live", false)),
        other => panic!("{other:?}"),
    }
    server.shutdown();
}

#[test]
fn direct_messages_and_unknown_users() {
    let (server, addr) = start(|_| {});
    let mut alice = login(addr, "alice");
    let mut bob = login(addr, "bob");
    let sent = alice.direct("bob", "psst").unwrap();
    match next_message(&mut bob) {
        Push::Direct { from, text, id, .. } => {
            assert_eq!((from.as_str(), text.as_str(), id), ("alice", "psst", sent.id));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server_error(alice.direct("carol", "?")), ErrorCode::UnknownUser);
    server.shutdown();
}

#[test]
fn nicknames_are_unique_until_released() {
    let (server, addr) = start(|_| {});
    let alice = login(addr, "alice");
    let mut other = ChatClient::connect(addr, TIMEOUT).unwrap();
    assert_eq!(server_error(other.login("alice", None)), ErrorCode::NicknameTaken);
    assert_eq!(server_error(other.join("r")), ErrorCode::NotLoggedIn);
    drop(alice);
    let end = Instant::now() + TIMEOUT;
    loop {
        match other.login("alice", None) {
            Ok(_) => break,
            Err(e) if e.code() == Some(ErrorCode::NicknameTaken) && Instant::now() < end => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(server_error(other.login("again", None)), ErrorCode::AlreadyLoggedIn);
    server.shutdown();
}

#[test]
fn bad_and_oversized_frames() {
    let (server, addr) = start(|c| c.chat.max_payload = 4096);
    let mut bystander = login(addr, "bystander");
    // Unknown opcode with a readable request id: an error reply, and the
    // connection stays usable.
    let mut c = login(addr, "c");
    c.send_raw(&[0, 0, 0, 5, 0x3f, 0, 0, 0, 9]).unwrap();
    match c.next_event().unwrap() {
        ServerFrame::Reply { request_id, reply } => {
            assert_eq!(request_id, 9);
            assert!(format!("{reply:?}").contains("UnknownOpcode"), "{reply:?}");
        }
        other => panic!("{other:?}"),
    }
    c.ping().expect("still usable");
    // Too short to carry a request id: an error push, then close.
    let mut d = ChatClient::connect(addr, TIMEOUT).unwrap();
    d.send_raw(&[0, 0, 0, 2, 1, 2]).unwrap();
    assert!(matches!(
        d.next_event().unwrap(),
        ServerFrame::Push(Push::Error { code: ErrorCode::Malformed, .. })
    ));
    assert!(matches!(d.next_event(), Err(ClientError::Closed)));
    // A length over max_payload: FrameTooLarge, then close, before the body is read.
    let mut e = ChatClient::connect(addr, TIMEOUT).unwrap();
    e.send_raw(&[0xFF, 0xFF, 0xFF, 0xF0]).unwrap();
    match e.next_event().unwrap() {
        ServerFrame::Push(Push::Error { code, .. }) => assert_eq!(code, ErrorCode::FrameTooLarge),
        other => panic!("{other:?}"),
    }
    assert!(matches!(e.next_event(), Err(ClientError::Closed)));
    // A text that would not fit a push: refused, connection kept.
    c.join("r").unwrap();
    assert_eq!(server_error(c.say("r", &"x".repeat(4000))), ErrorCode::TextTooLong);
    bystander.ping().expect("others unaffected");
    drop((d, e));
    let end = Instant::now() + TIMEOUT;
    while server.handle().stats(reactor::ServiceId::from_index(0)).unwrap().protocol_errors < 2 {
        assert!(Instant::now() < end, "both protocol errors counted");
        thread::sleep(Duration::from_millis(10));
    }
    server.shutdown();
}

#[test]
fn rate_limit_refuses_excess_messages_with_an_error() {
    let (server, addr) = start(|c| c.chat.rate_per_sec = 5);
    let mut c = login(addr, "fast");
    c.join("r").unwrap();
    let results: Vec<_> = (0..20).map(|i| c.say("r", &format!("{i}"))).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let limited =
        results.iter().filter(|r| matches!(r, Err(e) if e.code() == Some(ErrorCode::RateLimited))).count();
    assert_eq!(ok + limited, 20);
    assert!((5..=7).contains(&ok), "about one second's worth accepted, got {ok}");
    thread::sleep(Duration::from_millis(450));
    c.say("r", "after a pause").expect("tokens refill");
    server.shutdown();
}

#[test]
fn room_and_user_limits() {
    let (server, addr) = start(|c| {
        c.chat.max_rooms_per_user = 2;
        c.chat.max_members_per_room = 2;
    });
    let mut a = login(addr, "a");
    a.join("one").unwrap();
    a.join("two").unwrap();
    assert_eq!(server_error(a.join("three")), ErrorCode::TooManyRooms);
    assert_eq!(server_error(a.join("one")), ErrorCode::AlreadyMember);
    let mut b = login(addr, "b");
    b.join("one").unwrap();
    let mut c = login(addr, "c");
    assert_eq!(server_error(c.join("one")), ErrorCode::RoomFull);
    assert_eq!(server_error(c.say("one", "hi")), ErrorCode::NotMember);
    assert_eq!(server_error(c.leave("one")), ErrorCode::NotMember);
    let rooms = c.list_rooms().unwrap();
    assert_eq!(
        rooms.iter().map(|r| (r.name.as_str(), r.members)).collect::<Vec<_>>(),
        [("one", 2), ("two", 1)]
    );
    assert_eq!(c.who("one").unwrap(), ["a", "b"]);
    assert_eq!(server_error(c.who("nowhere")), ErrorCode::UnknownRoom);
    // Leaving tells the others.
    a.leave("one").unwrap();
    loop {
        if let ServerFrame::Push(Push::Presence { nick, room, kind }) = b.next_event().unwrap() {
            if nick == "a" && kind == chat_server::protocol::PresenceKind::Left {
                assert_eq!(room, "one");
                break;
            }
        }
    }
    c.join("one").expect("room has space again");
    server.shutdown();
}

#[test]
fn full_server_says_so_before_closing() {
    let (server, addr) = start(|c| c.chat.max_connections = 2);
    let _a = login(addr, "a");
    let _b = login(addr, "b");
    let mut c = ChatClient::connect(addr, TIMEOUT).unwrap();
    match c.login("c", None) {
        Err(ClientError::Server { code: ErrorCode::ServerFull, .. }) => {}
        other => panic!("expected ServerFull, got {other:?}"),
    }
    server.shutdown();
}

#[test]
fn silent_clients_are_pinged_then_closed() {
    let (server, addr) = start(|c| {
        c.chat.idle_timeout_ms = 600;
        c.chat.ping_interval_ms = 150;
    });
    let mut silent = login(addr, "silent");
    silent.set_auto_pong(false);
    let mut lively = login(addr, "lively");
    // Reads (and so answers pings automatically) for well past the timeout.
    let lively = thread::spawn(move || {
        let end = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < end {
            let _ = lively.poll_event(Duration::from_millis(50)).expect("no error while answering pings");
        }
        lively.ping().expect("still connected");
    });
    let mut pinged = false;
    loop {
        match silent.next_event() {
            Ok(ServerFrame::Push(Push::Ping { .. })) => pinged = true,
            Ok(ServerFrame::Push(Push::Error { code, .. })) => {
                assert_eq!(code, ErrorCode::IdleTimeout);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pinged, "pinged before being closed");
    assert!(matches!(silent.next_event(), Err(ClientError::Closed)));
    lively.join().expect("the client answering pings stays connected");
    server.shutdown();
}

#[test]
fn token_is_required_when_configured() {
    let (server, addr) = start(|c| c.chat.token = "s3cret".into());
    let mut c = ChatClient::connect(addr, TIMEOUT).unwrap();
    assert_eq!(server_error(c.login("x", None)), ErrorCode::BadToken);
    assert_eq!(server_error(c.login("x", Some("wrong"))), ErrorCode::BadToken);
    c.login("x", Some("s3cret")).unwrap();
    server.shutdown();
}

#[test]
fn reload_applies_new_limits_to_connected_clients() {
    let (mut server, addr) = start(|c| c.chat.history_len = 10);
    let mut a = login(addr, "a");
    a.join("r").unwrap();
    let mut new = server.config().clone();
    new.chat.token = "now-required".into();
    new.chat.rate_per_sec = 2;
    server.reload(new.clone()).unwrap();
    // The connected client keeps its session; new limits apply to it.
    let results: Vec<_> = (0..6).map(|i| a.say("r", &format!("{i}"))).collect();
    assert!(results.iter().any(|r| matches!(r, Err(e) if e.code() == Some(ErrorCode::RateLimited))));
    let mut b = ChatClient::connect(addr, TIMEOUT).unwrap();
    assert_eq!(server_error(b.login("b", None)), ErrorCode::BadToken);
    // An invalid config is refused and changes nothing.
    let mut bad = new.clone();
    bad.chat.max_payload = 0;
    assert!(server.reload(bad).is_err());
    b.login("b", Some("now-required")).unwrap();
    server.shutdown();
}

#[test]
fn graceful_shutdown_sends_going_away_then_closes() {
    let (server, addr) = start(|_| {});
    let mut clients: Vec<ChatClient> = (0..6).map(|i| login(addr, &format!("g{i}"))).collect();
    let handle = server.handle();
    let stopper = thread::spawn(move || server.shutdown());
    for c in &mut clients {
        loop {
            match c.next_event() {
                Ok(ServerFrame::Push(Push::GoingAway { .. })) => break,
                Ok(_) => continue,
                Err(e) => panic!("no going-away: {e}"),
            }
        }
        assert!(matches!(c.next_event(), Err(ClientError::Closed)));
    }
    stopper.join().unwrap();
    assert_eq!(handle.stats(reactor::ServiceId::from_index(0)).unwrap().open, 0);
}

#[test]
fn long_lists_are_cut_to_one_frame_and_say_how_many_there_are() {
    let (server, addr) = start(|c| {
        c.chat.max_payload = 1024;
        c.chat.max_rooms_per_user = 100;
        c.chat.room_creations_per_minute = 100;
    });
    let mut c = login(addr, "lister");
    for i in 0..100 {
        c.join(&format!("a-rather-long-room-name-{i:03}")).unwrap();
    }
    match c.call(chat_server::protocol::RequestRef::ListRooms).unwrap() {
        chat_server::protocol::OkBody::Rooms { total, rooms } => {
            assert_eq!(total, 100);
            assert!(!rooms.is_empty() && rooms.len() < 100, "cut to fit: {}", rooms.len());
            let encoded: usize = rooms.iter().map(|r| 1 + r.name.len() + 4).sum();
            assert!(encoded + 14 <= 1024);
        }
        other => panic!("{other:?}"),
    }
    server.shutdown();
}
