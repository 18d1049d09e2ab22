//! The server's configuration: a TOML file (or the embedded default),
//! checked as a whole before anything uses it.

use crate::protocol::ServerLimits;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The configuration `chat-server` runs with when given no file.
pub const DEFAULT_CONFIG: &str = include_str!("../chat-server.toml");

/// What to do with a client whose queued output passes the high watermark.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SlowConsumer {
    /// Stop reading its requests until it catches up.
    Pause,
    /// Close it at once.
    Disconnect,
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Event-loop threads; 0 means one per core.
    #[serde(default)]
    pub threads: usize,
    /// Grace period of a graceful shutdown, in milliseconds.
    #[serde(default = "default_grace")]
    pub shutdown_grace_ms: u64,
    /// The chat protocol service.
    #[serde(default)]
    pub chat: ChatConfig,
    /// The chat over HTTP.
    #[serde(default)]
    pub http: HttpApiConfig,
    /// The room log.
    #[serde(default)]
    pub store: StoreConfig,
    /// The certificate of the TLS listeners.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Several nodes on Redis.
    #[serde(default)]
    pub cluster: ClusterConfig,
}

/// The `[tls]` table: the certificate and key every TLS listener
/// (`chat.tls_listen`, `http.tls_listen`) presents.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the certificate chain, leaf first; "" for none.
    pub cert: String,
    /// PEM file of the private key (PKCS#8, RSA or EC); "" for none.
    pub key: String,
    /// Time a client has to finish its TLS handshake, in milliseconds.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig { cert: String::new(), key: String::new(), handshake_timeout_ms: 10_000 }
    }
}

/// The `[cluster]` table: several nodes serving the same rooms on Redis.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Redis URL (`redis://host:port[/db]`); empty: a single node.
    pub redis: String,
    /// This node's name; empty: host name and process id.
    pub node: String,
    /// Prefix of every Redis key and channel.
    pub prefix: String,
    /// Liveness refresh period, in milliseconds.
    pub heartbeat_ms: u64,
    /// A node not heard of for this long is dead, in milliseconds.
    pub node_ttl_ms: u64,
    /// Requests waiting for Redis at most.
    pub max_pending: usize,
    /// Longest Redis command, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            redis: String::new(),
            node: String::new(),
            prefix: "sb".into(),
            heartbeat_ms: 1000,
            node_ttl_ms: 5000,
            max_pending: 65_536,
            timeout_ms: 2000,
        }
    }
}

impl ClusterConfig {
    /// True if the server runs as a node of a cluster.
    pub fn enabled(&self) -> bool {
        !self.redis.is_empty()
    }

    /// The node's name: `node`, or the host name and process id.
    pub fn node_name(&self) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| {
                h.trim()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                    .take(20)
                    .collect::<String>()
            })
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into());
        format!("{host}-{}", std::process::id())
    }
}

/// When a stored message is made durable.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before it is acknowledged or delivered (one fsync per batch).
    Always,
    /// Within `fsync_interval_ms`; delivered and acknowledged at once.
    Interval,
}

/// The `[store]` table: where room logs are kept.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory of the room log; "" for the default (printed at start),
    /// "none" or ":memory:" to keep everything in memory.
    pub data_dir: String,
    /// "always" or "interval".
    pub fsync: Fsync,
    /// Longest time a message stays written but not durable, with
    /// `fsync = "interval"`, in milliseconds.
    pub fsync_interval_ms: u64,
    /// Messages kept per room in the log.
    pub retain_messages: u64,
    /// Most messages a resume replays.
    pub recover_limit: u32,
    /// Memory for the log's page cache, in bytes.
    pub cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            data_dir: String::new(),
            fsync: Fsync::Always,
            fsync_interval_ms: 200,
            retain_messages: 10_000,
            recover_limit: 1_000,
            cache_bytes: 64 << 20,
        }
    }
}

/// Where the room log lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// Nothing survives the process.
    Memory,
    /// A directory.
    Path(std::path::PathBuf),
}

