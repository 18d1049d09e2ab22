//! `chat`: the fan-out workload in the chat protocol (docs/PROTOCOL.md).
//! Each client logs in as `lg{run}_{i}` and joins `room{i mod rooms}`
//! (login and join pipelined, through the `chat_server::protocol` codec);
//! once every join is acknowledged, senders post `Say` messages on the
//! open-loop schedule and every other member times the `Message` push.
//!
//! The server does not echo a message to its sender, so a message owes
//! `members - 1` deliveries. Its default rate limit (50 messages/s per
//! connection, `rate_per_sec` in `[chat]`) turns a benchmark into a count
//! of `RateLimited` replies: benchmark a server configured with
//! `rate_per_sec = 0` (and `max_members_per_room` at least the room size).

use crate::fanout::{self, Event, FanoutArgs, Wire};
use crate::report::Report;
use bytes::BytesMut;
use chat_server::protocol::{
    opcode, ClientFrameRef, OkBody, PushRef, Reply, RequestRef, ServerFrameRef, PROTOCOL_VERSION,
};
use clap::Args;
use std::borrow::Cow;
use std::net::SocketAddr;

/// Largest server frame accepted (the protocol's largest `max_payload`).
const MAX_FRAME: usize = 1 << 20;
const LOGIN_ID: u32 = 1;
const JOIN_ID: u32 = 2;

/// What to do about `RateLimited` replies.
pub const RATE_LIMIT_HINT: &str = "the server rate-limits Say per connection (50 msgs/s by default): \
    benchmark a chat-server whose config sets rate_per_sec = 0 under [chat]";

/// Arguments of `chat`.
#[derive(Args, Clone, Debug)]
pub struct ChatArgs {
    /// Chat server address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub addr: SocketAddr,
    /// Login token, for a server configured with a shared secret.
    #[arg(long, default_value = "")]
    pub token: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: FanoutArgs,
}

/// One chat client's side of the protocol.
pub struct ChatWire {
    nick: String,
    room: String,
    token: String,
    next_id: u32,
    scratch: BytesMut,
}

impl ChatWire {
    /// A client logging in as `nick` with `token` and joining `room`.
    pub fn new(nick: String, room: String, token: String) -> ChatWire {
        ChatWire { nick, room, token, next_id: JOIN_ID + 1, scratch: BytesMut::with_capacity(256) }
    }

    fn request_id(&mut self) -> u32 {
        let id = self.next_id;
        // Ids need only be unique among outstanding requests; skip the
        // handshake's so that a late join reply cannot be mistaken.
        self.next_id = self.next_id.checked_add(1).unwrap_or(JOIN_ID + 1);
        id
    }
}

/// Appends one request as a frame (length prefix and payload), encoded
/// in `scratch`.
fn send(scratch: &mut BytesMut, out: &mut Vec<u8>, request_id: u32, request: RequestRef<'_>) {
    scratch.clear();
    ClientFrameRef { request_id, request }.encode(scratch);
    out.extend_from_slice(&(scratch.len() as u32).to_be_bytes());
    out.extend_from_slice(scratch);
}

/// The text of a live room message push (docs/PROTOCOL.md §8.1), found
/// without the codec's checks of names and UTF-8: this frame comes
/// millions of times a second, and its text is checked by its stamp.
/// `None` if it is not one (the codec then says what it is).
fn live_message_text(payload: &[u8]) -> Option<&[u8]> {
    if payload.first() != Some(&opcode::MESSAGE) || payload.get(1) != Some(&0) {
        return None;
    }
    // opcode, flags, id, timestamp and offset: 26 bytes; then room and sender.
    let from_at = 27 + usize::from(*payload.get(26)?);
    payload.get(from_at + 1 + usize::from(*payload.get(from_at)?)..)
}

fn error_name(code: impl std::fmt::Debug) -> Cow<'static, str> {
    Cow::Owned(format!("{code:?}"))
}

impl Wire for ChatWire {
    fn handshake(&mut self, out: &mut Vec<u8>) {
        // Pipelined: the server handles a connection's requests in order,
        // so the join sees the login done.
        let token = Some(self.token.as_str()).filter(|t| !t.is_empty());
        let login = RequestRef::Login { version: PROTOCOL_VERSION, nick: &self.nick, token };
        send(&mut self.scratch, out, LOGIN_ID, login);
        send(&mut self.scratch, out, JOIN_ID, RequestRef::Join { room: &self.room, resume: None });
    }

    fn publish(&mut self, out: &mut Vec<u8>, payload: &[u8]) {
        // Stamps are ASCII; anything else would be refused as InvalidUtf8.
        let Ok(text) = std::str::from_utf8(payload) else { return };
        let id = self.request_id();
        send(&mut self.scratch, out, id, RequestRef::Say { room: &self.room, text });
    }

