//! Keys and commands: what the person at the terminal does to the
//! [`App`]. I/O-free like the rest of the state.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use chat_server::protocol::{validate_name, Request};

use super::app::{App, Effect, Now, Pending};
use super::pane::{Level, PaneId};
use crate::command::{parse_command, Command};

/// Entries scrolled by PageUp and PageDown.
const PAGE: isize = 10;

/// `/help` in the terminal UI.
pub const HELP: &[&str] = &[
    "commands:",
    "  /join ROOM          join ROOM (created if needed) and show it",
    "  /leave [ROOM]       leave ROOM (default: the room shown; in a conversation: close it)",
    "  /msg NICK [TEXT]    open a conversation with NICK, and send TEXT",
    "  /switch NAME|N      show #room, @nick or pane number N",
    "  /rooms              list the server's rooms",
    "  /who [ROOM]         list the members of ROOM",
    "  /ping               measure the round-trip time",
    "  /reconnect          connect again now (also after giving up)",
    "  /quit               quit (also Ctrl-C)",
    "  TEXT                say TEXT in the room or conversation shown (//TEXT says /TEXT)",
    "keys:",
    "  Left Right Home End Ctrl-A Ctrl-E   move; Ctrl-Left Ctrl-Right Alt-B Alt-F   by word",
    "  Backspace Delete Ctrl-W Ctrl-U Ctrl-K   delete a character, a word, to the start, to the end",
    "  Up Down   input history;  Tab   complete a nick or command",
    "  Ctrl-N Ctrl-P Alt-Right Alt-Left   next and previous pane;  Alt-1..9   pane N",
    "  PageUp PageDown   scroll;  Esc   back to the newest;  Ctrl-L   redraw",
];

/// Command names, for completion.
const COMMANDS: &[&str] =
    &["/join", "/leave", "/msg", "/switch", "/rooms", "/who", "/ping", "/reconnect", "/quit", "/help"];

/// Strips a leading `#` (rooms) or `@` (nicks).
fn bare(name: &str) -> &str {
    name.strip_prefix(['#', '@']).unwrap_or(name)
}

