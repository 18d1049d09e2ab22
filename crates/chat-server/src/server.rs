//! A running chat server: the reactor with one chat service per listen
//! address, the shared core, and reload.

use crate::config::{Config, DataDir, Fsync, HttpApiConfig, SlowConsumer};
use crate::core::{ChatCore, Settings, Wiring};
use crate::http_api::ChatHttp;
use crate::identity::SessionLimits;
use crate::listeners::{BoundListener, ServiceKind};
use crate::protocol::{ErrorCode, Push};
use crate::server_tls::ServerTls;
use crate::session::ChatService;
use crate::store::{FsyncPolicy, MemoryLog, OpenError, RedbLog, RoomLog};
use bytes::{BufMut, Bytes, BytesMut};
use framing::FrameConfig;
use http1::{HttpConfig, HttpService};
use reactor::{
    FrameCodec, IntoService, Reactor, ReactorHandle, Service, ServiceConfig, ServiceId, SlowConsumerPolicy,
};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// Listen backlog of the chat listeners.
const LISTEN_BACKLOG: i32 = 1024;
/// Reconnect hint sent with the going-away push of an upgrade.
const RECONNECT_HINT_MS: u32 = 100;

/// The settings sessions use, from a config.
pub fn settings(config: &Config) -> Settings {
    Settings {
        limits: config.limits(),
        token: Some(config.chat.token.clone()).filter(|t| !t.is_empty()),
        max_rooms: config.chat.max_rooms,
        ping_interval: Duration::from_millis(u64::from(config.chat.ping_interval_ms)),
        presence_max_members: config.chat.presence_max_members,
        room_creations_per_minute: config.chat.room_creations_per_minute,
        recover_limit: config.store.recover_limit as usize,
        tail_bytes: config.chat.room_tail_bytes,
        retain_messages: config.store.retain_messages,
        sessions: SessionLimits {
            max_sessions: config.http.max_sessions,
            idle_ms: config.http.session_idle_ms,
            max_age_ms: config.http.session_max_age_ms,
        },
        logins_per_minute: config.http.logins_per_minute,
    }
}

/// The fsync policy a config asks for (an in-memory log has no disk to
/// wait for: messages are published at once).
pub fn fsync_policy(config: &Config) -> FsyncPolicy {
    match (config.store.data_dir(), config.store.fsync) {
        (DataDir::Path(_), Fsync::Always) => FsyncPolicy::Always,
        _ => FsyncPolicy::Interval(Duration::from_millis(config.store.fsync_interval_ms)),
    }
}

/// Opens the room log a config names. `Locked`: another process holds it
/// (during an upgrade, the predecessor until it hands over).
pub fn open_log(config: &Config) -> Result<Arc<dyn RoomLog>, OpenError> {
    let st = &config.store;
    if config.cluster.enabled() {
        // Redis keeps the room logs; nothing is stored here.
        return Ok(Arc::new(MemoryLog::with_max_rooms(1, 1)));
    }
    match st.data_dir() {
        DataDir::Memory => Ok(Arc::new(MemoryLog::with_max_rooms(st.retain_messages as usize, 1_000_000))),
        DataDir::Path(dir) => {
            let interval = st.fsync == Fsync::Interval;
            let log = RedbLog::open(&dir, st.retain_messages, st.cache_bytes, interval)?;
            if log.recovered_from_crash() {
                log::warn!(
                    "room log: the last run crashed while writing without fsync; every room has a new epoch"
                );
            }
            Ok(Arc::new(log))
        }
    }
}

/// Checks the room log a config names, as `-t` does, without changing it:
/// the directory can be created or written, an existing log file opens and
/// reads (one in use by a running server is fine). Returns a note.
pub fn check_log(config: &Config) -> Result<String, String> {
    let k = &config.cluster;
    if k.enabled() {
        let version = crate::cluster::check(&k.redis, Duration::from_millis(k.timeout_ms))?;
        return Ok(format!("in Redis {version} at {} (cluster node {})", k.redis, k.node_name()));
    }
    match config.store.data_dir() {
        DataDir::Memory => Ok("room log in memory".into()),
        DataDir::Path(dir) => RedbLog::check(&dir).map_err(|e| format!("store.data_dir: {e}")),
    }
}

