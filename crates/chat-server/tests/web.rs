//! The web door: one identity on TCP, HTTP and WebSocket; HTTP sessions
//! and their errors; the chat over WebSocket next to TCP clients.

use bytes::BytesMut;
use chat_server::client::{ChatClient, ClientError};
use chat_server::config::Config;
use chat_server::protocol::{
    ClientFrame, ErrorCode, OkBody, PresenceKind, Push, Reply, Request, ServerFrame, PROTOCOL_VERSION,
};
use chat_server::server::ChatServer;
use serde_json::Value;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

mod common;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Setup {
    server: ChatServer,
    tcp: SocketAddr,
    http: SocketAddr,
    agent: ureq::Agent,
}

fn start(change: impl FnOnce(&mut Config)) -> Setup {
    let (server, tcp) = common::start_server(|c| {
        c.http.listen = vec!["127.0.0.1:0".into()];
        change(c);
    });
    let http = server.http_addrs()[0];
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    Setup { server, tcp, http, agent }
}

/// A response: status, headers we look at, JSON body (Null if none).
struct Got {
    status: u16,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
    set_cookie: Option<String>,
    body: Value,
}

impl Setup {
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Got {
        let url = format!("http://{}{path}", self.http);
        let mut r = match (method, body) {
            ("GET", _) => {
                let mut req = self.agent.get(&url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.call()
            }
            ("DELETE", _) => {
                let mut req = self.agent.delete(&url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.call()
            }
            (_, b) => {
                let mut req = self.agent.post(&url).header("Content-Type", "application/json");
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.send(b.unwrap_or(""))
            }
        }
        .unwrap();
        let h = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let (retry_after, www_authenticate, set_cookie) =
            (h("retry-after"), h("www-authenticate"), h("set-cookie"));
        let text = r.body_mut().read_to_string().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Got { status: r.status().as_u16(), retry_after, www_authenticate, set_cookie, body }
    }

    /// Opens a session; returns its credential.
    fn session(&self, nick: &str) -> String {
        let got = self.call("POST", "/session", &[], Some(&format!(r#"{{"nick": "{nick}"}}"#)));
        assert_eq!(got.status, 201, "{}", got.body);
        got.body["session"].as_str().unwrap().to_string()
    }

    fn tcp_login(&self, nick: &str, token: Option<&str>) -> Result<ChatClient, ClientError> {
        let mut c = ChatClient::connect(self.tcp, TIMEOUT).unwrap();
        c.login(nick, token)?;
        Ok(c)
    }

    fn ws(&self, headers: &[(&str, &str)]) -> Ws {
        let mut req = format!("ws://{}/ws", self.http).into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut()
                .insert(tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let stream = TcpStream::connect(self.http).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let (ws, resp) = tungstenite::client(req, stream).unwrap();
        assert_eq!(resp.status(), 101);
        Ws { ws, next_id: 1 }
    }
}

/// A chat client over WebSocket: one payload per binary message.
struct Ws {
    ws: WebSocket<TcpStream>,
    next_id: u32,
}

impl Ws {
    fn next(&mut self) -> Option<ServerFrame> {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(b)) => {
                    return Some(ServerFrame::decode(&b).expect("a valid server frame"))
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn call(&mut self, request: Request) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = BytesMut::new();
        ClientFrame { request_id: id, request }.encode(&mut buf);
        self.ws.send(Message::Binary(buf.freeze())).unwrap();
        loop {
            match self.next().expect("connection open") {
                ServerFrame::Reply { request_id, reply } if request_id == id => return reply,
                _ => {}
            }
        }
    }

    fn login(&mut self, nick: &str, token: Option<&str>) -> Reply {
        let (nick, token) = (nick.to_string(), token.map(String::from));
        self.call(Request::Login { version: PROTOCOL_VERSION, nick, token })
    }

    fn push(&mut self) -> Push {
        loop {
            if let ServerFrame::Push(p) = self.next().expect("connection open") {
                if !matches!(p, Push::Ping { .. }) {
                    return p;
                }
            }
        }
    }
}

fn is_ok(r: &Reply) -> bool {
    matches!(r, Reply::Ok(_))
}

fn code(r: &Reply) -> Option<ErrorCode> {
    match r {
        Reply::Error { code, .. } => Some(*code),
        Reply::Ok(_) => None,
    }
}

fn tcp_code(r: Result<ChatClient, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Server { code, .. }) => code,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("login accepted"),
    }
}

#[test]
fn tcp_and_websocket_members_chat_in_one_room() {
    let s = start(|_| {});
    let mut alice = s.tcp_login("alice", None).unwrap();
    alice.join("lobby").unwrap();
    let bob_session = s.session("bob");
    let mut bob = s.ws(&[]);
    assert!(is_ok(&bob.login("bob", Some(&bob_session))));
    assert!(matches!(
        bob.call(Request::Join { room: "lobby".into(), resume: None }),
        Reply::Ok(OkBody::Joined { members: 2, .. })
    ));
    // Alice hears bob arrive; bob's message reaches alice, alice's reaches bob.
    loop {
        if let ServerFrame::Push(Push::Presence { kind: PresenceKind::Joined, nick, .. }) =
            alice.next_event().unwrap()
        {
            assert_eq!(nick, "bob");
            break;
        }
    }
    assert!(is_ok(&bob.call(Request::Say { room: "lobby".into(), text: "hi from the web".into() })));
    loop {
        if let ServerFrame::Push(Push::Message { from, text, .. }) = alice.next_event().unwrap() {
            assert_eq!((from.as_str(), text.as_str()), ("bob", "hi from the web"));
            break;
        }
    }
    alice.say("lobby", "hi from the terminal").unwrap();
    match bob.push() {
        Push::Message { from, text, offset, .. } => {
            assert_eq!((from.as_str(), text.as_str(), offset), ("alice", "hi from the terminal", 2));
        }
        other => panic!("{other:?}"),
    }
    // A direct message crosses doors too, in the recipient's framing.
    alice.direct("bob", "psst").unwrap();
    assert!(matches!(bob.push(), Push::Direct { from, text, .. } if from == "alice" && text == "psst"));
    assert!(is_ok(&bob.call(Request::Direct { to: "alice".into(), text: "hey".into() })));
    loop {
        if let ServerFrame::Push(Push::Direct { from, .. }) = alice.next_event().unwrap() {
            assert_eq!(from, "bob");
            break;
        }
    }
    // And HTTP sees the same room.
    let got = s.call(
        "GET",
        "/rooms/lobby/messages?since=0",
        &[("Authorization", &format!("Bearer {bob_session}"))],
        None,
    );
    let texts: Vec<&str> =
        got.body["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hi from the web", "hi from the terminal"]);
    s.server.shutdown();
}

#[test]
fn a_nickname_is_held_by_one_holder_across_doors() {
    let s = start(|_| {});
    let _carol = s.tcp_login("carol", None).unwrap();
    // Held on TCP: not over HTTP, not over WebSocket.
    let got = s.call("POST", "/session", &[], Some(r#"{"nick": "carol"}"#));
    assert_eq!((got.status, got.body["error"].as_str()), (409, Some("conflict")));
    assert_eq!(code(&s.ws(&[]).login("carol", None)), Some(ErrorCode::NicknameTaken));
    // Held by a session: no login without its credential, on any door.
    let dave = s.session("dave");
    assert_eq!(tcp_code(s.tcp_login("dave", None)), ErrorCode::NicknameTaken);
    assert_eq!(code(&s.ws(&[]).login("dave", None)), Some(ErrorCode::NicknameTaken));
    let wrong = "0".repeat(64);
    assert_eq!(tcp_code(s.tcp_login("dave", Some(&wrong))), ErrorCode::BadToken);
    // Another nickname's credential does not work either.
    let erin = s.session("erin");
    assert_eq!(tcp_code(s.tcp_login("dave", Some(&erin))), ErrorCode::BadToken);
    // With its credential: TCP first, then WebSocket takes over.
    let mut tcp_dave = s.tcp_login("dave", Some(&dave)).unwrap();
    let mut ws_dave = s.ws(&[]);
    assert!(is_ok(&ws_dave.login("dave", Some(&dave))));
    loop {
        match tcp_dave.next_event() {
            Ok(ServerFrame::Push(Push::Error { code, .. })) => {
                assert_eq!(code, ErrorCode::NicknameTaken);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("told before closed: {e}"),
        }
    }
    // The cookie alone (same origin) lets a WebSocket log in as the session.
    let cookie = format!("chat_session={erin}");
    let mut by_cookie = s.ws(&[("Cookie", &cookie), ("Origin", &format!("http://{}", s.http))]);
    assert!(is_ok(&by_cookie.login("erin", None)));
    s.server.shutdown();
}

#[test]
fn http_refuses_without_a_valid_session_and_never_lets_one_speak_as_another() {
    let s = start(|c| c.http.session_idle_ms = 400);
    let none = s.call("GET", "/rooms", &[], None);
    assert_eq!(none.status, 401);
    assert_eq!(none.www_authenticate.as_deref(), Some("Bearer realm=\"chat\""));
    assert_eq!(none.body["error"], "unauthorized");
    let wrong = s.call("GET", "/rooms", &[("Authorization", "Bearer nope")], None);
    assert_eq!(wrong.status, 401);
    let post =
        s.call("POST", "/rooms/r/messages", &[], Some(r#"{"nick": "carol", "text": "I am not carol"}"#));
    assert_eq!(post.status, 401, "anonymous posts are gone");
    let frank = s.session("frank");
    let auth = format!("Bearer {frank}");
    let as_other = s.call(
        "POST",
        "/rooms/r/messages",
        &[("Authorization", &auth)],
        Some(r#"{"nick": "carol", "text": "x"}"#),
    );
    assert_eq!(as_other.status, 403, "{}", as_other.body);
    let own = s.call("POST", "/rooms/r/messages", &[("Authorization", &auth)], Some(r#"{"text": "mine"}"#));
    assert_eq!(own.status, 201);
    let read = s.call("GET", "/rooms/r/messages?since=0", &[("Authorization", &auth)], None);
    assert_eq!(read.body["messages"][0]["from"], "frank");
    // The cookie works from the same origin, not from another one.
    let cookie = format!("chat_session={frank}");
    assert_eq!(s.call("GET", "/session", &[("Cookie", &cookie)], None).body["nick"], "frank");
    let foreign = s.call("GET", "/rooms", &[("Cookie", &cookie), ("Origin", "http://evil.example")], None);
    assert_eq!(foreign.status, 403);
    // Idle past session_idle_ms: expired, on every route.
    std::thread::sleep(Duration::from_millis(600));
    let expired = s.call("GET", "/rooms", &[("Authorization", &auth)], None);
    assert_eq!(expired.status, 401, "{}", expired.body);
    // Logging out ends the session and its WebSocket.
    let gina = s.session("gina");
    let mut ws = s.ws(&[]);
    assert!(is_ok(&ws.login("gina", Some(&gina))));
    let out = s.call("DELETE", "/session", &[("Authorization", &format!("Bearer {gina}"))], None);
    assert_eq!(out.status, 204);
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    assert!(matches!(ws.push(), Push::Error { code: ErrorCode::BadToken, .. }));
    assert!(ws.next().is_none(), "closed");
    assert_eq!(s.call("GET", "/session", &[("Authorization", &format!("Bearer {gina}"))], None).status, 401);
    s.tcp_login("gina", None).unwrap();
    s.server.shutdown();
}

#[test]
fn session_floods_hit_the_rate_and_the_table_bound() {
    let s = start(|c| {
        c.http.logins_per_minute = 5;
        c.http.max_sessions = 1000;
    });
    let mut statuses = Vec::new();
    for i in 0..8 {
        let got = s.call("POST", "/session", &[], Some(&format!(r#"{{"nick": "flood{i}"}}"#)));
        if got.status == 429 {
            assert!(
                got.retry_after.as_deref().is_some_and(|v| v.parse::<u64>().unwrap() >= 1),
                "Retry-After"
            );
        }
        statuses.push(got.status);
    }
    assert_eq!(statuses, [201, 201, 201, 201, 201, 429, 429, 429]);
    assert_eq!(s.server.core().session_count(), 5);
    s.server.shutdown();

    let s = start(|c| c.http.max_sessions = 3);
    for i in 0..3 {
        s.session(&format!("u{i}"));
    }
    let full = s.call("POST", "/session", &[], Some(r#"{"nick": "u3"}"#));
    assert_eq!(full.status, 503);
    assert!(full.retry_after.is_some());
    s.server.shutdown();
}

#[test]
fn the_shared_token_guards_every_door_and_wrong_guesses_are_limited() {
    let s = start(|c| {
        c.chat.token = "s3cret".into();
        c.http.logins_per_minute = 3;
    });
    assert_eq!(s.call("POST", "/session", &[], Some(r#"{"nick": "h"}"#)).status, 401);
    assert_eq!(s.call("POST", "/session", &[], Some(r#"{"nick": "h", "token": "s3cret"}"#)).status, 201);
    // A wrong token counts; past the limit even the right one waits.
    let mut ws = s.ws(&[]);
    assert_eq!(code(&ws.login("i", Some("guess1"))), Some(ErrorCode::BadToken));
    assert_eq!(code(&ws.login("i", Some("guess2"))), Some(ErrorCode::RateLimited));
    assert_eq!(tcp_code(s.tcp_login("i", Some("s3cret"))), ErrorCode::RateLimited);
    s.server.shutdown();
}

#[test]
fn sessions_survive_a_restart_on_a_data_directory() {
    let dir = std::env::temp_dir().join(format!("chat-web-sessions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_string_lossy().to_string();
    let s = start(|c| c.store.data_dir = data.clone());
    let cred = s.session("kim");
    s.server.shutdown();
    let s = start(|c| c.store.data_dir = data.clone());
    let got = s.call("GET", "/session", &[("Authorization", &format!("Bearer {cred}"))], None);
    assert_eq!((got.status, got.body["nick"].as_str()), (200, Some("kim")));
    assert_eq!(tcp_code(s.tcp_login("kim", None)), ErrorCode::NicknameTaken, "still held");
    s.server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A WebSocket member that never reads is a slow consumer like a TCP one:
/// the same write queue bound closes it, and the room goes on.
#[test]
fn a_websocket_member_that_never_reads_is_closed_as_a_slow_consumer() {
    let s = start(|c| {
        c.chat.write_high_watermark = 64 << 10;
        c.chat.max_write_queue = 256 << 10;
    });
    let mut alice = s.tcp_login("alice", None).unwrap();
    alice.join("busy").unwrap();
    // A small receive buffer, so that the server's queue fills soon.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&s.http.into()).unwrap();
    let stream: TcpStream = sock.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let req = format!("ws://{}/ws", s.http).into_client_request().unwrap();
    let (ws, _) = tungstenite::client(req, stream).unwrap();
    let mut lazy = Ws { ws, next_id: 1 };
    assert!(is_ok(&lazy.login("lazy", None)));
    assert!(is_ok(&lazy.call(Request::Join { room: "busy".into(), resume: None })));
    let text = "x".repeat(1000);
    let http = s.server.handle().service_id("http").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while s.server.handle().stats(http).unwrap().slow_consumers == 0 {
        assert!(Instant::now() < deadline, "the lazy member was never closed");
        for _ in 0..100 {
            alice.say("busy", &text).unwrap();
        }
    }
    // The room goes on without it.
    let mut bob = s.tcp_login("bob", None).unwrap();
    bob.join("busy").unwrap();
    alice.say("busy", "still here").unwrap();
    loop {
        if let ServerFrame::Push(Push::Message { text, .. }) = bob.next_event().unwrap() {
            assert_eq!(text, "still here");
            break;
        }
    }
    assert_eq!(s.server.core().who("busy").unwrap(), ["alice", "bob"]);
    s.server.shutdown();
}

#[test]
fn the_page_and_its_assets_are_served() {
    let s = start(|_| {});
    let url = format!("http://{}/", s.http);
    let mut r = s.agent.get(&url).call().unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers().get("content-security-policy").unwrap().to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.body_mut().read_to_string().unwrap();
    assert!(html.contains("<script type=\"module\" src=\"/app.js\">"));
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing from elsewhere");
    for (path, ty) in
        [("/app.js", "text/javascript"), ("/protocol.js", "text/javascript"), ("/app.css", "text/css")]
    {
        let r = s.agent.get(&format!("http://{}{path}", s.http)).call().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().get("content-type").unwrap().to_str().unwrap().starts_with(ty));
    }
    let started = Instant::now();
    assert_eq!(s.call("GET", "/nothing", &[], None).status, 404);
    assert!(started.elapsed() < TIMEOUT);
    s.server.shutdown();
}
