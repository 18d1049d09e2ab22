//! The servers compared: building them, starting one on a fresh loopback
//! port pinned to CPU 0, waiting until it accepts, and stopping it
//! (SIGTERM, then SIGKILL after 2 s). Every child is registered so that
//! Ctrl-C, a panic or an early return never leaves one running.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Pids of the servers running now, for the signal handler.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// How long a server may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A server of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// `examples/echo_server` (ours).
    EchoOurs,
    /// tokio, `Framed::send` per frame.
    EchoIdiomatic,
    /// tokio, batched flushes.
    EchoTuned,
    /// A bare mio loop.
    EchoBare,
    /// `chat-server` (ours), the room log in memory (`data_dir = "none"`).
    ChatOurs,
    /// `chat-server` with the room log on disk, `fsync = "interval"`.
    ChatInterval,
    /// `chat-server` with the room log on disk, `fsync = "always"`.
    ChatAlways,
    /// tokio broadcast chat.
    TokioChat,
    /// nats-server.
    Nats,
    /// `examples/http_hello` (ours).
    HttpOurs,
    /// hyper 1.x.
    Hyper,
}

impl Server {
    /// Its name in tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            Server::EchoOurs => "echo_server",
            Server::EchoIdiomatic => "tokio-echo-idiomatic",
            Server::EchoTuned => "tokio-echo-tuned",
            Server::EchoBare => "mio-echo-bare",
            Server::ChatOurs => "chat-server",
            Server::ChatInterval => "chat-server-interval",
            Server::ChatAlways => "chat-server-always",
            Server::TokioChat => "tokio-chat",
            Server::Nats => "nats-server",
            Server::HttpOurs => "http_hello",
            Server::Hyper => "hyper-hello",
        }
    }

    /// Whether it is the project's own.
    pub fn ours(self) -> bool {
        matches!(
            self,
            Server::EchoOurs
                | Server::ChatOurs
                | Server::ChatInterval
                | Server::ChatAlways
                | Server::HttpOurs
        )
    }

    /// Our chat server, in any room log mode.
    pub fn is_chat(self) -> bool {
        matches!(self, Server::ChatOurs | Server::ChatInterval | Server::ChatAlways)
    }

    /// Where our chat server keeps its room log: `None` in memory, else the
    /// fsync policy.
    pub fn fsync(self) -> Option<&'static str> {
        match self {
            Server::ChatInterval => Some("interval"),
            Server::ChatAlways => Some("always"),
            _ => None,
        }
    }
}

/// Where the binaries are, and where servers write configs and logs.
#[derive(Clone, Debug)]
pub struct Env {
    /// The workspace root.
    pub root: PathBuf,
    /// nats-server, if found.
    pub nats: Option<PathBuf>,
    /// Scratch directory for configs and server logs.
    pub scratch: PathBuf,
    /// Pin servers to CPU 0 (and the generator to CPU 1).
    pub pin: bool,
}

impl Env {
    fn ours(&self, rel: &str) -> PathBuf {
        self.root.join("target/release").join(rel)
    }

    fn baseline(&self, bin: &str) -> PathBuf {
        self.root.join("benches/baselines/target/release").join(bin)
    }

    /// The command line of `server` listening on `addr` (and, for our chat
    /// server, on `http` too), writing any config it needs.
    fn command(
        &self,
        server: Server,
        addr: SocketAddr,
        http: Option<SocketAddr>,
        data_dir: Option<&Path>,
    ) -> io::Result<Command> {
        let listen = addr.to_string();
        let cmd = |bin: PathBuf, args: &[&str]| {
            let mut c = Command::new(bin);
            c.args(args);
            c
        };
        Ok(match server {
            Server::EchoOurs => {
                cmd(self.ours("examples/echo_server"), &["--listen", &listen, "--threads", "1"])
            }
            Server::HttpOurs => {
                cmd(self.ours("examples/http_hello"), &["--listen", &listen, "--threads", "1"])
            }
            Server::EchoIdiomatic | Server::EchoTuned | Server::TokioChat | Server::Hyper => {
                cmd(self.baseline(server.name()), &["--listen", &listen, "--threads", "1"])
            }
            // One thread by construction: it takes no --threads.
            Server::EchoBare => cmd(self.baseline("mio-echo-bare"), &["--listen", &listen]),
            Server::ChatOurs | Server::ChatInterval | Server::ChatAlways => {
                let path = self.scratch.join(format!("{}.toml", server.name()));
                let store = match (server.fsync(), data_dir) {
                    (Some(fsync), Some(dir)) => Store::Disk { dir, fsync },
                    _ => Store::Memory,
                };
                fs::write(&path, chat_config(addr, http, store))?;
                let mut c = cmd(self.ours("chat-server"), &["--threads", "1", "-c"]);
                c.arg(path);
                c
            }
            Server::Nats => {
                let bin =
                    self.nats.clone().ok_or_else(|| io::Error::other("nats-server is not installed"))?;
                let path = self.scratch.join("nats-server.conf");
                fs::write(&path, nats_config(addr))?;
                let mut c = Command::new(bin);
                c.arg("-c").arg(path);
                c
            }
        })
    }

