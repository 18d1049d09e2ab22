//! The connection's state machine: connected, waiting for the next
//! attempt, connecting, or given up. Part of the I/O-free [`App`]: the
//! schedule says when to try, the driver makes the attempts
//! ([`Effect::Connect`]) and reports how they went.
//!
//! Resume: [`App::rejoin_list`] hands each room's last seen position to
//! the attempt, and [`App::connected`] drops what was already shown.

use std::time::{Duration, Instant};

use chat_server::client::reconnect::{is_permanent, Rejoin, RoomRejoined};
use chat_server::client::ClientError;
use chat_server::protocol::{Request, ServerLimits};

use super::app::{clock, plural, App, Effect, Now, Pending};
use super::pane::{Level, MessageKey, PaneId};

/// The state of the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Logged in.
    Up,
    /// Lost; the next attempt is due at `at`.
    Waiting {
        /// When to try.
        at: Instant,
        /// Why the connection was lost.
        why: String,
    },
    /// An attempt is under way.
    Connecting {
        /// Why the connection was lost.
        why: String,
    },
    /// Given up (or never to reconnect); `/reconnect` tries again.
    Down {
        /// Why.
        why: String,
    },
}

impl App {
    /// The connection's state for the status line, with a countdown.
    pub fn link_text(&self, now: Instant) -> String {
        match &self.link {
            Link::Up => format!("{} on {}", self.nick, self.addr),
            Link::Waiting { at, why } => {
                let wait = at.saturating_duration_since(now);
                let left = self.schedule.deadline().map(|d| d.saturating_duration_since(now));
                let left = left.map(|l| format!("; giving up in {}", clock(l))).unwrap_or_default();
                format!(
                    "reconnecting in {} (attempt {}){left} - {why}",
                    clock(wait + Duration::from_millis(999)),
                    self.schedule.attempts()
                )
            }
            Link::Connecting { .. } => {
                format!("connecting to {} (attempt {})...", self.addr, self.schedule.attempts())
            }
            Link::Down { why } => format!("disconnected: {why} - /reconnect to try again"),
        }
    }

    /// The rooms to join again, with where the client was in each.
    pub fn rejoin_list(&self) -> Vec<Rejoin> {
        let rooms = self.panes.iter().filter(|p| p.joined);
        rooms
            .filter_map(|p| match &p.id {
                PaneId::Room(room) => Some(Rejoin { room: room.clone(), position: p.position }),
                _ => None,
            })
            .collect()
    }

    /// The connection was lost, or is being given up (`GoingAway`):
    /// requests in flight fail, and the schedule says when to try again.
    pub(super) fn lose(&mut self, why: String, hint: Option<Duration>, now: Now) -> Vec<Effect> {
        if !self.is_up() {
            return Vec::new();
        }
        let mut pending: Vec<_> = self.pending.drain().collect();
        pending.sort_by_key(|(id, _)| *id);
        for (_, pending) in pending {
            self.fail_pending(pending, "not sent: connection lost", now);
        }
        for pane in &mut self.panes {
            if pane.joined || pane.id == PaneId::Server {
                pane.notice(now.unix_us, Level::Error, format!("connection lost: {why}"));
            }
        }
        self.wait_or_give_up(why, hint, now);
        vec![Effect::Close]
    }

    fn wait_or_give_up(&mut self, why: String, hint: Option<Duration>, now: Now) {
        self.link = match self.schedule.next_attempt(now.at, hint) {
            Some(at) => Link::Waiting { at, why },
            None => {
                let after = self.schedule.give_up_after();
                let why =
                    if after.is_zero() { why } else { format!("{why} (gave up after {})", clock(after)) };
                self.panes[0].notice(now.unix_us, Level::Error, format!("disconnected: {why}"));
                Link::Down { why }
            }
        };
    }

    /// The connection's reader ended with `error`.
    pub fn lost(&mut self, error: &ClientError, now: Now) -> Vec<Effect> {
        self.lose(error.to_string(), None, now)
    }

