//! Script mode: stdin is not a terminal (or `--script`). One command per
//! line in, one event per line out, in the stable format of
//! [`output::FORMATS`], which is an interface: scripts and tests parse it
//! (`crates/chat-server/tests/client_script.rs` pins it).
//!
//! A thread reads the server and prints events as they come, answering
//! server pings; the main thread reads stdin and sends requests without
//! waiting for replies, which the protocol returns in request order. At
//! the end of stdin the client waits for the replies still due, lingers
//! for trailing events, then quits. A lost connection prints `closed` and
//! exits with status 1: scripts see the loss rather than a reconnect.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use chat_server::client::{ChatClient, ChatSender, ClientError};
use chat_server::protocol::{ErrorCode, Reply, RequestRef, ServerFrame};

use crate::command::{parse_command, Command};
use crate::Args;

mod output;

pub use output::FORMATS;
use output::{escape, Printer};

/// `/help` in script mode (printed on stderr).
const HELP: &str = "\
commands:
  /join ROOM        join ROOM (created if needed); it becomes the current room
  /leave [ROOM]     leave ROOM (default: the current room)
  /msg NICK TEXT    send TEXT to NICK directly
  /rooms            list rooms
  /who [ROOM]       list the members of ROOM (default: the current room)
  /ping             measure the round-trip time
  /quit             quit (also: end of input)
  /help             this help
  TEXT              say TEXT in the current room (//TEXT says /TEXT)";

/// Parses a line as script mode always has: the terminal UI's own
/// commands are unknown here, and `/msg` needs a text.
fn parse_script_command(line: &str) -> Result<Command<'_>, String> {
    match parse_command(line) {
        Ok(Command::Msg(_, "")) => Err("usage: /msg NICK TEXT".into()),
        Ok(c) if c.is_interactive_only() => Err(format!("unknown command /{} (try /help)", c.name())),
        Err(e) if e.starts_with("usage: /msg") || e.starts_with("usage: /switch") => {
            let name = if e.starts_with("usage: /msg") { "msg" } else { "switch" };
            Err(format!("unknown command /{name} (try /help)"))
        }
        other => other,
    }
}

/// A request sent and not yet answered: what the reply is about.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Join(String),
    Leave(String),
    Say(String),
    Direct { to: String },
    Rooms,
    Who(String),
    Ping(Instant),
}

impl Pending {
    /// (request name, target) for error lines.
    fn describe(&self) -> (&'static str, &str) {
        match self {
            Pending::Join(room) => ("join", room),
            Pending::Leave(room) => ("leave", room),
            Pending::Say(room) => ("say", room),
            Pending::Direct { to, .. } => ("direct", to),
            Pending::Rooms => ("rooms", "-"),
            Pending::Who(room) => ("who", room),
            Pending::Ping(_) => ("ping", "-"),
        }
    }
}

/// An entry of the queue of lines whose output is due.
enum Entry {
    /// A request awaiting its reply.
    Request(Pending),
    /// A local error about a later line: printed after the replies to the
    /// lines before it, so that output follows input order.
    Note(String),
}

/// State shared by the stdin and server threads.
#[derive(Default)]
struct State {
    /// Output due, in input order; requests in the order sent, which is the
    /// order of the replies.
    pending: VecDeque<Entry>,
    /// Rooms joined, the current one last.
    rooms: Vec<String>,
}

