//! The chat state every event loop shares: users, the rooms in memory, the
//! room log, and the settings a reload swaps. Sessions (one per connection,
//! on its loop) and the HTTP door call into it; it sends through the
//! caller's reactor context. Room logic proper (order, membership, history,
//! resume) is the I/O-free `room.rs`; this module is the driver around it,
//! one file a concern: who is logged in (`identity.rs`), rooms in memory
//! (`rooms.rs`), and messages (`messages.rs`).

mod identity;
mod messages;
mod rooms;

use crate::cluster::node::LoadWaiter;
use crate::cluster::Cluster;
use crate::delivery::{deliver, deliver_all_but, Delivery, Waker};
use crate::identity::{Identity, Refusal, SecretHash, SessionLimits};
use crate::login_limit::LoginLimit;
use crate::protocol::{ErrorCode, Position, PresenceKind, PushRef, RoomInfo, ServerLimits};
use crate::room::{Event, HistoryPlan, RoomState};
use crate::store::{new_epoch, Append, Committed, Entry, FsyncPolicy, LogWriter, RoomLog};
use bytes::{Bytes, BytesMut};
use reactor::{ConnId, Context, ReactorHandle, ServiceId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What sessions need of the configuration; replaced whole on reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Limits, as announced to clients at login.
    pub limits: ServerLimits,
    /// Shared secret required at login, if any.
    pub token: Option<String>,
    /// Most rooms held in memory at once (rooms without members, waiters
    /// or writes in flight leave memory; their log stays).
    pub max_rooms: usize,
    /// Silence after which the server pings a client.
    pub ping_interval: Duration,
    /// Rooms with more members get member-count pushes (at most one a
    /// second) instead of a presence event per join and leave.
    pub presence_max_members: usize,
    /// New rooms (not in memory nor in the log) one connection may create
    /// per minute.
    pub room_creations_per_minute: u32,
    /// Most messages a resume replays; further behind is "not recovered".
    pub recover_limit: usize,
    /// Bytes of recent messages kept in memory per room.
    pub tail_bytes: usize,
    /// Messages the log keeps per room (a resume older than that is not
    /// recovered).
    pub retain_messages: u64,
    /// Bounds of the HTTP session table.
    pub sessions: SessionLimits,
    /// Login attempts per client address per minute (0: no limit).
    pub logins_per_minute: u32,
}

/// How the core is wired to the reactor and the disk.
#[derive(Clone, Debug)]
pub struct Wiring {
    /// Event loops of the reactor.
    pub loops: usize,
    /// The service whose `on_loop_notify` delivers room streams.
    pub service: ServiceId,
    /// Where sessions are saved across restarts (`None`: in memory only).
    pub sessions_file: Option<PathBuf>,
}

/// Why `POST /session` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The nickname is held, on any door.
    Taken,
    /// The session table is full.
    Full,
    /// The shared token is wrong or missing.
    BadToken,
    /// Too many attempts from this address: retry after this many ms.
    RateLimited(u64),
}

/// The SHA-256 of a credential: what the session table keeps.
pub fn secret_hash(credential: &str) -> SecretHash {
    use sha2::Digest;
    sha2::Sha256::digest(credential.as_bytes()).into()
}

/// True if `s` has the shape of a session credential (64 hex digits).
pub fn is_credential(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// A room in memory: its name and its locked state.
pub struct Room {
    /// The room's name.
    pub name: Arc<str>,
    /// Everything else, under the room's lock.
    pub state: Mutex<RoomState>,
}

/// A room handle a session keeps for each room it is in, so that posting
/// takes no global lock.
pub type RoomRef = Arc<Room>;

/// Locks a mutex, recovering from poisoning: a panicking handler closes its
/// own connection but must not take the chat down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Server time, unix microseconds.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// What a successful join returns to the joiner's session.
pub struct Joined {
    /// The room, to keep.
    pub room: RoomRef,
    /// Members including the joiner.
    pub members: u32,
    /// The room log's epoch and latest offset.
    pub epoch: u64,
    /// Offset of the latest message.
    pub last_offset: u64,
    /// The history is exactly what followed the client's position.
    pub recovered: bool,
    /// History to replay, oldest first.
    pub history: Vec<Arc<Entry>>,
}

/// A message accepted into a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posted {
    /// Message id.
    pub id: u64,
    /// Server timestamp.
    pub ts_us: u64,
    /// Offset in the room's log.
    pub offset: u64,
    /// Stored as the fsync policy requires already (`false`: the sender
    /// is notified with its token once it is).
    pub stored: bool,
}

