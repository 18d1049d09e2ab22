//! The terminal UI's state, driven without a terminal or a socket: keys
//! and frames in, effects and screen contents out.

use std::time::{Duration, Instant};

use chat_server::client::reconnect::{Backoff, Rejoin, RetrySchedule, RoomRejoined};
use chat_server::client::{ClientError, HistoryMessage, Joined};
use chat_server::protocol::{
    ErrorCode, OkBody, Position, PresenceKind, Push, Reply, Request, ServerFrame, ServerLimits,
};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use super::app::{App, Effect, Now, Pending};
use super::link::Link;
use super::pane::{Delivery, Entry, PaneId};
use super::view;

struct Harness {
    app: App,
    now: Now,
    next_id: u32,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_window(Duration::from_secs(60))
    }

    fn with_window(window: Duration) -> Harness {
        let now = Now { at: Instant::now(), unix_us: 1_700_000_000_000_000 };
        let schedule = RetrySchedule::new(Backoff::new(ms(100), ms(400)).with_seed(1), window);
        Harness {
            app: App::new("alice", "127.0.0.1:7000", ServerLimits::default(), schedule, now),
            now,
            next_id: 1,
        }
    }

    fn later(&mut self, d: Duration) {
        self.now.at += d;
        self.now.unix_us += d.as_micros() as u64;
    }

    fn key(&mut self, code: KeyCode, modifiers: KeyModifiers) -> Vec<Effect> {
        let effects = self.app.key(KeyEvent::new(code, modifiers), self.now);
        self.sent(effects)
    }

    fn type_str(&mut self, s: &str) {
        for c in s.chars() {
            assert!(self.key(KeyCode::Char(c), KeyModifiers::NONE).is_empty());
        }
    }

    /// Types `line` and Enter; requests are "sent" (tracked with fresh ids).
    fn line(&mut self, line: &str) -> Vec<Effect> {
        self.type_str(line);
        self.key(KeyCode::Enter, KeyModifiers::NONE)
    }

    /// Tracks the requests among `effects` as the driver would, and
    /// returns the other effects plus the sends (for inspection).
    fn sent(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        for effect in &effects {
            if let Effect::Send(pending, _) = effect {
                self.app.track(self.next_id, pending.clone());
                self.next_id += 1;
            }
        }
        effects
    }

    fn reply(&mut self, request_id: u32, body: OkBody) -> Vec<Effect> {
        let effects = self.app.frame(ServerFrame::Reply { request_id, reply: Reply::Ok(body) }, self.now);
        self.sent(effects)
    }

    fn push(&mut self, push: Push) -> Vec<Effect> {
        let effects = self.app.frame(ServerFrame::Push(push), self.now);
        self.sent(effects)
    }

    fn join(&mut self, room: &str, members: u32, history: &[(u64, &str, &str)]) {
        let effects = self.line(&format!("/join {room}"));
        assert!(matches!(&effects[..], [Effect::Send(Pending::Join(r), Request::Join { .. })] if r == room));
        let id = self.next_id - 1;
        let last_offset = history.iter().map(|(id, _, _)| *id).max().unwrap_or(0);
        let body = OkBody::Joined {
            members,
            history: history.len() as u32,
            epoch: EPOCH,
            last_offset,
            recovered: false,
        };
        let effects = self.reply(id, body);
        assert!(matches!(&effects[..], [Effect::Send(Pending::Who { show: false, .. }, _)]));
        for (id, from, text) in history {
            self.push(message(room, *id, from, text, true));
        }
    }

    fn pane(&self, id: PaneId) -> &super::pane::Pane {
        self.app.panes.iter().find(|p| p.id == id).expect("pane exists")
    }

    fn screen(&self) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
        terminal.draw(|f| view::draw(f, &self.app, self.now.at)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut out = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                out.push_str(buffer[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ts(id: u64) -> u64 {
    1_700_000_000_000_000 + id * 1_000_000
}

/// The rooms' log epoch in these tests.
const EPOCH: u64 = 77;

/// A room message whose offset is its id.
fn message(room: &str, id: u64, from: &str, text: &str, history: bool) -> Push {
    Push::Message {
        room: room.into(),
        id,
        ts_us: ts(id),
        offset: id,
        from: from.into(),
        text: text.into(),
        history,
    }
}

fn texts(pane: &super::pane::Pane) -> Vec<String> {
    pane.entries()
        .iter()
        .map(|e| match e {
            Entry::Message { from, text, history: true, .. } => format!("[h] {from}: {text}"),
            Entry::Message { from, text, .. } => format!("{from}: {text}"),
            Entry::Notice { text, .. } => format!("-- {text}"),
        })
        .collect()
}

#[test]
fn a_message_arriving_mid_typing_leaves_the_line_alone() {
    let mut h = Harness::new();
    h.join("lobby", 2, &[]);
    h.type_str("I am typing a long mess");
    h.key(KeyCode::Left, KeyModifiers::NONE);
    h.push(message("lobby", 5, "bob", "interrupting!", false));
    assert_eq!(h.app.input.text(), "I am typing a long mess");
    assert_eq!(h.app.input.cursor(), 22);
    let screen = h.screen();
    assert!(screen.contains("#lobby> I am typing a long mess"), "{screen}");
    assert!(screen.contains("bob: interrupting!"), "{screen}");
}

#[test]
fn joining_shows_history_marked_then_live_messages() {
    let mut h = Harness::new();
    h.join("lobby", 3, &[(1, "bob", "old one"), (2, "carol", "old two")]);
    h.push(message("lobby", 3, "bob", "live", false));
    let pane = h.pane(PaneId::Room("lobby".into()));
    assert_eq!(
        texts(pane),
        [
            "-- you joined #lobby (3 members)",
            "-- --- history: 2 messages ---",
            "[h] bob: old one",
            "[h] carol: old two",
            "-- --- end of history ---",
            "bob: live"
        ]
    );
    assert_eq!(h.app.current_pane().id, PaneId::Room("lobby".into()));
    let screen = h.screen();
    let time = view::hhmm(ts(1));
    assert!(screen.contains(&format!("{time} bob: old one")), "{screen}");
}

#[test]
fn own_messages_show_once_when_acknowledged() {
    let mut h = Harness::new();
    h.join("lobby", 1, &[]);
    let effects = h.line("hello all");
    let [Effect::Send(Pending::Say { token, .. }, Request::Say { text, .. })] = &effects[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(text, "hello all");
    let _ = token;
    let entry = h.app.current_pane().entries().back().unwrap().clone();
    assert!(matches!(entry, Entry::Message { delivery: Delivery::Sending(_), .. }));
    assert!(h.screen().contains("hello all (sending...)"));
    h.reply(h.next_id - 1, OkBody::Sent { id: 9, ts_us: ts(9), offset: 9 });
    let entry = h.app.current_pane().entries().back().unwrap().clone();
    assert!(matches!(entry, Entry::Message { delivery: Delivery::Delivered, ts_us, .. } if ts_us == ts(9)));
    assert_eq!(h.pane(PaneId::Room("lobby".into())).position, Some(Position { epoch: EPOCH, offset: 9 }));
    let screen = h.screen();
    assert_eq!(screen.matches("hello all").count(), 1, "{screen}");
}

#[test]
fn a_refused_message_is_marked_and_the_code_shown() {
    let mut h = Harness::new();
    h.join("lobby", 1, &[]);
    h.line("too fast");
    let id = h.next_id - 1;
    let reply = Reply::Error { code: ErrorCode::RateLimited, message: "slow down".into() };
    h.app.frame(ServerFrame::Reply { request_id: id, reply }, h.now);
    let entry = h.app.current_pane().entries().back().unwrap().clone();
    assert!(matches!(entry, Entry::Message { delivery: Delivery::Failed(_), .. }));
    let status = h.app.status_text(h.now.at).unwrap();
    assert!(status.contains("(400)") && status.contains("slow down"), "{status}");
    assert!(h.screen().contains("(400)"));
}

#[test]
fn unread_counts_and_switching() {
    let mut h = Harness::new();
    h.join("a", 1, &[]);
    h.join("b", 1, &[]);
    h.push(message("a", 1, "bob", "one", false));
    h.push(message("a", 2, "bob", "hey alice, look", false));
    h.push(message("b", 3, "bob", "shown", false));
    let a = h.pane(PaneId::Room("a".into()));
    assert_eq!((a.unread, a.mentioned), (2, true));
    assert_eq!(h.pane(PaneId::Room("b".into())).unread, 0);
    assert!(h.screen().contains("#a (2)"));
    h.line("/switch #a");
    assert_eq!(h.app.current_pane().id, PaneId::Room("a".into()));
    assert_eq!(h.pane(PaneId::Room("a".into())).unread, 0);
    h.key(KeyCode::Char('3'), KeyModifiers::ALT);
    assert_eq!(h.app.current_pane().id, PaneId::Room("b".into()));
    h.key(KeyCode::Char('n'), KeyModifiers::CONTROL);
    assert_eq!(h.app.current, 0, "wraps around to the server pane");
    h.line("/switch 2");
    assert_eq!(h.app.current, 1);
    h.line("/switch nowhere");
    assert!(h.app.status_text(h.now.at).unwrap().contains("no pane"));
}

#[test]
fn direct_messages_have_their_own_pane() {
    let mut h = Harness::new();
    h.join("lobby", 1, &[]);
    h.push(Push::Direct { id: 4, ts_us: ts(4), from: "bob".into(), text: "psst".into() });
    let dm = h.pane(PaneId::Direct("bob".into()));
    assert_eq!((dm.unread, texts(dm)), (1, vec!["bob: psst".to_owned()]));
    let effects = h.line("/msg bob hi back");
    assert!(
        matches!(&effects[..], [Effect::Send(Pending::Direct { to, .. }, Request::Direct { .. })] if to == "bob")
    );
    assert_eq!(h.app.current_pane().id, PaneId::Direct("bob".into()));
    h.reply(h.next_id - 1, OkBody::Sent { id: 5, ts_us: ts(5), offset: 5 });
    let effects = h.line("and more");
    assert!(matches!(&effects[..], [Effect::Send(Pending::Direct { .. }, _)]));
    // /leave in a conversation closes it, without asking the server.
    assert!(h.line("/leave").is_empty());
    assert!(h.app.find(&PaneId::Direct("bob".into())).is_none());
}

#[test]
fn presence_keeps_the_member_list() {
    let mut h = Harness::new();
    h.join("lobby", 2, &[]);
    let who = h.next_id - 1;
    h.reply(who, OkBody::Members { total: 2, nicks: vec!["alice".into(), "bob".into()] });
    h.push(Push::Presence { room: "lobby".into(), nick: "carol".into(), kind: PresenceKind::Joined });
    h.push(Push::Presence { room: "lobby".into(), nick: "bob".into(), kind: PresenceKind::Left });
    let members: Vec<_> = h.pane(PaneId::Room("lobby".into())).members.iter().cloned().collect();
    assert_eq!(members, ["alice", "carol"]);
    let screen = h.screen();
    assert!(screen.contains("members (2)") && screen.contains("carol"), "{screen}");
}

#[test]
fn leave_closes_the_room_pane_on_the_reply() {
    let mut h = Harness::new();
    h.join("lobby", 1, &[]);
    let effects = h.line("/leave");
    assert!(matches!(&effects[..], [Effect::Send(Pending::Leave(r), _)] if r == "lobby"));
    h.reply(h.next_id - 1, OkBody::Empty);
    assert_eq!(h.app.panes.len(), 1);
    assert_eq!(h.app.current, 0);
}

#[test]
fn going_away_reconnects_and_rejoins_without_duplicates() {
    let mut h = Harness::new();
    h.join("lobby", 2, &[(1, "bob", "before")]);
    h.join("other", 1, &[]);
    h.line("/switch other");
    h.line("unacknowledged");
    let effects = h.push(Push::GoingAway { retry_after_ms: 100, reason: "server restarting".into() });
    assert_eq!(effects, [Effect::Close]);
    let Link::Waiting { at, .. } = h.app.link.clone() else { panic!("{:?}", h.app.link) };
    assert!(at >= h.now.at + ms(150) && at <= h.now.at + ms(200), "hint plus jitter");
    assert!(
        h.app.link_text(h.now.at).starts_with("reconnecting in 1s (attempt 1)"),
        "{}",
        h.app.link_text(h.now.at)
    );
    let sent =
        h.app.current_pane().entries().iter().rev().find(|e| matches!(e, Entry::Message { .. })).unwrap();
    assert!(matches!(sent, Entry::Message { delivery: Delivery::Failed(_), .. }), "{sent:?}");

    // Typing goes on; a line to send waits in the input.
    assert!(h.line("typed while away").is_empty());
    assert_eq!(h.app.input.text(), "typed while away");

    assert!(h.app.tick(h.now).is_empty());
    h.later(ms(250));
    let effects = h.app.tick(h.now);
    let expected = vec![
        Rejoin { room: "lobby".into(), position: Some(Position { epoch: EPOCH, offset: 1 }) },
        Rejoin { room: "other".into(), position: Some(Position { epoch: EPOCH, offset: 0 }) },
    ];
    assert_eq!(effects, [Effect::Connect(expected.clone())]);
    assert!(h.app.link_text(h.now.at).starts_with("connecting to 127.0.0.1:7000"));

    // The server is not back yet.
    h.app.connect_failed(&ClientError::Closed, h.now);
    assert!(matches!(h.app.link, Link::Waiting { .. }));
    h.later(ms(500));
    assert_eq!(h.app.tick(h.now), [Effect::Connect(expected)]);

    // Back: the join resumed from offset 1, so history is exactly the one
    // missed message.
    let history = vec![HistoryMessage {
        id: 2,
        ts_us: ts(2),
        offset: 2,
        from: "bob".into(),
        text: "while away".into(),
    }];
    let joined =
        |history, last_offset| Joined { members: 2, history, epoch: EPOCH, last_offset, recovered: true };
    let rooms = vec![
        RoomRejoined { room: "lobby".into(), result: Ok(joined(history, 2)) },
        RoomRejoined { room: "other".into(), result: Ok(Joined { members: 1, ..joined(vec![], 0) }) },
    ];
    let effects = h.app.connected(ServerLimits::default(), rooms, h.now);
    assert_eq!(effects.len(), 2, "member lists asked again: {effects:?}");
    assert!(h.app.is_up());
    let lobby = h.pane(PaneId::Room("lobby".into()));
    let texts = texts(lobby);
    assert_eq!(texts.iter().filter(|t| t.contains("before")).count(), 1, "{texts:?}");
    assert_eq!(
        &texts[texts.len() - 3..],
        ["-- --- missed while away: 1 message ---", "[h] bob: while away", "-- rejoined #lobby (2 members)"]
    );
    assert_eq!(lobby.unread, 1);
    assert_eq!(lobby.position, Some(Position { epoch: EPOCH, offset: 2 }));
    assert!(!texts.iter().any(|t| t.contains("gap")), "recovered: no gap marker");

    // Now the kept line goes.
    let effects = h.key(KeyCode::Enter, KeyModifiers::NONE);
    assert!(matches!(&effects[..], [Effect::Send(Pending::Say { .. }, _)]));
}

#[test]
fn a_dropped_connection_gives_up_after_the_window_and_reconnect_retries() {
    let mut h = Harness::with_window(ms(1000));
    h.join("lobby", 1, &[]);
    assert_eq!(h.app.lost(&ClientError::Closed, h.now), [Effect::Close]);
    // Attempts until the deadline, then the end.
    let mut attempts = 0;
    while !matches!(h.app.link, Link::Down { .. }) {
        h.later(ms(100));
        if let [Effect::Connect(_)] = &h.app.tick(h.now)[..] {
            attempts += 1;
            h.app.connect_failed(&ClientError::Closed, h.now);
        }
        assert!(attempts < 20);
    }
    assert!(attempts >= 2, "{attempts}");
    assert!(h.app.link_text(h.now.at).contains("/reconnect"));
    assert!(h.app.tick(h.now).is_empty());
    assert!(matches!(&h.line("/reconnect")[..], [Effect::Connect(rooms)] if rooms.len() == 1));
    // A refused rejoin leaves the pane, marked.
    let refused = Err(ClientError::Server { code: ErrorCode::TooManyRooms, message: String::new() });
    h.app.connected(
        ServerLimits::default(),
        vec![RoomRejoined { room: "lobby".into(), result: refused }],
        h.now,
    );
    assert!(!h.pane(PaneId::Room("lobby".into())).joined);
    assert!(h.screen().contains("not joined"));
}

#[test]
fn a_permanent_login_error_stops_reconnecting() {
    let mut h = Harness::new();
    h.app.lost(&ClientError::Closed, h.now);
    h.later(ms(500));
    assert!(matches!(&h.app.tick(h.now)[..], [Effect::Connect(_)]));
    h.app.connect_failed(&ClientError::Server { code: ErrorCode::BadToken, message: String::new() }, h.now);
    assert!(matches!(h.app.link, Link::Down { .. }));
}

#[test]
fn a_zero_window_never_reconnects() {
    let mut h = Harness::with_window(Duration::ZERO);
    h.app.lost(&ClientError::Closed, h.now);
    assert!(matches!(h.app.link, Link::Down { .. }));
}

#[test]
fn editing_keys_reach_the_input_line() {
    let mut h = Harness::new();
    h.type_str("hello big world");
    h.key(KeyCode::Char('w'), KeyModifiers::CONTROL);
    h.key(KeyCode::Home, KeyModifiers::NONE);
    h.key(KeyCode::Delete, KeyModifiers::NONE);
    h.key(KeyCode::Char('H'), KeyModifiers::SHIFT);
    assert_eq!(h.app.input.text(), "Hello big ");
    h.key(KeyCode::End, KeyModifiers::NONE);
    h.key(KeyCode::Backspace, KeyModifiers::NONE);
    h.key(KeyCode::Char('u'), KeyModifiers::CONTROL);
    assert_eq!(h.app.input.text(), "");
    h.line("/who");
    assert!(h.app.status_text(h.now.at).is_some(), "no room to ask about");
    h.key(KeyCode::Up, KeyModifiers::NONE);
    assert_eq!(h.app.input.text(), "/who");
    assert_eq!(h.key(KeyCode::Char('c'), KeyModifiers::CONTROL), [Effect::Quit]);
}

#[test]
fn help_and_errors_are_local() {
    let mut h = Harness::new();
    assert!(h.line("/help").is_empty());
    assert!(h.screen().contains("/reconnect"));
    assert!(h.line("hello?").is_empty());
    assert!(h.app.status_text(h.now.at).unwrap().contains("/join ROOM"));
    assert!(h.line("/join bad name!").is_empty());
    assert!(h.app.status_text(h.now.at).unwrap().contains("invalid room name"));
    h.later(Duration::from_secs(31));
    assert!(h.app.status_text(h.now.at).is_none(), "errors fade");
}

#[test]
fn the_screen_fits_small_terminals() {
    let mut h = Harness::new();
    h.join("lobby", 1, &[(1, "bob", "a message long enough to wrap on a narrow terminal, surely")]);
    for (w, hgt) in [(20, 6), (40, 10), (8, 4)] {
        let mut terminal = Terminal::new(TestBackend::new(w, hgt)).unwrap();
        terminal.draw(|f| view::draw(f, &h.app, h.now.at)).unwrap();
    }
}
