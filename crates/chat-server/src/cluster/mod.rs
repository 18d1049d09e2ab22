//! Several `chat-server` processes (nodes) serving the same rooms, on
//! Redis 7, the way Centrifugo and Socket.IO scale out.
//!
//! - **One order per room, given in one place.** A post becomes one Lua
//!   script call ([`scripts`]) that takes the room's next offset and a
//!   cluster-wide message id, appends the message to the room's Stream
//!   (trimmed to `retain_messages`) and publishes it on the room's channel.
//!   Every node, the posting one included, publishes a message into its own
//!   room state when it arrives on its subscription, in offset order
//!   (`room::relay`), so every member on every node sees the one room
//!   order. The sender's `Sent` leaves once Redis has confirmed the append.
//! - **The room log lives in Redis**: a room is loaded from its Stream
//!   when a node needs it, resume reads the Stream, whichever node a client
//!   comes back to. The epoch is kept beside the offset and changes only
//!   when Redis lost the room.
//! - **Identity and presence span nodes**: nicknames are claimed in Redis,
//!   members recorded per room, both valid while their node is alive (a
//!   heartbeat; a dead node's entries are swept and its members' departures
//!   published); direct messages go to the recipient's node's channel.
//! - **No event loop waits on Redis.** Two bridge threads per node talk to
//!   Redis with the `redis` crate's synchronous API: [`bridge`] (every
//!   command, pipelined in batches from a bounded queue) and [`subscriber`]
//!   (the subscription). Results reach the loops through the delivery
//!   inboxes and `notify_loop`; a full queue is an error reply at once.
//!
//! The room log's operations are the embedded store's (`store::RoomLog`: a
//! room's position, the messages after an offset, the latest ones, an
//! append), here as Lua scripts on Redis; but where the embedded store is
//! called synchronously (a local read takes microseconds), these are
//! asynchronous calls on the bridge ([`Cluster::load`], [`Cluster::read`],
//! [`Cluster::append`]) whose answers come back to the loops, since a loop
//! must never wait for a round trip to Redis.
//!
//! What ties this to the chat: [`node`] (what a session's request does on
//! a node) and [`arrivals`] (what comes back from Redis), both driving
//! `core/rooms.rs`' rooms; the rest of this module knows nothing of sessions.

pub mod arrivals;
pub mod bridge;
pub mod node;
pub mod scripts;
pub mod stats;
pub mod subscriber;
pub mod wire;

use crate::config::ClusterConfig;
use crate::protocol::PresenceKind;
use crate::store::{new_epoch, Entry, RoomMeta};
use bridge::{Bridge, Call, CallError, CallResult, Hooks, Retry};
use redis::Value;
use scripts::{Keys, Script};
use stats::ClusterStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use subscriber::{SubEvent, Subscriber};
use wire::{as_string, as_u64, items, stream_entry};

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The room's offset.
    pub offset: u64,
    /// The message id.
    pub id: u64,
    /// The room log's epoch.
    pub epoch: u64,
}

/// A room as read when a node loads it.
#[derive(Debug)]
pub struct Loaded {
    /// Epoch, last offset, and what retention dropped.
    pub meta: RoomMeta,
    /// This read created the room.
    pub created: bool,
    /// Members on every node (dead nodes' until swept).
    pub members: u32,
    /// The latest messages, oldest first.
    pub tail: Vec<Entry>,
}

/// Messages of a room after a position, with the room's position.
#[derive(Debug)]
pub struct Page {
    /// Epoch, last offset, and what retention dropped.
    pub meta: RoomMeta,
    /// Messages, oldest first, with who posted them (node, token).
    pub entries: Vec<(Entry, Option<(String, u64)>)>,
    /// Members on every node (dead nodes' until swept).
    pub members: u32,
}

