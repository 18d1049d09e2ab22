//! End to end, briefly: the `chat`, `ws`, `chat-http` and `http` scenarios against a chat
//! server started in this process, and `nats` against nats-server when it
//! is installed. Each asserts that nothing went missing or wrong.

use chat_server::config::Config;
use chat_server::server::ChatServer;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// A chat server on loopback ports, unlimited in rate; its chat and HTTP
/// addresses.
fn chat_server() -> (ChatServer, SocketAddr, SocketAddr) {
    let mut config = Config::builtin();
    config.threads = 1;
    config.chat.listen = vec!["127.0.0.1:0".into()];
    config.http.listen = vec!["127.0.0.1:0".into()];
    config.chat.rate_per_sec = 0;
    // Every generated client logs in from 127.0.0.1.
    config.http.logins_per_minute = 0;
    config.store.data_dir = "none".into();
    let server = ChatServer::start(config).expect("chat server starts");
    let (chat, http) = (server.local_addrs()[0], server.http_addrs()[0]);
    (server, chat, http)
}

/// Runs loadgen with `args` and `--json`; its report.
fn loadgen(args: &[&str]) -> Value {
    let out = Command::new(LOADGEN).args(args).args(["--json", "--quiet"]).output().expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(0),
        "loadgen {args:?} exited with {:?}\nstdout: {stdout}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).expect("one JSON report")
}

fn int(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or_else(|| panic!("{path} missing from {v}"))
}

#[test]
fn chat_fanout_delivers_everything() {
    let (server, addr, _) = chat_server();
    let pid = std::process::id().to_string();
    let addr = addr.to_string();
    let r = loadgen(&[
        "chat",
        "--addr",
        &addr,
        "--clients",
        "40",
        "--rooms",
        "3",
        "--senders",
        "5",
        "--rate",
        "500",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--threads",
        "2",
        "--server-pid",
        &pid,
    ]);
    assert_eq!(int(&r, "/errors/total"), 0, "{r}");
    assert_eq!(int(&r, "/fanout/joined"), 40);
    let (expected, delivered) = (int(&r, "/fanout/expected"), int(&r, "/fanout/delivered"));
    // 500 msgs/s for 1 s, each to the 12 or 13 other members of its room.
    assert!(expected >= 500 * 11, "{r}");
    assert_eq!((delivered, int(&r, "/fanout/missing")), (expected, 0));
    assert_eq!(int(&r, "/fanout/duplicates") + int(&r, "/fanout/reordered"), 0);
    assert!(int(&r, "/latency/samples") == delivered);
    assert!(r.pointer("/server/us_per/delivery").is_some(), "{r}");
    server.shutdown();
}

/// The `chat` workload through the other two doors: WebSocket, and HTTP
/// (session, POST, long poll).
#[test]
fn ws_and_http_fanouts_deliver_everything() {
    let (server, _, http) = chat_server();
    let http = http.to_string();
    for (scenario, senders) in [("ws", "5"), ("chat-http", "3")] {
        let r = loadgen(&[
            scenario,
            "--addr",
            &http,
            "--clients",
            "30",
            "--rooms",
            "3",
            "--senders",
            senders,
            "--rate",
            "300",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ]);
        assert_eq!(int(&r, "/errors/total"), 0, "{scenario}: {r}");
        assert_eq!(int(&r, "/fanout/joined"), 30, "{scenario}");
        let (expected, delivered) = (int(&r, "/fanout/expected"), int(&r, "/fanout/delivered"));
        assert!(expected >= 300 * 8, "{scenario}: {r}");
        assert_eq!((delivered, int(&r, "/fanout/missing")), (expected, 0), "{scenario}");
        assert_eq!(int(&r, "/fanout/duplicates") + int(&r, "/fanout/reordered"), 0, "{scenario}");
    }
    server.shutdown();
}

#[test]
fn http_posts_to_the_chat() {
    let (server, _, http) = chat_server();
    let url = format!("http://{http}/rooms/room0/messages");
    let (credential, _) = server.core().open_session("lg", None, None).expect("a session");
    let auth = format!("Authorization: Bearer {credential}");
    let r = loadgen(&[
        "http",
        "--url",
        &url,
        "--method",
        "POST",
        "--header",
        &auth,
        "--body",
        r#"{"text":"hi"}"#,
        "--connections",
        "4",
        "--pipeline",
        "4",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
    ]);
    assert_eq!(int(&r, "/errors/total"), 0, "{r}");
    assert_eq!(int(&r, "/http/non_2xx"), 0);
    assert!(int(&r, "/frames") > 100, "{r}");
    // A route that does not exist: every response is an error reply.
    let out = Command::new(LOADGEN)
        .args(["http", "--url", &format!("http://{http}/nope"), "-c", "1", "-d", "200ms", "--warmup", "0s"])
        .args(["--json", "-q"])
        .output()
        .expect("loadgen runs");
    assert_eq!(out.status.code(), Some(3), "errors were counted");
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert!(int(&r, "/errors/kinds/HTTP 404") > 0, "{r}");
    server.shutdown();
}

struct Nats(Child);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Needs nats-server, so it is ignored by a plain `cargo test`; `.ci/run`
/// installs nats-server and runs it with `--ignored`, where a missing
/// nats-server is a failure.
#[test]
#[ignore = "needs nats-server: run with --ignored (.ci/run does)"]
fn nats_fanout_delivers_everything() {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let spawned = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = spawned.expect("nats-server must be on PATH (apt-get install nats-server)");
    let _nats = Nats(child);
    let addr = format!("127.0.0.1:{port}");
    let until = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < until, "nats-server did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = loadgen(&[
        "nats",
        "--addr",
        &addr,
        "--clients",
        "30",
        "--rooms",
        "2",
        "--senders",
        "4",
        "--rate",
        "400",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    assert_eq!(int(&r, "/errors/total"), 0, "{r}");
    assert_eq!(int(&r, "/fanout/missing"), 0, "{r}");
    assert!(int(&r, "/fanout/expected") >= 400 * 13, "{r}");
}
