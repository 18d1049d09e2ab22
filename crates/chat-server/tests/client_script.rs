//! `chat-client` in script mode (stdin not a terminal) is an interface:
//! one command per line in, one event per line out, in the format its
//! `--help` documents. These tests pin that format, line by line.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use chat_server::protocol::{Push, ServerFrame};

const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// Replaces the numbers that change from run to run (`id=`, `ts=`,
/// `rtt_us=`) with `#`.
fn normalize(line: &str) -> String {
    let mut out = String::new();
    for (i, field) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match field.split_once('=') {
            Some((key @ ("id" | "ts" | "rtt_us"), value)) if value.bytes().all(|b| b.is_ascii_digit()) => {
                out.push_str(key);
                out.push_str("=#");
            }
            _ => out.push_str(field),
        }
    }
    out
}

/// Runs `chat-client` with `input` on stdin to its end; returns (status, stdout lines).
fn run_script(addr: std::net::SocketAddr, nick: &str, input: &str) -> (Option<i32>, Vec<String>) {
    let mut child = Command::new(CLIENT)
        .args(["--connect", &addr.to_string(), "--nick", nick, "--linger", "300ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout).unwrap().lines().map(normalize).collect();
    (out.status.code(), lines)
}

#[test]
fn script_mode_prints_one_stable_line_per_event() {
    let (_server, addr) = common::start_server(|_| {});
    let mut watcher = common::login(addr, "watcher", None).unwrap();
    watcher.join("r").unwrap();

    let input = "/join r\nhello\\there\n//slash\n/msg nobody hi\n/msg watcher psst\n/who\n/rooms\n\
                 /switch r\n/reconnect\n/msg\n/bogus\n/leave\n/say-nothing\n";
    let (status, lines) = run_script(addr, "bot", input);
    assert_eq!(status, Some(0), "{lines:#?}");
    let expected = [
        "ok login nick=bot max_payload=65536 rate=0 max_rooms=32 max_members=10000 history=100 idle_timeout_ms=60000",
        "ok join room=r members=2 history=0",
        "ok say room=r id=# ts=#",
        "ok say room=r id=# ts=#",
        "error code=303 name=UnknownUser request=direct target=nobody message=",
        "ok direct to=watcher id=# ts=#",
        "ok who room=r total=2 nicks=bot,watcher",
        "ok rooms total=1 list=r:2",
        "client-error message=unknown command /switch (try /help)",
        "client-error message=unknown command /reconnect (try /help)",
        "client-error message=unknown command /msg (try /help)",
        "client-error message=unknown command /bogus (try /help)",
        "ok leave room=r",
        "client-error message=unknown command /say-nothing (try /help)",
    ];
    let got: Vec<_> = lines
        .iter()
        .map(|l| {
            // The server's wording of an error is not part of the format.
            match l.split_once(" message=") {
                Some((head, _)) if l.starts_with("error ") => format!("{head} message="),
                _ => l.clone(),
            }
        })
        .collect();
    let mut who = got.clone();
    // Member lists come in the server's order.
    for line in &mut who {
        if line == "ok who room=r total=2 nicks=watcher,bot" {
            *line = "ok who room=r total=2 nicks=bot,watcher".into();
        }
    }
    assert_eq!(who, expected);

    // What the others received, as the same format describes it.
    // (A room's messages keep their order; a direct message has no order
    // with them, PROTOCOL.md §9.4.)
    let (mut room, mut direct) = (Vec::new(), Vec::new());
    while room.len() + direct.len() < 3 {
        match watcher.next_event().unwrap() {
            ServerFrame::Push(Push::Message { text, from, .. }) if from == "bot" => room.push(text),
            ServerFrame::Push(Push::Direct { text, .. }) => direct.push(text),
            _ => {}
        }
    }
    assert_eq!(room, ["hello\\there", "/slash"]);
    assert_eq!(direct, ["psst"]);

    // History comes as `history` lines after the join, text escaped.
    watcher.say("r", "two\nlines\u{1b}").unwrap();
    let (status, lines) = run_script(addr, "late", "/join r\n");
    assert_eq!(status, Some(0));
    assert_eq!(
        &lines[1..],
        [
            "ok join room=r members=2 history=3",
            "history room=r id=# ts=# from=bot text=hello\\\\there",
            "history room=r id=# ts=# from=bot text=/slash",
            "history room=r id=# ts=# from=watcher text=two\\nlines\\u{1b}",
        ]
    );
}

#[test]
fn script_mode_reports_a_lost_connection_and_exits_1() {
    let (server, addr) = common::start_server(|c| c.shutdown_grace_ms = 500);
    let mut child = Command::new(CLIENT)
        .args(["--connect", &addr.to_string(), "--nick", "bot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(normalize(&line));
        }
    });
    let next = || rx.recv_timeout(common::TIMEOUT).expect("a line from chat-client");
    assert!(next().starts_with("ok login nick=bot "));
    stdin.write_all(b"/join r\n").unwrap();
    assert_eq!(next(), "ok join room=r members=1 history=0");
    // stdin stays open: the client must notice the server going by itself.
    server.shutdown();
    assert_eq!(next(), "going-away retry_after_ms=0 reason=server shutting down");
    assert_eq!(next(), "closed");
    let status = (0..100)
        .find_map(|_| {
            thread::sleep(Duration::from_millis(50));
            child.try_wait().unwrap()
        })
        .expect("chat-client exits after the connection is lost");
    assert_eq!(status.code(), Some(1));
    drop(stdin);
}
