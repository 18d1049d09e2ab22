//! The terminal UI's state: panes, the input line, requests awaiting
//! their reply, and the connection's state machine. I/O-free, in the way
//! of quinn-proto: the driver ([`super::run`]) feeds it what happened
//! (keys in [`super::keys`], frames, connection outcomes, the time) and
//! carries out the [`Effect`]s it returns.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_server::client::reconnect::{Rejoin, RetrySchedule};
use chat_server::client::ClientError;
use chat_server::protocol::{
    ErrorCode, OkBody, Position, PresenceKind, Push, Reply, Request, ServerFrame, ServerLimits,
};

use super::input::LineEditor;
use super::link::Link;
use super::pane::{Level, MessageKey, Pane, PaneId};

/// How long an error stays in the status line.
const STATUS_FOR: Duration = Duration::from_secs(30);

/// The time, as both clocks: `at` for deadlines, `unix_us` for display.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time.
    pub at: Instant,
    /// Wall-clock time, unix microseconds.
    pub unix_us: u64,
}

impl Now {
    /// The current time.
    pub fn current() -> Now {
        let unix_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        Now { at: Instant::now(), unix_us }
    }
}

/// A request sent and not yet answered: what its reply is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// Joining a room.
    Join(String),
    /// Leaving a room.
    Leave(String),
    /// A message to a room; the token marks its line.
    Say {
        /// Room name.
        room: String,
        /// The line's token.
        token: u64,
    },
    /// A direct message; the token marks its line.
    Direct {
        /// Recipient.
        to: String,
        /// The line's token.
        token: u64,
    },
    /// `/rooms`.
    Rooms,
    /// The members of a room: shown (`/who`) or just kept for the side list.
    Who {
        /// Room name.
        room: String,
        /// Whether to print the list.
        show: bool,
    },
    /// `/ping`, sent at that time.
    Ping(Instant),
}