impl App {
    /// A key was pressed.
    pub fn key(&mut self, key: KeyEvent, now: Now) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let input = &mut self.input;
        match key.code {
            KeyCode::Char('c') if ctrl => return vec![Effect::Quit],
            KeyCode::Char('l') if ctrl => return vec![Effect::Redraw],
            KeyCode::Char('a') if ctrl => input.home(),
            KeyCode::Char('e') if ctrl => input.end(),
            KeyCode::Char('b') if ctrl => input.left(),
            KeyCode::Char('f') if ctrl => input.right(),
            KeyCode::Char('b') if alt => input.word_left(),
            KeyCode::Char('f') if alt => input.word_right(),
            KeyCode::Char('w') if ctrl => input.delete_word_back(),
            KeyCode::Char('u') if ctrl => input.kill_to_start(),
            KeyCode::Char('k') if ctrl => input.kill_to_end(),
            KeyCode::Char('d') if ctrl => input.delete(),
            KeyCode::Char('h') if ctrl => input.backspace(),
            KeyCode::Char('n') if ctrl => self.cycle(1),
            KeyCode::Char('p') if ctrl => self.cycle(-1),
            KeyCode::Char(d @ '1'..='9') if alt => self.switch_to(d as usize - '1' as usize),
            KeyCode::Char(c) if !ctrl && !alt => input.insert(c),
            KeyCode::Backspace if ctrl || alt => input.delete_word_back(),
            KeyCode::Backspace => input.backspace(),
            KeyCode::Delete => input.delete(),
            KeyCode::Left if alt => self.cycle(-1),
            KeyCode::Right if alt => self.cycle(1),
            KeyCode::Left if ctrl => input.word_left(),
            KeyCode::Right if ctrl => input.word_right(),
            KeyCode::Left => input.left(),
            KeyCode::Right => input.right(),
            KeyCode::Home => input.home(),
            KeyCode::End => input.end(),
            KeyCode::Up => input.history_prev(),
            KeyCode::Down => input.history_next(),
            KeyCode::PageUp => self.current_pane_mut().scroll_by(PAGE),
            KeyCode::PageDown => self.current_pane_mut().scroll_by(-PAGE),
            KeyCode::Esc => self.current_pane_mut().scroll = 0,
            KeyCode::Tab => self.complete(),
            KeyCode::Enter => return self.enter(now),
            _ => {}
        }
        Vec::new()
    }

    /// Text pasted (bracketed paste): inserted, never sent by itself.
    pub fn paste(&mut self, text: &str) {
        self.input.insert_str(text);
    }

    fn cycle(&mut self, step: isize) {
        let n = self.panes.len() as isize;
        let next = (self.current as isize + step).rem_euclid(n);
        self.switch_to(next as usize);
    }

    fn complete(&mut self) {
        let pane = &self.panes[self.current];
        let candidates = pane.members.iter().map(String::as_str).chain(COMMANDS.iter().copied());
        self.input.complete(candidates.filter(|c| *c != self.nick));
    }

    /// Enter: runs the line. A line that needs the server while the
    /// connection is down stays in the input, to be sent later.
    fn enter(&mut self, now: Now) -> Vec<Effect> {
        let line = self.input.text().to_owned();
        let command = match parse_command(&line) {
            Ok(command) => command,
            Err(e) => {
                self.error(e, now);
                return Vec::new();
            }
        };
        let needs_server = match command {
            Command::Join(_) | Command::Rooms | Command::Who(_) | Command::Ping | Command::Say(_) => true,
            Command::Leave(_) => matches!(self.current_pane().id, PaneId::Room(_)),
            Command::Msg(_, text) => !text.is_empty(),
            _ => false,
        };
        if needs_server && !self.is_up() {
            self.error("not connected: the line is kept, Enter sends it once connected", now);
            return Vec::new();
        }
        self.input.submit();
        self.run(command, now)
    }

    fn run(&mut self, command: Command<'_>, now: Now) -> Vec<Effect> {
        match command {
            Command::Join(room) => {
                let room = bare(room);
                if let Err(e) = validate_name(room) {
                    self.error(format!("invalid room name {room:?}: {e}"), now);
                } else {
                    match self.find(&PaneId::Room(room.into())) {
                        Some(index) if self.panes[index].joined => self.switch_to(index),
                        _ => {
                            return vec![Effect::Send(
                                Pending::Join(room.into()),
                                Request::Join { room: room.into(), resume: None },
                            )]
                        }
                    }
                }
            }
            Command::Leave(target) => return self.leave(target, now),
            Command::Msg(nick, text) => {
                let nick = bare(nick);
                if let Err(e) = validate_name(nick) {
                    self.error(format!("invalid nickname {nick:?}: {e}"), now);
                    return Vec::new();
                }
                let id = PaneId::Direct(nick.into());
                let members = [nick.to_owned(), self.nick.clone()].into();
                self.pane(id.clone()).members = members;
                let index = self.find(&id).unwrap_or(self.current);
                self.switch_to(index);
                if !text.is_empty() {
                    return self.say(text, now);
                }
            }
            Command::Rooms => return vec![Effect::Send(Pending::Rooms, Request::ListRooms)],
            Command::Who(room) => {
                let room = match (room, &self.current_pane().id) {
                    (Some(room), _) => bare(room).to_owned(),
                    (None, PaneId::Room(room)) => room.clone(),
                    (None, _) => {
                        self.error("/who ROOM, or show a room first", now);
                        return Vec::new();
                    }
                };
                return vec![Effect::Send(
                    Pending::Who { room: room.clone(), show: true },
                    Request::Who { room },
                )];
            }
            Command::Switch(target) => {
                let index = match target.parse::<usize>() {
                    Ok(n) => n.checked_sub(1).filter(|i| *i < self.panes.len()),
                    Err(_) => self.panes.iter().position(|p| p.id.is_named(target)),
                };
                match index {
                    Some(index) => self.switch_to(index),
                    None => self.error(format!("no pane {target}"), now),
                }
            }
            Command::Reconnect => return self.reconnect(now),
            Command::Ping => {
                return vec![Effect::Send(Pending::Ping(now.at), Request::Ping { nonce: now.unix_us })]
            }
            Command::Quit => return vec![Effect::Quit],
            Command::Help => {
                let pane = self.current_pane_mut();
                HELP.iter().for_each(|line| pane.notice(now.unix_us, Level::Info, *line));
            }
            Command::Say(text) => return self.say(text, now),
            Command::Nothing => {}
        }
        Vec::new()
    }

    fn leave(&mut self, target: Option<&str>, now: Now) -> Vec<Effect> {
        let id = match target {
            Some(name) if name.starts_with('@') => PaneId::Direct(bare(name).into()),
            Some(name) => PaneId::Room(bare(name).into()),
            None => self.current_pane().id.clone(),
        };
        let index = self.find(&id);
        match id {
            PaneId::Room(room) if index.is_none_or(|i| self.panes[i].joined) => {
                vec![Effect::Send(Pending::Leave(room.clone()), Request::Leave { room })]
            }
            PaneId::Server => {
                self.error("/leave ROOM, or show a room first", now);
                Vec::new()
            }
            // A conversation, or a room not rejoined: only the pane goes.
            _ => {
                if let Some(index) = index {
                    self.close_pane(index);
                }
                Vec::new()
            }
        }
    }

    /// Says `text` where the current pane points.
    fn say(&mut self, text: &str, now: Now) -> Vec<Effect> {
        let token = self.token();
        let nick = self.nick.clone();
        let (pending, request) = match &self.current_pane().id {
            PaneId::Room(room) if self.current_pane().joined => (
                Pending::Say { room: room.clone(), token },
                Request::Say { room: room.clone(), text: text.into() },
            ),
            PaneId::Room(room) => {
                self.error(format!("you are not in #{room}: /join {room}"), now);
                return Vec::new();
            }
            PaneId::Direct(to) => (
                Pending::Direct { to: to.clone(), token },
                Request::Direct { to: to.clone(), text: text.into() },
            ),
            PaneId::Server => {
                self.error("this pane is for the server: /join ROOM or /msg NICK TEXT first", now);
                return Vec::new();
            }
        };
        self.current_pane_mut().sending(token, now.unix_us, &nick, text);
        vec![Effect::Send(pending, request)]
    }
}