impl State {
    /// Prints the notes at the front of the queue.
    fn flush_notes(&mut self, printer: &Printer) {
        while matches!(self.pending.front(), Some(Entry::Note(_))) {
            if let Some(Entry::Note(note)) = self.pending.pop_front() {
                printer.client_error(&note);
            }
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the main thread hears about.
enum Input {
    Line(String),
    Eof,
    /// The connection ended (the server thread has said so).
    Closed,
}

/// The server thread: prints every event until the connection ends.
fn read_events(
    mut client: ChatClient,
    state: Shared,
    printer: Printer,
    quitting: Arc<AtomicBool>,
    tx: Sender<Input>,
) {
    loop {
        match client.next_event() {
            Ok(ServerFrame::Reply { request_id, reply }) => {
                // Printed under the lock, so that a note cannot overtake it.
                let mut state = lock(&state);
                state.flush_notes(&printer);
                let pending = match state.pending.pop_front() {
                    Some(Entry::Request(pending)) => Some(pending),
                    _ => None,
                };
                // A refused join does not make the room current.
                if let (Some(Pending::Join(room)), Reply::Error { code, .. }) = (&pending, &reply) {
                    if *code != ErrorCode::AlreadyMember {
                        state.rooms.retain(|r| r != room);
                    }
                }
                printer.reply(pending, request_id, reply);
                state.flush_notes(&printer);
            }
            Ok(ServerFrame::Push(push)) => printer.push(push),
            Err(e) if e.is_timeout() => {}
            // Frame boundaries are intact: carry on with the next frame.
            Err(ClientError::Protocol(what)) => {
                printer.out(&format!("protocol-error message={}", escape(&what)));
            }
            Err(_) => {
                if !quitting.load(Ordering::SeqCst) {
                    printer.out("closed");
                }
                let _ = tx.send(Input::Closed);
                return;
            }
        }
    }
}

/// The stdin thread: forwards lines (invalid UTF-8 replaced) until EOF.
fn read_stdin(tx: Sender<Input>) {
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if tx.send(Input::Line(String::from_utf8_lossy(&line).into_owned())).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Input::Eof);
}

/// The main thread's side: turns commands into requests.
struct Session {
    sender: ChatSender,
    state: Shared,
    printer: Printer,
}

enum Flow {
    Continue,
    Quit,
}

impl Session {
    fn send(&self, pending: Pending, request: RequestRef<'_>) -> io::Result<()> {
        // Queued before sending, so the reply always finds it.
        lock(&self.state).pending.push_back(Entry::Request(pending));
        self.sender.send_request(request).map(drop)
    }

    /// Reports a local error, in input order.
    fn note(&self, message: &str) {
        let mut state = lock(&self.state);
        if state.pending.is_empty() {
            self.printer.client_error(message);
        } else {
            state.pending.push_back(Entry::Note(message.to_owned()));
        }
    }

    fn handle(&self, line: &str) -> io::Result<Flow> {
        let command = match parse_script_command(line) {
            Ok(command) => command,
            Err(message) => {
                self.note(&message);
                return Ok(Flow::Continue);
            }
        };
        let current = lock(&self.state).rooms.last().cloned();
        let room_or_current = |room: Option<&str>| room.map(str::to_owned).or_else(|| current.clone());
        match command {
            Command::Join(room) => {
                {
                    let mut state = lock(&self.state);
                    state.rooms.retain(|r| r != room);
                    state.rooms.push(room.to_owned());
                }
                self.send(Pending::Join(room.into()), RequestRef::Join { room, resume: None })?;
            }
            Command::Leave(room) => match room_or_current(room) {
                Some(room) => {
                    lock(&self.state).rooms.retain(|r| *r != room);
                    self.send(Pending::Leave(room.clone()), RequestRef::Leave { room: &room })?;
                }
                None => self.note("no current room: /leave ROOM"),
            },
            Command::Msg(to, text) => {
                self.send(Pending::Direct { to: to.into() }, RequestRef::Direct { to, text })?;
            }
            Command::Rooms => self.send(Pending::Rooms, RequestRef::ListRooms)?,
            Command::Who(room) => match room_or_current(room) {
                Some(room) => self.send(Pending::Who(room.clone()), RequestRef::Who { room: &room })?,
                None => self.note("no current room: /who ROOM"),
            },
            Command::Ping => self.send(Pending::Ping(Instant::now()), RequestRef::Ping { nonce: 1 })?,
            Command::Say(text) => match current {
                Some(room) => self.send(Pending::Say(room.clone()), RequestRef::Say { room: &room, text })?,
                None => self.note("no current room: /join a room first"),
            },
            // On stderr: stdout carries only events.
            Command::Help => eprintln!("{HELP}"),
            Command::Quit => return Ok(Flow::Quit),
            // Refused by parse_script_command.
            Command::Switch(_) | Command::Reconnect | Command::Nothing => {}
        }
        Ok(Flow::Continue)
    }
}

/// Waits for the replies still due (at most `timeout`), then `linger` for
/// trailing events. False if the connection ended meanwhile.
fn drain(rx: &Receiver<Input>, state: &Shared, timeout: Duration, linger: Duration) -> bool {
    let replies_due = Instant::now() + timeout;
    let mut lingering: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let end = match lingering {
            Some(end) => end,
            None if lock(state).pending.is_empty() || now >= replies_due => *lingering.insert(now + linger),
            // Replies are not signalled: poll for them.
            None => now + Duration::from_millis(10),
        };
        match rx.recv_timeout(end.saturating_duration_since(now)) {
            Ok(Input::Closed) | Err(RecvTimeoutError::Disconnected) => return false,
            Ok(Input::Line(_) | Input::Eof) => {}
            Err(RecvTimeoutError::Timeout) if lingering.is_some() => return true,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Runs script mode until stdin ends, `/quit`, or the connection is lost.
pub fn run(args: &Args) -> ExitCode {
    let printer = Printer;
    let tls = match args.tls_client() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("chat-client: tls: {e}");
            return ExitCode::from(2);
        }
    };
    let mut client = match ChatClient::connect_with(&args.connect, args.timeout, tls.as_ref()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("chat-client: cannot connect to {}: {e}", args.connect);
            return ExitCode::FAILURE;
        }
    };
    let limits = match client.login(&args.nick, args.token.as_deref()) {
        Ok(limits) => limits,
        Err(e) => {
            eprintln!("chat-client: login as {} failed: {e}", args.nick);
            return ExitCode::FAILURE;
        }
    };
    printer.login(&args.nick, &limits);
    // The server thread only reads events: let it block until something comes.
    if let Err(e) = client.set_read_timeout(None) {
        eprintln!("chat-client: {e}");
        return ExitCode::FAILURE;
    }

    let session = Session { sender: client.sender(), state: Shared::default(), printer };
    let quitting = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    {
        let (state, quitting, tx) = (Arc::clone(&session.state), Arc::clone(&quitting), tx.clone());
        thread::spawn(move || read_events(client, state, printer, quitting, tx));
    }
    thread::spawn(move || read_stdin(tx));

    let linger = loop {
        match rx.recv() {
            Ok(Input::Line(line)) => match session.handle(&line) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Quit) => break Duration::ZERO,
                // The server thread reports the close and why.
                Err(_) => break Duration::ZERO,
            },
            Ok(Input::Eof) => break args.linger,
            Ok(Input::Closed) | Err(_) => return ExitCode::FAILURE,
        }
    };
    if !drain(&rx, &session.state, args.timeout, linger) {
        return ExitCode::FAILURE;
    }
    quitting.store(true, Ordering::SeqCst);
    let _ = session.sender.close();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_commands_keep_their_old_errors() {
        let unknown = |name: &str| Err(format!("unknown command /{name} (try /help)"));
        assert_eq!(parse_script_command("/switch #a"), unknown("switch"));
        assert_eq!(parse_script_command("/switch"), unknown("switch"));
        assert_eq!(parse_script_command("/reconnect"), unknown("reconnect"));
        assert_eq!(parse_script_command("/msg"), unknown("msg"));
        assert_eq!(parse_script_command("/msg bob"), Err("usage: /msg NICK TEXT".into()));
        assert_eq!(parse_script_command("/msg bob hi"), Ok(Command::Msg("bob", "hi")));
    }

    #[test]
    fn escaping_keeps_one_line() {
        assert_eq!(escape("a\\b\nc\td\u{1b}[31m é"), "a\\\\b\\nc\\td\\u{1b}[31m é");
    }
}