/// Checks that the Redis at `url` answers and is version 7 or later, as
/// `-t` and the start do. Returns its version.
pub fn check(url: &str, timeout: Duration) -> Result<String, String> {
    let client = redis::Client::open(url).map_err(|e| format!("cluster.redis: {url}: {e}"))?;
    let mut conn = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| format!("cluster.redis: cannot reach {url}: {e}"))?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut conn)
        .map_err(|e| format!("cluster.redis: {url} does not answer: {e}"))?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    let major: u32 = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    if major < 7 {
        return Err(format!("cluster.redis: {url} runs Redis {version:?}; version 7 or later is needed"));
    }
    Ok(version)
}

/// What a node tells its owner (the chat core) from the bridge threads.
pub trait Events: Send + Sync + 'static {
    /// The subscription has news.
    fn subscription(&self, event: SubEvent<'_>);
    /// Redis took this node for dead (or lost its records): what it holds
    /// (nicknames, members) must be recorded again.
    fn restore(&self);
}

/// One node of a cluster: its identity and its two bridge threads.
pub struct Cluster {
    keys: Keys,
    node: String,
    name: String,
    bridge: Bridge,
    subscriber: Subscriber,
    stats: Arc<ClusterStats>,
    retain: u64,
    /// Tokens of this node's posts (origins `node:token`).
    next_token: AtomicU64,
    /// The highest message id seen: Redis' counter never goes below it
    /// (should Redis lose it).
    max_id: Arc<AtomicU64>,
    heartbeat: Duration,
    node_ttl: Duration,
    /// Set once the node lets go of what it holds: no more heartbeats
    /// (which would claim it all back).
    leaving: Arc<std::sync::atomic::AtomicBool>,
}

impl Cluster {
    /// Starts a node: checks Redis, starts the bridge threads. `retain`:
    /// messages kept per room. `events` hears from the threads (held
    /// weakly by them: a dropped owner stops them).
    pub fn start<E: Events>(
        config: &ClusterConfig,
        retain: u64,
        events: std::sync::Weak<E>,
    ) -> Result<Arc<Cluster>, String> {
        let timeout = Duration::from_millis(config.timeout_ms);
        check(&config.redis, timeout)?;
        let client = redis::Client::open(config.redis.as_str()).map_err(|e| format!("cluster.redis: {e}"))?;
        let keys = Keys::new(&config.prefix);
        let name = config.node_name();
        let node = format!("{name}~{:08x}", fastrand::u32(..));
        let stats = Arc::new(ClusterStats::default());
        let max_id = Arc::new(AtomicU64::new(0));
        let ttl = Duration::from_millis(config.node_ttl_ms);
        let leaving = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hooks = {
            let (keys, node, max_id, events) = (keys.clone(), node.clone(), max_id.clone(), events.clone());
            let leaving = leaving.clone();
            Hooks {
                period: Duration::from_millis(config.heartbeat_ms),
                tick: Box::new(move |_new| {
                    if leaving.load(Ordering::Acquire) {
                        return Vec::new();
                    }
                    let events = events.clone();
                    let floor = max_id.load(Ordering::Acquire);
                    let beat = Call::new(
                        Script::Heartbeat,
                        vec![keys.nodes(), keys.ids()],
                        vec![node.clone(), ttl.as_millis().to_string(), floor.to_string()],
                        Retry::Same,
                        move |r: CallResult| {
                            if let Ok(Value::Int(0)) = r {
                                if let Some(e) = events.upgrade() {
                                    e.restore();
                                }
                            }
                        },
                    );
                    let sweep = Call::new(
                        Script::Sweep,
                        vec![keys.nodes(), keys.nicks()],
                        vec![keys.prefix().to_string()],
                        Retry::Same,
                        |r: CallResult| {
                            for dead in items(&r.unwrap_or(Value::Nil)) {
                                if let Some(n) = as_string(dead) {
                                    log::info!(
                                        "cluster: node {n} is gone; its members and nicknames are cleared"
                                    );
                                }
                            }
                        },
                    );
                    vec![beat, sweep]
                }),
            }
        };
        let (bridge, _calls) =
            Bridge::start(client.clone(), config.max_pending, timeout, stats.clone(), hooks)
                .map_err(|e| format!("cannot start the redis thread: {e}"))?;
        let (channel_keys, room_keys) = (keys.clone(), keys.clone());
        let (subscriber, _sub) = Subscriber::start(
            client,
            timeout,
            move |room| channel_keys.room_channel(room),
            move |channel| room_keys.room_of_channel(channel).map(str::to_string),
            keys.node_channel(&node),
            stats.clone(),
            move |event| {
                if let Some(e) = events.upgrade() {
                    e.subscription(event);
                }
            },
        )
        .map_err(|e| format!("cannot start the redis subscriber: {e}"))?;
        Ok(Arc::new(Cluster {
            keys,
            node,
            name,
            bridge,
            subscriber,
            stats,
            retain,
            next_token: AtomicU64::new(1),
            max_id,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            node_ttl: ttl,
            leaving,
        }))
    }