/// Where the log writer reports a message stored (fsync "always"): a
/// `notify(conn, token)` with [`ACK_FAILED`] set if it was not.
#[derive(Clone, Copy, Debug)]
pub struct AckTo {
    /// The sender's connection.
    pub conn: ConnId,
    /// Its token (the session's sequence number of the message).
    pub token: u64,
}

/// Bit set in a notify token that acknowledges a message.
pub const ACK: u64 = 1 << 63;
/// Bit set (with [`ACK`]) when the message could not be stored.
pub const ACK_FAILED: u64 = 1 << 62;
/// Bit set in a notify token that tells a chat connection it no longer
/// speaks for its nickname (another connection took its session over, or
/// the session ended); the low 16 bits are the error code to push before
/// closing.
pub const KICK: u64 = 1 << 61;

/// What the writer gets with each append.
pub struct AppendToken {
    room: RoomRef,
    ack: Option<AckTo>,
}

/// A room's messages after a position, for the HTTP door.
pub struct Page {
    /// The room's epoch.
    pub epoch: u64,
    /// Offset of the room's latest message: the position to poll from next
    /// when `messages` is empty.
    pub last_offset: u64,
    /// Messages, oldest first.
    pub messages: Vec<Arc<Entry>>,
}

/// Users, rooms, the room log and settings shared by every loop.
pub struct ChatCore {
    settings: RwLock<Arc<Settings>>,
    generation: AtomicU64,
    max_payload: AtomicU32,
    /// Who holds which nickname, on every door.
    identity: Mutex<Identity>,
    logins: Mutex<LoginLimit>,
    sessions_file: Option<PathBuf>,
    pub(crate) rooms: Mutex<HashMap<Arc<str>, RoomRef>>,
    next_id: Arc<AtomicU64>,
    going_away: Mutex<(String, u32)>,
    log: Arc<dyn RoomLog>,
    policy: FsyncPolicy,
    writer: OnceLock<LogWriter<AppendToken>>,
    pub(crate) delivery: Delivery,
    /// Rooms whose member count changed, for the next count push.
    counts: Mutex<Vec<RoomRef>>,
    /// In a cluster: the node (Redis holds the order, the log, nicknames
    /// and presence; see `cluster/`).
    pub(crate) cluster: OnceLock<Arc<Cluster>>,
    /// In a cluster: joins waiting for their room to be loaded.
    pub(crate) load_waiters: Mutex<HashMap<Arc<str>, Vec<LoadWaiter>>>,
    me: Weak<ChatCore>,
}

/// Appends the room log's writer queue holds at most.
const WRITER_QUEUE: usize = 65_536;
/// Room names a room list reads from the log at most.
const MAX_LISTED: usize = 10_000;

impl ChatCore {
    /// A core with no users, on `log`, wired to a reactor as `wiring`
    /// says; sessions saved in `wiring.sessions_file` come back. Call
    /// [`ChatCore::attach`] once the reactor is built.
    pub fn new(
        settings: Settings,
        log: Arc<dyn RoomLog>,
        policy: FsyncPolicy,
        wiring: Wiring,
    ) -> Arc<ChatCore> {
        let mut identity = Identity::new(settings.sessions);
        if let Some(path) = &wiring.sessions_file {
            match crate::sessions_file::load(path) {
                Ok(saved) => {
                    let n = identity.restore(saved, now_ms());
                    log::info!("sessions: {n} restored from {}", path.display());
                }
                Err(e) => log::warn!("sessions: {e}; starting with none"),
            }
        }
        Arc::new_cyclic(|me| ChatCore {
            max_payload: AtomicU32::new(settings.limits.max_payload),
            logins: Mutex::new(LoginLimit::new(settings.logins_per_minute)),
            settings: RwLock::new(Arc::new(settings)),
            generation: AtomicU64::new(0),
            identity: Mutex::new(identity),
            sessions_file: wiring.sessions_file,
            rooms: Mutex::new(HashMap::new()),
            next_id: Arc::new(AtomicU64::new(log.first_id())),
            going_away: Mutex::new(("server shutting down".to_string(), 0)),
            log,
            policy,
            writer: OnceLock::new(),
            delivery: Delivery::new(wiring.loops, wiring.service),
            counts: Mutex::new(Vec::new()),
            cluster: OnceLock::new(),
            load_waiters: Mutex::new(HashMap::new()),
            me: me.clone(),
        })
    }

    /// Makes this core a node of the cluster `config` names: Redis gives
    /// the order and keeps the log, nicknames and presence from now on.
    /// Call before [`ChatCore::attach`]. Fails if Redis cannot be reached.
    pub fn join_cluster(self: &Arc<ChatCore>, config: &crate::config::ClusterConfig) -> Result<(), String> {
        let retain = self.settings().retain_messages;
        let cluster = Cluster::start(config, retain, Arc::downgrade(self))?;
        log::info!("cluster: node {} on {}", cluster.node(), config.redis);
        let _ = self.cluster.set(cluster);
        Ok(())
    }

