//! A pane: the conversation of one room or with one person, or the
//! server's notices. I/O-free.

use std::collections::{BTreeSet, HashSet, VecDeque};

use chat_server::protocol::Position;

/// Entries kept per pane; older ones are dropped.
pub const MAX_ENTRIES: usize = 2000;

/// What a pane shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PaneId {
    /// The server's notices, command output; always the first pane.
    Server,
    /// A room.
    Room(String),
    /// Direct messages with one user.
    Direct(String),
}

impl PaneId {
    /// `*server`, `#room`, `@nick`.
    pub fn label(&self) -> String {
        match self {
            PaneId::Server => "*server".into(),
            PaneId::Room(room) => format!("#{room}"),
            PaneId::Direct(nick) => format!("@{nick}"),
        }
    }

    /// Whether `name` (`#room`, `@nick`, or a bare name) names this pane.
    pub fn is_named(&self, name: &str) -> bool {
        match self {
            PaneId::Server => matches!(name, "*server" | "*" | "server"),
            PaneId::Room(room) => name.strip_prefix('#').unwrap_or(name) == room,
            PaneId::Direct(nick) => name.strip_prefix('@').unwrap_or(name) == nick,
        }
    }
}

/// Where an own message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Acknowledged by the server (or someone else's message).
    Delivered,
    /// Sent, not acknowledged yet; the token ties it to its request.
    Sending(u64),
    /// Refused or lost: why.
    Failed(String),
}

/// The kind of a notice, for its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Information: joined, command output.
    Info,
    /// Something went wrong.
    Error,
    /// Someone joined or left.
    Presence,
    /// A marker around history: where it starts and ends.
    Marker,
}

/// One line of a pane (it may wrap on screen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A chat message.
    Message {
        /// Server time (local time while sending), unix microseconds.
        ts_us: u64,
        /// Sender.
        from: String,
        /// Text as sent.
        text: String,
        /// Replayed history rather than live.
        history: bool,
        /// Whether it mentions the client's nick.
        mention: bool,
        /// For own messages: acknowledged or not.
        delivery: Delivery,
        /// Message id and timestamp, once known: duplicates are dropped.
        key: Option<MessageKey>,
    },
    /// A line from the client itself.
    Notice {
        /// Local time, unix microseconds.
        ts_us: u64,
        /// Style.
        level: Level,
        /// Text.
        text: String,
    },
}

/// What tells a message apart from a copy of it (a rejoin that could not
/// resume replays history the pane may have): its server-wide id and
/// timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageKey {
    /// Server-assigned message id.
    pub id: u64,
    /// Server timestamp, unix microseconds.
    pub ts_us: u64,
}

impl Pane {
    /// Moves the resume position forward to `offset` (never back).
    pub fn seen(&mut self, offset: u64) {
        if let Some(p) = &mut self.position {
            p.offset = p.offset.max(offset);
        }
    }
}

/// A pane's entries, unread count, members and room state.
#[derive(Debug)]
pub struct Pane {
    /// What the pane shows.
    pub id: PaneId,
    entries: VecDeque<Entry>,
    /// Keys of the messages in `entries`, to drop duplicates: a rejoin
    /// replays history the pane already has.
    keys: HashSet<MessageKey>,
    /// Live messages arrived while the pane was not shown.
    pub unread: u32,
    /// Whether one of them mentions the client's nick.
    pub mentioned: bool,
    /// Members of the room (both sides of a conversation).
    pub members: BTreeSet<String>,
    /// The room's member count, when the server sends counts rather than
    /// each join and leave (large rooms).
    pub member_count: Option<u32>,
    /// Whether the client is a member of the room (rooms only).
    pub joined: bool,
    /// The room log's position of the last message seen in the room:
    /// where a rejoin resumes.
    pub position: Option<Position>,
    /// History messages still due after a join.
    pub history_due: u32,
    /// Entries scrolled back from the bottom; 0 follows new messages.
    pub scroll: usize,
}