    /// This node's id in Redis (its name and a random suffix, new at each
    /// start).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// This node's name, as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<ClusterStats> {
        &self.stats
    }

    /// Longest time a dead node's members stay in presence.
    pub fn presence_bound(&self) -> Duration {
        self.node_ttl + self.heartbeat
    }

    /// A token for a post of this node.
    pub fn token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Notes a message id seen.
    pub fn saw_id(&self, id: u64) {
        self.max_id.fetch_max(id, Ordering::AcqRel);
    }

    /// Appends a message to a room: offset, id, publish. `done` gets where
    /// it landed. False if refused at once (then `done` already ran).
    pub fn append(
        &self,
        room: &str,
        from: &str,
        text: &str,
        ts_us: u64,
        token: u64,
        done: impl FnOnce(Result<Stamp, CallError>) + Send + 'static,
    ) -> bool {
        let k = &self.keys;
        let keys = vec![k.room(room), k.log(room), k.rooms(), k.ids(), k.room_channel(room)];
        let args = vec![
            room.to_string(),
            new_epoch().to_string(),
            self.retain.to_string(),
            ts_us.to_string(),
            from.to_string(),
            text.to_string(),
            format!("{}:{token}", self.node),
            "0".to_string(),
        ];
        let max_id = self.max_id.clone();
        self.bridge.call(Call::new(Script::Append, keys, args, Retry::LastArg("1"), move |r| {
            let stamp = r.and_then(|v| {
                let f = items(&v);
                match (f.first().and_then(as_u64), f.get(1).and_then(as_u64), f.get(2).and_then(as_u64)) {
                    (Some(offset), Some(id), Some(epoch)) => Ok(Stamp { offset, id, epoch }),
                    _ => Err(CallError::Server(format!("unexpected append reply {v:?}"))),
                }
            });
            if let Ok(s) = &stamp {
                max_id.fetch_max(s.id, Ordering::AcqRel);
            }
            done(stamp)
        }))
    }

    /// Reads a room for loading: `None` if it does not exist (and
    /// `create` is false).
    pub fn load(
        &self,
        room: &str,
        create: bool,
        tail: usize,
        done: impl FnOnce(Result<Option<Loaded>, CallError>) + Send + 'static,
    ) -> bool {
        let k = &self.keys;
        let keys = vec![k.room(room), k.log(room), k.rooms(), k.members(room)];
        let args = vec![
            if create { "1" } else { "0" }.to_string(),
            new_epoch().to_string(),
            tail.to_string(),
            room.to_string(),
        ];
        self.bridge.call(Call::new(Script::Load, keys, args, Retry::Same, move |r| {
            done(r.and_then(|v| {
                if v == Value::Nil {
                    return Ok(None);
                }
                let f = items(&v);
                let num = |i: usize| f.get(i).and_then(as_u64);
                match (num(0), num(1), num(2), num(3), num(4)) {
                    (Some(epoch), Some(last), Some(created), Some(first), Some(members)) => {
                        let mut tail: Vec<Entry> = f
                            .get(5)
                            .map(items)
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|e| stream_entry(e).map(|(e, _)| e))
                            .collect();
                        tail.reverse();
                        let trimmed = if first == 0 { last } else { first - 1 };
                        Ok(Some(Loaded {
                            meta: RoomMeta { epoch, last_offset: last, trimmed },
                            created: created == 1,
                            members: u32::try_from(members).unwrap_or(u32::MAX),
                            tail,
                        }))
                    }
                    _ => Err(CallError::Server(format!("unexpected load reply {v:?}"))),
                }
            }))
        }))
    }

    /// Reads up to `limit` messages of a room after offset `after`, with
    /// the room's position; `None` if there is no such room.
    pub fn read(
        &self,
        room: &str,
        after: u64,
        limit: usize,
        done: impl FnOnce(Result<Option<Page>, CallError>) + Send + 'static,
    ) -> bool {
        let keys = vec![self.keys.room(room), self.keys.log(room), self.keys.members(room)];
        let args = vec![(after + 1).to_string(), limit.max(1).to_string()];
        self.bridge.call(Call::new(Script::Read, keys, args, Retry::Same, move |r| {
            done(r.and_then(|v| {
                if v == Value::Nil {
                    return Ok(None);
                }
                let f = items(&v);
                let num = |i: usize| f.get(i).and_then(as_u64);
                match (num(0), num(1), num(2)) {
                    (Some(epoch), Some(last), Some(first)) => {
                        let entries =
                            f.get(3).map(items).unwrap_or_default().iter().filter_map(stream_entry).collect();
                        let trimmed = if first == 0 { last } else { first - 1 };
                        let members =
                            f.get(4).and_then(as_u64).map_or(0, |m| u32::try_from(m).unwrap_or(u32::MAX));
                        Ok(Some(Page {
                            meta: RoomMeta { epoch, last_offset: last, trimmed },
                            entries,
                            members,
                        }))
                    }
                    _ => Err(CallError::Server(format!("unexpected read reply {v:?}"))),
                }
            }))
        }))
    }

    /// Claims a nickname for this node: `done(Ok(false))` if a live node
    /// holds it.
    pub fn claim(&self, nick: &str, done: impl FnOnce(Result<bool, CallError>) + Send + 'static) -> bool {
        let k = &self.keys;
        let keys = vec![k.nicks(), k.nodes(), k.node_nicks(&self.node)];
        let args = vec![nick.to_string(), self.node.clone()];
        self.bridge.call(Call::new(Script::Claim, keys, args, Retry::Same, move |r| {
            done(r.map(|v| as_u64(&v) == Some(1)))
        }))
    }

    /// Releases a nickname this node holds.
    pub fn release(&self, nick: &str) {
        let k = &self.keys;
        let keys = vec![k.nicks(), k.node_nicks(&self.node)];
        let args = vec![nick.to_string(), self.node.clone()];
        self.bridge.call(Call::new(Script::Release, keys, args, Retry::Same, |_| {}));
    }

    /// Records a join or leave of a member on this node (connection
    /// `conn`), published on the room's channel.
    pub fn presence(&self, kind: PresenceKind, room: &str, nick: &str, conn: u64) {
        let k = &self.keys;
        let keys = vec![k.members(room), k.node_members(&self.node), k.room_channel(room)];
        let kind = match kind {
            PresenceKind::Joined => "1",
            PresenceKind::Left => "2",
        };
        let args =
            vec![kind.to_string(), room.to_string(), nick.to_string(), self.node.clone(), conn.to_string()];
        self.bridge.call(Call::new(Script::Presence, keys, args, Retry::Same, |_| {}));
    }

    /// A room's members on live nodes; `None` if there is no such room.
    pub fn who(
        &self,
        room: &str,
        done: impl FnOnce(Result<Option<Vec<String>>, CallError>) + Send + 'static,
    ) -> bool {
        let k = &self.keys;
        let keys = vec![k.members(room), k.nodes(), k.room(room)];
        self.bridge.call(Call::new(Script::Who, keys, vec![], Retry::Same, move |r| {
            done(r.map(|v| {
                let f = items(&v);
                let nicks: Vec<String> =
                    f.get(1).map(items).unwrap_or_default().iter().filter_map(as_string).collect();
                let exists = f.first().and_then(as_u64) == Some(1);
                (exists || !nicks.is_empty()).then_some(nicks)
            }))
        }))
    }

    /// Up to `limit` rooms by name with their member counts, and how many
    /// rooms there are.
    pub fn rooms(
        &self,
        limit: usize,
        done: impl FnOnce(Result<(u64, Vec<(String, u32)>), CallError>) + Send + 'static,
    ) -> bool {
        let args = vec![self.keys.prefix().to_string(), limit.to_string()];
        self.bridge.call(Call::new(Script::Rooms, vec![self.keys.rooms()], args, Retry::Same, move |r| {
            done(r.map(|v| {
                let f = items(&v);
                let total = f.first().and_then(as_u64).unwrap_or(0);
                let rooms = f[f.len().min(1)..]
                    .chunks(2)
                    .filter_map(|p| match p {
                        [name, n] => Some((as_string(name)?, u32::try_from(as_u64(n)?).unwrap_or(u32::MAX))),
                        _ => None,
                    })
                    .collect();
                (total, rooms)
            }))
        }))
    }

    /// Sends a direct message to `to` on whichever node holds it:
    /// `done(Ok(Some(id)))`, or `Ok(None)` if no live node does.
    pub fn direct(
        &self,
        to: &str,
        from: &str,
        text: &str,
        ts_us: u64,
        done: impl FnOnce(Result<Option<u64>, CallError>) + Send + 'static,
    ) -> bool {
        let k = &self.keys;
        let keys = vec![k.nicks(), k.nodes(), k.ids()];
        let args = vec![
            k.prefix().to_string(),
            to.to_string(),
            from.to_string(),
            ts_us.to_string(),
            text.to_string(),
        ];
        let max_id = self.max_id.clone();
        self.bridge.call(Call::new(Script::Direct, keys, args, Retry::No, move |r| {
            done(r.map(|v| {
                let id = as_u64(&v).filter(|&id| id > 0);
                if let Some(id) = id {
                    max_id.fetch_max(id, Ordering::AcqRel);
                }
                id
            }))
        }))
    }

    /// Subscribes a room's channel; the owner hears `Subscribed` (then
    /// loads it) or `Failed`.
    pub fn subscribe(&self, room: Arc<str>) {
        self.subscriber.subscribe(room);
        self.wake();
    }

    /// Unsubscribes a room's channel.
    pub fn unsubscribe(&self, room: Arc<str>) {
        self.subscriber.unsubscribe(room);
        self.wake();
    }

    fn wake(&self) {
        let ch = self.keys.node_channel(&self.node);
        self.bridge.call(Call::new(Script::Wake, vec![ch], vec![], Retry::Same, |_| {}));
    }

    /// Leaves the cluster: what this node holds is cleared at once (rather
    /// than when its liveness runs out), then the subscription stops.
    /// Waits at most `timeout`.
    pub fn leave(&self, timeout: Duration) {
        self.release_all(timeout);
        self.subscriber.stop();
    }

    /// Clears what this node holds in Redis (nicknames, members; their
    /// departures are published) now, as if it had died, so that its users
    /// can log in elsewhere at once (a binary upgrade hands them to a new
    /// node). The node keeps running. Waits at most `timeout`.
    pub fn release_all(&self, timeout: Duration) {
        self.leaving.store(true, Ordering::Release);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let k = &self.keys;
        // Liveness in the past: the sweep clears this node now.
        let beat = Call::new(
            Script::Heartbeat,
            vec![k.nodes(), k.ids()],
            vec![self.node.clone(), "-1000000".into(), "0".into()],
            Retry::No,
            |_| {},
        );
        self.bridge.call(beat);
        let sweep = Call::new(
            Script::Sweep,
            vec![k.nodes(), k.nicks()],
            vec![k.prefix().to_string()],
            Retry::No,
            move |_| {
                let _ = tx.send(());
            },
        );
        self.bridge.call(sweep);
        let _ = rx.recv_timeout(timeout);
    }

    /// Calls waiting for Redis.
    pub fn queued(&self) -> usize {
        self.bridge.queued()
    }
}