/// The number of event loops a config runs.
fn loop_count(config: &Config) -> usize {
    match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The frame sent to a connection refused because the server is full.
fn server_full_frame() -> Bytes {
    let mut payload = BytesMut::new();
    Push::Error { code: ErrorCode::ServerFull, message: "server full, try again later".into() }
        .encode(&mut payload);
    let mut frame = BytesMut::with_capacity(4 + payload.len());
    frame.put_u32(payload.len() as u32);
    frame.extend_from_slice(&payload);
    frame.freeze()
}

/// The reactor limits of a listener of `kind`, from a config: those of its
/// door, and for TLS the handshake timeout (and no raw "server full" frame,
/// which a TLS client could not read).
pub fn kind_service_config(config: &Config, kind: ServiceKind, name: &str) -> ServiceConfig {
    let plain = match kind {
        ServiceKind::Chat | ServiceKind::ChatTls => service_config(config, name),
        ServiceKind::Http | ServiceKind::HttpTls => http_service_config(config, name),
    };
    if !kind.is_tls() {
        return plain;
    }
    ServiceConfig {
        handshake_timeout: Some(Duration::from_millis(config.tls.handshake_timeout_ms)),
        reject_with: None,
        ..plain
    }
}

/// The reactor limits of one chat listener, from a config.
pub fn service_config(config: &Config, name: &str) -> ServiceConfig {
    let c = &config.chat;
    let idle = Duration::from_millis(u64::from(c.idle_timeout_ms));
    ServiceConfig {
        max_connections: c.max_connections,
        // Sessions close idle clients themselves (with an error push); this
        // is a backstop should a session fail to.
        idle_timeout: Some(idle * 2),
        // A frame in progress is bounded by max_payload; leave room for its header.
        max_read_buffer: c.max_payload as usize + 64,
        reject_with: Some(server_full_frame()),
        ..chat_write_bounds(config, name)
    }
}

/// A service named `name` with the chat's write queue bounds and
/// slow-consumer policy: those of every connection that carries chat
/// traffic, whatever its door.
fn chat_write_bounds(config: &Config, name: &str) -> ServiceConfig {
    let c = &config.chat;
    ServiceConfig {
        write_high_watermark: c.write_high_watermark,
        write_low_watermark: c.write_high_watermark / 4,
        max_write_queue: c.max_write_queue,
        slow_consumer: match c.slow_consumer {
            SlowConsumer::Pause => SlowConsumerPolicy::PauseReading,
            SlowConsumer::Disconnect => SlowConsumerPolicy::Disconnect,
        },
        ..ServiceConfig::new(name)
    }
}

/// The frame format (4-byte big-endian length), with the config's maximum.
fn frame_config(config: &Config) -> FrameConfig {
    FrameConfig::default().with_max_frame_length(config.chat.max_payload as usize)
}

/// A service's name: its kind, numbered when there are several of it.
fn service_name(listeners: &[BoundListener], i: usize) -> String {
    let kind = listeners[i].kind;
    let same: Vec<usize> = (0..listeners.len()).filter(|&j| listeners[j].kind == kind).collect();
    match same.iter().position(|&j| j == i) {
        Some(n) if same.len() > 1 => format!("{kind}-{n}"),
        _ => kind.to_string(),
    }
}

/// Checks that every listen address can be bound, as `nginx -t` does: an
/// address already in use (say, by the running server) is not an error.
pub fn check_bind(config: &Config) -> Result<(), String> {
    let keyed = |key: &'static str, addrs: Vec<SocketAddr>| {
        addrs.into_iter().enumerate().map(move |(i, a)| (format!("{key}[{i}]"), a))
    };
    let all = keyed("chat.listen", config.listen_addrs())
        .chain(keyed("chat.tls_listen", config.chat_tls_addrs()))
        .chain(keyed("http.listen", config.http_addrs()))
        .chain(keyed("http.tls_listen", config.http_tls_addrs()));
    for (key, addr) in all {
        match TcpListener::bind(addr) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(format!("{key}: cannot bind {addr}: {e}")),
        }
    }
    Ok(())
}

