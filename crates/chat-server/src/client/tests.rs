//! Tests of the client against a scripted fake server on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::BytesMut;
use framing::{FrameConfig, FrameDecoder};

use super::*;
use crate::protocol::{ClientFrame, ErrorCode, PresenceKind, Request};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The server end of one connection, speaking frames.
struct Peer {
    stream: TcpStream,
    decoder: FrameDecoder,
    buf: BytesMut,
}

impl Peer {
    /// The next client frame; panics at the end of the stream.
    fn recv(&mut self) -> ClientFrame {
        loop {
            if let Some(payload) = self.decoder.decode(&mut self.buf).unwrap() {
                return ClientFrame::decode(&payload).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "client closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(&mut self, frame: ServerFrame) {
        let mut payload = BytesMut::new();
        frame.encode(&mut payload);
        self.send_payload(&payload);
    }

    fn send_payload(&mut self, payload: &[u8]) {
        let mut wire = BytesMut::new();
        FrameConfig::default().encode(payload, &mut wire).unwrap();
        self.stream.write_all(&wire).unwrap();
    }

    fn push(&mut self, push: Push) {
        self.send(ServerFrame::Push(push));
    }
}

/// Starts a fake server running `script` on its first connection, and a
/// client connected to it.
fn setup(script: impl FnOnce(&mut Peer) + Send + 'static) -> (ChatClient, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut peer =
            Peer { stream, decoder: FrameDecoder::new(FrameConfig::default()), buf: BytesMut::new() };
        script(&mut peer);
    });
    (ChatClient::connect(addr, TIMEOUT).unwrap(), server)
}

fn message(room: &str, id: u64, from: &str, text: &str, history: bool) -> Push {
    Push::Message {
        room: room.into(),
        id,
        ts_us: 1_000 + id,
        offset: id,
        from: from.into(),
        text: text.into(),
        history,
    }
}

fn presence(room: &str, nick: &str) -> Push {
    Push::Presence { room: room.into(), nick: nick.into(), kind: PresenceKind::Joined }
}

#[test]
fn login_returns_limits_and_sends_version_nick_token() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        let expected =
            Request::Login { version: PROTOCOL_VERSION, nick: "alice".into(), token: Some("k3y".into()) };
        assert_eq!(frame.request, expected);
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Welcome(ServerLimits::default())));
    });
    assert_eq!(client.limits(), None);
    assert_eq!(client.login("alice", Some("k3y")).unwrap(), ServerLimits::default());
    assert_eq!(client.limits(), Some(ServerLimits::default()));
    server.join().unwrap();
}

#[test]
fn pushes_before_the_reply_are_queued_in_order() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        assert_eq!(frame.request, Request::Say { room: "r".into(), text: "hi".into() });
        peer.push(message("r", 7, "bob", "one", false));
        peer.push(presence("r", "carol"));
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Sent { id: 9, ts_us: 99, offset: 4 }));
        peer.push(message("r", 10, "bob", "two", false));
    });
    assert_eq!(client.say("r", "hi").unwrap(), Sent { id: 9, ts_us: 99, offset: 4 });
    assert_eq!(client.queued_events(), 2);
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(message("r", 7, "bob", "one", false)));
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(presence("r", "carol")));
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(message("r", 10, "bob", "two", false)));
    server.join().unwrap();
    assert!(matches!(client.next_event(), Err(ClientError::Closed)));
}

#[test]
fn replies_to_other_requests_become_events() {
    let (mut client, server) = setup(|peer| {
        let rooms = peer.recv();
        let who = peer.recv();
        assert_eq!(rooms.request, Request::ListRooms);
        assert_ne!(rooms.request_id, who.request_id);
        let body = OkBody::Rooms { total: 1, rooms: vec![RoomInfo { name: "r".into(), members: 2 }] };
        peer.send(ServerFrame::ok(rooms.request_id, body));
        let body = OkBody::Members { total: 2, nicks: vec!["a".into(), "b".into()] };
        peer.send(ServerFrame::ok(who.request_id, body));
    });
    let id = client.send_request(RequestRef::ListRooms).unwrap();
    assert_eq!(client.who("r").unwrap(), ["a", "b"]);
    match client.next_event().unwrap() {
        ServerFrame::Reply { request_id, reply: Reply::Ok(OkBody::Rooms { total: 1, rooms }) } => {
            assert_eq!(request_id, id);
            assert_eq!(rooms, [RoomInfo { name: "r".into(), members: 2 }]);
        }
        other => panic!("unexpected {other:?}"),
    }
    server.join().unwrap();
}