    /// Time passes: starts the attempt that is due.
    pub fn tick(&mut self, now: Now) -> Vec<Effect> {
        match &self.link {
            Link::Waiting { at, why } if now.at >= *at => self.connect_now(why.clone()),
            _ => Vec::new(),
        }
    }

    /// Starts an attempt now (`/reconnect`, or when one is due).
    pub(super) fn connect_now(&mut self, why: String) -> Vec<Effect> {
        self.link = Link::Connecting { why };
        vec![Effect::Connect(self.rejoin_list())]
    }

    /// `/reconnect`: try now, also after giving up.
    pub(super) fn reconnect(&mut self, now: Now) -> Vec<Effect> {
        match &self.link {
            Link::Up => {
                self.error("already connected", now);
                Vec::new()
            }
            Link::Connecting { .. } => Vec::new(),
            Link::Waiting { why, .. } | Link::Down { why } => {
                let why = why.clone();
                // A fresh window of attempts, counted from now.
                self.schedule.connected();
                let _ = self.schedule.next_attempt(now.at, None);
                self.connect_now(why)
            }
        }
    }

    /// An attempt failed.
    pub fn connect_failed(&mut self, error: &ClientError, now: Now) {
        let Link::Connecting { why } = &self.link else { return };
        let why = why.clone();
        let text = format!("attempt {} failed: {}", self.schedule.attempts(), error);
        self.panes[0].notice(now.unix_us, Level::Error, text);
        if is_permanent(error) {
            self.link = Link::Down { why: error.to_string() };
        } else {
            self.wait_or_give_up(why, None, now);
        }
    }

    /// An attempt succeeded: logged in again, rooms joined again. History
    /// the panes already have is dropped; what was missed is shown as
    /// history and counts as unread.
    pub fn connected(&mut self, limits: ServerLimits, rooms: Vec<RoomRejoined>, now: Now) -> Vec<Effect> {
        self.link = Link::Up;
        self.schedule.connected();
        self.limits = limits;
        self.panes[0].notice(
            now.unix_us,
            Level::Info,
            format!("reconnected to {} as {}", self.addr, self.nick),
        );
        let mut effects = Vec::new();
        for RoomRejoined { room, result } in rooms {
            let id = PaneId::Room(room.clone());
            let joined = match result {
                Ok(joined) => joined,
                Err(e) => {
                    let pane = self.pane(id);
                    pane.joined = false;
                    pane.notice(now.unix_us, Level::Error, format!("could not rejoin #{room}: {e}"));
                    continue;
                }
            };
            // A resumed join replays exactly what came after the pane's
            // position; one that could not resume (the log was lost, or the
            // client was away too long) replays recent history: say there
            // may be a gap. The dedup by id stays as a guard.
            let missed: Vec<_> = {
                let pane = self.pane(id.clone());
                pane.joined = true;
                if pane.position.is_some() && !joined.recovered {
                    let text = "--- could not recover everything missed: there may be a gap ---";
                    pane.notice(now.unix_us, Level::Marker, text);
                }
                pane.position = Some(joined.position());
                joined
                    .history
                    .into_iter()
                    .filter(|m| !pane.has(MessageKey { id: m.id, ts_us: m.ts_us }))
                    .collect()
            };
            let count = u32::try_from(missed.len()).unwrap_or(u32::MAX);
            if count > 0 {
                let text = format!("--- missed while away: {} ---", plural(count, "message"));
                self.pane(id.clone()).notice(now.unix_us, Level::Marker, text);
            }
            for m in &missed {
                let key = MessageKey { id: m.id, ts_us: m.ts_us };
                self.deliver(id.clone(), key, m.offset, &m.from, &m.text, true, true);
            }
            let text = format!("rejoined #{room} ({})", plural(joined.members, "member"));
            self.pane(id).notice(now.unix_us, Level::Info, text);
            effects
                .push(Effect::Send(Pending::Who { room: room.clone(), show: false }, Request::Who { room }));
        }
        effects
    }
}