    /// Leaves the cluster (if this core is a node): what this node holds
    /// in Redis is cleared now rather than when its liveness runs out.
    pub fn leave_cluster(&self) {
        if let Some(c) = self.cluster() {
            c.leave(Duration::from_secs(2));
        }
    }

    /// Lets go of what this node holds in the cluster (nicknames, members)
    /// while it keeps serving: before a binary upgrade hands its users to
    /// the new process, so that they can log in there at once.
    pub fn release_cluster_holdings(&self) {
        if let Some(c) = self.cluster() {
            c.release_all(Duration::from_secs(2));
        }
    }

    /// A weak reference to this core, for callbacks on other threads.
    pub(crate) fn me(&self) -> Weak<ChatCore> {
        self.me.clone()
    }

    /// Starts the log writer and the member-count ticker, reaching the
    /// loops through `handle`.
    pub fn attach(self: &Arc<ChatCore>, handle: ReactorHandle) -> std::io::Result<()> {
        self.delivery.attach(handle);
        let weak = Arc::downgrade(self);
        let (writer, _thread) =
            LogWriter::start(self.log.clone(), self.policy, WRITER_QUEUE, self.next_id.clone(), move |c| {
                if let Some(core) = weak.upgrade() {
                    core.committed(c);
                }
            })?;
        let _ = self.writer.set(writer);
        let weak: Weak<ChatCore> = Arc::downgrade(self);
        std::thread::Builder::new().name("room-counts".into()).spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            match weak.upgrade() {
                Some(core) => {
                    core.push_counts();
                    core.sweep_sessions();
                    core.delivery.wake_stalled(core.delivery.handle());
                }
                None => return,
            }
        })?;
        Ok(())
    }

    /// Writes what is queued and closes the room log, releasing it for a
    /// successor; later messages get `StoreFailed`.
    pub fn close_log(&self) -> Result<(), String> {
        self.save_sessions(true);
        match self.writer.get() {
            Some(w) => w.close().map_err(|e| e.to_string()),
            None => self.log.close(self.next_id.load(Ordering::Acquire)).map_err(|e| e.to_string()),
        }
    }

    /// Waits until every message so far is durable.
    pub fn sync_log(&self) -> Result<(), String> {
        self.writer.get().map_or(Ok(()), |w| w.sync().map_err(|e| e.to_string()))
    }

    /// The room log's writer counters (appends, commits, fsyncs, failures).
    pub fn log_stats(&self) -> Option<&crate::store::WriterStats> {
        self.writer.get().map(|w| w.stats())
    }

    /// Where the room log lives.
    pub fn log_description(&self) -> String {
        self.log.describe()
    }

    /// What clients are told when the server goes away: a reason and a
    /// reconnect hint in milliseconds (0: none).
    pub fn going_away(&self) -> (String, u32) {
        lock(&self.going_away).clone()
    }

    /// Sets what clients are told when the server goes away.
    pub fn set_going_away(&self, reason: &str, retry_after_ms: u32) {
        *lock(&self.going_away) = (reason.to_string(), retry_after_ms);
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Bumped by every reload: sessions compare it to refresh their copy.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Largest frame payload now (read on every input batch, so atomic).
    pub fn max_payload(&self) -> u32 {
        self.max_payload.load(Ordering::Relaxed)
    }

    /// Applies new settings to every session from its next frame on.
    pub fn reload(&self, settings: Settings) {
        self.max_payload.store(settings.limits.max_payload, Ordering::Relaxed);
        lock(&self.identity).set_limits(settings.sessions);
        lock(&self.logins).set_rate(settings.logins_per_minute);
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A new message id and timestamp.
    fn stamp(&self) -> (u64, u64) {
        (self.next_id.fetch_add(1, Ordering::AcqRel), now_us())
    }

    /// Encodes a push once, to share among recipients: each recipient's
    /// codec frames it (the chat service's frame format on the TCP door).
    /// `None` if it would not fit the frame limit, which callers prevent by
    /// checking text lengths first.
    pub fn payload(&self, push: PushRef<'_>) -> Option<Bytes> {
        let len = push.encoded_len();
        if len > self.max_payload() as usize {
            log::error!("a push of {len} bytes does not fit the frame limit");
            return None;
        }
        let mut buf = BytesMut::with_capacity(len);
        push.encode(&mut buf);
        Some(buf.freeze())
    }
}