#[test]
fn join_collects_history_and_leaves_live_messages_as_events() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        peer.push(presence("other", "dave"));
        peer.send(ServerFrame::ok(
            frame.request_id,
            OkBody::Joined { members: 3, history: 2, epoch: 5, last_offset: 2, recovered: false },
        ));
        peer.push(message("r", 1, "bob", "old", true));
        peer.push(message("r", 2, "carol", "older", true));
        peer.push(message("r", 3, "bob", "live", false));
    });
    let joined = client.join("r").unwrap();
    assert_eq!(joined.members, 3);
    let history: Vec<_> =
        joined.history.iter().map(|m| (m.id, m.ts_us, m.from.as_str(), m.text.as_str())).collect();
    assert_eq!(history, [(1, 1_001, "bob", "old"), (2, 1_002, "carol", "older")]);
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(presence("other", "dave")));
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(message("r", 3, "bob", "live", false)));
    server.join().unwrap();
}

#[test]
fn broken_history_replay_is_a_protocol_error_and_keeps_the_frame() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        peer.send(ServerFrame::ok(
            frame.request_id,
            OkBody::Joined { members: 1, history: 2, epoch: 5, last_offset: 2, recovered: false },
        ));
        peer.push(message("r", 1, "bob", "old", true));
        peer.push(message("r", 2, "bob", "live", false));
    });
    assert!(matches!(client.join("r"), Err(ClientError::Protocol(_))));
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(message("r", 2, "bob", "live", false)));
    server.join().unwrap();
}

#[test]
fn error_reply_is_a_server_error() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        peer.send(ServerFrame::error(frame.request_id, ErrorCode::NicknameTaken, "alice is taken"));
        let frame = peer.recv();
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Welcome(ServerLimits::default())));
    });
    let err = client.login("alice", None).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NicknameTaken));
    assert_eq!(err.to_string(), "nickname taken (202): alice is taken");
    // A refused login leaves the connection usable.
    client.login("alice2", None).unwrap();
    server.join().unwrap();
}

#[test]
fn close_while_waiting_is_closed() {
    let (mut client, server) = setup(|peer| {
        peer.recv();
    });
    assert!(matches!(client.leave("r"), Err(ClientError::Closed)));
    server.join().unwrap();
}

#[test]
fn error_push_then_close_while_waiting_is_a_server_error() {
    let (mut client, server) = setup(|peer| {
        peer.recv();
        peer.push(Push::Error { code: ErrorCode::ServerFull, message: "try later".into() });
    });
    assert_eq!(client.login("alice", None).unwrap_err().code(), Some(ErrorCode::ServerFull));
    // The push is also kept as an event.
    assert!(matches!(client.next_event(), Ok(ServerFrame::Push(Push::Error { .. }))));
    assert!(matches!(client.next_event(), Err(ClientError::Closed)));
    server.join().unwrap();
}

#[test]
fn close_inside_a_frame_is_a_protocol_error_then_closed() {
    let (mut client, server) = setup(|peer| {
        peer.stream.write_all(&[0, 0, 0, 10, 0x80, 0]).unwrap();
    });
    server.join().unwrap();
    assert!(matches!(client.next_event(), Err(ClientError::Protocol(_))));
    assert!(matches!(client.next_event(), Err(ClientError::Closed)));
}

#[test]
fn server_ping_is_answered_and_returned() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        peer.push(Push::Ping { nonce: 77 });
        assert_eq!(peer.recv(), ClientFrame { request_id: 0, request: Request::Pong { nonce: 77 } });
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Empty));
    });
    client.leave("r").unwrap();
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(Push::Ping { nonce: 77 }));
    server.join().unwrap();
}

#[test]
fn auto_pong_can_be_turned_off() {
    let (mut client, server) = setup(|peer| {
        peer.push(Push::Ping { nonce: 1 });
        // Next frame must be the Ping request, not a Pong.
        let frame = peer.recv();
        assert!(matches!(frame.request, Request::Ping { .. }), "{frame:?}");
    });
    client.set_auto_pong(false);
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(Push::Ping { nonce: 1 }));
    client.send_request(RequestRef::Ping { nonce: 5 }).unwrap();
    server.join().unwrap();
}

