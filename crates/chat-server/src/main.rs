//! `chat-server`: the chat protocol server.
//!
//! Signals: SIGHUP reloads the config file; SIGTERM, SIGINT and SIGQUIT shut
//! down gracefully (going-away push, flush, close within the grace period);
//! SIGUSR2 upgrades the binary on the fly (see `chat_server::upgrade`).

use chat_server::config::{Config, ConfigError};
use chat_server::listeners;
use chat_server::sd_notify::notify;
use chat_server::server::{self, check_bind, check_log, ChatServer};
use chat_server::server_tls;
use chat_server::store::{OpenError, RoomLog};
use chat_server::upgrade::{self, Invocation, PidFile};
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

/// How long a successor may take to start serving before the upgrade is
/// abandoned.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a successor waits for its predecessor to hand over the room log.
const LOG_HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// Chat server speaking the binary protocol of docs/PROTOCOL.md.
///
/// Without -c it runs on the built-in default configuration (127.0.0.1:7000;
/// the same as crates/chat-server/chat-server.toml).
///
/// Signals: HUP reloads the config file and the TLS certificate without
/// dropping connections (an invalid file or certificate is logged and
/// ignored; new TLS handshakes get the new certificate). TERM, INT or QUIT shut down
/// gracefully: stop accepting, send clients a going-away push, flush, exit
/// within shutdown_grace_ms. USR2 upgrades on the fly: a new process of the
/// binary now at this path, with the same arguments, inherits the listening
/// sockets; it checks its config and starts serving, and only then does the
/// old process drain and exit; if the new one fails, the old one keeps
/// serving. Listening sockets are also accepted from systemd socket
/// activation (LISTEN_FDS). Logging: RUST_LOG (default "info").
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Configuration file (TOML). Default: the built-in configuration.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address; overrides chat.listen. Repeat for several listeners;
    /// "none" for no plain chat listener (then --tls-listen is needed).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Chat-over-TLS listen address; overrides chat.tls_listen. Repeat for
    /// several; "none" disables it. Needs a certificate (--tls-cert, --tls-key).
    #[arg(long, value_name = "ADDR")]
    tls_listen: Vec<String>,
    /// HTTP listen address; overrides http.listen. Repeat for several;
    /// "none" disables HTTP.
    #[arg(long, value_name = "ADDR")]
    http_listen: Vec<String>,
    /// HTTPS listen address; overrides http.tls_listen. Repeat for several;
    /// "none" disables it.
    #[arg(long, value_name = "ADDR")]
    https_listen: Vec<String>,
    /// Certificate chain of the TLS listeners (PEM); overrides tls.cert.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,
    /// Private key of the TLS listeners (PEM); overrides tls.key.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,
    /// Event-loop threads; overrides `threads` (0: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Directory of the room log; overrides store.data_dir. "none" keeps
    /// everything in memory (nothing survives a restart).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Run as a node of the cluster on this Redis (redis://HOST:PORT);
    /// overrides cluster.redis. Rooms, nicknames and presence are shared
    /// with every node on the same Redis.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// This node's name; overrides cluster.node.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Check the configuration (values, and that listen addresses can be
    /// bound) and exit: status 0 and "configuration ok", or 1 and the reason.
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Write the process id to FILE (renamed FILE.oldbin during an upgrade).
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
}

/// What the main thread waits for.
enum Event {
    Signal(i32),
    /// The successor is serving: drain and exit.
    UpgradeReady(u32),
    /// The successor failed: keep serving.
    UpgradeFailed(String),
}

