//! The terminal UI: ratatui on crossterm, around the I/O-free [`App`].
//!
//! Threads: one reads the terminal, one reads the server connection (a
//! new one per connection), and a short-lived one makes each connection
//! attempt; all of them only send [`Event`]s to the main thread, which
//! owns the state, sends requests, and draws. Events from a connection
//! that was since replaced carry an old generation number and are dropped.
//!
//! The terminal is restored on every way out: `/quit`, Ctrl-C (a key in
//! raw mode), SIGTERM/SIGHUP/SIGINT, and panics on any thread.

use std::io::{self, Stdout};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chat_server::client::reconnect::{Backoff, Reconnected, Reconnector, RetrySchedule};
use chat_server::client::{ChatClient, ChatSender, ClientError};
use chat_server::protocol::ServerFrame;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self as term, DisableBracketedPaste, EnableBracketedPaste};
use ratatui::crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;

use crate::Args;

pub mod app;
pub mod input;
pub mod keys;
pub mod link;
pub mod pane;
pub mod view;

#[cfg(test)]
mod tests;

use app::{App, Effect, Now};

/// How often the screen is redrawn with nothing happening (countdowns)
/// and due reconnection attempts are checked.
const TICK: Duration = Duration::from_millis(200);

/// Events waiting for the main thread; a full queue holds the readers
/// back (and the server's own slow-consumer limit applies).
const QUEUE: usize = 4096;

/// First and longest delay between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(10));

/// What the main thread hears about.
enum Event {
    Terminal(term::Event),
    TerminalGone(io::Error),
    Frame(u64, ServerFrame),
    ProtocolError(u64, String),
    Lost(u64, ClientError),
    Attempt(u64, Result<Reconnected, ClientError>),
}

/// Raw mode, the alternate screen and bracketed paste, undone by
/// [`Screen::restore`] (idempotent) on every way out.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
        // Installed first, so that a failure below also restores.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            Screen::restore();
            previous(info);
            // A panic on a reader thread would leave a UI that no longer
            // hears the server: end it all.
            std::process::exit(101);
        }));
        terminal::enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, EnableBracketedPaste)?;
        Terminal::new(CrosstermBackend::new(io::stdout()))
    }

    fn restore() {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), DisableBracketedPaste, LeaveAlternateScreen, cursor::Show);
    }
}

/// The main thread's side of the connection.
struct Driver {
    reconnector: Reconnector,
    tx: SyncSender<Event>,
    sender: Option<ChatSender>,
    /// The connection (or attempt) whose events count.
    generation: u64,
}