    /// Starts `server` on a fresh loopback port (and a second one for our
    /// chat server's HTTP listener if `with_http`), and waits until it
    /// accepts connections. A chat server with its room log on disk gets
    /// a new, empty data directory, removed again when it stops.
    pub fn start(&self, server: Server, with_http: bool) -> Result<Running, String> {
        let addr = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
        let http = if with_http && server.is_chat() {
            Some(free_port().map_err(|e| format!("no free loopback port: {e}"))?)
        } else {
            None
        };
        let data_dir = server.fsync().map(|_| self.scratch.join("data").join(server.name()));
        if let Some(dir) = &data_dir {
            if dir.exists() {
                fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
        let mut cmd = self
            .command(server, addr, http, data_dir.as_deref())
            .map_err(|e| format!("{}: {e}", server.name()))?;
        let log_path = self.scratch.join(format!("{}.log", server.name()));
        let log = OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let pin = self.pin;
        // SAFETY: the closure only makes async-signal-safe system calls
        // (sched_setaffinity, prctl) on plain stack values.
        unsafe {
            cmd.pre_exec(move || {
                if pin {
                    pin_current(0)?;
                }
                // Dies with us even on SIGKILL, which no Drop can catch.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("starting {}: {e}", server.name()))?;
        let pid = child.id();
        register(pid, true);
        let mut running = Running { child, pid, addr, http, server, log: log_path, data_dir };
        running.wait_accepting()?;
        Ok(running)
    }
}

/// Where a benchmarked chat server keeps its room log.
#[derive(Clone, Copy, Debug)]
pub enum Store<'a> {
    /// In memory (`data_dir = "none"`).
    Memory,
    /// In `dir`, with this fsync policy (`interval`, `always`).
    Disk {
        /// The data directory.
        dir: &'a Path,
        /// `fsync` of `[store]`.
        fsync: &'a str,
    },
}

/// A chat-server config for the benchmark: one loop, no rate limit,
/// rooms of up to 2,000, history enough for a long poller to catch up,
/// HTTP off unless asked for (no login limit: every client logs in from
/// one address), the room log where `store` says.
pub fn chat_config(addr: SocketAddr, http: Option<SocketAddr>, store: Store<'_>) -> String {
    let http = http.map_or(String::new(), |a| format!("\"{a}\""));
    let store = match store {
        Store::Memory => "data_dir = \"none\"\n".to_string(),
        // Debug formatting quotes and escapes the path as TOML needs.
        Store::Disk { dir, fsync } => {
            format!("data_dir = {:?}\nfsync = \"{fsync}\"\n", dir.display().to_string())
        }
    };
    format!(
        "threads = 1\nshutdown_grace_ms = 0\n\n[chat]\nlisten = [\"{addr}\"]\nmax_connections = 19500\n\
         rate_per_sec = 0\nmax_members_per_room = 2000\nhistory_len = 10000\nroom_tail_bytes = 16777216\n\n\
         [http]\nlisten = [{http}]\nlogins_per_minute = 0\n\n[store]\n{store}"
    )
}

/// A nats-server config on `addr`, no monitoring port.
pub fn nats_config(addr: SocketAddr) -> String {
    format!("listen: \"{addr}\"\nmax_connections: 20000\n")
}

/// A port nobody listens on now.
fn free_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Pins the calling thread (and threads it starts later) to `cpu`.
pub fn pin_current(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn register(pid: u32, add: bool) {
    // A poisoned lock still holds the list.
    let mut list = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    if add {
        list.push(pid);
    } else {
        list.retain(|&p| p != pid);
    }
}

/// Kills every server still running: for the Ctrl-C handler.
pub fn kill_all() {
    let list = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    for &pid in list.iter() {
        // SAFETY: kill has no memory preconditions; the pids are our children.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// On SIGINT or SIGTERM: kill the servers and exit.
pub fn install_signal_handler() -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
    thread::Builder::new()
        .name("compare-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("compare: signal {sig}: stopping the servers");
                kill_all();
                std::process::exit(130);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A server started by [`Env::start`]; stopped when dropped.
pub struct Running {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Our chat server's HTTP listener, if asked for.
    pub http: Option<SocketAddr>,
    server: Server,
    log: PathBuf,
    /// The room log's data directory, removed at stop.
    data_dir: Option<PathBuf>,
}

/// The room log's counters (`/metrics`) at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogCounters {
    /// `chat_log_appends_total`.
    pub appends: u64,
    /// `chat_log_commits_total`.
    pub commits: u64,
    /// `chat_log_fsyncs_total`.
    pub fsyncs: u64,
}

impl LogCounters {
    /// The counters in a Prometheus text exposition; `None` if it has
    /// none of them.
    pub fn parse(text: &str) -> Option<LogCounters> {
        let mut c = LogCounters::default();
        let mut found = false;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.split_once(' ') else { continue };
            let Ok(v) = value.trim().parse::<u64>() else { continue };
            let slot = match name {
                "chat_log_appends_total" => &mut c.appends,
                "chat_log_commits_total" => &mut c.commits,
                "chat_log_fsyncs_total" => &mut c.fsyncs,
                _ => continue,
            };
            *slot = v;
            found = true;
        }
        found.then_some(c)
    }
}

impl Running {
    /// The room log's counters from the chat server's `/metrics` (it must
    /// have been started with HTTP).
    pub fn log_counters(&self) -> Result<LogCounters, String> {
        use std::io::{Read, Write};
        let addr = self.http.ok_or("started without HTTP: no /metrics")?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        s.read_to_string(&mut body).map_err(|e| format!("/metrics: {e}"))?;
        LogCounters::parse(&body).ok_or_else(|| "/metrics has no chat_log_ counters".into())
    }

    fn wait_accepting(&mut self) -> Result<(), String> {
        let until = Instant::now() + START_TIMEOUT;
        let addrs: Vec<SocketAddr> = [Some(self.addr), self.http].into_iter().flatten().collect();
        for addr in addrs {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!(
                        "{} exited at start ({status}); its log: {}",
                        self.server.name(),
                        log_tail(&self.log)
                    ));
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() >= until {
                    return Err(format!("{} did not accept on {addr} within 10 s", self.server.name()));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 2 s; waits for it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
            let until = Instant::now() + STOP_GRACE;
            while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        register(self.pid, false);
        if let Some(dir) = self.data_dir.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// The workspace root: from where this crate was compiled, else upwards
/// from the current directory.
pub fn workspace_root() -> Result<PathBuf, String> {
    let is_root =
        |p: &Path| fs::read_to_string(p.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"));
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if is_root(&compiled) && compiled.join("benches/baselines").is_dir() {
        return compiled.canonicalize().map_err(|e| e.to_string());
    }
    let mut dir = std::env::current_dir().map_err(|e| e.to_string())?;
    loop {
        if is_root(&dir) && dir.join("benches/baselines").is_dir() {
            return Ok(dir);
        }
        if !dir.pop() {
            return Err("cannot find the switchboard workspace root (with benches/baselines)".into());
        }
    }
}

/// nats-server on PATH; or, as root with `install`, installed with apt-get.
pub fn find_nats(install: bool) -> Result<PathBuf, String> {
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).map(|d| d.join("nats-server")).find(|p| p.is_file())
        })
    };
    if let Some(p) = on_path() {
        return Ok(p);
    }
    // SAFETY: geteuid has no preconditions.
    if !install || unsafe { libc::geteuid() } != 0 {
        return Err("nats-server is not on PATH (pass --install-peers as root to apt-get install it)".into());
    }
    let ok = Command::new("apt-get")
        .args(["install", "-y", "nats-server"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match on_path() {
        Some(p) if ok => Ok(p),
        _ => Err("apt-get install -y nats-server failed".into()),
    }
}

/// Runs `cargo build ARGS` in `root`, or says why it failed.
pub fn cargo_build(root: &Path, args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("compare: cargo build {}", args.join(" "));
    let status = Command::new(cargo)
        .arg("build")
        .args(args)
        .current_dir(root)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build {} failed ({status})", args.join(" ")))
    }
}

/// Opens `path` for writing, creating its directory.
pub fn create(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    File::create(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_the_addresses() {
        let a: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let h: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        let with = chat_config(a, Some(h), Store::Memory);
        assert!(
            with.contains("listen = [\"127.0.0.1:7001\"]") && with.contains("listen = [\"127.0.0.1:8001\"]")
        );
        assert!(with.contains("rate_per_sec = 0") && with.contains("max_members_per_room = 2000"));
        let config: chat_server::config::Config =
            toml::from_str(&chat_config(a, None, Store::Memory)).unwrap();
        assert!(config.http.listen.is_empty() && config.threads == 1);
        assert_eq!(config.store.data_dir, "none");
        let dir = Path::new("/tmp/a \"b\"");
        let disk = chat_config(a, None, Store::Disk { dir, fsync: "always" });
        let config: chat_server::config::Config = toml::from_str(&disk).unwrap();
        assert_eq!(config.store.data_dir, "/tmp/a \"b\"");
        assert!(disk.contains("fsync = \"always\""), "{disk}");
        assert!(config.validate().is_ok());
        assert!(nats_config(a).contains("listen: \"127.0.0.1:7001\""));
    }

    #[test]
    fn log_counters_are_read_from_the_metrics_text() {
        let text = "# HELP chat_log_appends_total Messages stored.\n# TYPE chat_log_appends_total counter\n\
                    chat_log_appends_total 189000\nchat_log_commits_total 1165\nchat_log_fsyncs_total 1164\n\
                    chat_connections 3\n";
        assert_eq!(
            LogCounters::parse(text),
            Some(LogCounters { appends: 189_000, commits: 1165, fsyncs: 1164 })
        );
        assert_eq!(LogCounters::parse("HTTP/1.1 404 Not Found\r\n\r\n"), None);
    }

    #[test]
    fn the_root_holds_the_baselines() {
        assert!(workspace_root().unwrap().join("benches/baselines/Cargo.toml").is_file());
    }
}
