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
}

impl Node {
    fn start(name: &str, redis: &Redis) -> Node {
        Node::start_with(name, redis, "")
    }

    fn start_with(name: &str, redis: &Redis, chat: &str) -> Node {
        let addr = free_addr();
        let dir = temp_dir(&format!("node-{name}-{}", addr.port()));
        let config = dir.join("node.toml");
        let text = format!(
            "threads = 2\nshutdown_grace_ms = 2000\n[http]\nlisten = []\n[store]\ndata_dir = \"none\"\n\
             [chat]\nlisten = [\"{addr}\"]\nrate_per_sec = 0\n{chat}\n\
             [cluster]\nredis = \"{}\"\nnode = \"{name}\"\nheartbeat_ms = {HEARTBEAT_MS}\nnode_ttl_ms = {TTL_MS}\n\
             timeout_ms = 1000\n",
            redis.url()
        );
        std::fs::write(&config, text).unwrap();
        let server = Server::start(&config);
        Node { server, addr, config }
    }

    fn login(&self, nick: &str) -> ChatClient {
        login(self.addr, nick, None).unwrap_or_else(|e| panic!("{nick} cannot log in: {e:?}"))
    }

    fn kill9(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
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