impl Driver {
    /// Starts reading `client` as the current connection.
    fn attach(&mut self, mut client: ChatClient) {
        let generation = self.generation;
        self.sender = Some(client.sender());
        let tx = self.tx.clone();
        thread::spawn(move || {
            // This thread only reads: let it block until something comes.
            if let Err(e) = client.set_read_timeout(None) {
                let _ = tx.send(Event::Lost(generation, e.into()));
                return;
            }
            loop {
                let event = match client.next_event() {
                    Ok(frame) => Event::Frame(generation, frame),
                    Err(e) if e.is_timeout() => continue,
                    // Frame boundaries are intact: go on with the next one.
                    Err(ClientError::Protocol(what)) => Event::ProtocolError(generation, what),
                    Err(e) => {
                        let _ = tx.send(Event::Lost(generation, e));
                        return;
                    }
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
    }

    fn close(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.close();
        }
        self.generation += 1;
    }

    /// Carries out `effects`; false to quit.
    fn apply(
        &mut self,
        app: &mut App,
        effects: Vec<Effect>,
        terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    ) -> bool {
        for effect in effects {
            let now = Now::current();
            match effect {
                Effect::Send(pending, request) => match &self.sender {
                    Some(sender) => match sender.send_request(request.as_borrowed()) {
                        Ok(id) => app.track(id, pending),
                        Err(e) => app.send_failed(pending, &format!("not sent: {e}"), now),
                    },
                    None => app.send_failed(pending, "not sent: not connected", now),
                },
                Effect::Connect(rooms) => {
                    self.close();
                    let (generation, tx, reconnector) =
                        (self.generation, self.tx.clone(), self.reconnector.clone());
                    thread::spawn(move || {
                        let _ = tx.send(Event::Attempt(generation, reconnector.connect(&rooms)));
                    });
                }
                Effect::Close => self.close(),
                Effect::Redraw => {
                    let _ = terminal.clear();
                }
                Effect::Quit => return false,
            }
        }
        true
    }

    /// Feeds one event to the state; false to quit.
    fn handle(
        &mut self,
        app: &mut App,
        event: Event,
        terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    ) -> io::Result<bool> {
        let now = Now::current();
        let effects = match event {
            Event::Terminal(term::Event::Key(key)) => app.key(key, now),
            Event::Terminal(term::Event::Paste(text)) => {
                app.paste(&text);
                Vec::new()
            }
            // Resizes need nothing more than the redraw every event gets.
            Event::Terminal(_) => Vec::new(),
            Event::TerminalGone(e) => return Err(e),
            Event::Frame(g, frame) if g == self.generation => app.frame(frame, now),
            Event::ProtocolError(g, what) if g == self.generation => {
                app.protocol_error(&what, now);
                Vec::new()
            }
            Event::Lost(g, e) if g == self.generation && self.sender.is_some() => app.lost(&e, now),
            Event::Attempt(g, Ok(back)) if g == self.generation => {
                self.attach(back.client);
                app.connected(back.limits, back.rooms, now)
            }
            Event::Attempt(g, Err(e)) if g == self.generation => {
                app.connect_failed(&e, now);
                Vec::new()
            }
            // From a connection or an attempt since replaced.
            Event::Frame(..) | Event::ProtocolError(..) | Event::Lost(..) | Event::Attempt(..) => Vec::new(),
        };
        Ok(self.apply(app, effects, terminal))
    }
}

/// Runs the terminal UI until `/quit`, Ctrl-C or a signal. The first
/// connection is made before the screen is taken: if it fails, the error
/// is printed plainly and the exit status is 1.
pub fn run(args: &Args) -> ExitCode {
    let mut reconnector =
        Reconnector::new(args.connect.as_str(), args.nick.as_str(), args.token.clone(), args.timeout);
    match args.tls_client() {
        Ok(Some(tls)) => reconnector = reconnector.with_tls(tls),
        Ok(None) => {}
        Err(e) => {
            eprintln!("chat-client: tls: {e}");
            return ExitCode::from(2);
        }
    }
    let first = match reconnector.connect(&[]) {
        Ok(first) => first,
        Err(e) => {
            eprintln!("chat-client: cannot log in to {} as {}: {e}", args.connect, args.nick);
            return ExitCode::FAILURE;
        }
    };
    let schedule = RetrySchedule::new(Backoff::new(BACKOFF.0, BACKOFF.1), args.reconnect_for);
    let mut app = App::new(&args.nick, &args.connect, first.limits, schedule, Now::current());
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let mut driver = Driver { reconnector, tx: tx.clone(), sender: None, generation: 0 };
    driver.attach(first.client);

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("chat-client: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut terminal = match Screen::enter() {
        Ok(terminal) => terminal,
        Err(e) => {
            Screen::restore();
            eprintln!("chat-client: cannot set up the terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    thread::spawn(move || loop {
        let event = match term::read() {
            Ok(event) => Event::Terminal(event),
            Err(e) => Event::TerminalGone(e),
        };
        let gone = matches!(event, Event::TerminalGone(_));
        if tx.send(event).is_err() || gone {
            return;
        }
    });

    let result = event_loop(&mut app, &mut driver, &mut terminal, &rx, &stop);
    Screen::restore();
    driver.close();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-client: terminal error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn event_loop(
    app: &mut App,
    driver: &mut Driver,
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    rx: &Receiver<Event>,
    stop: &AtomicBool,
) -> io::Result<()> {
    loop {
        terminal.draw(|frame| view::draw(frame, app, Instant::now()))?;
        match rx.recv_timeout(TICK) {
            Ok(event) => {
                if !driver.handle(app, event, terminal)? {
                    return Ok(());
                }
                // Whatever else is waiting, before drawing again: a burst
                // of messages costs one redraw.
                for event in rx.try_iter().take(QUEUE) {
                    if !driver.handle(app, event, terminal)? {
                        return Ok(());
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let effects = app.tick(Now::current());
        if !driver.apply(app, effects, terminal) || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}
