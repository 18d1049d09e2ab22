//! WebSocket conformance of `GET /ws` against an independent client, the
//! Python `websockets` package (tests/ws_conformance.py): fragments,
//! control frames between them, pings, every close code the server uses,
//! unmasked frames, reserved bits, oversized messages, bad handshakes.
//! Afterwards nothing may be left: no connection, no nickname.

use chat_server::config::Config;
use chat_server::server::ChatServer;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs python3 with the websockets package; run by .ci/run with --ignored"]
fn websockets_client_finds_no_conformance_failure_and_nothing_leaks() {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut c = Config::builtin();
    c.threads = 2;
    c.chat.listen = vec!["127.0.0.1:0".into()];
    c.http.listen = vec!["127.0.0.1:0".into()];
    c.store.data_dir = "none".into();
    let max_payload = c.chat.max_payload;
    let server = ChatServer::start(c).unwrap();
    let http = server.http_addrs()[0];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ws_conformance.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(http.to_string())
        .arg(max_payload.to_string())
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "conformance failures:\n{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    // Nothing leaks: every connection closed, every nickname free.
    let handle = server.handle();
    let service = handle.service_id("http").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = handle.stats(service).unwrap().open;
        let users = server.core().user_count();
        if open == 0 && users == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections and {users} nicknames left");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = handle.stats(service).unwrap();
    assert!(stats.protocol_errors > 0, "the violations were counted as protocol errors: {stats:?}");
    server.shutdown();
}