impl Pending {
    /// "say #room", for error messages.
    fn describe(&self) -> String {
        match self {
            Pending::Join(room) => format!("join #{room}"),
            Pending::Leave(room) => format!("leave #{room}"),
            Pending::Say { room, .. } => format!("say in #{room}"),
            Pending::Direct { to, .. } => format!("message to {to}"),
            Pending::Rooms => "rooms".into(),
            Pending::Who { room, .. } => format!("who #{room}"),
            Pending::Ping(_) => "ping".into(),
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send the request, then tell [`App::track`] its id, or
    /// [`App::send_failed`] why it could not be sent.
    Send(Pending, Request),
    /// Start a connection attempt with these rooms, and report with
    /// [`App::connected`] or [`App::connect_failed`].
    Connect(Vec<Rejoin>),
    /// Close the connection: its end is no news any more.
    Close,
    /// Clear the screen and draw it all again.
    Redraw,
    /// Restore the terminal and exit.
    Quit,
}

/// The whole state of the terminal UI. See the [module docs](self).
#[derive(Debug)]
pub struct App {
    /// Own nickname.
    pub nick: String,
    /// Server address, for the status line.
    pub addr: String,
    /// The panes; the first is the server's.
    pub panes: Vec<Pane>,
    /// Index of the pane shown.
    pub current: usize,
    /// The input line.
    pub input: LineEditor,
    /// The connection.
    pub link: Link,
    /// The last error, shown in the status line for a while.
    pub status: Option<(String, Instant)>,
    /// Limits announced at the last login.
    pub limits: ServerLimits,
    pub(super) pending: HashMap<u32, Pending>,
    next_token: u64,
    pub(super) schedule: RetrySchedule,
}

/// `Code (n): message`, or `Code (n)`.
fn code_text(code: ErrorCode, message: &str) -> String {
    ClientError::Server { code, message: message.to_owned() }.to_string()
}

impl App {
    /// The state after the first login, with the server pane only.
    pub fn new(nick: &str, addr: &str, limits: ServerLimits, schedule: RetrySchedule, now: Now) -> App {
        let mut server = Pane::new(PaneId::Server);
        server.notice(now.unix_us, Level::Info, format!("connected to {addr} as {nick}"));
        server.notice(
            now.unix_us,
            Level::Info,
            "/join ROOM to enter a room, /msg NICK TEXT to write to someone, /help for commands and keys",
        );
        App {
            nick: nick.to_owned(),
            addr: addr.to_owned(),
            panes: vec![server],
            current: 0,
            input: LineEditor::new(),
            link: Link::Up,
            status: None,
            limits,
            pending: HashMap::new(),
            next_token: 1,
            schedule,
        }
    }

    /// The pane shown.
    pub fn current_pane(&self) -> &Pane {
        &self.panes[self.current]
    }

    pub(super) fn current_pane_mut(&mut self) -> &mut Pane {
        &mut self.panes[self.current]
    }

    pub(super) fn find(&self, id: &PaneId) -> Option<usize> {
        self.panes.iter().position(|p| p.id == *id)
    }

    /// The pane `id`, created (after the others) if needed.
    pub(super) fn pane(&mut self, id: PaneId) -> &mut Pane {
        let index = match self.find(&id) {
            Some(index) => index,
            None => {
                self.panes.push(Pane::new(id));
                self.panes.len() - 1
            }
        };
        &mut self.panes[index]
    }

    /// Shows pane `index`: its unread count is read.
    pub(super) fn switch_to(&mut self, index: usize) {
        if let Some(pane) = self.panes.get_mut(index) {
            pane.unread = 0;
            pane.mentioned = false;
            self.current = index;
        }
    }

    pub(super) fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Shows an error in the status line.
    pub(super) fn error(&mut self, text: impl Into<String>, now: Now) {
        self.status = Some((text.into(), now.at));
    }

    /// The status line's error, if still fresh.
    pub fn status_text(&self, now: Instant) -> Option<&str> {
        self.status.as_ref().filter(|(_, at)| now.duration_since(*at) < STATUS_FOR).map(|(s, _)| s.as_str())
    }

    /// Whether requests can be sent.
    pub fn is_up(&self) -> bool {
        self.link == Link::Up
    }

    /// The request just sent with `pending` has id `request_id`.
    pub fn track(&mut self, request_id: u32, pending: Pending) {
        self.pending.insert(request_id, pending);
    }

    /// A request could not be sent; the connection is broken (its reader
    /// will report it).
    pub fn send_failed(&mut self, pending: Pending, error: &str, now: Now) {
        self.fail_pending(pending, error, now);
    }

    pub(super) fn fail_pending(&mut self, pending: Pending, why: &str, now: Now) {
        match &pending {
            Pending::Say { room, token } => self.pane(PaneId::Room(room.clone())).failed(*token, why),
            Pending::Direct { to, token } => self.pane(PaneId::Direct(to.clone())).failed(*token, why),
            _ => {}
        }
        self.error(format!("{}: {why}", pending.describe()), now);
    }

    /// Whether `text` mentions the own nick, as a word.
    fn mentions(&self, text: &str) -> bool {
        let nick = self.nick.to_lowercase();
        text.to_lowercase()
            .split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .any(|word| word.trim_end_matches('.') == nick)
    }

    /// Adds a live or replayed message to pane `id`, once; a new live one
    /// (or one missed while away) counts as unread if the pane is hidden.
    // The message's parts as the protocol gives them; a struct for them
    // would only be unpacked again here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver(
        &mut self,
        id: PaneId,
        key: MessageKey,
        offset: u64,
        from: &str,
        text: &str,
        history: bool,
        unread: bool,
    ) -> bool {
        let mention = from != self.nick && self.mentions(text);
        let index = match self.find(&id) {
            Some(index) => index,
            None => {
                self.panes.push(Pane::new(id));
                self.panes.len() - 1
            }
        };
        let shown = index == self.current;
        let pane = &mut self.panes[index];
        if matches!(pane.id, PaneId::Room(_)) {
            pane.seen(offset);
        }
        let added = pane.message(key, from, text, history, mention);
        if added && unread && !shown && from != self.nick {
            pane.unread += 1;
            pane.mentioned |= mention;
        }
        added
    }

    /// A frame from the server.
    pub fn frame(&mut self, frame: ServerFrame, now: Now) -> Vec<Effect> {
        match frame {
            ServerFrame::Reply { request_id, reply } => match self.pending.remove(&request_id) {
                Some(pending) => self.reply(pending, reply, now),
                None => {
                    let text = format!("reply to unknown request {request_id}");
                    self.panes[0].notice(now.unix_us, Level::Error, text);
                    Vec::new()
                }
            },
            ServerFrame::Push(push) => self.push(push, now),
        }
    }

    fn reply(&mut self, pending: Pending, reply: Reply, now: Now) -> Vec<Effect> {
        let body = match reply {
            Reply::Ok(body) => body,
            Reply::Error { code: ErrorCode::AlreadyMember, .. } if matches!(pending, Pending::Join(_)) => {
                if let Pending::Join(room) = pending {
                    self.pane(PaneId::Room(room.clone())).joined = true;
                    let index = self.find(&PaneId::Room(room));
                    self.switch_to(index.unwrap_or(self.current));
                }
                return Vec::new();
            }
            Reply::Error { code, message } => {
                self.fail_pending(pending, &code_text(code, &message), now);
                return Vec::new();
            }
        };
        match (pending, body) {
            (Pending::Join(room), OkBody::Joined { members, history, epoch, last_offset, .. }) => {
                let id = PaneId::Room(room.clone());
                let nick = self.nick.clone();
                let pane = self.pane(id.clone());
                pane.joined = true;
                pane.position = Some(Position { epoch, offset: last_offset });
                pane.members.insert(nick);
                pane.history_due = history;
                pane.notice(
                    now.unix_us,
                    Level::Info,
                    format!("you joined #{room} ({})", plural(members, "member")),
                );
                if history > 0 {
                    pane.notice(
                        now.unix_us,
                        Level::Marker,
                        format!("--- history: {} ---", plural(history, "message")),
                    );
                }
                let index = self.find(&id).unwrap_or(self.current);
                self.switch_to(index);
                return vec![Effect::Send(
                    Pending::Who { room: room.clone(), show: false },
                    Request::Who { room },
                )];
            }
            (Pending::Leave(room), OkBody::Empty) => {
                if let Some(index) = self.find(&PaneId::Room(room)) {
                    self.close_pane(index);
                }
            }
            (Pending::Say { room, token }, OkBody::Sent { id, ts_us, offset }) => {
                let pane = self.pane(PaneId::Room(room));
                pane.acknowledged(token, MessageKey { id, ts_us });
                pane.seen(offset);
            }
            (Pending::Direct { to, token }, OkBody::Sent { id, ts_us, .. }) => {
                self.pane(PaneId::Direct(to)).acknowledged(token, MessageKey { id, ts_us });
            }
            (Pending::Rooms, OkBody::Rooms { total, rooms }) => {
                let list: Vec<_> = rooms.iter().map(|r| format!("#{} ({})", r.name, r.members)).collect();
                let cut = if rooms.len() < total as usize {
                    format!(", {} shown", rooms.len())
                } else {
                    String::new()
                };
                let text = format!("{}{cut}: {}", plural(total, "room"), list.join(", "));
                self.current_pane_mut().notice(now.unix_us, Level::Info, text);
            }
            (Pending::Who { room, show }, OkBody::Members { total, nicks }) => {
                if show {
                    let text = format!("#{room} has {}: {}", plural(total, "member"), nicks.join(", "));
                    self.current_pane_mut().notice(now.unix_us, Level::Info, text);
                }
                if let Some(index) = self.find(&PaneId::Room(room)) {
                    self.panes[index].members = nicks.into_iter().collect();
                }
            }
            (Pending::Ping(sent), OkBody::Pong { .. }) => {
                let rtt = now.at.saturating_duration_since(sent);
                self.current_pane_mut().notice(now.unix_us, Level::Info, format!("pong in {rtt:.2?}"));
            }
            (pending, body) => {
                let text = format!("unexpected reply body kind {} to {}", body.kind(), pending.describe());
                self.panes[0].notice(now.unix_us, Level::Error, text);
            }
        }
        Vec::new()
    }

    fn push(&mut self, push: Push, now: Now) -> Vec<Effect> {
        match push {
            Push::Message { room, id, ts_us, offset, from, text, history } => {
                let pane_id = PaneId::Room(room);
                // Nothing for a room left meanwhile.
                let Some(index) = self.find(&pane_id) else { return Vec::new() };
                self.deliver(pane_id, MessageKey { id, ts_us }, offset, &from, &text, history, !history);
                let pane = &mut self.panes[index];
                if history && pane.history_due > 0 {
                    pane.history_due -= 1;
                    if pane.history_due == 0 {
                        pane.notice(now.unix_us, Level::Marker, "--- end of history ---");
                    }
                }
            }
            Push::Direct { id, ts_us, from, text } => {
                let members = [from.clone(), self.nick.clone()].into();
                self.pane(PaneId::Direct(from.clone())).members = members;
                self.deliver(
                    PaneId::Direct(from.clone()),
                    MessageKey { id, ts_us },
                    0,
                    &from,
                    &text,
                    false,
                    true,
                );
            }
            Push::Presence { room, nick, kind } => {
                if let Some(index) = self.find(&PaneId::Room(room.clone())) {
                    let pane = &mut self.panes[index];
                    let verb = match kind {
                        PresenceKind::Joined => pane.members.insert(nick.clone()).then_some("joined"),
                        PresenceKind::Left => pane.members.remove(&nick).then_some("left"),
                    };
                    if let Some(verb) = verb {
                        pane.notice(now.unix_us, Level::Presence, format!("{nick} {verb} #{room}"));
                    }
                }
            }
            Push::MemberCount { room, members } => {
                if let Some(index) = self.find(&PaneId::Room(room)) {
                    self.panes[index].member_count = Some(members);
                }
            }
            Push::Ping { .. } => {}
            Push::GoingAway { retry_after_ms, reason } => {
                let text = format!("server going away: {reason}");
                let hint = Duration::from_millis(retry_after_ms.into());
                return self.lose(text, Some(hint), now);
            }
            Push::Error { code, message } => {
                let text = format!("server: {}", code_text(code, &message));
                self.panes[0].notice(now.unix_us, Level::Error, text.clone());
                self.error(text, now);
            }
        }
        Vec::new()
    }

    /// A frame the client could not decode (the stream goes on).
    pub fn protocol_error(&mut self, what: &str, now: Now) {
        self.panes[0].notice(now.unix_us, Level::Error, format!("protocol error: {what}"));
    }

    /// Closes pane `index` (not the server's).
    pub(super) fn close_pane(&mut self, index: usize) {
        if index == 0 || index >= self.panes.len() {
            return;
        }
        self.panes.remove(index);
        if self.current >= index {
            self.switch_to(self.current.saturating_sub(1).min(self.panes.len() - 1));
        }
    }
}

/// `1 member`, `2 members`.
pub fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `42s`, `3m05s`, for countdowns.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