impl Args {
    /// The config named on the command line with the overrides applied.
    fn load(&self) -> Result<Config, ConfigError> {
        let (mut config, source) = match &self.config {
            Some(path) => (Config::load(path)?, path.display().to_string()),
            None => (Config::builtin(), "built-in default".to_string()),
        };
        let given = |list: &[String]| list.iter().filter(|a| *a != "none").cloned().collect::<Vec<_>>();
        if !self.listen.is_empty() {
            config.chat.listen = given(&self.listen);
        }
        if !self.tls_listen.is_empty() {
            config.chat.tls_listen = given(&self.tls_listen);
        }
        if !self.http_listen.is_empty() {
            config.http.listen = given(&self.http_listen);
        }
        if !self.https_listen.is_empty() {
            config.http.tls_listen = given(&self.https_listen);
        }
        if let Some(cert) = &self.tls_cert {
            config.tls.cert = cert.clone();
        }
        if let Some(key) = &self.tls_key {
            config.tls.key = key.clone();
        }
        if let Some(n) = self.threads {
            config.threads = n;
        }
        if let Some(dir) = &self.data_dir {
            config.store.data_dir = dir.clone();
        }
        if let Some(url) = &self.redis {
            config.cluster.redis = url.clone();
        }
        if let Some(node) = &self.node {
            config.cluster.node = node.clone();
        }
        config.validate().map_err(|message| ConfigError { source, message })?;
        Ok(config)
    }

    fn source(&self) -> String {
        self.config.as_ref().map_or_else(|| "built-in default".to_string(), |p| p.display().to_string())
    }
}

