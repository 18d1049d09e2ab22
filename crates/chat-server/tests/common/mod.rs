//! Running the `chat-server` binary as an operator would, for tests.
#![allow(dead_code)]

use chat_server::client::{ChatClient, ClientError};
use chat_server::config::Config;
use chat_server::server::ChatServer;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_chat-server");
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-server-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A config file for `addr` with an in-memory room log; `extra` lines go
/// under `[chat]`.
pub fn write_config(path: &Path, addr: SocketAddr, extra: &str) {
    write_config_store(path, addr, "data_dir = \"none\"", extra);
}

/// A config file for `addr`; `store` lines go under `[store]`, `extra`
/// lines under `[chat]`.
pub fn write_config_store(path: &Path, addr: SocketAddr, store: &str, extra: &str) {
    let text = format!(
        "threads = 2\nshutdown_grace_ms = 3000\n[http]\nlisten = []\n[store]\n{store}\n[chat]\nlisten = [\"{addr}\"]\nrate_per_sec = 0\n{extra}\n"
    );
    std::fs::write(path, text).unwrap();
}

pub fn check(path: &Path) -> (bool, String) {
    let out = Command::new(BIN).arg("-t").arg("-c").arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A running server process whose log lines arrive on a channel.
pub struct Server {
    pub child: Child,
    pub log: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(config: &Path) -> Server {
        Server::start_with(config, &[])
    }

    pub fn start_with(config: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("-c")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let server = Server { child, log };
        server.wait_log("listening on");
        server
    }

    pub fn wait_log(&self, needle: &str) -> String {
        let end = Instant::now() + TIMEOUT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?}"),
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn login(addr: SocketAddr, nick: &str, token: Option<&str>) -> Result<ChatClient, ClientError> {
    let mut c = ChatClient::connect(addr, TIMEOUT)?;
    c.login(nick, token)?;
    Ok(c)
}

/// An in-process server on loopback port 0 (two loops, no rate limit, no
/// HTTP unless `edit` asks), after `edit` changed the built-in config.
pub fn start_server(edit: impl FnOnce(&mut Config)) -> (ChatServer, SocketAddr) {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut c = Config::builtin();
    c.threads = 2;
    c.chat.listen = vec!["127.0.0.1:0".into()];
    c.http.listen = vec![];
    c.chat.rate_per_sec = 0;
    c.store.data_dir = "none".into();
    edit(&mut c);
    c.validate().expect("test config is valid");
    let server = ChatServer::start(c).expect("start server");
    let addr = server.local_addrs()[0];
    (server, addr)
}