impl StoreConfig {
    /// The data directory this config names: `data_dir`, or the default
    /// (`$XDG_DATA_HOME/chat-server`, `$HOME/.local/share/chat-server`, or
    /// `./chat-data` without a home).
    pub fn data_dir(&self) -> DataDir {
        match self.data_dir.as_str() {
            "none" | ":memory:" => DataDir::Memory,
            "" => {
                let base = std::env::var_os("XDG_DATA_HOME")
                    .filter(|v| !v.is_empty())
                    .map(std::path::PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME")
                            .filter(|v| !v.is_empty())
                            .map(|h| std::path::PathBuf::from(h).join(".local/share"))
                    });
                DataDir::Path(
                    base.map_or_else(|| std::path::PathBuf::from("chat-data"), |b| b.join("chat-server")),
                )
            }
            dir => DataDir::Path(std::path::PathBuf::from(dir)),
        }
    }
}

/// The `[http]` table: the chat over HTTP/1.1, on listeners of its own.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpApiConfig {
    /// Listen addresses; empty disables HTTP.
    pub listen: Vec<String>,
    /// Listen addresses of HTTPS (the same routes over TLS, ALPN
    /// `http/1.1`); they need `[tls]`.
    pub tls_listen: Vec<String>,
    /// Most HTTP connections open at once, per listener.
    pub max_connections: usize,
    /// Largest request body in bytes.
    pub max_body_size: usize,
    /// Time a client has to send a whole request head, in milliseconds.
    pub head_timeout_ms: u64,
    /// Time an idle keep-alive connection is kept, in milliseconds.
    pub keep_alive_timeout_ms: u64,
    /// Longest long poll (`wait=`), in milliseconds.
    pub max_wait_ms: u64,
    /// Most HTTP sessions (`POST /session`) open at once.
    pub max_sessions: usize,
    /// A session unused this long ends (a chat connection using it counts
    /// as use), in milliseconds.
    pub session_idle_ms: u64,
    /// A session ends this long after it was opened, in milliseconds.
    pub session_max_age_ms: u64,
    /// Login attempts per client address per minute, on every door
    /// (`POST /session`, and chat logins with a wrong token); 0: no limit.
    pub logins_per_minute: u32,
}

impl Default for HttpApiConfig {
    fn default() -> HttpApiConfig {
        HttpApiConfig {
            listen: vec!["127.0.0.1:8080".into()],
            tls_listen: Vec::new(),
            max_connections: 5_000,
            max_body_size: 64 << 10,
            head_timeout_ms: 10_000,
            keep_alive_timeout_ms: 60_000,
            max_wait_ms: 60_000,
            max_sessions: 10_000,
            session_idle_ms: 30 * 60_000,
            session_max_age_ms: 7 * 24 * 3_600_000,
            logins_per_minute: 30,
        }
    }
}

fn default_grace() -> u64 {
    5000
}

/// The `[chat]` table. A key left out takes its default (the values of the
/// embedded `chat-server.toml`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Listen addresses, one service each.
    pub listen: Vec<String>,
    /// Listen addresses of the chat protocol over TLS; they need `[tls]`.
    pub tls_listen: Vec<String>,
    /// Most connections open at once, per listener.
    pub max_connections: usize,
    /// Largest frame payload in bytes.
    pub max_payload: u32,
    /// Say + Direct messages per second per connection (0: unlimited).
    pub rate_per_sec: u32,
    /// Rooms one user may be in.
    pub max_rooms_per_user: u32,
    /// Members one room may have.
    pub max_members_per_room: u32,
    /// Rooms held in memory at most (rooms without members leave memory;
    /// their log stays).
    pub max_rooms: usize,
    /// New rooms one connection may create per minute.
    pub room_creations_per_minute: u32,
    /// Rooms with more members get a member count (at most once a second)
    /// instead of a presence event per join and leave.
    pub presence_max_members: usize,
    /// Bytes of recent messages kept in memory per room.
    pub room_tail_bytes: usize,
    /// Messages kept per room and replayed on join.
    pub history_len: u32,
    /// Silence after which a connection is closed, in milliseconds.
    pub idle_timeout_ms: u32,
    /// Silence after which the server pings, in milliseconds.
    pub ping_interval_ms: u32,
    /// Shared secret required at login; empty for none.
    #[serde(default)]
    pub token: String,
    /// Policy past the high watermark.
    pub slow_consumer: SlowConsumer,
    /// Queued output at which the slow-consumer policy applies.
    pub write_high_watermark: usize,
    /// Queued output at which a client is disconnected.
    pub max_write_queue: usize,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        let limits = ServerLimits::default();
        ChatConfig {
            listen: vec!["127.0.0.1:7000".into()],
            tls_listen: Vec::new(),
            max_connections: 10_000,
            max_payload: limits.max_payload,
            rate_per_sec: limits.rate_per_sec,
            max_rooms_per_user: limits.max_rooms_per_user,
            max_members_per_room: limits.max_members_per_room,
            max_rooms: 10_000,
            room_creations_per_minute: 20,
            presence_max_members: 200,
            room_tail_bytes: 1 << 20,
            history_len: limits.history_len,
            idle_timeout_ms: limits.idle_timeout_ms,
            ping_interval_ms: crate::protocol::DEFAULT_PING_INTERVAL_MS,
            token: String::new(),
            slow_consumer: SlowConsumer::Pause,
            write_high_watermark: 1 << 20,
            max_write_queue: 8 << 20,
        }
    }
}

