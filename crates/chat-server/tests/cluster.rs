//! Three nodes on one Redis (the test's own redis-server on a free
//! loopback port): one room order at every member, direct messages,
//! nicknames, presence and `Who` across nodes, a node killed, Redis
//! restarted under load, resume on another node.
//!
//! They need `redis-server` (Debian package), so they are ignored in a
//! bare `cargo test`; `.ci/run` installs it and runs them with `--ignored`.

mod common;
#[path = "cluster/redis.rs"]
mod redis;

use chat_server::client::{ChatClient, ClientError};
use chat_server::protocol::{
    ErrorCode, OkBody, Position, PresenceKind, Push, Reply, RequestRef, ServerFrame,
};
use common::{free_addr, login, temp_dir, Server, TIMEOUT};
use redis::{Persistence, Redis};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

const NEEDS_REDIS: &str = "needs redis-server; run by .ci/run with --ignored";

/// Liveness settings of the test nodes: a killed node is gone from
/// presence within TTL + HEARTBEAT.
const HEARTBEAT_MS: u64 = 200;
const TTL_MS: u64 = 1000;

/// A chat-server process that is a node of the cluster.
struct Node {
    server: Server,
    addr: SocketAddr,
    config: PathBuf,
    /// The HTTP door, if it has one.
    http: Option<SocketAddr>,
}

impl Node {
    fn start(name: &str, redis: &Redis) -> Node {
        Node::start_with(name, redis, "")
    }

    fn start_with(name: &str, redis: &Redis, chat: &str) -> Node {
        Node::start_full(name, redis, chat, false)
    }

    fn start_full(name: &str, redis: &Redis, chat: &str, http: bool) -> Node {
        let addr = free_addr();
        let http = http.then(free_addr);
        let http_listen = http.map_or(String::new(), |a| format!("\"{a}\""));
        let dir = temp_dir(&format!("node-{name}-{}", addr.port()));
        let config = dir.join("node.toml");
        let text = format!(
            "threads = 2\nshutdown_grace_ms = 2000\n[http]\nlisten = [{http_listen}]\n[store]\ndata_dir = \"none\"\n\
             [chat]\nlisten = [\"{addr}\"]\nrate_per_sec = 0\n{chat}\n\
             [cluster]\nredis = \"{}\"\nnode = \"{name}\"\nheartbeat_ms = {HEARTBEAT_MS}\nnode_ttl_ms = {TTL_MS}\n\
             timeout_ms = 1000\n",
            redis.url()
        );
        std::fs::write(&config, text).unwrap();
        let server = Server::start(&config);
        Node { server, addr, config, http }
    }

    fn login(&self, nick: &str) -> ChatClient {
        login(self.addr, nick, None).unwrap_or_else(|e| panic!("{nick} cannot log in: {e:?}"))
    }