    fn next<'a>(&mut self, input: &'a [u8], out: &mut Vec<u8>) -> Result<Option<(Event<'a>, usize)>, String> {
        let Some(head) = input.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > MAX_FRAME {
            return Err(format!("server frame of {len} bytes, over the protocol's {MAX_FRAME}"));
        }
        let Some(payload) = input.get(4..4 + len) else { return Ok(None) };
        if let Some(text) = live_message_text(payload) {
            return Ok(Some((Event::Message(text), 4 + len)));
        }
        let frame = ServerFrameRef::decode(payload).map_err(|e| format!("server frame: {e}"))?;
        let event = match frame {
            ServerFrameRef::Push(PushRef::Message { text, history: false, .. }) => {
                Event::Message(text.as_bytes())
            }
            ServerFrameRef::Reply { request_id, reply: Reply::Ok(OkBody::Joined { .. }) }
                if request_id == JOIN_ID =>
            {
                Event::Joined
            }
            ServerFrameRef::Reply { reply: Reply::Ok(OkBody::Sent { .. }), .. } => Event::Acked,
            ServerFrameRef::Reply { reply: Reply::Error { code, .. }, .. } => {
                Event::Refused(error_name(code))
            }
            ServerFrameRef::Push(PushRef::Ping { nonce }) => {
                send(&mut self.scratch, out, 0, RequestRef::Pong { nonce });
                Event::Other
            }
            ServerFrameRef::Push(PushRef::Error { code, .. }) => Event::Refused(error_name(code)),
            ServerFrameRef::Push(PushRef::GoingAway { .. }) => Event::Refused(Cow::Borrowed("GoingAway")),
            _ => Event::Other,
        };
        Ok(Some((event, 4 + len)))
    }
}

/// Runs the chat scenario.
pub fn run(args: &ChatArgs) -> Result<Report, String> {
    let token = args.token.clone();
    let mut report = fanout::run("chat", args.addr, &args.load, move |i, layout, run| {
        ChatWire::new(format!("lg{run:08x}_{i}"), format!("room{}", layout.room_of(i)), token.clone())
    })?;
    if report.errors.kinds.contains_key("RateLimited") {
        report.errors.hints.push(RATE_LIMIT_HINT.into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_server::protocol::{ClientFrame, ErrorCode, Push, Request, ServerFrame, ServerLimits};

    fn framed(frame: ServerFrame) -> Vec<u8> {
        let mut payload = BytesMut::new();
        frame.encode(&mut payload);
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&payload);
        out
    }

    /// The client frames in `out`, decoded.
    fn requests(mut out: &[u8]) -> Vec<ClientFrame> {
        let mut v = Vec::new();
        while out.len() >= 4 {
            let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
            v.push(ClientFrame::decode(&out[4..4 + len]).unwrap());
            out = &out[4 + len..];
        }
        v
    }

    #[test]
    fn handshake_and_say_use_the_codec() {
        let mut w = ChatWire::new("lg1_0".into(), "room0".into(), String::new());
        let mut out = Vec::new();
        w.handshake(&mut out);
        w.publish(&mut out, b"stamp");
        let reqs = requests(&out);
        assert_eq!(
            reqs.iter().map(|f| (f.request_id, f.request.clone())).collect::<Vec<_>>(),
            [
                (LOGIN_ID, Request::Login { version: PROTOCOL_VERSION, nick: "lg1_0".into(), token: None }),
                (JOIN_ID, Request::Join { room: "room0".into(), resume: None }),
                (3, Request::Say { room: "room0".into(), text: "stamp".into() }),
            ]
        );
    }

    #[test]
    fn server_frames_become_events_across_splits() {
        let message = |text: &str, history| {
            framed(ServerFrame::Push(Push::Message {
                room: "room0".into(),
                id: 9,
                ts_us: 1,
                offset: 1,
                from: "lg1_1".into(),
                text: text.into(),
                history,
            }))
        };
        let stream = [
            framed(ServerFrame::ok(LOGIN_ID, OkBody::Welcome(ServerLimits::default()))),
            framed(ServerFrame::ok(
                JOIN_ID,
                OkBody::Joined { members: 2, history: 1, epoch: 1, last_offset: 1, recovered: false },
            )),
            message("old", true),
            message("new", false),
            framed(ServerFrame::ok(3, OkBody::Sent { id: 10, ts_us: 2, offset: 2 })),
            framed(ServerFrame::error(3, ErrorCode::RateLimited, "slow down")),
            framed(ServerFrame::Push(Push::Ping { nonce: 77 })),
        ]
        .concat();
        let want = [
            Event::Other,
            Event::Joined,
            Event::Other,
            Event::Message(b"new"),
            Event::Acked,
            Event::Refused("RateLimited".into()),
            Event::Other,
        ];
        for cut in 0..stream.len() {
            let (mut w, mut out, mut pending, mut got) =
                (ChatWire::new("a".into(), "b".into(), String::new()), Vec::new(), Vec::new(), Vec::new());
            for chunk in [&stream[..cut], &stream[cut..]] {
                pending.extend_from_slice(chunk);
                let mut used = 0;
                while let Some((ev, n)) = w.next(&pending[used..], &mut out).unwrap() {
                    got.push(format!("{ev:?}"));
                    used += n;
                }
                pending.drain(..used);
            }
            assert_eq!(got, want.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>(), "cut at {cut}");
            assert!(pending.is_empty());
            // The server ping was answered.
            assert_eq!(requests(&out).last().map(|f| f.request.clone()), Some(Request::Pong { nonce: 77 }));
        }
    }

    #[test]
    fn bad_server_frames_close() {
        let mut w = ChatWire::new("a".into(), "b".into(), String::new());
        assert!(w.next(&[0, 0, 0, 1, 0x7f], &mut Vec::new()).is_err());
        assert!(w.next(&[0x10, 0, 0, 0], &mut Vec::new()).is_err());
    }
}