/// A configuration that cannot be used: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the configuration came from (a path, or "built-in default").
    pub source: String,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Upper bounds that keep a typo (an extra zero or three) from taking the
/// machine down; they are far above any sane setting.
const MAX_PAYLOAD: u32 = 16 << 20;
const MAX_HISTORY: u32 = 100_000;

/// One line for the log: where the error is, the offending line (which
/// names the key), and what is wrong.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    let Some(span) = e.span() else { return message };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    format!("line {line_no}: `{line}`: {message}")
}

impl Config {
    /// The embedded default configuration.
    pub fn builtin() -> Config {
        // The embedded file is checked by a unit test, so this cannot fail
        // in a released binary; fall back to parsing errors loudly anyway.
        match Config::parse(DEFAULT_CONFIG, "built-in default") {
            Ok(c) => c,
            Err(e) => panic!("the embedded default configuration is invalid: {e}"),
        }
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { source: source.clone(), message: format!("cannot read: {e}") })?;
        Config::parse(&text, &source)
    }

    /// Parses and checks configuration text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError { source: source.to_string(), message };
        let config: Config = toml::from_str(text).map_err(|e| err(describe_toml_error(text, &e)))?;
        config.validate().map_err(err)?;
        Ok(config)
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.chat;
        if c.listen.is_empty() && c.tls_listen.is_empty() {
            return Err("chat.listen: at least one address is needed (or one in chat.tls_listen)".into());
        }
        for (key, list) in [
            ("chat.listen", &c.listen),
            ("chat.tls_listen", &c.tls_listen),
            ("http.listen", &self.http.listen),
            ("http.tls_listen", &self.http.tls_listen),
        ] {
            for (i, a) in list.iter().enumerate() {
                a.parse::<SocketAddr>()
                    .map_err(|e| format!("{key}[{i}]: {a:?} is not a socket address (ip:port): {e}"))?;
            }
        }
        let t = &self.tls;
        if !c.tls_listen.is_empty() || !self.http.tls_listen.is_empty() {
            if t.cert.is_empty() {
                return Err("tls.cert: TLS listeners need a certificate file (PEM)".into());
            }
            if t.key.is_empty() {
                return Err("tls.key: TLS listeners need a private key file (PEM)".into());
            }
        }
        if t.handshake_timeout_ms == 0 || t.handshake_timeout_ms > 600_000 {
            return Err(format!(
                "tls.handshake_timeout_ms: {} is outside 1..=600000",
                t.handshake_timeout_ms
            ));
        }
        let positive = [
            ("chat.max_connections", c.max_connections as u64),
            ("chat.max_payload", u64::from(c.max_payload)),
            ("chat.max_rooms_per_user", u64::from(c.max_rooms_per_user)),
            ("chat.max_members_per_room", u64::from(c.max_members_per_room)),
            ("chat.max_rooms", c.max_rooms as u64),
            ("chat.idle_timeout_ms", u64::from(c.idle_timeout_ms)),
            ("chat.ping_interval_ms", u64::from(c.ping_interval_ms)),
            ("chat.write_high_watermark", c.write_high_watermark as u64),
            ("chat.max_write_queue", c.max_write_queue as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key}: must be greater than 0"));
            }
        }
        if c.max_payload < 1024 || c.max_payload > MAX_PAYLOAD {
            return Err(format!("chat.max_payload: {} is outside 1024..={MAX_PAYLOAD}", c.max_payload));
        }
        if c.history_len > MAX_HISTORY {
            return Err(format!("chat.history_len: {} is over the limit of {MAX_HISTORY}", c.history_len));
        }
        if c.ping_interval_ms >= c.idle_timeout_ms {
            return Err(format!(
                "chat.ping_interval_ms: {} must be shorter than chat.idle_timeout_ms ({}), or idle clients \
                 are closed before they are pinged",
                c.ping_interval_ms, c.idle_timeout_ms
            ));
        }
        if c.write_high_watermark > c.max_write_queue {
            return Err(format!(
                "chat.write_high_watermark: {} is above chat.max_write_queue ({})",
                c.write_high_watermark, c.max_write_queue
            ));
        }
        if (c.max_write_queue as u64) < u64::from(c.max_payload) * 2 {
            return Err(format!(
                "chat.max_write_queue: {} must hold at least two maximal frames (2 × chat.max_payload = {})",
                c.max_write_queue,
                u64::from(c.max_payload) * 2
            ));
        }
        let st = &self.store;
        if st.fsync_interval_ms == 0 || st.fsync_interval_ms > 60_000 {
            return Err(format!("store.fsync_interval_ms: {} is outside 1..=60000", st.fsync_interval_ms));
        }
        if st.retain_messages == 0 {
            return Err("store.retain_messages: must be greater than 0".into());
        }
        if st.cache_bytes < 1 << 20 {
            return Err(format!("store.cache_bytes: {} is below 1 MiB", st.cache_bytes));
        }
        if c.room_tail_bytes < c.max_payload as usize {
            return Err(format!(
                "chat.room_tail_bytes: {} must hold at least one maximal message (chat.max_payload = {})",
                c.room_tail_bytes, c.max_payload
            ));
        }
        let h = &self.http;
        for (key, value) in [
            ("http.max_connections", h.max_connections as u64),
            ("http.max_body_size", h.max_body_size as u64),
            ("http.head_timeout_ms", h.head_timeout_ms),
            ("http.keep_alive_timeout_ms", h.keep_alive_timeout_ms),
            ("http.max_wait_ms", h.max_wait_ms),
            ("http.max_sessions", h.max_sessions as u64),
            ("http.session_idle_ms", h.session_idle_ms),
            ("http.session_max_age_ms", h.session_max_age_ms),
        ] {
            if value == 0 {
                return Err(format!("{key}: must be greater than 0"));
            }
        }
        let k = &self.cluster;
        if k.enabled() {
            if !(k.redis.starts_with("redis://") || k.redis.starts_with("unix://")) {
                return Err(format!("cluster.redis: {:?} is not a redis:// or unix:// URL", k.redis));
            }
            crate::protocol::validate_name(&k.prefix).map_err(|e| format!("cluster.prefix: {e}"))?;
            if !k.node.is_empty() {
                crate::protocol::validate_name(&k.node).map_err(|e| format!("cluster.node: {e}"))?;
            }
            if k.heartbeat_ms == 0 || k.heartbeat_ms > 60_000 {
                return Err(format!("cluster.heartbeat_ms: {} is outside 1..=60000", k.heartbeat_ms));
            }
            if k.node_ttl_ms < 2 * k.heartbeat_ms {
                return Err(format!(
                    "cluster.node_ttl_ms: {} must be at least twice cluster.heartbeat_ms ({}), or a live node \
                     is taken for dead between two heartbeats",
                    k.node_ttl_ms, k.heartbeat_ms
                ));
            }
            if k.max_pending == 0 {
                return Err("cluster.max_pending: must be greater than 0".into());
            }
            if k.timeout_ms == 0 {
                return Err("cluster.timeout_ms: must be greater than 0".into());
            }
        }
        if c.token.len() > crate::protocol::MAX_STR8_LEN {
            return Err(format!("chat.token: longer than {} bytes", crate::protocol::MAX_STR8_LEN));
        }
        Ok(())
    }

    /// The chat listen addresses (validated).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.chat.listen.iter().filter_map(|a| a.parse().ok()).collect()
    }

    /// The HTTP listen addresses (validated).
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.http.listen.iter().filter_map(|a| a.parse().ok()).collect()
    }

    /// The chat-over-TLS listen addresses (validated).
    pub fn chat_tls_addrs(&self) -> Vec<SocketAddr> {
        self.chat.tls_listen.iter().filter_map(|a| a.parse().ok()).collect()
    }

    /// The HTTPS listen addresses (validated).
    pub fn http_tls_addrs(&self) -> Vec<SocketAddr> {
        self.http.tls_listen.iter().filter_map(|a| a.parse().ok()).collect()
    }

    /// True if any listener speaks TLS.
    pub fn uses_tls(&self) -> bool {
        !self.chat.tls_listen.is_empty() || !self.http.tls_listen.is_empty()
    }

    /// The limits announced to clients at login.
    pub fn limits(&self) -> ServerLimits {
        let c = &self.chat;
        ServerLimits {
            max_payload: c.max_payload,
            rate_per_sec: c.rate_per_sec,
            max_rooms_per_user: c.max_rooms_per_user,
            max_members_per_room: c.max_members_per_room,
            history_len: c.history_len,
            idle_timeout_ms: c.idle_timeout_ms,
        }
    }

    /// The graceful-shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_default_is_valid() {
        let c = Config::builtin();
        assert_eq!(c.listen_addrs(), vec!["127.0.0.1:7000".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.limits(), ServerLimits::default());
    }

    fn with(change: &str, value: &str) -> Result<Config, ConfigError> {
        let text =
            DEFAULT_CONFIG
                .lines()
                .map(|l| {
                    if l.starts_with(&format!("{change} =")) {
                        format!("{change} = {value}")
                    } else {
                        l.into()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
        Config::parse(&text, "test.toml")
    }

    #[test]
    fn omitted_keys_take_the_documented_defaults() {
        let c = Config::parse("[chat]\nhistory_len = 7\n", "x").unwrap();
        assert_eq!(c.chat.history_len, 7);
        assert_eq!(c.chat.rate_per_sec, 50);
        assert_eq!(Config::parse("", "x").unwrap(), Config::builtin());
        assert_eq!(Config::builtin().chat, ChatConfig::default(), "chat-server.toml and the defaults agree");
    }

    #[test]
    fn errors_name_the_key() {
        let e = with("history_len", "1000000").unwrap_err();
        assert!(e.message.starts_with("chat.history_len:"), "{e}");
        let e = with("listen", "[\"nonsense\"]").unwrap_err();
        assert!(e.message.starts_with("chat.listen[0]:"), "{e}");
        let e = with("ping_interval_ms", "90000").unwrap_err();
        assert!(e.message.starts_with("chat.ping_interval_ms:"), "{e}");
        let e = with("max_payload", "0").unwrap_err();
        assert!(e.message.contains("chat.max_payload"), "{e}");
        assert_eq!(e.source, "test.toml");
    }

    #[test]
    fn tls_listeners_need_a_certificate_and_a_key() {
        let e = Config::parse("[chat]\ntls_listen = [\"127.0.0.1:7443\"]\n", "x").unwrap_err();
        assert!(e.message.starts_with("tls.cert:"), "{e}");
        let e = Config::parse("[http]\ntls_listen = [\"127.0.0.1:8443\"]\n[tls]\ncert = \"c.pem\"\n", "x")
            .unwrap_err();
        assert!(e.message.starts_with("tls.key:"), "{e}");
        let e = Config::parse("[chat]\ntls_listen = [\"nowhere\"]\n", "x").unwrap_err();
        assert!(e.message.starts_with("chat.tls_listen[0]:"), "{e}");
        let c = Config::parse(
            "[chat]\nlisten = []\ntls_listen = [\"127.0.0.1:7443\"]\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
            "x",
        )
        .unwrap();
        assert!(c.uses_tls());
        assert_eq!(c.chat_tls_addrs(), vec!["127.0.0.1:7443".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.tls.handshake_timeout_ms, 10_000);
        let e = Config::parse("[tls]\nhandshake_timeout_ms = 0\n", "x").unwrap_err();
        assert!(e.message.starts_with("tls.handshake_timeout_ms:"), "{e}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_rejected() {
        let e = Config::parse(&format!("{DEFAULT_CONFIG}\nbogus = 1\n"), "x").unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        let e = with("rate_per_sec", "\"fast\"").unwrap_err();
        assert!(e.message.contains("rate_per_sec"), "{e}");
        let e = with("slow_consumer", "\"explode\"").unwrap_err();
        assert!(e.message.contains("slow_consumer"), "{e}");
        let e = Config::parse("[chat]\nmax_payload = -1\n", "x").unwrap_err();
        assert!(e.message.contains("max_payload"), "{e}");
    }
}