/// Binds the config's listen addresses: chat, chat over TLS, HTTP, HTTPS.
pub fn bind(config: &Config) -> io::Result<Vec<BoundListener>> {
    let chat = config.listen_addrs().into_iter().map(|a| (ServiceKind::Chat, a));
    let chat_tls = config.chat_tls_addrs().into_iter().map(|a| (ServiceKind::ChatTls, a));
    let http = config.http_addrs().into_iter().map(|a| (ServiceKind::Http, a));
    let http_tls = config.http_tls_addrs().into_iter().map(|a| (ServiceKind::HttpTls, a));
    chat.chain(chat_tls)
        .chain(http)
        .chain(http_tls)
        .map(|(kind, addr)| {
            let listener = reactor::bind_listener(addr, LISTEN_BACKLOG)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            Ok(BoundListener { kind, listener })
        })
        .collect()
}

/// The reactor limits of one HTTP listener, from a config. Its
/// connections may turn into chat connections over WebSocket: they get the
/// chat's write queue bounds and slow-consumer policy.
pub fn http_service_config(config: &Config, name: &str) -> ServiceConfig {
    ServiceConfig { max_connections: config.http.max_connections, ..chat_write_bounds(config, name) }
}

fn http_config(config: &Config) -> HttpConfig {
    let h = &config.http;
    HttpConfig {
        max_body_size: h.max_body_size,
        head_timeout: Duration::from_millis(h.head_timeout_ms),
        keep_alive_timeout: Duration::from_millis(h.keep_alive_timeout_ms),
        // A chat payload per WebSocket message; the chat session closes an
        // idle client first (with an error push), this is the backstop.
        ws_max_message: config.chat.max_payload as usize,
        ws_idle_timeout: Duration::from_millis(u64::from(config.chat.idle_timeout_ms) * 2),
        ..HttpConfig::default()
    }
}

/// A running chat server.
pub struct ChatServer {
    reactor: Reactor,
    core: Arc<ChatCore>,
    config: Config,
    /// The listening sockets, kept to hand them to a successor.
    listeners: Vec<BoundListener>,
    /// The certificate and rustls setup, if a listener speaks TLS.
    tls: Option<Arc<ServerTls>>,
}

impl ChatServer {
    /// Binds the config's listen addresses and starts serving.
    pub fn start(config: Config) -> io::Result<ChatServer> {
        let listeners = bind(&config)?;
        ChatServer::start_on(config, listeners)
    }

    /// Starts serving on `listeners` with the room log the config names.
    pub fn start_on(config: Config, listeners: Vec<BoundListener>) -> io::Result<ChatServer> {
        let log = open_log(&config).map_err(|e| io::Error::other(e.to_string()))?;
        ChatServer::start_with_log(config, listeners, log)
    }

