//! The `chat-server` binary as an operator runs it: `-t`, SIGHUP reload
//! with good and bad files while clients stay connected, SIGTERM.

mod common;

use chat_server::client::ChatClient;
use chat_server::protocol::{ErrorCode, Push, ServerFrame};
use common::{check, free_addr, login, temp_dir, write_config, Server, BIN, TIMEOUT};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn check_mode_accepts_good_files_and_names_the_bad_key() {
    let dir = temp_dir("check");
    let good = dir.join("good.toml");
    write_config(&good, free_addr(), "history_len = 5");
    let (ok, text) = check(&good);
    assert!(ok, "{text}");
    assert!(text.contains("configuration ok"), "{text}");

    let bad = dir.join("bad.toml");
    write_config(&bad, free_addr(), "history_len = 99999999");
    let (ok, text) = check(&bad);
    assert!(!ok);
    assert!(text.contains("chat.history_len"), "{text}");
    assert!(text.contains("configuration test failed"), "{text}");

    write_config(&bad, free_addr(), "no_such_key = 1");
    let (ok, text) = check(&bad);
    assert!(!ok);
    assert!(text.contains("no_such_key"), "{text}");

    let (ok, text) = check(&dir.join("missing.toml"));
    assert!(!ok);
    assert!(text.contains("missing.toml"), "{text}");

    // The built-in default checks fine, and nothing was started.
    let out = Command::new(BIN).arg("-t").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));
}

#[test]
fn sighup_reloads_good_files_and_keeps_running_on_bad_ones() {
    let dir = temp_dir("reload");
    let path = dir.join("chat.toml");
    let addr = free_addr();
    write_config(&path, addr, "history_len = 2");
    let server = Server::start(&path);
    let mut alice = login(addr, "alice", None).unwrap();
    alice.join("r").unwrap();
    for i in 0..3 {
        alice.say("r", &format!("m{i}")).unwrap();
    }

    // A good file: a token becomes required and history grows; alice stays.
    write_config(&path, addr, "history_len = 3\ntoken = \"t0k\"");
    server.signal(libc::SIGHUP);
    server.wait_log("reloaded configuration");
    assert_eq!(login(addr, "bob", None).err().and_then(|e| e.code()), Some(ErrorCode::BadToken));
    let mut bob = login(addr, "bob", Some("t0k")).unwrap();
    alice.say("r", "m3").unwrap();
    let joined = bob.join("r").unwrap();
    assert_eq!(joined.history.len(), 3, "the new history size applies");
    alice.ping().expect("alice kept her connection across the reload");

    // A bad file: rejected, logged, the old config stays in force.
    std::fs::write(&path, "[chat]\nmax_payload = \"huge\"\n").unwrap();
    server.signal(libc::SIGHUP);
    let line = server.wait_log("reload rejected");
    assert!(line.contains("max_payload"), "{line}");
    assert_eq!(login(addr, "carol", None).err().and_then(|e| e.code()), Some(ErrorCode::BadToken));
    login(addr, "carol", Some("t0k")).expect("still serving with the old config");
    alice.ping().expect("alice still connected");
    bob.ping().expect("bob still connected");
}

#[test]
fn sigterm_says_going_away_and_exits() {
    let dir = temp_dir("term");
    let path = dir.join("chat.toml");
    let addr = free_addr();
    write_config(&path, addr, "");
    let mut server = Server::start(&path);
    let mut clients: Vec<ChatClient> = (0..4).map(|i| login(addr, &format!("c{i}"), None).unwrap()).collect();
    server.signal(libc::SIGTERM);
    for c in &mut clients {
        loop {
            match c.next_event() {
                Ok(ServerFrame::Push(Push::GoingAway { .. })) => break,
                Ok(_) => {}
                Err(e) => panic!("no going-away before close: {e}"),
            }
        }
    }
    drop(clients);
    let end = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < end, "server did not exit after SIGTERM");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(ChatClient::connect(addr, Duration::from_secs(1)).is_err(), "no longer accepting");
}
