//! The chat state every event loop shares: users, the rooms in memory, the
//! room log, and the settings a reload swaps. Sessions (one per connection,
//! on its loop) and the HTTP door call into it; it sends through the
//! caller's reactor context. Room logic proper (order, membership, history,
//! resume) is the I/O-free `room.rs`; this file is the driver around it.

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

    /// Claims a nickname for a connection (a login without a session):
    /// refused if anyone holds it, on any door.
    pub fn login(&self, nick: &str, id: ConnId) -> Result<Arc<str>, ErrorCode> {
        lock(&self.identity).claim(nick, id).map_err(|_| ErrorCode::NicknameTaken)
    }

    /// Logs the current connection in as `nick` with the session named by
    /// `credential`; the connection that spoke for the session until now is
    /// told and closed. `BadToken` if there is no such live session for
    /// `nick`.
    pub fn login_session(
        &self,
        cx: &mut Context<'_>,
        nick: &str,
        credential: &str,
    ) -> Result<Arc<str>, ErrorCode> {
        let attached = lock(&self.identity).attach(nick, &secret_hash(credential), cx.id(), now_ms());
        let (nick, displaced) = attached.map_err(|_| ErrorCode::BadToken)?;
        if let Some(old) = displaced {
            self.kick(&mut Waker::Context(cx), old, ErrorCode::NicknameTaken);
        }
        Ok(nick)
    }

    /// Releases a nickname (only if `id` still holds it; a session stays);
    /// in a cluster, the node's claim goes once nothing here holds it.
    pub fn logout(&self, nick: &str, id: ConnId) {
        let held = {
            let mut identity = lock(&self.identity);
            identity.release(nick, id, now_ms());
            identity.holds(nick)
        };
        if let (false, Some(c)) = (held, self.cluster()) {
            c.release(nick);
        }
    }

    /// In a cluster: gives back the node's claim on `nick` once nothing on
    /// this node holds it.
    fn release_if_free(&self, nick: &str) {
        if let Some(c) = self.cluster() {
            if !lock(&self.identity).holds(nick) {
                c.release(nick);
            }
        }
    }

    /// Releases a nickname on this node only (a claim the cluster refused).
    pub(crate) fn logout_local(&self, nick: &str, id: ConnId) {
        lock(&self.identity).release(nick, id, now_ms());
    }

    /// Every nickname held on this node (connections and sessions), with
    /// the connection that speaks for it now, if any.
    pub(crate) fn local_users(&self) -> Vec<(Arc<str>, Option<ConnId>)> {
        let identity = lock(&self.identity);
        identity.nicks().map(|(n, _)| (n.clone(), identity.conn_of(n))).collect()
    }

    /// The connection a user is logged in on.
    pub fn user(&self, nick: &str) -> Option<ConnId> {
        lock(&self.identity).conn_of(nick)
    }

    /// Number of nicknames held (connections and sessions).
    pub fn user_count(&self) -> usize {
        lock(&self.identity).len()
    }

    /// Number of HTTP sessions open.
    pub fn session_count(&self) -> usize {
        lock(&self.identity).sessions()
    }

    /// Every nickname held, sorted, with whether a chat connection speaks
    /// for it now; at most `limit`, and the total.
    pub fn online(&self, limit: usize) -> (usize, Vec<(String, bool)>) {
        let id = lock(&self.identity);
        let mut all: Vec<(String, bool)> = id.nicks().map(|(n, live)| (n.to_string(), live)).collect();
        drop(id);
        all.sort();
        let total = all.len();
        all.truncate(limit);
        (total, all)
    }

    /// Whether a login attempt from `ip` may be checked now; `Err(ms)`: no,
    /// for that long. Failed attempts are counted with
    /// [`ChatCore::login_failed`].
    pub fn login_allowed(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
        lock(&self.logins).check(ip, now_ms())
    }

    /// Counts a failed login attempt (a wrong token) from `ip`.
    pub fn login_failed(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            let _ = lock(&self.logins).take(ip, now_ms());
        }
    }

    /// Opens an HTTP session for `nick` (`POST /session`): checks the rate
    /// from `ip` and the shared token, and returns the new credential.
    pub fn open_session(
        &self,
        nick: &str,
        token: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<(String, Arc<str>), SessionError> {
        if let Some(ip) = ip {
            lock(&self.logins).take(ip, now_ms()).map_err(SessionError::RateLimited)?;
        }
        if let Some(expected) = &self.settings().token {
            if token != Some(expected.as_str()) {
                return Err(SessionError::BadToken);
            }
        }
        let mut secret = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut secret) {
            log::error!("sessions: no random bytes from the system: {e}");
            return Err(SessionError::Full);
        }
        let credential: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let opened = lock(&self.identity).open_session(nick, secret_hash(&credential), now_ms());
        match opened {
            Ok(nick) => Ok((credential, nick)),
            Err(Refusal::Full) => Err(SessionError::Full),
            Err(_) => Err(SessionError::Taken),
        }
    }

    /// The nickname of the live session `credential` names, marking it used.
    pub fn authenticate(&self, credential: &str) -> Option<Arc<str>> {
        lock(&self.identity).authenticate(&secret_hash(credential), now_ms())
    }

    /// Logs a session out (its connection, if any, is told and closed).
    /// False if there was no such session.
    pub fn end_session(&self, cx: &mut Context<'_>, credential: &str) -> bool {
        let ended = lock(&self.identity).end_session(&secret_hash(credential));
        match ended {
            Some((nick, conn)) => {
                self.release_if_free(&nick);
                if let Some(conn) = conn {
                    self.kick(&mut Waker::Context(cx), conn, ErrorCode::BadToken);
                }
                true
            }
            None => false,
        }
    }

    /// Ends expired sessions (telling and closing their connections) and
    /// saves the table if it changed (from the ticker thread).
    fn sweep_sessions(&self) {
        let ended = lock(&self.identity).sweep(now_ms());
        if !ended.is_empty() {
            let handle = self.delivery.handle();
            for (nick, conn) in ended {
                log::debug!("session of {nick} expired");
                self.release_if_free(&nick);
                if let Some(conn) = conn {
                    self.kick(&mut Waker::Handle(handle), conn, ErrorCode::BadToken);
                }
            }
        }
        self.save_sessions(false);
    }

    /// Writes the session table to its file if it changed (or `always`).
    fn save_sessions(&self, always: bool) {
        let Some(path) = &self.sessions_file else { return };
        let saved = {
            let mut id = lock(&self.identity);
            if !id.take_dirty() && !always {
                return;
            }
            id.save()
        };
        if let Err(e) = crate::sessions_file::store(path, &saved) {
            log::error!("sessions: {e}");
        }
    }

    /// Tells connection `id` (on any loop) that it no longer speaks for
    /// its nickname: its session answers the notify with an error push
    /// `code` and closes (see [`KICK`]).
    pub(crate) fn kick(&self, waker: &mut Waker<'_, '_>, id: ConnId, code: ErrorCode) {
        self.delivery.notify(waker, id, KICK | u64::from(code.as_u16()));
    }

    /// A new message id and timestamp.
    fn stamp(&self) -> (u64, u64) {
        (self.next_id.fetch_add(1, Ordering::AcqRel), now_us())
    }

    /// The room called `name`, loaded from the log if it is not in memory.
    /// `may_create`: a room neither in memory nor in the log is created
    /// (else `UnknownRoom`). The second value says whether it was created.
    pub fn room_for(&self, name: &str, may_create: bool) -> Result<(RoomRef, bool), ErrorCode> {
        if let Some(room) = lock(&self.rooms).get(name) {
            return Ok((room.clone(), false));
        }
        // Read the log without holding the room map.
        let meta = self.log.room(name).map_err(|e| {
            log::error!("room log: cannot read room {name}: {e}");
            ErrorCode::StoreFailed
        })?;
        if meta.is_none() && !may_create {
            return Err(ErrorCode::UnknownRoom);
        }
        let settings = self.settings();
        let tail = match meta {
            Some(_) => self.log.read_last(name, settings.limits.history_len as usize).map_err(|e| {
                log::error!("room log: cannot read room {name}: {e}");
                ErrorCode::StoreFailed
            })?,
            None => Vec::new(),
        };
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(name) {
            return Ok((room.clone(), false));
        }
        if rooms.len() >= settings.max_rooms {
            return Err(ErrorCode::TooManyRooms);
        }
        let name: Arc<str> = Arc::from(name);
        let mut st = RoomState::new(name.clone(), meta, new_epoch(), tail, self.delivery.loops());
        st.stored = meta.is_some();
        let room = Arc::new(Room { name: name.clone(), state: Mutex::new(st) });
        rooms.insert(name, room.clone());
        Ok((room, meta.is_none()))
    }

    /// Drops a room from memory if nothing keeps it there.
    pub fn release(&self, room: &RoomRef) {
        let mut rooms = lock(&self.rooms);
        let mut st = lock(&room.state);
        if st.is_idle() && !st.evicted {
            st.evicted = true;
            rooms.remove(&room.name);
            drop(st);
            drop(rooms);
            self.cluster_evicted(room);
        }
    }

    /// Adds the current connection to a room (loaded or created), tells
    /// the other members, and returns what the joiner gets: exactly the
    /// messages after `resume` when they can be recovered, else the recent
    /// history.
    pub fn join(
        &self,
        cx: &mut Context<'_>,
        name: &str,
        nick: &Arc<str>,
        resume: Option<Position>,
        may_create: bool,
    ) -> Result<(Joined, bool), ErrorCode> {
        let settings = self.settings();
        let l = cx.loop_index();
        loop {
            let (room, created) = self.room_for(name, may_create)?;
            let mut st = lock(&room.state);
            if st.evicted {
                continue;
            }
            if st.is_member(cx.id()) {
                return Err(ErrorCode::AlreadyMember);
            }
            if st.member_count() >= settings.limits.max_members_per_room as usize {
                drop(st);
                self.release(&room);
                return Err(ErrorCode::RoomFull);
            }
            // This loop's members get what came before the joiner first.
            deliver(cx, &mut st, l);
            if st.member_count() < settings.presence_max_members {
                let push = PushRef::Presence { room: name, nick, kind: PresenceKind::Joined };
                if let Some(frame) = self.payload(push) {
                    st.push(Event { payload: frame, skip: None });
                    deliver(cx, &mut st, l);
                    self.delivery.schedule(&room, &mut st, &mut Waker::Context(cx));
                }
            } else {
                self.count_changed(&room, &mut st);
            }
            st.add_member(cx.id(), nick.clone());
            let history =
                match st.history(resume, settings.limits.history_len as usize, settings.recover_limit) {
                    HistoryPlan::Tail { entries, recovered } => Some((entries, recovered)),
                    HistoryPlan::FromLog { after, limit } => match self.log.read(name, after, limit) {
                        Ok(list) => Some((list.into_iter().map(Arc::new).collect(), true)),
                        Err(e) => {
                            log::error!("room log: cannot read room {name}: {e}");
                            None
                        }
                    },
                };
            let (history, recovered) = match history {
                Some(h) => h,
                None => match st.history(None, settings.limits.history_len as usize, 0) {
                    HistoryPlan::Tail { entries, .. } => (entries, false),
                    HistoryPlan::FromLog { .. } => (Vec::new(), false),
                },
            };
            let joined = Joined {
                members: st.member_count() as u32,
                epoch: st.epoch(),
                last_offset: st.last_offset(),
                recovered,
                history,
                room: room.clone(),
            };
            return Ok((joined, created));
        }
    }

    /// Removes the current connection from a room and tells the others.
    /// Returns the room's events the leaver has yet to get (published while
    /// it was a member): the caller sends them to it before its reply, since
    /// sends by id leave after a callback's own replies.
    pub fn leave(&self, cx: &mut Context<'_>, room: &RoomRef) -> Result<Vec<Bytes>, ErrorCode> {
        let settings = self.settings();
        let l = cx.loop_index();
        let me = cx.id();
        let mut st = lock(&room.state);
        if !st.is_member(me) {
            return Err(ErrorCode::NotMember);
        }
        let mine = deliver_all_but(cx, &mut st, l, me);
        let nick = st.remove_member(me).ok_or(ErrorCode::NotMember)?;
        if st.member_count() < settings.presence_max_members {
            let push = PushRef::Presence { room: &room.name, nick: &nick, kind: PresenceKind::Left };
            if let Some(frame) = self.payload(push) {
                st.push(Event { payload: frame, skip: None });
                deliver(cx, &mut st, l);
                self.delivery.schedule(room, &mut st, &mut Waker::Context(cx));
            }
        } else {
            self.count_changed(room, &mut st);
        }
        drop(st);
        self.release(room);
        Ok(mine)
    }

    /// Marks a room's member count for the next count push.
    pub(crate) fn count_changed(&self, room: &RoomRef, st: &mut RoomState) {
        if !st.count_dirty {
            st.count_dirty = true;
            lock(&self.counts).push(room.clone());
        }
    }

    /// Sends the member count of every room whose count changed (once a
    /// second, from the ticker thread).
    fn push_counts(&self) {
        let rooms = std::mem::take(&mut *lock(&self.counts));
        let handle = self.delivery.handle();
        for room in rooms {
            let mut st = lock(&room.state);
            if !st.count_dirty {
                continue;
            }
            st.count_dirty = false;
            let members = u32::try_from(st.total_members()).unwrap_or(u32::MAX);
            let push = PushRef::MemberCount { room: &room.name, members };
            if let Some(frame) = self.payload(push) {
                st.push(Event { payload: frame, skip: None });
                self.delivery.schedule(&room, &mut st, &mut Waker::Handle(handle));
            }
        }
    }

    /// Delivers the rooms queued for this loop (from `on_loop_notify`).
    pub fn deliver_queued(&self, cx: &mut Context<'_>) {
        self.delivery.deliver_queued(cx);
    }

    /// Posts a message to a room: stamps it, hands it to the log and, as
    /// the fsync policy says, publishes it now (delivered to this loop's
    /// members at once, the other loops told) or once it is durable (then
    /// `ack` is notified). `sender`: the member that gets no echo.
    pub fn post(
        &self,
        cx: &mut Context<'_>,
        room: &RoomRef,
        from: &Arc<str>,
        text: &str,
        sender: Option<ConnId>,
        ack: Option<AckTo>,
    ) -> Result<Posted, ErrorCode> {
        let writer = self.writer.get().ok_or(ErrorCode::StoreFailed)?;
        let settings = self.settings();
        let mut st = lock(&room.state);
        if st.evicted {
            return Err(ErrorCode::UnknownRoom);
        }
        let (id, ts_us) = self.stamp();
        let offset = st.next_offset();
        let entry = Arc::new(Entry { offset, id, ts_us, from: from.clone(), text: Arc::from(text) });
        let append = Append { room: room.name.clone(), epoch: st.epoch(), entry: entry.clone() };
        let durable_first = self.policy == FsyncPolicy::Always;
        let token = AppendToken { room: room.clone(), ack: if durable_first { ack } else { None } };
        if let Err(e) = writer.append(append, token) {
            log::warn!("room {}: message {id} refused: {e:?}", room.name);
            return Err(ErrorCode::StoreFailed);
        }
        st.wrote();
        st.stored = true;
        if durable_first {
            st.hold(entry, sender);
            return Ok(Posted { id, ts_us, offset, stored: false });
        }
        self.publish_entry(room, &mut st, entry, sender, &settings, &mut Waker::Context(cx));
        deliver(cx, &mut st, cx.loop_index());
        Ok(Posted { id, ts_us, offset, stored: true })
    }

    /// Publishes a stored message: the room's tail, stream and long polls.
    pub(crate) fn publish_entry(
        &self,
        room: &RoomRef,
        st: &mut RoomState,
        entry: Arc<Entry>,
        sender: Option<ConnId>,
        settings: &Settings,
        waker: &mut Waker<'_, '_>,
    ) {
        let push = PushRef::Message {
            room: &room.name,
            id: entry.id,
            ts_us: entry.ts_us,
            offset: entry.offset,
            from: &entry.from,
            text: &entry.text,
            history: false,
        };
        let Some(frame) = self.payload(push) else { return };
        let offset = entry.offset;
        let waiters = st.publish_message(
            entry,
            frame,
            sender,
            settings.limits.history_len as usize,
            settings.tail_bytes,
        );
        st.set_trimmed(offset.saturating_sub(settings.retain_messages));
        self.delivery.schedule(room, st, waker);
        for w in waiters {
            self.delivery.notify(waker, w, offset);
        }
    }

    /// The writer finished a batch (on its thread).
    fn committed(&self, c: Committed<AppendToken>) {
        let settings = self.settings();
        let handle = self.delivery.handle();
        let ok = c.result.is_ok();
        let mut touched: Vec<RoomRef> = Vec::new();
        for (append, token) in c.appends {
            let room = token.room;
            {
                let mut st = lock(&room.state);
                st.written();
                if self.policy == FsyncPolicy::Always {
                    if let Some((entry, sender)) = st.release(append.entry.offset) {
                        if ok {
                            let waker = &mut Waker::Handle(handle);
                            self.publish_entry(&room, &mut st, entry, sender, &settings, waker);
                        }
                    }
                }
            }
            if let Some(ack) = token.ack {
                let failed = if ok { 0 } else { ACK_FAILED };
                self.delivery.notify(&mut Waker::Handle(handle), ack.conn, ack.token | ACK | failed);
            }
            if !touched.iter().any(|r| Arc::ptr_eq(r, &room)) {
                touched.push(room);
            }
        }
        for room in touched {
            self.release(&room);
        }
    }

    /// Looks up a room for posting by name (for senders that are not
    /// members, such as HTTP clients), creating it.
    pub fn post_to(
        &self,
        cx: &mut Context<'_>,
        room: &str,
        from: &str,
        text: &str,
        ack: Option<AckTo>,
    ) -> Result<Posted, ErrorCode> {
        let from: Arc<str> = Arc::from(from);
        loop {
            let (room, _) = self.room_for(room, true)?;
            match self.post(cx, &room, &from, text, None, ack) {
                Err(ErrorCode::UnknownRoom) => continue, // it left memory meanwhile
                r => {
                    self.release(&room);
                    return r;
                }
            }
        }
    }

    /// Messages of a room after offset `after` (at most `limit`), with the
    /// room's position; `None` if there is no such room.
    pub fn messages_after(&self, room: &str, after: u64, limit: usize) -> Result<Option<Page>, ErrorCode> {
        let resident = lock(&self.rooms).get(room).cloned();
        if self.cluster().is_some() {
            // In a cluster only the tail is at hand; the log is read off
            // the loop ([`ChatCore::cluster_read`]).
            let st = resident.as_ref().map(|r| lock(&r.state));
            return match st
                .as_ref()
                .filter(|st| !st.is_loading())
                .and_then(|st| st.tail_after(after, limit).map(|m| (st.epoch(), st.last_offset(), m)))
            {
                Some((epoch, last_offset, messages)) => Ok(Some(Page { epoch, last_offset, messages })),
                None => Err(ErrorCode::StoreFailed),
            };
        }
        if let Some(r) = resident {
            let st = lock(&r.state);
            if let Some(messages) = st.tail_after(after, limit) {
                return Ok(Some(Page { epoch: st.epoch(), last_offset: st.last_offset(), messages }));
            }
            let (epoch, last_offset) = (st.epoch(), st.last_offset());
            drop(st);
            let messages = self.read_log(room, after, limit)?;
            return Ok(Some(Page { epoch, last_offset, messages }));
        }
        let Some(meta) = self.log.room(room).map_err(|_| ErrorCode::StoreFailed)? else { return Ok(None) };
        let messages = self.read_log(room, after, limit)?;
        Ok(Some(Page { epoch: meta.epoch, last_offset: meta.last_offset, messages }))
    }

    fn read_log(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Arc<Entry>>, ErrorCode> {
        match self.log.read(room, after, limit) {
            Ok(list) => Ok(list.into_iter().map(Arc::new).collect()),
            Err(e) => {
                log::error!("room log: cannot read room {room}: {e}");
                Err(ErrorCode::StoreFailed)
            }
        }
    }

    /// Registers `id` to be notified (with the offset) at the room's next
    /// message. False if there is no such room.
    pub fn wait_for_message(&self, room: &str, id: ConnId) -> Result<bool, ErrorCode> {
        if self.cluster().is_some() {
            // A room this node holds (loading one is the cluster's
            // `cluster_watch`).
            let resident = lock(&self.rooms).get(room).cloned();
            let Some(r) = resident else { return Ok(false) };
            let mut st = lock(&r.state);
            if st.evicted || st.is_loading() {
                return Ok(false);
            }
            st.wait(id);
            return Ok(true);
        }
        let (room, _) = match self.room_for(room, false) {
            Ok(r) => r,
            Err(ErrorCode::UnknownRoom) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut st = lock(&room.state);
        if st.evicted {
            drop(st);
            return self.wait_for_message(&room.name, id);
        }
        st.wait(id);
        Ok(true)
    }

    /// Cancels [`ChatCore::wait_for_message`].
    pub fn stop_waiting(&self, room: &str, id: ConnId) {
        let resident = lock(&self.rooms).get(room).cloned();
        if let Some(room) = resident {
            lock(&room.state).stop_waiting(id);
            self.release(&room);
        }
    }

    /// Sends a direct message to a user (never stored).
    pub fn direct(
        &self,
        cx: &mut Context<'_>,
        to: &str,
        from: &str,
        text: &str,
    ) -> Result<Posted, ErrorCode> {
        let target = self.user(to).ok_or(ErrorCode::UnknownUser)?;
        let (id, ts_us) = self.stamp();
        let payload =
            self.payload(PushRef::Direct { id, ts_us, from, text }).ok_or(ErrorCode::TextTooLong)?;
        cx.send_to(target, payload);
        Ok(Posted { id, ts_us, offset: 0, stored: true })
    }

    /// Rooms in memory (with their member counts) and in the log, by name.
    pub fn rooms(&self) -> (u32, Vec<RoomInfo>) {
        let resident: Vec<RoomRef> = lock(&self.rooms).values().cloned().collect();
        let mut list: Vec<RoomInfo> = resident
            .iter()
            .map(|r| RoomInfo { name: r.name.to_string(), members: lock(&r.state).member_count() as u32 })
            .collect();
        let mut total = list.len();
        match self.log.room_names(MAX_LISTED) {
            Ok((stored, names)) => {
                let read = names.len();
                let mut extra = 0;
                for name in names {
                    if !list.iter().any(|r| r.name == name) {
                        list.push(RoomInfo { name, members: 0 });
                        extra += 1;
                    }
                }
                total += extra + stored.saturating_sub(read);
            }
            Err(e) => log::error!("room log: cannot list rooms: {e}"),
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        (u32::try_from(total).unwrap_or(u32::MAX), list)
    }

    /// A room's member nicknames, sorted.
    pub fn who(&self, room: &str) -> Result<Vec<String>, ErrorCode> {
        let resident = lock(&self.rooms).get(room).cloned();
        match resident {
            Some(r) => {
                let mut nicks: Vec<String> = lock(&r.state).nicks().map(|n| n.to_string()).collect();
                nicks.sort();
                Ok(nicks)
            }
            None if self.room_exists(room) => Ok(Vec::new()),
            None => Err(ErrorCode::UnknownRoom),
        }
    }

    /// True if the room is in memory or in the log.
    pub fn room_exists(&self, room: &str) -> bool {
        lock(&self.rooms).contains_key(room) || matches!(self.log.room(room), Ok(Some(_)))
    }

    /// Number of rooms in memory.
    pub fn room_count(&self) -> usize {
        lock(&self.rooms).len()
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
