//! Output of `chat-client` in script mode: one line per event, in a
//! stable format ([`FORMATS`]).

use std::io::{self, Write};

use chat_server::protocol::{ErrorCode, OkBody, PresenceKind, Push, Reply, ServerLimits};

use super::Pending;

/// The script-mode line formats, shown by `--help`.
pub const FORMATS: &str = "\
COMMANDS (one per line on stdin): /join ROOM, /leave [ROOM], /msg NICK TEXT, /rooms,
/who [ROOM], /ping, /quit, /help. Any other line is said in the current room (the last
one joined); //TEXT says /TEXT. At the end of stdin the client waits for the replies
still due, then --linger for trailing events, then quits.

SCRIPT OUTPUT (stdin not a terminal, or --script): one line per event, a keyword then
key=value fields. Names (room, nick) never contain spaces. A free-text field (text,
message, reason) is always last and runs to the end of the line, with \\\\ \\n \\r \\t
and \\u{HEX} escapes for backslash and control characters.

  ok login nick=N max_payload=B rate=R max_rooms=N max_members=M history=H idle_timeout_ms=T
  ok join room=R members=M history=H        (then H 'history' lines)
  ok leave room=R
  ok say room=R id=ID ts=US
  ok direct to=N id=ID ts=US
  ok rooms total=T list=R1:M1,R2:M2          (list may hold fewer than total)
  ok who room=R total=T nicks=N1,N2
  ok ping rtt_us=US
  error code=C name=NAME request=REQ target=R|N|- message=TEXT   (REQ: join, leave, say, ...)
  message room=R id=ID ts=US from=N text=TEXT
  history room=R id=ID ts=US from=N text=TEXT
  direct id=ID ts=US from=N text=TEXT
  presence joined|left room=R nick=N
  server-ping nonce=X                        (already answered)
  going-away retry_after_ms=MS reason=TEXT
  error-push code=C name=NAME message=TEXT
  members room=R count=N                     (large rooms: sent instead of presence)
  protocol-error message=TEXT
  client-error message=TEXT                  (bad command, no current room, ...)
  closed                                     (the server closed the connection; exit 1)

ts is the server time in unix microseconds. A login failure prints nothing on stdout:
a message on stderr and exit status 1.

EXIT STATUS: 0 normal, 1 connection or login failure or connection lost, 2 usage.";

/// Escapes backslashes and control characters so that any text fits on one
/// line, and so that other users cannot send terminal escape sequences.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Prints one event; exits if stdout is gone (nobody reads us any more).
pub fn emit(line: &str) {
    let mut out = io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
}

/// Formats events as script lines.
#[derive(Clone, Copy)]
pub struct Printer;

impl Printer {
    /// Prints one line.
    pub fn out(&self, line: &str) {
        emit(line);
    }

    /// The first line: logged in, and the server's limits.
    pub fn login(&self, nick: &str, l: &ServerLimits) {
        self.out(&format!(
            "ok login nick={nick} max_payload={} rate={} max_rooms={} max_members={} history={} \
             idle_timeout_ms={}",
            l.max_payload,
            l.rate_per_sec,
            l.max_rooms_per_user,
            l.max_members_per_room,
            l.history_len,
            l.idle_timeout_ms
        ));
    }

    /// A local error: a bad command, no current room.
    pub fn client_error(&self, message: &str) {
        self.out(&format!("client-error message={}", escape(message)));
    }

    /// The reply to `pending`.
    pub fn reply(&self, pending: Option<Pending>, request_id: u32, reply: Reply) {
        let Some(pending) = pending else {
            return self.out(&format!("protocol-error message=reply to unknown request {request_id}"));
        };
        let body = match reply {
            Reply::Ok(body) => body,
            Reply::Error { code, message } => return self.error_reply(&pending, code, &message),
        };
        let line = match (pending, body) {
            (Pending::Join(room), OkBody::Joined { members, history, .. }) => {
                format!("ok join room={room} members={members} history={history}")
            }
            (Pending::Leave(room), OkBody::Empty) => format!("ok leave room={room}"),
            (Pending::Say(room), OkBody::Sent { id, ts_us, .. }) => {
                format!("ok say room={room} id={id} ts={ts_us}")
            }
            (Pending::Direct { to }, OkBody::Sent { id, ts_us, .. }) => {
                format!("ok direct to={to} id={id} ts={ts_us}")
            }
            (Pending::Rooms, OkBody::Rooms { total, rooms }) => {
                let list: Vec<_> = rooms.iter().map(|r| format!("{}:{}", r.name, r.members)).collect();
                format!("ok rooms total={total} list={}", list.join(","))
            }
            (Pending::Who(room), OkBody::Members { total, nicks }) => {
                format!("ok who room={room} total={total} nicks={}", nicks.join(","))
            }
            (Pending::Ping(sent), OkBody::Pong { .. }) => {
                format!("ok ping rtt_us={}", sent.elapsed().as_micros())
            }
            (pending, body) => format!(
                "protocol-error message=unexpected reply body kind {} to {}",
                body.kind(),
                pending.describe().0
            ),
        };
        self.out(&line);
    }

    fn error_reply(&self, pending: &Pending, code: ErrorCode, message: &str) {
        let (request, target) = pending.describe();
        self.out(&format!(
            "error code={} name={code:?} request={request} target={target} message={}",
            code.as_u16(),
            escape(message)
        ));
    }

    /// A push.
    pub fn push(&self, push: Push) {
        let line = match push {
            Push::Message { room, id, ts_us, from, text, history, .. } => {
                let keyword = if history { "history" } else { "message" };
                format!("{keyword} room={room} id={id} ts={ts_us} from={from} text={}", escape(&text))
            }
            Push::Direct { id, ts_us, from, text } => {
                format!("direct id={id} ts={ts_us} from={from} text={}", escape(&text))
            }
            Push::Presence { room, nick, kind } => {
                let verb = match kind {
                    PresenceKind::Joined => "joined",
                    PresenceKind::Left => "left",
                };
                format!("presence {verb} room={room} nick={nick}")
            }
            Push::Ping { nonce } => format!("server-ping nonce={nonce}"),
            Push::GoingAway { retry_after_ms, reason } => {
                format!("going-away retry_after_ms={retry_after_ms} reason={}", escape(&reason))
            }
            Push::Error { code, message } => {
                format!("error-push code={} name={code:?} message={}", code.as_u16(), escape(&message))
            }
            Push::MemberCount { room, members } => format!("members room={room} count={members}"),
        };
        self.out(&line);
    }
}