#[test]
fn ping_checks_the_echoed_nonce() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        let Request::Ping { nonce } = frame.request else { panic!("{frame:?}") };
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Pong { nonce }));
        let frame = peer.recv();
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Pong { nonce: 0 }));
    });
    assert!(client.ping().unwrap() < TIMEOUT);
    assert!(matches!(client.ping(), Err(ClientError::Protocol(_))));
    server.join().unwrap();
}

#[test]
fn wrong_body_kind_is_a_protocol_error() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Empty));
    });
    assert!(matches!(client.say("r", "x"), Err(ClientError::Protocol(_))));
    server.join().unwrap();
}

#[test]
fn undecodable_frame_is_reported_and_skipped() {
    let (mut client, server) = setup(|peer| {
        peer.send_payload(&[0x80, 0xff]);
        peer.push(presence("r", "bob"));
    });
    assert!(matches!(client.next_event(), Err(ClientError::Protocol(_))));
    assert_eq!(client.next_event().unwrap(), ServerFrame::Push(presence("r", "bob")));
    server.join().unwrap();
}

#[test]
fn full_queue_stops_reading_without_losing_frames() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        for id in 1..=3 {
            peer.push(message("r", id, "bob", "x", false));
        }
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Empty));
    });
    client.set_queue_limit(2);
    assert!(matches!(client.leave("r"), Err(ClientError::QueueFull)));
    for id in 1..=3 {
        assert_eq!(client.next_event().unwrap(), ServerFrame::Push(message("r", id, "bob", "x", false)));
    }
    assert!(matches!(client.next_event(), Ok(ServerFrame::Reply { reply: Reply::Ok(OkBody::Empty), .. })));
    server.join().unwrap();
}

#[test]
fn timeouts_are_reported_and_poll_event_returns_none() {
    let (mut client, server) = setup(|peer| {
        peer.recv();
        // Silence until the client has given up, then one push.
        peer.recv();
        peer.push(presence("r", "bob"));
    });
    client.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let err = client.list_rooms().unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(client.poll_event(Duration::from_millis(20)).unwrap(), None);
    client.send_request(RequestRef::ListRooms).unwrap();
    let event = client.poll_event(TIMEOUT).unwrap();
    assert_eq!(event, Some(ServerFrame::Push(presence("r", "bob"))));
    server.join().unwrap();
}

#[test]
fn sender_sends_from_another_thread_and_close_wakes_the_reader() {
    let (mut client, server) = setup(|peer| {
        let frame = peer.recv();
        assert_eq!(frame.request, Request::Direct { to: "bob".into(), text: "yo".into() });
        peer.send(ServerFrame::ok(frame.request_id, OkBody::Sent { id: 1, ts_us: 2, offset: 0 }));
        // Wait for the client's close.
        let mut rest = Vec::new();
        peer.stream.read_to_end(&mut rest).unwrap();
    });
    client.set_read_timeout(None).unwrap();
    let sender = client.sender();
    let id =
        thread::spawn(move || sender.send_request(RequestRef::Direct { to: "bob", text: "yo" }).unwrap())
            .join()
            .unwrap();
    match client.next_event().unwrap() {
        ServerFrame::Reply { request_id, .. } => assert_eq!(request_id, id),
        other => panic!("unexpected {other:?}"),
    }
    let sender = client.sender();
    let closer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        sender.close().unwrap();
    });
    assert!(matches!(client.next_event(), Err(ClientError::Closed)));
    closer.join().unwrap();
    server.join().unwrap();
}

#[test]
fn raw_bytes_go_out_unframed() {
    let (mut client, server) = setup(|peer| {
        let mut raw = [0u8; 3];
        peer.stream.read_exact(&mut raw).unwrap();
        assert_eq!(raw, [1, 2, 3]);
    });
    client.send_raw(&[1, 2, 3]).unwrap();
    server.join().unwrap();
}

#[test]
fn pong_cannot_be_called() {
    let (mut client, server) = setup(|_| {});
    assert!(matches!(client.call(RequestRef::Pong { nonce: 1 }), Err(ClientError::Io(_))));
    server.join().unwrap();
}
