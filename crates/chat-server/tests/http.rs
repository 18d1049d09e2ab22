//! The chat over HTTP next to the chat protocol, in one process: one chat
//! core, two doors.

use chat_server::client::ChatClient;
use chat_server::protocol::{Push, ServerFrame};
use chat_server::server::ChatServer;
use serde_json::Value;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

mod common;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Setup {
    server: ChatServer,
    tcp: SocketAddr,
    http: String,
    agent: ureq::Agent,
    /// The credential of the session "webby" the requests are made with.
    bearer: String,
}

fn start() -> Setup {
    let (server, tcp) = common::start_server(|c| {
        c.http.listen = vec!["127.0.0.1:0".into()];
        c.http.max_wait_ms = 5_000;
    });
    let http = format!("http://{}", server.http_addrs()[0]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let mut r = agent
        .post(&format!("{http}/session"))
        .header("Content-Type", "application/json")
        .send(r#"{"nick": "webby"}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let bearer = format!("Bearer {}", body["session"].as_str().unwrap());
    Setup { server, tcp, http, agent, bearer }
}

impl Setup {
    fn get(&self, path: &str) -> (u16, String) {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.http))
            .header("Authorization", &self.bearer)
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let mut r = self
            .agent
            .post(&format!("{}{path}", self.http))
            .header("Content-Type", "application/json")
            .header("Authorization", &self.bearer)
            .send(body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    fn login(&self, nick: &str) -> ChatClient {
        let mut c = ChatClient::connect(self.tcp, TIMEOUT).unwrap();
        c.login(nick, None).unwrap();
        c
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The next room message: (id, offset, from, text).
fn next_message(c: &mut ChatClient) -> (u64, u64, String, String) {
    loop {
        if let ServerFrame::Push(Push::Message { id, offset, from, text, .. }) = c.next_event().unwrap() {
            return (id, offset, from, text);
        }
    }
}

#[test]
fn http_posts_reach_tcp_members_and_tcp_posts_are_visible_over_http() {
    let s = start();
    let mut alice = s.login("alice");
    alice.join("lobby").unwrap();

    let (status, body) = s.post("/rooms/lobby/messages", r#"{"nick": "webby", "text": "hello from http"}"#);
    assert_eq!(status, 201, "{body}");
    let posted = json(&body);
    let (id, offset, from, text) = next_message(&mut alice);
    assert_eq!((from.as_str(), text.as_str()), ("webby", "hello from http"));
    assert_eq!(posted["id"].as_u64(), Some(id));
    assert_eq!(posted["offset"].as_u64(), Some(offset));
    assert_eq!(offset, 1, "the room's first message");

    let sent = alice.say("lobby", "hello from tcp").unwrap();
    assert_eq!(sent.offset, 2);
    let (status, body) = s.get(&format!("/rooms/lobby/messages?since={offset}"));
    assert_eq!(status, 200);
    let v = json(&body);
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["from"], "alice");
    assert_eq!(msgs[0]["text"], "hello from tcp");
    assert_eq!(v["last_offset"].as_u64(), Some(sent.offset));
    assert_eq!(msgs[0]["id"].as_u64(), Some(sent.id));
    // Everything since 0: both, oldest first.
    let v = json(&s.get("/rooms/lobby/messages?since=0").1);
    let texts: Vec<&str> =
        v["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hello from http", "hello from tcp"]);
    s.server.shutdown();
}

#[test]
fn a_long_poll_is_woken_by_a_tcp_message() {
    let s = start();
    let mut bob = s.login("bob");
    bob.join("r").unwrap();
    let first = bob.say("r", "before").unwrap();
    let url = format!("{}/rooms/r/messages?since={}&wait=5", s.http, first.offset);
    let agent = s.agent.clone();
    let bearer = s.bearer.clone();
    let poll = thread::spawn(move || {
        let started = Instant::now();
        let body = agent
            .get(&url)
            .header("Authorization", &bearer)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        (body, started.elapsed())
    });
    thread::sleep(Duration::from_millis(300));
    let sent = bob.say("r", "wake up").unwrap();
    let (body, took) = poll.join().unwrap();
    let v = json(&body);
    assert_eq!(v["messages"][0]["text"], "wake up");
    assert_eq!(v["messages"][0]["id"].as_u64(), Some(sent.id));
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(4),
        "woken, not timed out: {took:?}"
    );
    s.server.shutdown();
}

#[test]
fn a_long_poll_ends_empty_at_its_wait() {
    let s = start();
    s.post("/rooms/quiet/messages", r#"{"text": "x"}"#);
    let last = json(&s.get("/rooms/quiet/messages").1)["last_offset"].as_u64().unwrap();
    assert_eq!(last, 1);
    let started = Instant::now();
    let (status, body) = s.get(&format!("/rooms/quiet/messages?since={last}&wait=0.4"));
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(350), "{:?}", started.elapsed());
    let v = json(&body);
    assert_eq!(v["messages"].as_array().unwrap().len(), 0);
    assert_eq!(v["last_offset"].as_u64(), Some(last));
    s.server.shutdown();
}

/// Issue 14, item 5: a `since` ahead of the room does not wait (it would
/// miss what comes meanwhile): it answers at once with the room's real
/// position, and polling from that position sees the next message.
#[test]
fn a_long_poll_from_ahead_answers_at_once_with_the_real_position() {
    let s = start();
    for text in ["one", "two"] {
        assert_eq!(s.post("/rooms/ahead/messages", &format!(r#"{{"text": "{text}"}}"#)).0, 201);
    }
    let started = Instant::now();
    let (status, body) = s.get("/rooms/ahead/messages?since=42&wait=5");
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "answered at once: {:?}", started.elapsed());
    let v = json(&body);
    assert_eq!(v["messages"].as_array().unwrap().len(), 0);
    let last = v["last_offset"].as_u64().unwrap();
    assert_eq!(last, 2, "the room's real position");
    assert_eq!(s.post("/rooms/ahead/messages", r#"{"text": "three"}"#).0, 201);
    let v = json(&s.get(&format!("/rooms/ahead/messages?since={last}&wait=5")).1);
    assert_eq!(v["messages"][0]["text"], "three");
    assert_eq!(v["messages"][0]["offset"].as_u64(), Some(3));
    s.server.shutdown();
}

#[test]
fn rooms_health_and_metrics() {
    let s = start();
    let mut a = s.login("a");
    a.join("one").unwrap();
    s.post("/rooms/two/messages", r#"{"text": "x"}"#);
    let v = json(&s.get("/rooms").1);
    let rooms: Vec<(String, u64)> = v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["members"].as_u64().unwrap()))
        .collect();
    assert_eq!(rooms, [("one".to_string(), 1), ("two".to_string(), 0)]);
    assert_eq!(s.get("/healthz"), (200, "ok\n".to_string()));
    let (status, text) = s.get("/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE switchboard_connections_accepted counter"), "{text}");
    assert!(text.contains("switchboard_connections_accepted_total{service=\"chat\"} 1"), "{text}");
    assert!(text.contains("switchboard_connections_open{service=\"http\"} 1"), "{text}");
    assert!(text.contains("chat_users 2"), "alice on TCP, webby's session: {text}");
    assert!(text.contains("# TYPE chat_log_appends counter"), "{text}");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics: {text}");
    assert!(text.contains("chat_rooms 1"), "rooms in memory: \"two\" has no members: {text}");
    s.server.shutdown();
}

#[test]
fn bad_requests_get_clear_statuses() {
    let s = start();
    let (status, body) = s.post("/rooms/r/messages", "not json");
    assert_eq!(status, 400, "{body}");
    assert!(json(&body)["message"].as_str().unwrap().starts_with("invalid JSON: "), "{body}");
    assert_eq!(json(&body)["error"], "bad_request");
    assert_eq!(s.post("/rooms/r/messages", r#"{"nick": "n", "text": 7}"#).0, 400);
    assert_eq!(s.post("/rooms/bad%20room/messages", r#"{"text": "x"}"#).0, 400);
    let long = format!(r#"{{"text": "{}"}}"#, "x".repeat(65_500));
    assert_eq!(s.post("/rooms/r/messages", &long).0, 413);
    assert_eq!(s.get("/rooms/nowhere/messages").0, 404);
    assert_eq!(s.get("/rooms/r/messages?since=abc").0, 400);
    assert_eq!(s.get("/nothing/here").0, 404);
    let r = s.agent.delete(&format!("{}/rooms", s.http)).call().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET, HEAD"));
    s.server.shutdown();
}