    /// Starts serving on listeners bound elsewhere (inherited from a
    /// previous process or from systemd; they replace the config's
    /// addresses), on a room log opened already.
    pub fn start_with_log(
        config: Config,
        listeners: Vec<BoundListener>,
        log: Arc<dyn RoomLog>,
    ) -> io::Result<ChatServer> {
        let frames = frame_config(&config);
        let loops = loop_count(&config);
        // Service 0 (the first listener) delivers room streams; every
        // connection's codec frames what it is sent (a length prefix on the
        // TCP door, a WebSocket message on an upgraded HTTP connection).
        let wiring = Wiring {
            loops,
            service: ServiceId::from_index(0),
            sessions_file: match config.store.data_dir() {
                DataDir::Memory => None,
                DataDir::Path(dir) => Some(dir.join(crate::sessions_file::FILE_NAME)),
            },
        };
        let core = ChatCore::new(settings(&config), log, fsync_policy(&config), wiring);
        let mut builder = Reactor::builder().threads(loops);
        let http = http_config(&config);
        http.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("http: {e}")))?;
        let max_wait = Duration::from_millis(config.http.max_wait_ms);
        let tls = match listeners.iter().any(|l| l.kind.is_tls()) {
            true => Some(Arc::new(ServerTls::load(&config).map_err(io::Error::other)?)),
            false => None,
        };
        for (i, bound) in listeners.iter().enumerate() {
            let name = service_name(&listeners, i);
            let listener = bound.listener.try_clone()?;
            let (core, http, kind) = (core.clone(), http.clone(), bound.kind);
            let service = kind_service_config(&config, kind, &name);
            builder = match (kind, tls.clone()) {
                (ServiceKind::Chat, _) => builder.service_on(service, listener, move |_| {
                    Service::new(FrameCodec::new(frames), ChatService::new(core.clone()))
                }),
                (ServiceKind::Http, _) => builder.service_on(service, listener, move |_| {
                    HttpService::new(http.clone(), ChatHttp::new(core.clone(), max_wait))
                }),
                (ServiceKind::ChatTls, Some(tls)) => builder.service_on(service, listener, move |_| {
                    Service::new(FrameCodec::new(frames), ChatService::new(core.clone()))
                        .with_transport(tls.transport(kind))
                }),
                (ServiceKind::HttpTls, Some(tls)) => builder.service_on(service, listener, move |_| {
                    HttpService::new(http.clone(), ChatHttp::new(core.clone(), max_wait).over_tls())
                        .into_service()
                        .with_transport(tls.transport(kind))
                }),
                (ServiceKind::ChatTls | ServiceKind::HttpTls, None) => {
                    return Err(io::Error::other("a TLS listener without a TLS setup"))
                }
            };
        }
        if config.cluster.enabled() {
            core.join_cluster(&config.cluster).map_err(io::Error::other)?;
        }
        let reactor = builder.build()?;
        core.attach(reactor.handle())?;
        Ok(ChatServer { reactor, core, config, listeners, tls })
    }

    /// The listening sockets (to hand to a successor).
    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    /// The addresses the chat services listen on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs_of(ServiceKind::Chat)
    }

    /// The addresses the HTTP services listen on.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.addrs_of(ServiceKind::Http)
    }

    /// The addresses the chat-over-TLS services listen on.
    pub fn chat_tls_addrs(&self) -> Vec<SocketAddr> {
        self.addrs_of(ServiceKind::ChatTls)
    }

    /// The addresses the HTTPS services listen on.
    pub fn https_addrs(&self) -> Vec<SocketAddr> {
        self.addrs_of(ServiceKind::HttpTls)
    }

    /// The TLS setup, if a listener speaks TLS (its counters, say).
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_deref()
    }

    fn addrs_of(&self, kind: ServiceKind) -> Vec<SocketAddr> {
        self.listeners.iter().filter(|l| l.kind == kind).filter_map(|l| l.local_addr()).collect()
    }

    /// A handle to the reactor (counters, shutdown).
    pub fn handle(&self) -> ReactorHandle {
        self.reactor.handle()
    }

    /// The shared chat state.
    pub fn core(&self) -> &Arc<ChatCore> {
        &self.core
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Applies a new config without dropping any connection: limits,
    /// history size, token, heartbeat. Listen addresses and thread count
    /// need a restart; a change to them is reported and ignored.
    pub fn reload(&mut self, new: Config) -> Result<Vec<String>, String> {
        new.validate()?;
        let mut ignored = Vec::new();
        // The certificate first: if it does not load, nothing changes.
        if let Some(tls) = &self.tls {
            let note = tls.reload(&new)?;
            log::info!("tls: reloaded, {note}");
        }
        if new.chat.listen != self.config.chat.listen
            || new.http.listen != self.config.http.listen
            || new.chat.tls_listen != self.config.chat.tls_listen
            || new.http.tls_listen != self.config.http.tls_listen
        {
            ignored.push("listen address changes need a restart (or a binary upgrade)".to_string());
        }
        // What a reload applies of [http]: max_connections and the session
        // and login limits; the rest is the listeners' and needs a restart.
        let fixed = |h: &HttpApiConfig| HttpApiConfig {
            max_connections: 0,
            max_sessions: 0,
            session_idle_ms: 0,
            session_max_age_ms: 0,
            logins_per_minute: 0,
            ..h.clone()
        };
        if fixed(&new.http) != fixed(&self.config.http) && new.http.listen == self.config.http.listen {
            ignored.push(
                "http limits other than max_connections and the session limits need a restart (or a binary upgrade)"
                    .to_string(),
            );
        }
        if new.cluster != self.config.cluster {
            ignored.push("[cluster] changes need a restart".to_string());
        }
        if new.threads != self.config.threads {
            ignored.push("threads changes need a restart".to_string());
        }
        let handle = self.handle();
        for (i, bound) in self.listeners.iter().enumerate() {
            let name = service_name(&self.listeners, i);
            let service = kind_service_config(&new, bound.kind, &name);
            handle.reconfigure(ServiceId::from_index(i), service).map_err(|e| e.to_string())?;
        }
        self.core.reload(settings(&new));
        let (listen, tls_listen, http, threads) = (
            self.config.chat.listen.clone(),
            self.config.chat.tls_listen.clone(),
            self.config.http.clone(),
            self.config.threads,
        );
        let applied = HttpApiConfig {
            max_connections: new.http.max_connections,
            max_sessions: new.http.max_sessions,
            session_idle_ms: new.http.session_idle_ms,
            session_max_age_ms: new.http.session_max_age_ms,
            logins_per_minute: new.http.logins_per_minute,
            ..http
        };
        self.config = new;
        self.config.chat.listen = listen;
        self.config.chat.tls_listen = tls_listen;
        self.config.http = applied;
        self.config.threads = threads;
        Ok(ignored)
    }

    /// Graceful shutdown: stop accepting, send every client a going-away
    /// push, flush, close what is left after the configured grace period.
    pub fn shutdown(self) {
        let grace = self.config.shutdown_grace();
        self.reactor.shutdown(grace);
        // After the loops: every member has left, every nickname is
        // released; the node's records go at once.
        self.core.leave_cluster();
        // After the loops: every message they accepted is in the log.
        if let Err(e) = self.core.close_log() {
            log::error!("room log: close failed: {e}");
        }
    }

    /// Hands over to a successor that is already serving the same
    /// listeners: like [`ChatServer::shutdown`], but clients are told the
    /// server is restarting and to come back shortly.
    pub fn drain_for_upgrade(self) {
        self.core.set_going_away("server restarting", RECONNECT_HINT_MS);
        // The successor waits for the log: stop accepting, write what is
        // queued and hand the file over first, then say goodbye. Messages
        // posted meanwhile get StoreFailed (never an acknowledgement).
        self.reactor.handle().stop_accepting();
        // In a cluster: the successor is a new node; its users' nicknames
        // must be free there when they come back.
        self.core.release_cluster_holdings();
        if let Err(e) = self.core.close_log() {
            log::error!("room log: close for the successor failed: {e}");
        }
        self.shutdown();
    }

    /// Waits for the loops to exit (after [`ReactorHandle::shutdown`]).
    pub fn join(self) {
        self.reactor.join();
    }
}
