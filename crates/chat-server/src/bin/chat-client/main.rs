//! `chat-client`: an interactive and scriptable client for the chat server.
//!
//! ```text
//! chat-client --connect 127.0.0.1:7000 --nick alice [--token T] [--linger 500ms]
//! ```
//!
//! Reads commands from stdin, one per line: `/join ROOM`, `/leave [ROOM]`,
//! `/msg NICK TEXT`, `/rooms`, `/who [ROOM]`, `/ping`, `/quit`, `/help`;
//! any other line is said in the current room (the last one joined; a
//! leading `//` sends a text starting with `/`). A thread reads the server
//! and prints events as they come, answering server pings; the main thread
//! reads stdin and sends requests without waiting for replies, which the
//! protocol returns in request order.
//!
//! When stdin is a terminal, output is for people (`[#room] bob: hi`).
//! Otherwise (or with `--script`) every event is exactly one line in the
//! stable format of [`output::FORMATS`]; at the end of stdin the client waits for
//! the replies still due, lingers for trailing events, then quits, so that
//! `printf '/join r\nhello\n' | chat-client --nick a` works in scripts.
//!
//! Exit status: 0 normal, 1 connection or login failure or connection lost,
//! 2 usage error.

use std::collections::VecDeque;
use std::io::{self, BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use chat_server::client::{ChatClient, ChatSender, ClientError};
use chat_server::protocol::{validate_name, ErrorCode, Reply, RequestRef, ServerFrame};
use clap::Parser;

mod output;

use output::{emit, escape, Printer, FORMATS};

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

/// Chat client: interactive on a terminal, line-oriented in scripts.
#[derive(Parser, Debug)]
#[command(version, after_long_help = FORMATS)]
struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, short, value_name = "ADDR", default_value = "127.0.0.1:7000")]
    connect: String,
    /// Nickname: 1 to 32 of A-Z a-z 0-9 _ . -
    #[arg(long, short, value_parser = parse_name)]
    nick: String,
    /// Shared-secret token, if the server requires one.
    #[arg(long, short)]
    token: Option<String>,
    /// How long to wait for trailing events once stdin ends (e.g. 500ms, 2s, 0).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    linger: Duration,
    /// Timeout to connect, to log in, and to wait for outstanding replies at the end.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the script format even when stdin is a terminal.
    #[arg(long)]
    script: bool,
}

fn parse_name(s: &str) -> Result<String, String> {
    validate_name(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
}

/// `500ms`, `2s`, `1.5s`, `1m`, or a bare number of milliseconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let seconds = match unit {
        "ms" | "" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("invalid duration unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// A request sent and not yet answered: what the reply is about.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Join(String),
    Leave(String),
    Say(String),
    Direct { to: String, text: String },
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

/// A parsed input line.
#[derive(Debug, PartialEq)]
enum Command<'a> {
    Join(&'a str),
    Leave(Option<&'a str>),
    Msg(&'a str, &'a str),
    Rooms,
    Who(Option<&'a str>),
    Ping,
    Quit,
    Help,
    Say(&'a str),
    Nothing,
}

fn parse_command(line: &str) -> Result<Command<'_>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Command::Nothing);
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Command::Say(line));
    };
    if command.starts_with('/') {
        return Ok(Command::Say(command));
    }
    let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
    let rest = rest.trim();
    let arg = (!rest.is_empty()).then_some(rest);
    Ok(match (name, arg) {
        ("join", Some(room)) => Command::Join(room),
        ("leave", room) => Command::Leave(room),
        ("msg", Some(rest)) => match rest.split_once(' ') {
            Some((nick, text)) => Command::Msg(nick, text.trim_start()),
            None => return Err("usage: /msg NICK TEXT".into()),
        },
        ("rooms", None) => Command::Rooms,
        ("who", room) => Command::Who(room),
        ("ping", None) => Command::Ping,
        ("quit", None) => Command::Quit,
        ("help", _) => Command::Help,
        ("join", None) => return Err("usage: /join ROOM".into()),
        _ => return Err(format!("unknown command /{name} (try /help)")),
    })
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
                printer.out(format!("protocol-error message={}", escape(&what)), Some(format!("! {what}")));
            }
            Err(e) => {
                if !quitting.load(Ordering::SeqCst) {
                    let human = match e {
                        ClientError::Closed => "* connection closed by the server".to_owned(),
                        e => format!("* connection lost: {e}"),
                    };
                    printer.out("closed".into(), Some(human));
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
        let command = match parse_command(line) {
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
                let pending = Pending::Direct { to: to.into(), text: text.into() };
                self.send(pending, RequestRef::Direct { to, text })?;
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
            Command::Help if self.printer.script => eprintln!("{HELP}"),
            Command::Help => emit(HELP),
            Command::Quit => return Ok(Flow::Quit),
            Command::Nothing => {}
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

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let printer = Printer { script: args.script || !io::stdin().is_terminal() };

    let mut client = match ChatClient::connect(&args.connect, args.timeout) {
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
    printer.login(&args.nick, &args.connect, &limits);
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
    fn commands_parse() {
        assert_eq!(parse_command("/join lobby\n"), Ok(Command::Join("lobby")));
        assert_eq!(parse_command("/leave"), Ok(Command::Leave(None)));
        assert_eq!(parse_command("/msg bob  hi there\r\n"), Ok(Command::Msg("bob", "hi there")));
        assert_eq!(parse_command("/who r"), Ok(Command::Who(Some("r"))));
        assert_eq!(parse_command("hello  world "), Ok(Command::Say("hello  world ")));
        assert_eq!(parse_command("//slash"), Ok(Command::Say("/slash")));
        assert_eq!(parse_command("  \n"), Ok(Command::Nothing));
        assert!(parse_command("/msg bob").is_err());
        assert!(parse_command("/join").is_err());
        assert!(parse_command("/frobnicate").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn escaping_keeps_one_line() {
        assert_eq!(escape("a\\b\nc\td\u{1b}[31m é"), "a\\\\b\\nc\\td\\u{1b}[31m é");
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