    /// Logs in, retrying while the nickname is still held (its previous
    /// connection is being closed).
    fn login_retry(&self, nick: &str) -> ChatClient {
        let end = Instant::now() + TIMEOUT;
        loop {
            match login(self.addr, nick, None) {
                Ok(c) => return c,
                Err(e) if Instant::now() < end => {
                    let _ = e;
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{nick} cannot log in: {e:?}"),
            }
        }
    }

    fn kill9(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if thread::panicking() || std::env::var_os("CLUSTER_TEST_LOGS").is_some() {
            while let Ok(line) = self.server.log.try_recv() {
                eprintln!("[{}] {line}", self.addr);
            }
        }
        if let Some(dir) = self.config.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The next live room message: (offset, id, from, text).
fn next_message(c: &mut ChatClient) -> (u64, u64, String, String) {
    loop {
        match c.next_event().expect("event") {
            ServerFrame::Push(Push::Message { offset, id, from, text, history: false, .. }) => {
                return (offset, id, from, text)
            }
            ServerFrame::Push(Push::Presence { .. } | Push::MemberCount { .. }) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Sends `n` messages without waiting, then collects the `Sent` replies
/// (in request order): (offset, id) each.
fn say_many(c: &mut ChatClient, room: &str, me: &str, n: usize) -> Vec<(u64, u64)> {
    for i in 0..n {
        c.send_request(RequestRef::Say { room, text: &format!("{me}-{i}") }).unwrap();
    }
    let mut acked = Vec::new();
    while acked.len() < n {
        match c.next_event().expect("event") {
            ServerFrame::Reply { reply: Reply::Ok(OkBody::Sent { offset, id, .. }), .. } => {
                acked.push((offset, id))
            }
            ServerFrame::Push(_) => {}
            other => panic!("{me}: unexpected {other:?}"),
        }
    }
    acked
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {within:?}: {what}");
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn every_member_on_every_node_sees_one_room_order() {
    let _ = NEEDS_REDIS;
    let redis = Redis::start("order", Persistence::None);
    let nodes: Vec<Node> = (0..3).map(|i| Node::start(&format!("n{i}"), &redis)).collect();
    const EACH: usize = 150;
    // Two listeners and two senders on each node.
    let mut listeners = Vec::new();
    let mut senders = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for j in 0..2 {
            let mut l = n.login(&format!("listener{i}{j}"));
            l.join("busy").unwrap();
            listeners.push(l);
            let mut s = n.login(&format!("sender{i}{j}"));
            s.join("busy").unwrap();
            senders.push(s);
        }
    }
    let total = senders.len() * EACH;
    let senders: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| thread::spawn(move || say_many(&mut c, "busy", &format!("s{i}"), EACH)))
        .collect();
    let readers: Vec<_> = listeners
        .into_iter()
        .map(|mut c| thread::spawn(move || (0..total).map(|_| next_message(&mut c)).collect::<Vec<_>>()))
        .collect();
    let mut acked: Vec<(u64, u64)> = Vec::new();
    for s in senders {
        let mine = s.join().unwrap();
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0), "a sender's messages keep their order");
        acked.extend(mine);
    }
    acked.sort_unstable();
    let seen: Vec<Vec<(u64, u64, String, String)>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    for (i, seq) in seen.iter().enumerate() {
        assert_eq!(seq, &seen[0], "listener {i} saw another order");
    }
    let offsets: Vec<(u64, u64)> = seen[0].iter().map(|m| (m.0, m.1)).collect();
    assert_eq!(offsets, acked, "exactly the acknowledged messages, in offset order, with their ids");
    assert_eq!(
        acked.iter().map(|a| a.0).collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>(),
        "offsets without gaps"
    );
    assert!(acked.windows(2).all(|w| w[0].1 < w[1].1), "ids increase with offsets");
}

fn server_error(r: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Server { code, .. }) => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// The next push that is not a room message: presence, member count, DM.
fn next_push(c: &mut ChatClient) -> Push {
    loop {
        match c.next_event().expect("event") {
            ServerFrame::Push(Push::Message { .. }) => {}
            ServerFrame::Push(p) => return p,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn direct_messages_and_nicknames_span_nodes() {
    let redis = Redis::start("dm", Persistence::None);
    let nodes: Vec<Node> = (0..3).map(|i| Node::start(&format!("n{i}"), &redis)).collect();
    let mut alice = nodes[0].login("alice");
    let mut bob = nodes[1].login("bob");
    let mut carol = nodes[2].login("carol");
    for n in &nodes {
        let taken = login(n.addr, "alice", None).map(|_| ());
        assert_eq!(server_error(taken), ErrorCode::NicknameTaken, "alice is taken on every node");
    }
    let sent = alice.direct("bob", "hi bob").unwrap();
    assert!(sent.id > 0 && sent.offset == 0);
    match next_push(&mut bob) {
        Push::Direct { id, from, text, .. } => {
            assert_eq!((id, from.as_str(), text.as_str()), (sent.id, "alice", "hi bob"))
        }
        other => panic!("bob got {other:?}"),
    }
    // In order, from one user to another, across nodes.
    for i in 0..20 {
        bob.send_request(RequestRef::Direct { to: "carol", text: &format!("d{i}") }).unwrap();
    }
    for i in 0..20 {
        match next_push(&mut carol) {
            Push::Direct { from, text, .. } => assert_eq!((from.as_str(), text), ("bob", format!("d{i}"))),
            other => panic!("carol got {other:?}"),
        }
    }
    // To oneself, and to no one.
    alice.direct("alice", "note").unwrap();
    assert!(matches!(next_push(&mut alice), Push::Direct { text, .. } if text == "note"));
    assert_eq!(server_error(alice.direct("nobody", "?")), ErrorCode::UnknownUser);
    // A nickname is free on every node once its holder is gone.
    drop(alice);
    eventually("alice free on another node", Duration::from_secs(5), || {
        login(nodes[2].addr, "alice", None).is_ok()
    });
    // Ids are unique across nodes: room messages and DMs share one counter.
    let mut x = nodes[1].login("xavier");
    let d = x.direct("carol", "x").unwrap();
    assert!(d.id > sent.id);
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn presence_who_and_rooms_span_nodes() {
    let redis = Redis::start("presence", Persistence::None);
    let nodes: Vec<Node> = (0..3).map(|i| Node::start(&format!("n{i}"), &redis)).collect();
    let mut alice = nodes[0].login("alice");
    let mut bob = nodes[1].login("bob");
    let mut carol = nodes[2].login("carol");
    assert_eq!(alice.join("hall").unwrap().members, 1);
    // A join is recorded in Redis just after its reply: presence across
    // nodes follows what Redis has recorded.
    eventually("alice recorded", Duration::from_secs(5), || carol.who("hall").unwrap() == ["alice"]);
    bob.join("hall").unwrap();
    assert_eq!(
        next_push(&mut alice),
        Push::Presence { room: "hall".into(), nick: "bob".into(), kind: PresenceKind::Joined }
    );
    eventually("bob recorded", Duration::from_secs(5), || carol.who("hall").unwrap().len() == 2);
    let j = carol.join("hall").unwrap();
    assert_eq!(j.members, 3);
    for c in [&mut alice, &mut bob] {
        assert_eq!(
            next_push(c),
            Push::Presence { room: "hall".into(), nick: "carol".into(), kind: PresenceKind::Joined }
        );
    }
    for c in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(c.who("hall").unwrap(), vec!["alice", "bob", "carol"], "Who lists members on every node");
    }
    let rooms = bob.list_rooms().unwrap();
    assert!(rooms.iter().any(|r| r.name == "hall" && r.members == 3), "{rooms:?}");
    assert_eq!(server_error(carol.who("nowhere")), ErrorCode::UnknownRoom);
    bob.leave("hall").unwrap();
    for c in [&mut alice, &mut carol] {
        assert_eq!(
            next_push(c),
            Push::Presence { room: "hall".into(), nick: "bob".into(), kind: PresenceKind::Left }
        );
    }
    assert_eq!(alice.who("hall").unwrap(), vec!["alice", "carol"]);
    // A message still reaches the members left, on both nodes.
    let sent = carol.say("hall", "still here").unwrap();
    assert_eq!(next_message(&mut alice).0, sent.offset);
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn a_killed_node_leaves_no_ghosts_and_the_others_keep_chatting() {
    let redis = Redis::start("kill", Persistence::None);
    let mut nodes: Vec<Node> = (0..3).map(|i| Node::start(&format!("n{i}"), &redis)).collect();
    let mut alice = nodes[0].login("alice");
    let mut carol = nodes[2].login("carol");
    alice.join("hall").unwrap();
    carol.join("hall").unwrap();
    let mut bobs: Vec<ChatClient> = (0..3).map(|i| nodes[1].login(&format!("bob{i}"))).collect();
    for b in &mut bobs {
        b.join("hall").unwrap();
    }
    eventually("six members", Duration::from_secs(5), || alice.who("hall").unwrap().len() == 5);
    let killed = Instant::now();
    nodes[1].kill9();
    // Each bob's departure reaches alice, within the configured bound
    // (node_ttl_ms + heartbeat_ms, 1.2 s here; plus slack for a loaded CI
    // machine's scheduling).
    let mut gone = Vec::new();
    alice.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while gone.len() < 3 {
        match next_push(&mut alice) {
            Push::Presence { nick, kind: PresenceKind::Left, .. } => gone.push(nick),
            Push::Presence { .. } => {}
            other => panic!("alice got {other:?}"),
        }
    }
    let took = killed.elapsed();
    gone.sort();
    assert_eq!(gone, vec!["bob0", "bob1", "bob2"]);
    assert!(
        took <= Duration::from_millis(TTL_MS + HEARTBEAT_MS + 1300),
        "the dead node's members left presence after {took:?}"
    );
    assert_eq!(carol.who("hall").unwrap(), vec!["alice", "carol"]);
    // Their nicknames are free; the others keep chatting.
    let mut bob0 = nodes[2].login("bob0");
    bob0.join("hall").unwrap();
    let sent = alice.say("hall", "still on").unwrap();
    assert_eq!(next_message(&mut carol).0, sent.offset);
    assert_eq!(next_message(&mut bob0).0, sent.offset);
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn resume_on_another_node() {
    let redis = Redis::start("resume", Persistence::None);
    // A short in-memory tail: older positions are read from Redis.
    let nodes: Vec<Node> =
        (0..3).map(|i| Node::start_with(&format!("n{i}"), &redis, "history_len = 5")).collect();
    let mut bob = nodes[1].login("bob");
    bob.join("log").unwrap();
    let mut alice = nodes[0].login("alice");
    let joined = alice.join("log").unwrap();
    for i in 0..3 {
        bob.say("log", &format!("early {i}")).unwrap();
    }
    for _ in 0..3 {
        next_message(&mut alice);
    }
    let seen = Position { epoch: joined.epoch, offset: 3 };
    drop(alice);
    let mut expected = Vec::new();
    for i in 0..40 {
        expected.push((bob.say("log", &format!("missed {i}")).unwrap().offset, format!("missed {i}")));
    }
    // Back on a third node: exactly what was missed, from Redis' log.
    let mut alice = nodes[2].login("alice");
    let back = alice.join_from("log", Some(seen)).unwrap();
    assert!(back.recovered, "{back:?}");
    assert_eq!(back.epoch, joined.epoch);
    let got: Vec<(u64, String)> = back.history.iter().map(|m| (m.offset, m.text.clone())).collect();
    assert_eq!(got, expected);
    // And live messages follow on.
    let s = bob.say("log", "live").unwrap();
    assert_eq!(next_message(&mut alice).0, s.offset);
    // A position from the tail (node 1 holds the room in memory).
    let mut carol = nodes[1].login("carol");
    let tail = carol.join_from("log", Some(Position { epoch: joined.epoch, offset: s.offset - 2 })).unwrap();
    assert!(tail.recovered);
    assert_eq!(tail.history.len(), 2);
    // Another epoch: not recovered, the recent history instead.
    let mut dave = nodes[0].login("dave");
    let other = dave.join_from("log", Some(Position { epoch: joined.epoch ^ 1, offset: 2 })).unwrap();
    assert!(!other.recovered);
    assert_eq!(other.history.len(), 5);
}

/// What a steady sender got: acknowledged (offset, text), and refusals.
type SenderResult = (Vec<(u64, String)>, usize);

/// Posts from `senders` until `stop`, each with its own pipeline of `depth`
/// requests: returns the acknowledged (offset, text) and the count of
/// `StoreFailed` replies.
fn steady_senders(
    mut senders: Vec<(ChatClient, String)>,
    room: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<thread::JoinHandle<SenderResult>> {
    senders
        .drain(..)
        .map(|(mut c, me)| {
            let stop = stop.clone();
            thread::spawn(move || {
                let (mut acked, mut failed, mut i) = (Vec::new(), 0, 0usize);
                let mut texts = std::collections::VecDeque::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for _ in 0..4 {
                        let text = format!("{me}-{i}");
                        i += 1;
                        c.send_request(RequestRef::Say { room, text: &text }).unwrap();
                        texts.push_back(text);
                    }
                    while let Some(text) = texts.pop_front() {
                        loop {
                            match c.next_event().expect("event") {
                                ServerFrame::Reply {
                                    reply: Reply::Ok(OkBody::Sent { offset, .. }), ..
                                } => {
                                    acked.push((offset, text));
                                    break;
                                }
                                ServerFrame::Reply { reply: Reply::Error { code, .. }, .. } => {
                                    assert_eq!(code, ErrorCode::StoreFailed);
                                    failed += 1;
                                    break;
                                }
                                ServerFrame::Push(_) => {}
                                other => panic!("{me}: unexpected {other:?}"),
                            }
                        }
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                (acked, failed)
            })
        })
        .collect()
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn redis_restarted_under_load_loses_no_acknowledged_message() {
    let mut redis = Redis::start("restart", Persistence::Always);
    let nodes: Vec<Node> = (0..3).map(|i| Node::start(&format!("n{i}"), &redis)).collect();
    let room = "steady";
    let mut listeners: Vec<ChatClient> = Vec::new();
    let mut senders = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut l = n.login(&format!("listener{i}"));
        let epoch = l.join(room).unwrap().epoch;
        assert!(epoch > 0);
        listeners.push(l);
        let mut s = n.login(&format!("sender{i}"));
        s.join(room).unwrap();
        senders.push((s, format!("s{i}")));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders = steady_senders(senders, room, stop.clone());
    // Listeners collect everything until told to stop.
    let readers: Vec<_> = listeners
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                let mut got: Vec<(u64, String)> = Vec::new();
                loop {
                    match c.next_event() {
                        Ok(ServerFrame::Push(Push::Message { offset, text, history: false, .. })) => {
                            got.push((offset, text))
                        }
                        Ok(_) => {}
                        Err(e) if e.is_timeout() => return got,
                        Err(e) => panic!("listener: {e:?}"),
                    }
                }
            })
        })
        .collect();
    let mut probe = nodes[1].login("probe");
    probe.join(room).unwrap();
    thread::sleep(Duration::from_millis(700));
    redis.kill();
    thread::sleep(Duration::from_millis(1000));
    // Redis is away: a post is refused, never acknowledged.
    assert_eq!(server_error(probe.say(room, "while away")), ErrorCode::StoreFailed);
    redis.restart();
    thread::sleep(Duration::from_millis(2500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut failed = 0;
    for s in senders {
        let (a, f) = s.join().unwrap();
        acked.extend(a);
        failed += f;
    }
    acked.sort();
    eprintln!("{} acknowledged, {failed} refused while Redis was away", acked.len());
    assert!(acked.len() > 100, "{} acknowledged", acked.len());
    // Every acknowledged message is in Redis' log, under its offset.
    let stored = redis.cli(&["XLEN", "sb:log:steady"]);
    assert!(stored.parse::<usize>().unwrap() >= acked.len(), "{stored} stored, {} acknowledged", acked.len());
    for (offset, text) in acked.iter().step_by(7) {
        let e = redis.cli(&["XRANGE", "sb:log:steady", &format!("{offset}-0"), &format!("{offset}-0")]);
        assert!(e.contains(text.as_str()), "offset {offset}: {e}");
    }
    // Every listener, on every node, got every stored message once, in order.
    for r in readers {
        let got = r.join().unwrap();
        assert!(got.windows(2).all(|w| w[0].0 + 1 == w[1].0), "no gap, no repeat, in order");
        for a in &acked {
            assert!(got.binary_search(a).is_ok(), "acknowledged {a:?} reached every member");
        }
    }
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn a_redis_that_lost_its_data_gives_new_epochs_and_members_resume() {
    let mut redis = Redis::start("lost", Persistence::None);
    let nodes: Vec<Node> = (0..2).map(|i| Node::start(&format!("n{i}"), &redis)).collect();
    let mut alice = nodes[0].login("alice");
    let mut bob = nodes[1].login("bob");
    let first = alice.join("gone").unwrap();
    bob.join("gone").unwrap();
    for i in 0..5 {
        alice.say("gone", &format!("m{i}")).unwrap();
    }
    for _ in 0..5 {
        next_message(&mut bob);
    }
    redis.restart();
    // Posting goes on: Redis starts the room again, with a new epoch; the
    // members are told to come back (going away), and resuming learn
    // that the history is gone.
    eventually("a post is stored again", Duration::from_secs(10), || alice.say("gone", "after").is_ok());
    bob.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let went = loop {
        match bob.next_event() {
            Ok(ServerFrame::Push(Push::GoingAway { .. })) => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    assert!(went, "bob is told to resume");
    let mut bob = nodes[1].login_retry("bob");
    let back = bob.join_from("gone", Some(Position { epoch: first.epoch, offset: 5 })).unwrap();
    assert!(!back.recovered, "{back:?}");
    assert_ne!(back.epoch, first.epoch);
}

/// A node config for `redis_url`, in a fresh directory.
fn node_config(name: &str, redis_url: &str) -> PathBuf {
    let addr = free_addr();
    let dir = temp_dir(&format!("config-{name}-{}", addr.port()));
    let config = dir.join("node.toml");
    let text = format!(
        "[http]\nlisten = []\n[store]\ndata_dir = \"none\"\n[chat]\nlisten = [\"{addr}\"]\n\
         [cluster]\nredis = \"{redis_url}\"\ntimeout_ms = 500\n"
    );
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn an_unreachable_redis_is_a_clear_error_at_start_and_in_the_config_test() {
    // Nothing listens on this port: no redis-server needed.
    let url = format!("redis://127.0.0.1:{}", free_addr().port());
    let config = node_config("unreachable", &url);
    let (ok, text) = common::check(&config);
    assert!(!ok, "{text}");
    assert!(text.contains("cluster.redis: cannot reach") && text.contains(&url), "{text}");
    let out = std::process::Command::new(common::BIN).arg("-c").arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot reach") && err.contains(&url), "{err}");
    let bad = node_config("bad-url", "http://127.0.0.1:1");
    let (ok, text) = common::check(&bad);
    assert!(!ok && text.contains("cluster.redis"), "{text}");
    for c in [config, bad] {
        let _ = std::fs::remove_dir_all(c.parent().unwrap());
    }
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn the_config_test_checks_redis() {
    let redis = Redis::start("check", Persistence::None);
    let config = node_config("check", &redis.url());
    let (ok, text) = common::check(&config);
    assert!(ok, "{text}");
    assert!(text.contains("in Redis 7") || text.contains("in Redis 8"), "{text}");
    let _ = std::fs::remove_dir_all(config.parent().unwrap());
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(TIMEOUT)).build().into()
}

fn http_get(agent: &ureq::Agent, node: &Node, path: &str, session: &str) -> (u16, serde_json::Value) {
    let mut r = agent
        .get(&format!("http://{}{path}", node.http.unwrap()))
        .header("Authorization", &format!("Bearer {session}"))
        .call()
        .unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or_default())
}

fn http_post(
    agent: &ureq::Agent,
    node: &Node,
    path: &str,
    body: &str,
    session: &str,
) -> (u16, serde_json::Value) {
    let mut r = agent
        .post(&format!("http://{}{path}", node.http.unwrap()))
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("Bearer {session}"))
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or_default())
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn the_http_door_of_every_node_serves_the_same_rooms() {
    let redis = Redis::start("http", Persistence::None);
    let nodes: Vec<Node> = (0..3).map(|i| Node::start_full(&format!("n{i}"), &redis, "", true)).collect();
    let agent = http_agent();
    let mut bob = nodes[1].login("bob");
    bob.join("web").unwrap();
    // A session's nickname is claimed across the cluster, whatever the door.
    let (status, opened) = http_post(&agent, &nodes[0], "/session", r#"{"nick":"carol"}"#, "");
    assert_eq!(status, 201, "{opened}");
    let carol = opened["session"].as_str().unwrap().to_string();
    let taken = login(nodes[1].addr, "carol", None).map(|_| ());
    assert_eq!(server_error(taken), ErrorCode::NicknameTaken, "carol's session holds her nickname");
    let (status, _) = http_post(&agent, &nodes[2], "/session", r#"{"nick":"bob"}"#, "");
    assert_eq!(status, 409, "bob is held over TCP on another node");
    // Posted over HTTP on one node, received over TCP on another.
    let (status, posted) =
        http_post(&agent, &nodes[0], "/rooms/web/messages", r#"{"text":"from http"}"#, &carol);
    assert_eq!(status, 201, "{posted}");
    let (offset, _, from, text) = next_message(&mut bob);
    assert_eq!(
        (offset, from.as_str(), text.as_str()),
        (posted["offset"].as_u64().unwrap(), "carol", "from http")
    );
    // Read on a third node, from Redis (an HTTP session belongs to the node
    // that opened it; its nickname to the cluster).
    let (status, opened) = http_post(&agent, &nodes[2], "/session", r#"{"nick":"dave"}"#, "");
    assert_eq!(status, 201, "{opened}");
    let dave = opened["session"].as_str().unwrap().to_string();
    let (status, _) = http_get(&agent, &nodes[2], "/rooms", &carol);
    assert_eq!(status, 401, "carol's session is node 0's");
    let (status, page) = http_get(&agent, &nodes[2], "/rooms/web/messages?since=0", &dave);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["text"], "from http");
    assert_eq!(page["last_offset"].as_u64(), Some(offset));
    let (status, _) = http_get(&agent, &nodes[2], "/rooms/nowhere/messages", &dave);
    assert_eq!(status, 404);
    // A long poll on a node that does not hold the room gets the next message.
    let poll = {
        let agent = agent.clone();
        let addr = nodes[2].http.unwrap();
        let session = dave.clone();
        thread::spawn(move || {
            let mut r = agent
                .get(&format!("http://{addr}/rooms/web/messages?since={offset}&wait=5"))
                .header("Authorization", &format!("Bearer {session}"))
                .call()
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&r.body_mut().read_to_string().unwrap()).unwrap()
        })
    };
    thread::sleep(Duration::from_millis(300));
    let next = bob.say("web", "for the poll").unwrap();
    let got = poll.join().unwrap();
    assert_eq!(got["messages"][0]["offset"].as_u64(), Some(next.offset), "{got}");
    // The room list covers the cluster.
    let (status, rooms) = http_get(&agent, &nodes[0], "/rooms", &carol);
    assert_eq!(status, 200);
    assert!(
        rooms["rooms"].as_array().unwrap().iter().any(|r| r["name"] == "web" && r["members"] == 1),
        "{rooms}"
    );
    // Each node's /metrics, OpenMetrics, with the cluster's counters.
    let mut r = agent.get(&format!("http://{}/metrics", nodes[1].http.unwrap())).call().unwrap();
    let ctype = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert_eq!(ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = r.body_mut().read_to_string().unwrap();
    for needle in [
        "# TYPE chat_cluster_redis_round_trip_seconds histogram",
        "chat_cluster_redis_round_trip_seconds_bucket{le=",
        "chat_cluster_messages_relayed_total 2",
        "chat_cluster_redis_reconnects_total 0",
        "chat_cluster_node_info{node=\"n1\"",
        "switchboard_connections_accepted_total{service=\"chat\"}",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(text.ends_with("# EOF\n"));
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn a_node_that_stops_lets_go_of_its_users_at_once() {
    let redis = Redis::start("stop", Persistence::None);
    let nodes: Vec<Node> = (0..2).map(|i| Node::start(&format!("n{i}"), &redis)).collect();
    let mut alice = nodes[0].login("alice");
    alice.join("hall").unwrap();
    let mut bob = nodes[1].login("bob");
    bob.join("hall").unwrap();
    assert!(matches!(next_push(&mut alice), Push::Presence { kind: PresenceKind::Joined, .. }));
    nodes[1].server.signal(libc::SIGTERM);
    // Bob is told to go, and goes.
    loop {
        match bob.next_event() {
            Ok(ServerFrame::Push(Push::GoingAway { .. })) => break,
            Ok(_) => {}
            Err(e) => panic!("bob: {e:?}"),
        }
    }
    drop(bob);
    let stopped = Instant::now();
    alice.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        next_push(&mut alice),
        Push::Presence { room: "hall".into(), nick: "bob".into(), kind: PresenceKind::Left }
    );
    assert!(stopped.elapsed() < Duration::from_millis(TTL_MS), "not left to the liveness timeout");
    let _bob = nodes[0].login("bob");
    assert_eq!(alice.who("hall").unwrap(), vec!["alice"]);
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn offsets_never_go_back_when_a_room_position_is_lost_but_its_log_kept() {
    let redis = Redis::start("evicted", Persistence::None);
    let node = Node::start("n0", &redis);
    let mut alice = node.login("alice");
    let first = alice.join("kept").unwrap();
    for i in 0..5 {
        alice.say("kept", &format!("m{i}")).unwrap();
    }
    // As an eviction would: the position goes, the Stream stays.
    assert_eq!(redis.cli(&["DEL", "sb:room:kept"]), "1");
    // Its Sent, or the going-away that tells alice the room's history is
    // another epoch now, whichever comes first.
    let _ = alice.say("kept", "after");
    let top = redis.cli(&["XREVRANGE", "sb:log:kept", "+", "-", "COUNT", "1"]);
    assert!(top.starts_with("6-0") && top.contains("after"), "offsets go on after the log's last one: {top}");
    let mut bob = node.login("bob");
    let joined = bob.join_from("kept", Some(Position { epoch: first.epoch, offset: 0 })).unwrap();
    assert_ne!(joined.epoch, first.epoch, "the position was lost: a new epoch says so");
}

/// One chat payload per binary WebSocket message.
fn ws_call(
    ws: &mut tungstenite::WebSocket<std::net::TcpStream>,
    id: u32,
    request: chat_server::protocol::Request,
) -> ServerFrame {
    use tungstenite::Message;
    let mut buf = bytes::BytesMut::new();
    chat_server::protocol::ClientFrame { request_id: id, request }.encode(&mut buf);
    ws.send(Message::Binary(buf.freeze())).unwrap();
    ws_next(ws, |f| matches!(f, ServerFrame::Reply { request_id, .. } if *request_id == id))
}

fn ws_next(
    ws: &mut tungstenite::WebSocket<std::net::TcpStream>,
    want: impl Fn(&ServerFrame) -> bool,
) -> ServerFrame {
    loop {
        match ws.read().expect("websocket open") {
            tungstenite::Message::Binary(b) => {
                let f = ServerFrame::decode(&b).expect("a server frame");
                if want(&f) {
                    return f;
                }
            }
            _ => continue,
        }
    }
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn the_websocket_door_chats_across_nodes() {
    use chat_server::protocol::{Request, PROTOCOL_VERSION};
    use tungstenite::client::IntoClientRequest;
    let redis = Redis::start("ws", Persistence::None);
    let web = Node::start_full("n0", &redis, "", true);
    let tcp = Node::start("n1", &redis);
    let addr = web.http.unwrap();
    let req = format!("ws://{addr}/ws").into_client_request().unwrap();
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (mut ws, _) = tungstenite::client(req, stream).unwrap();
    let login = Request::Login { version: PROTOCOL_VERSION, nick: "wendy".into(), token: None };
    assert!(matches!(
        ws_call(&mut ws, 1, login),
        ServerFrame::Reply { reply: Reply::Ok(OkBody::Welcome(_)), .. }
    ));
    assert_eq!(server_error(login_on(&tcp, "wendy")), ErrorCode::NicknameTaken, "held across the cluster");
    let join = Request::Join { room: "mix".into(), resume: None };
    assert!(matches!(
        ws_call(&mut ws, 2, join),
        ServerFrame::Reply { reply: Reply::Ok(OkBody::Joined { .. }), .. }
    ));
    let mut bob = tcp.login("bob");
    bob.join("mix").unwrap();
    let sent = bob.say("mix", "to the browser").unwrap();
    let got = ws_next(&mut ws, |f| matches!(f, ServerFrame::Push(Push::Message { .. })));
    assert!(
        matches!(got, ServerFrame::Push(Push::Message { offset, ref text, .. }) if offset == sent.offset && text == "to the browser")
    );
    let say = Request::Say { room: "mix".into(), text: "from the browser".into() };
    assert!(matches!(
        ws_call(&mut ws, 3, say),
        ServerFrame::Reply { reply: Reply::Ok(OkBody::Sent { .. }), .. }
    ));
    assert_eq!(next_message(&mut bob).3, "from the browser");
}

fn login_on(node: &Node, nick: &str) -> Result<ChatClient, ClientError> {
    login(node.addr, nick, None)
}

#[test]
#[ignore = "needs redis-server; run by .ci/run with --ignored"]
fn a_binary_upgrade_of_a_node_hands_its_users_over_to_the_new_node() {
    let redis = Redis::start("upgrade", Persistence::None);
    let addr = free_addr();
    let dir = temp_dir(&format!("node-upgrade-{}", addr.port()));
    let (config, pid_file) = (dir.join("node.toml"), dir.join("node.pid"));
    let text = format!(
        "threads = 2\nshutdown_grace_ms = 2000\n[http]\nlisten = []\n[store]\ndata_dir = \"none\"\n\
         [chat]\nlisten = [\"{addr}\"]\nrate_per_sec = 0\n\
         [cluster]\nredis = \"{}\"\nnode = \"up\"\nheartbeat_ms = {HEARTBEAT_MS}\nnode_ttl_ms = {TTL_MS}\n",
        redis.url()
    );
    std::fs::write(&config, text).unwrap();
    let old = Server::start_with(&config, &["--pid-file", pid_file.to_str().unwrap()]);
    // Whatever happens, the successor (started by the old process, not by
    // this test) is ended with the test.
    struct Successor(PathBuf, u32);
    impl Drop for Successor {
        fn drop(&mut self) {
            let pid = std::fs::read_to_string(&self.0).ok().and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|&p| p as u32 != self.1) {
                // SAFETY: kill(2) of the successor this test's server started.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    let _successor = Successor(pid_file.clone(), old.child.id());
    let other = Node::start("n1", &redis);
    let mut alice = login(addr, "alice", None).unwrap();
    let joined = alice.join("up").unwrap();
    let mut bob = other.login("bob");
    bob.join("up").unwrap();
    let before = bob.say("up", "before").unwrap();
    assert_eq!(next_message(&mut alice).0, before.offset);
    old.signal(libc::SIGUSR2);
    old.wait_log("is ready");
    // Alice is told to come back; messages go on meanwhile.
    alice.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        match alice.next_event() {
            Ok(ServerFrame::Push(Push::GoingAway { .. })) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(alice);
    let during: Vec<u64> = (0..10).map(|i| bob.say("up", &format!("during {i}")).unwrap().offset).collect();
    // The new process (a new node) has her nickname free at once.
    let end = Instant::now() + TIMEOUT;
    let mut alice = loop {
        match login(addr, "alice", None) {
            Ok(c) => break c,
            Err(e) if Instant::now() < end => {
                let _ = e;
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("alice cannot come back: {e:?}"),
        }
    };
    let back = alice.join_from("up", Some(Position { epoch: joined.epoch, offset: before.offset })).unwrap();
    assert!(back.recovered);
    assert_eq!(back.history.iter().map(|m| m.offset).collect::<Vec<_>>(), during, "exactly what she missed");
    let old_pid = old.child.id() as i32;
    let read_pid = || std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok());
    eventually("the new pid file", TIMEOUT, || read_pid().is_some_and(|p| p != old_pid));
    assert!(read_pid().is_some());
}
