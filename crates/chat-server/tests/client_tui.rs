//! `chat-client`'s terminal UI used as a person would: in tmux, typing
//! with send-keys and reading the screen with capture-pane, against a real
//! `chat-server` process that is stopped and started again on the same
//! port. The other user is a library client.
//!
//! Needs tmux, so it is `#[ignore]`d by default (it shows as ignored, not
//! as passed); `.ci/run` installs tmux and runs it with `--ignored`. Run
//! without tmux, it fails saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use chat_server::client::reconnect::{Backoff, Reconnector, Rejoin, RetrySchedule};
use chat_server::client::ChatClient;
use chat_server::protocol::{Push, ServerFrame};

use common::{free_addr, temp_dir, write_config_store, Server, TIMEOUT};

const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Tmux {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok(),
            "tmux is not installed: the terminal UI test needs it (apt-get install tmux)"
        );
        Tmux { socket: format!("chat-client-test-{}", std::process::id()) }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .args(["-u", "-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn new_session(&self, name: &str, command: &str) {
        self.run(&["new-session", "-d", "-s", name, "-x", "120", "-y", "40", command]);
    }

    /// Types `text` literally.
    fn type_text(&self, session: &str, text: &str) {
        self.run(&["send-keys", "-t", session, "-l", text]);
    }

    /// Presses keys by name (`Enter`, `C-c`).
    fn press(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", session]).stdout).into_owned()
    }

    /// Waits (bounded) until the screen satisfies `check`; returns it.
    fn wait_for(&self, session: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + TIMEOUT;
        loop {
            let screen = self.screen(session);
            if check(&screen) {
                return screen;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}; the screen:\n{screen}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_text(&self, session: &str, text: &str) -> String {
        self.wait_for(session, &format!("{text:?}"), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// The input line: the screen row starting with the prompt.
fn input_line<'a>(screen: &'a str, prompt: &str) -> &'a str {
    screen.lines().find(|l| l.starts_with(prompt)).unwrap_or("").trim_end()
}

/// Whether `screen` has `HH:MM rest`.
fn has_timed_line(screen: &str, rest: &str) -> bool {
    screen.lines().any(|line| {
        let line = line.trim_start_matches('│');
        line.find(rest).is_some_and(|at| {
            let time = line[..at].trim_end().as_bytes();
            time.len() >= 5 && {
                let t = &time[time.len() - 5..];
                t[0].is_ascii_digit() && t[1].is_ascii_digit() && t[2] == b':' && t[3].is_ascii_digit()
            }
        })
    })
}

/// Waits for a message from `from` in the library client's events.
fn next_text_from(client: &mut ChatClient, from: &str) -> String {
    let end = Instant::now() + TIMEOUT;
    while Instant::now() < end {
        if let Some(ServerFrame::Push(Push::Message { from: f, text, .. })) =
            client.poll_event(TIMEOUT).unwrap()
        {
            if f == from {
                return text;
            }
        }
    }
    panic!("no message from {from}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_owned()
}

#[test]
#[ignore = "needs tmux (apt-get install tmux); .ci/run runs it with --ignored"]
fn terminal_ui_keeps_the_typed_line_shows_history_and_reconnects() {
    let tmux = Tmux::start();
    let dir: PathBuf = temp_dir("tui");
    let config = dir.join("chat.toml");
    let addr = free_addr();
    // A durable room log: the restart below keeps the room, and alice's
    // rejoin resumes from the last message she saw.
    write_config_store(&config, addr, &format!("data_dir = \"{}\"", dir.join("data").display()), "");
    let server = Server::start(&config);

    // Bob speaks before alice arrives: alice gets it as history.
    let bob_line = Reconnector::new(addr.to_string(), "bob", None, TIMEOUT);
    let mut bob = bob_line.connect(&[Rejoin::new("lobby")]).unwrap().client;
    bob.say("lobby", "said before you came").unwrap();

    // Alice in tmux; the shell records the terminal modes around her run.
    let (before, after, status) = (dir.join("stty.before"), dir.join("stty.after"), dir.join("status"));
    let command = format!(
        "stty -g > {before}; {CLIENT} --connect {addr} --nick alice --reconnect-for 30s; \
         echo $? > {status}.tmp; stty -g > {after}; mv {status}.tmp {status}",
        before = before.display(),
        after = after.display(),
        status = status.display()
    );
    tmux.new_session("alice", &command);
    tmux.wait_text("alice", &format!("alice on {addr}"));

    tmux.type_text("alice", "/join lobby");
    tmux.press("alice", &["Enter"]);
    let screen = tmux.wait_text("alice", "--- end of history ---");
    assert!(screen.contains("--- history: 1 message ---"), "{screen}");
    assert!(has_timed_line(&screen, "bob: said before you came"), "history with its time:\n{screen}");
    tmux.wait_for("alice", "bob in the member list", |s| s.lines().any(|l| l.contains("│ bob ")));

    // A message arrives while alice is half-way through a line.
    tmux.type_text("alice", "I am typing a long mess");
    tmux.wait_for("alice", "the typed text", |s| {
        input_line(s, "#lobby>") == "#lobby> I am typing a long mess"
    });
    bob.say("lobby", "interrupting!").unwrap();
    let screen = tmux.wait_text("alice", "bob: interrupting!");
    assert!(has_timed_line(&screen, "bob: interrupting!"), "{screen}");
    assert_eq!(input_line(&screen, "#lobby>"), "#lobby> I am typing a long mess", "{screen}");
    assert!(!screen.contains("mess[") && !screen.contains("messinterrupting"), "{screen}");

    // She finishes the line: bob gets it, and her screen shows it once.
    tmux.type_text("alice", "age");
    tmux.press("alice", &["Enter"]);
    assert_eq!(next_text_from(&mut bob, "alice"), "I am typing a long message");
    let screen = tmux.wait_for("alice", "the own message, acknowledged", |s| {
        s.contains("alice: I am typing a long message") && !s.contains("(sending...)")
    });
    assert_eq!(screen.matches("I am typing a long message").count(), 1, "{screen}");
    assert_eq!(input_line(&screen, "#lobby>"), "#lobby>");

    // The server stops; alice shows that she is reconnecting, and keeps trying.
    drop(bob);
    server.signal(libc::SIGTERM);
    let mut server = server;
    server.child.wait().unwrap();
    tmux.wait_text("alice", "connection lost: server going away");
    tmux.wait_text("alice", "reconnecting in");
    tmux.type_text("alice", "kept while away");

    // It comes back on the same port: she logs in and rejoins by herself.
    let _server = Server::start(&config);
    let screen = tmux.wait_text("alice", "rejoined #lobby");
    assert!(screen.contains(&format!("alice on {addr}")), "{screen}");
    assert_eq!(input_line(&screen, "#lobby>"), "#lobby> kept while away");
    assert!(!screen.contains("gap"), "resumed from the room log, nothing lost:\n{screen}");
    assert_eq!(screen.matches("bob: interrupting!").count(), 1, "nothing shown twice:\n{screen}");

    // Proof that the server has her in the room again, both ways.
    let schedule = &mut RetrySchedule::new(Backoff::new(Duration::from_millis(50), TIMEOUT), TIMEOUT);
    let mut bob = bob_line.run(schedule, &[Rejoin::new("lobby")], None).unwrap().client;
    bob.say("lobby", "welcome back").unwrap();
    tmux.wait_text("alice", "bob: welcome back");
    tmux.press("alice", &["Enter"]);
    assert_eq!(next_text_from(&mut bob, "alice"), "kept while away");

    // Ctrl-C: the client exits with 0 and the terminal modes are as before.
    tmux.press("alice", &["C-c"]);
    let end = Instant::now() + TIMEOUT;
    while !status.exists() {
        assert!(Instant::now() < end, "chat-client did not exit on Ctrl-C:\n{}", tmux.screen("alice"));
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read(&status), "0");
    assert!(!read(&before).is_empty());
    assert_eq!(read(&before), read(&after), "terminal modes restored");
    let _ = std::fs::remove_dir_all(&dir);
}
