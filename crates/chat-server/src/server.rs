//! A running chat server: the reactor with one chat service per listen
//! address, the shared core, and reload.

use crate::config::{Config, SlowConsumer};
use crate::core::{ChatCore, Settings};
use crate::listeners::{BoundListener, ServiceKind};
use crate::protocol::{ErrorCode, Push};
use crate::session::ChatService;
use bytes::{BufMut, Bytes, BytesMut};
use framing::FrameConfig;
use reactor::{Framed, Reactor, ReactorHandle, ServiceConfig, SlowConsumerPolicy};
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

/// The reactor limits of one chat listener, from a config.
pub fn service_config(config: &Config, name: &str) -> ServiceConfig {
    let c = &config.chat;
    let idle = Duration::from_millis(u64::from(c.idle_timeout_ms));
    ServiceConfig {
        max_connections: c.max_connections,
        // Sessions close idle clients themselves (with an error push); this
        // is a backstop should a session fail to.
        idle_timeout: Some(idle * 2),
        write_high_watermark: c.write_high_watermark,
        write_low_watermark: c.write_high_watermark / 4,
        max_write_queue: c.max_write_queue,
        slow_consumer: match c.slow_consumer {
            SlowConsumer::Pause => SlowConsumerPolicy::PauseReading,
            SlowConsumer::Disconnect => SlowConsumerPolicy::Disconnect,
        },
        // A frame in progress is bounded by max_payload; leave room for its header.
        max_read_buffer: c.max_payload as usize + 64,
        reject_with: Some(server_full_frame()),
        ..ServiceConfig::new(name)
    }
}

/// The frame format (4-byte big-endian length), with the config's maximum.
fn frame_config(config: &Config) -> FrameConfig {
    FrameConfig::default().with_max_frame_length(config.chat.max_payload as usize)
}

/// Checks that every listen address can be bound, as `nginx -t` does: an
/// address already in use (say, by the running server) is not an error.
pub fn check_bind(config: &Config) -> Result<(), String> {
    for (i, addr) in config.listen_addrs().into_iter().enumerate() {
        match TcpListener::bind(addr) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(format!("chat.listen[{i}]: cannot bind {addr}: {e}")),
        }
    }
    Ok(())
}

/// Binds the config's listen addresses.
pub fn bind(config: &Config) -> io::Result<Vec<BoundListener>> {
    config
        .listen_addrs()
        .into_iter()
        .map(|addr| {
            let listener = reactor::bind_listener(addr, LISTEN_BACKLOG)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            Ok(BoundListener { kind: ServiceKind::Chat, listener })
        })
        .collect()
}

/// A running chat server.
pub struct ChatServer {
    reactor: Reactor,
    core: Arc<ChatCore>,
    config: Config,
    /// The listening sockets, kept to hand them to a successor.
    listeners: Vec<BoundListener>,
}

impl ChatServer {
    /// Binds the config's listen addresses and starts serving.
    pub fn start(config: Config) -> io::Result<ChatServer> {
        let listeners = bind(&config)?;
        ChatServer::start_on(config, listeners)
    }

    /// Starts serving on listeners bound elsewhere: inherited from a
    /// previous process or from systemd. They replace the config's
    /// addresses.
    pub fn start_on(config: Config, listeners: Vec<BoundListener>) -> io::Result<ChatServer> {
        let core = Arc::new(ChatCore::new(settings(&config)));
        let frames = frame_config(&config);
        let mut builder = Reactor::builder();
        if config.threads > 0 {
            builder = builder.threads(config.threads);
        }
        let chat = listeners.iter().filter(|l| l.kind == ServiceKind::Chat).count();
        for (i, bound) in listeners.iter().enumerate() {
            let name = if chat == 1 { "chat".to_string() } else { format!("chat-{i}") };
            let service = service_config(&config, &name);
            let core = core.clone();
            let factory = move |_| Framed::new(frames, ChatService::new(core.clone()));
            builder = builder.service_on(service, bound.listener.try_clone()?, factory);
        }
        let reactor = builder.build()?;
        Ok(ChatServer { reactor, core, config, listeners })
    }

    /// The listening sockets (to hand to a successor).
    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    /// The addresses the chat services listen on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter(|l| l.kind == ServiceKind::Chat).filter_map(|l| l.local_addr()).collect()
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
        if new.chat.listen != self.config.chat.listen {
            ignored.push("chat.listen changes need a restart (or a binary upgrade)".to_string());
        }
        if new.threads != self.config.threads {
            ignored.push("threads changes need a restart".to_string());
        }
        let handle = self.handle();
        for i in 0..self.listeners.len() {
            let name = handle.stats(i).map(|s| s.name).unwrap_or_default();
            handle.reconfigure(i, service_config(&new, &name))?;
        }
        self.core.reload(settings(&new));
        let (listen, threads) = (self.config.chat.listen.clone(), self.config.threads);
        self.config = new;
        self.config.chat.listen = listen;
        self.config.threads = threads;
        Ok(ignored)
    }

    /// Graceful shutdown: stop accepting, send every client a going-away
    /// push, flush, close what is left after the configured grace period.
    pub fn shutdown(self) {
        let grace = self.config.shutdown_grace();
        self.reactor.shutdown(grace);
    }

    /// Hands over to a successor that is already serving the same
    /// listeners: like [`ChatServer::shutdown`], but clients are told the
    /// server is restarting and to come back shortly.
    pub fn drain_for_upgrade(self) {
        self.core.set_going_away("server restarting", RECONNECT_HINT_MS);
        self.shutdown();
    }

    /// Waits for the loops to exit (after [`ReactorHandle::shutdown`]).
    pub fn join(self) {
        self.reactor.join();
    }
}