impl Pane {
    /// An empty pane.
    pub fn new(id: PaneId) -> Pane {
        Pane {
            id,
            entries: VecDeque::new(),
            keys: HashSet::new(),
            unread: 0,
            mentioned: false,
            members: BTreeSet::new(),
            member_count: None,
            joined: false,
            position: None,
            history_due: 0,
            scroll: 0,
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    /// Whether the pane has the message `key`.
    pub fn has(&self, key: MessageKey) -> bool {
        self.keys.contains(&key)
    }

    fn push(&mut self, entry: Entry) {
        if self.entries.len() == MAX_ENTRIES {
            if let Some(Entry::Message { key: Some(key), .. }) = self.entries.pop_front() {
                self.keys.remove(&key);
            }
        }
        if let Entry::Message { key: Some(key), .. } = &entry {
            self.keys.insert(*key);
        }
        self.entries.push_back(entry);
        // A reader scrolled back keeps looking at the same lines.
        if self.scroll > 0 {
            self.scroll = (self.scroll + 1).min(self.entries.len().saturating_sub(1));
        }
    }

    /// Adds a notice.
    pub fn notice(&mut self, ts_us: u64, level: Level, text: impl Into<String>) {
        self.push(Entry::Notice { ts_us, level, text: text.into() });
    }

    /// Adds a message from the server unless the pane already has it.
    /// Returns whether it was added.
    pub fn message(&mut self, key: MessageKey, from: &str, text: &str, history: bool, mention: bool) -> bool {
        if self.keys.contains(&key) {
            return false;
        }
        self.push(Entry::Message {
            ts_us: key.ts_us,
            from: from.to_owned(),
            text: text.to_owned(),
            history,
            mention,
            delivery: Delivery::Delivered,
            key: Some(key),
        });
        true
    }

    /// Adds an own message being sent; [`acknowledged`](Self::acknowledged)
    /// or [`failed`](Self::failed) finish it in place.
    pub fn sending(&mut self, token: u64, ts_us: u64, from: &str, text: &str) {
        let delivery = Delivery::Sending(token);
        let (from, text) = (from.to_owned(), text.to_owned());
        self.push(Entry::Message { ts_us, from, text, history: false, mention: false, delivery, key: None });
    }

    fn position(&self, token: u64) -> Option<usize> {
        self.entries
            .iter()
            .rposition(|e| matches!(e, Entry::Message { delivery: Delivery::Sending(t), .. } if *t == token))
    }

    /// The server acknowledged the message sent with `token`: it takes the
    /// server's id and time. If the pane already has the message (a message
    /// to oneself comes back), the copy being sent goes.
    pub fn acknowledged(&mut self, token: u64, key: MessageKey) {
        let Some(index) = self.position(token) else { return };
        if self.keys.contains(&key) {
            self.entries.remove(index);
            return;
        }
        if let Some(Entry::Message { ts_us, delivery, key: slot, .. }) = self.entries.get_mut(index) {
            *ts_us = key.ts_us;
            *delivery = Delivery::Delivered;
            *slot = Some(key);
            self.keys.insert(key);
        }
    }

    /// The message sent with `token` was refused or lost.
    pub fn failed(&mut self, token: u64, why: &str) {
        let Some(index) = self.position(token) else { return };
        if let Some(Entry::Message { delivery, .. }) = self.entries.get_mut(index) {
            *delivery = Delivery::Failed(why.to_owned());
        }
    }

    /// Scrolls back (positive) or forward (negative) by `entries`.
    pub fn scroll_by(&mut self, entries: isize) {
        let max = self.entries.len().saturating_sub(1);
        self.scroll = self.scroll.saturating_add_signed(entries).min(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u64) -> MessageKey {
        MessageKey { id, ts_us: 1_000 + id }
    }

    #[test]
    fn duplicates_are_dropped_by_id_and_time() {
        let mut p = Pane::new(PaneId::Room("r".into()));
        assert!(p.message(key(1), "bob", "hi", false, false));
        assert!(!p.message(key(1), "bob", "hi", true, false));
        // The same id from a restarted server is another message.
        assert!(p.message(MessageKey { id: 1, ts_us: 9 }, "bob", "new", false, false));
        assert_eq!(p.entries().len(), 2);
    }

    #[test]
    fn own_messages_are_finished_in_place() {
        let mut p = Pane::new(PaneId::Room("r".into()));
        p.sending(7, 5, "me", "first");
        p.message(key(1), "bob", "between", false, false);
        p.sending(8, 6, "me", "second");
        p.acknowledged(7, key(2));
        p.failed(8, "RateLimited (400)");
        let e: Vec<_> = p.entries().iter().collect();
        assert!(
            matches!(e[0], Entry::Message { text, delivery: Delivery::Delivered, ts_us: 1002, .. } if text == "first")
        );
        assert!(
            matches!(e[2], Entry::Message { delivery: Delivery::Failed(why), .. } if why.starts_with("Rate"))
        );
        // The history replay after a rejoin does not show it twice.
        assert!(!p.message(key(2), "me", "first", true, false));
    }

    #[test]
    fn a_message_to_oneself_is_shown_once() {
        let mut p = Pane::new(PaneId::Direct("me".into()));
        p.sending(1, 5, "me", "note to self");
        p.message(key(3), "me", "note to self", false, false);
        p.acknowledged(1, key(3));
        assert_eq!(p.entries().len(), 1);
    }

    #[test]
    fn entries_are_bounded_and_dedup_forgets_dropped_ones() {
        let mut p = Pane::new(PaneId::Room("r".into()));
        for id in 0..MAX_ENTRIES as u64 + 10 {
            p.message(key(id), "bob", "x", false, false);
        }
        assert_eq!(p.entries().len(), MAX_ENTRIES);
        assert_eq!(p.keys.len(), MAX_ENTRIES);
    }

    #[test]
    fn scrolled_back_panes_stay_put() {
        let mut p = Pane::new(PaneId::Server);
        (0..5).for_each(|i| p.notice(i, Level::Info, "x"));
        p.scroll_by(2);
        p.notice(9, Level::Info, "new");
        assert_eq!(p.scroll, 3);
        p.scroll_by(-10);
        assert_eq!(p.scroll, 0);
        p.scroll_by(100);
        assert_eq!(p.scroll, 5);
    }

    #[test]
    fn names() {
        assert!(PaneId::Room("a".into()).is_named("#a"));
        assert!(PaneId::Room("a".into()).is_named("a"));
        assert!(PaneId::Direct("b".into()).is_named("@b"));
        assert!(!PaneId::Direct("b".into()).is_named("#b"));
        assert_eq!(PaneId::Direct("b".into()).label(), "@b");
    }
}