/// Opens the room log; a successor waits (a bounded time) for its
/// predecessor to let go of it.
fn open_log(config: &Config, successor: bool) -> Result<std::sync::Arc<dyn RoomLog>, String> {
    let deadline = std::time::Instant::now() + LOG_HANDOVER_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        match server::open_log(config) {
            Ok(log) => return Ok(log),
            Err(OpenError::Locked(path)) if successor && std::time::Instant::now() < deadline => {
                log::debug!("waiting for the previous process to hand over {}", path.display());
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(OpenError::Locked(path)) => {
                return Err(format!(
                    "{}: in use by another process (another chat-server on the same data directory?)",
                    path.display()
                ))
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let config = match args.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat-server: {e}");
            if args.test {
                eprintln!("chat-server: configuration test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    if args.test {
        let checked = check_bind(&config)
            .and_then(|()| server_tls::check(&config))
            .and_then(|tls| Ok((tls, check_log(&config)?)));
        return match checked {
            Ok((tls, note)) => {
                if let Some(tls) = tls {
                    println!("chat-server: tls: {tls}");
                }
                println!("chat-server: room log: {note}");
                println!("chat-server: {}: configuration ok", args.source());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("chat-server: {}: {e}", args.source());
                eprintln!("chat-server: configuration test failed");
                ExitCode::FAILURE
            }
        };
    }
    // A file-size limit (RLIMIT_FSIZE) reached by the room log must be a
    // failed write (error replies), not a signal that kills the server.
    // SAFETY: setting a signal's disposition to ignore, before any thread.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // Inherited state is read and cleared before any thread starts.
    let ready_fd = upgrade::take_ready_fd();
    let inherited = match listeners::inherited() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("chat-server: inherited listeners: {e}");
            return ExitCode::FAILURE;
        }
    };
    let invocation = Invocation::current();
    // Registered before any thread starts, so that no thread takes the
    // default action for them.
    let mut signals = match Signals::new([SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR2]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat-server: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let inherited_any = !inherited.is_empty();
    let listeners = if inherited_any { Ok(inherited) } else { server::bind(&config) };
    let listeners = match listeners {
        Ok(l) => l,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The room log has one writer process. A successor (binary upgrade)
    // says it is ready first: the predecessor then stops accepting, writes
    // what it has and closes the log, and the successor opens it and starts
    // accepting. Connections arriving meanwhile wait in the listen backlog.
    let upgrading_from = ready_fd.is_some();
    if upgrading_from {
        upgrade::notify_ready(ready_fd);
    }
    let log = match open_log(&config, upgrading_from) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("chat-server: room log: {e}");
            return ExitCode::FAILURE;
        }
    };
    if config.cluster.enabled() {
        log::info!("room log: in Redis at {} (cluster)", config.cluster.redis);
    } else {
        log::info!("room log: {} (fsync {:?})", log.describe(), server::fsync_policy(&config));
    }
    let mut server = match ChatServer::start_with_log(config, listeners, log) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let how = if inherited_any { " (inherited)" } else { "" };
    for addr in server.local_addrs() {
        log::info!("chat-server {} listening on {addr}{how}", std::process::id());
    }
    for addr in server.http_addrs() {
        log::info!("chat-server {} serving HTTP on {addr}{how}", std::process::id());
    }
    for addr in server.chat_tls_addrs() {
        log::info!("chat-server {} listening with TLS on {addr}{how}", std::process::id());
    }
    for addr in server.https_addrs() {
        log::info!("chat-server {} serving HTTPS on {addr}{how}", std::process::id());
    }
    if !upgrading_from {
        upgrade::notify_ready(ready_fd);
    }
    notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    let pid_file = match args.pid_file.as_deref().map(PidFile::create).transpose() {
        Ok(p) => p,
        Err(e) => {
            log::error!("cannot write the pid file: {e}");
            None
        }
    };

    let (tx, events) = mpsc::channel();
    let signal_tx = tx.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal_tx.send(Event::Signal(signal)).is_err() {
                break;
            }
        }
    });
    let mut upgrading = false;
    let mut upgraded = false;
    for event in events {
        match event {
            Event::Signal(SIGHUP) => {
                notify("RELOADING=1");
                match args.load().map_err(|e| e.to_string()).and_then(|new| server.reload(new)) {
                    Ok(ignored) => {
                        for why in ignored {
                            log::warn!("reload: {why}");
                        }
                        log::info!("reloaded configuration from {}", args.source());
                    }
                    Err(e) => log::error!("reload rejected, keeping the running configuration: {e}"),
                }
                notify("READY=1");
            }
            Event::Signal(SIGUSR2) => {
                if upgrading {
                    log::warn!("upgrade already in progress; SIGUSR2 ignored");
                    continue;
                }
                let invocation = match &invocation {
                    Ok(i) => i,
                    Err(e) => {
                        log::error!("upgrade impossible: cannot find this executable: {e}");
                        continue;
                    }
                };
                if let Some(p) = &pid_file {
                    if let Err(e) = p.to_oldbin() {
                        log::error!("upgrade abandoned: cannot rename the pid file: {e}");
                        continue;
                    }
                }
                match upgrade::spawn(invocation, server.listeners()) {
                    Ok(successor) => {
                        log::info!(
                            "upgrade: started {} (pid {})",
                            invocation.exe.display(),
                            successor.child.id()
                        );
                        upgrading = true;
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            let event = match successor.wait_ready(UPGRADE_TIMEOUT) {
                                Ok(pid) => Event::UpgradeReady(pid),
                                Err(e) => Event::UpgradeFailed(e),
                            };
                            let _ = tx.send(event);
                        });
                    }
                    Err(e) => {
                        log::error!("upgrade failed: cannot start {}: {e}", invocation.exe.display());
                        if let Some(p) = &pid_file {
                            let _ = p.restore();
                        }
                    }
                }
            }
            Event::UpgradeFailed(why) => {
                upgrading = false;
                if let Some(p) = &pid_file {
                    if let Err(e) = p.restore() {
                        log::error!("cannot restore the pid file: {e}");
                    }
                }
                log::error!("upgrade failed, still serving: {why}");
            }
            Event::UpgradeReady(pid) => {
                log::info!("upgrade: new process {pid} is ready; handing it the room log, then draining");
                upgraded = true;
                break;
            }
            Event::Signal(signal) => {
                log::info!("shutting down (signal {signal})");
                break;
            }
        }
    }
    notify("STOPPING=1");
    if upgraded {
        server.drain_for_upgrade();
    } else {
        server.shutdown();
    }
    if let Some(p) = &pid_file {
        p.remove(upgraded);
    }
    log::info!("stopped");
    ExitCode::SUCCESS
}
