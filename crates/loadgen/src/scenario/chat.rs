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

/// How payloads travel: the TCP door's length prefix, or one WebSocket
/// message each (docs/PROTOCOL.md §1.1) after an HTTP upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Framing {
    LengthPrefix,
    WebSocket {
        /// `Host` of the upgrade request.
        host: String,
        /// The 101 arrived: frames follow.
        upgraded: bool,
        /// Mask key generator state (client frames must be masked).
        mask: u32,
    },
}

/// One chat client's side of the protocol.
pub struct ChatWire {
    nick: String,
    room: String,
    token: String,
    next_id: u32,
    scratch: BytesMut,
    framing: Framing,
}

impl ChatWire {
    /// A client logging in as `nick` with `token` and joining `room`.
    pub fn new(nick: String, room: String, token: String) -> ChatWire {
        ChatWire {
            nick,
            room,
            token,
            next_id: JOIN_ID + 1,
            scratch: BytesMut::with_capacity(256),
            framing: Framing::LengthPrefix,
        }
    }

    /// The same client over WebSocket: `GET /ws` on the HTTP listener at
    /// `host`, then one payload per binary message.
    pub fn websocket(nick: String, room: String, token: String, host: String, seed: u32) -> ChatWire {
        let mask = seed.wrapping_mul(0x9e37_79b9) | 1;
        ChatWire {
            framing: Framing::WebSocket { host, upgraded: false, mask },
            ..ChatWire::new(nick, room, token)
        }
    }

    /// Appends one request in this client's framing.
    fn send(&mut self, out: &mut Vec<u8>, request_id: u32, request: RequestRef<'_>) {
        self.scratch.clear();
        ClientFrameRef { request_id, request }.encode(&mut self.scratch);
        match &mut self.framing {
            Framing::LengthPrefix => {
                out.extend_from_slice(&(self.scratch.len() as u32).to_be_bytes());
                out.extend_from_slice(&self.scratch);
            }
            Framing::WebSocket { mask, .. } => {
                // xorshift32: a different key per frame, as RFC 6455 asks.
                *mask ^= *mask << 13;
                *mask ^= *mask >> 17;
                *mask ^= *mask << 5;
                ws_client_frame(out, &self.scratch, mask.to_be_bytes());
            }
        }
    }

    fn login_and_join(&mut self, out: &mut Vec<u8>) {
        // Pipelined: the server handles a connection's requests in order,
        // so the join sees the login done.
        let token = Some(self.token.clone()).filter(|t| !t.is_empty());
        let nick = self.nick.clone();
        let room = self.room.clone();
        let login = RequestRef::Login { version: PROTOCOL_VERSION, nick: &nick, token: token.as_deref() };
        self.send(out, LOGIN_ID, login);
        self.send(out, JOIN_ID, RequestRef::Join { room: &room, resume: None });
    }

    /// The next payload of `input` and the bytes it took, in this client's
    /// framing; `Ok(None)`: incomplete. The WebSocket handshake's answer
    /// is taken here (and the login sent behind it): `Some((&[], n))`.
    fn payload<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<(&'a [u8], usize)>, String> {
        match &mut self.framing {
            Framing::LengthPrefix => {
                let Some(head) = input.get(..4) else { return Ok(None) };
                let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
                if len > MAX_FRAME {
                    return Err(format!("server frame of {len} bytes, over the protocol's {MAX_FRAME}"));
                }
                Ok(input.get(4..4 + len).map(|p| (p, 4 + len)))
            }
            Framing::WebSocket { upgraded: false, .. } => {
                let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
                if !input.starts_with(b"HTTP/1.1 101 ") {
                    let line = input.split(|&b| b == b'\r').next().unwrap_or_default();
                    return Err(format!("no WebSocket upgrade: {}", String::from_utf8_lossy(line)));
                }
                if let Framing::WebSocket { upgraded, .. } = &mut self.framing {
                    *upgraded = true;
                }
                self.login_and_join(out);
                Ok(Some((&[], end + 4)))
            }
            Framing::WebSocket { upgraded: true, .. } => {
                let Some((first, payload, used)) = ws_server_frame(input)? else { return Ok(None) };
                match first {
                    0x82 => Ok(Some((payload, used))),
                    0x88 => {
                        let code = payload.get(..2).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                        Err(format!("the server closed the WebSocket with {code}"))
                    }
                    // Pings from the server would need a pong; it sends none.
                    other => Err(format!("unexpected WebSocket frame 0x{other:02x}")),
                }
            }
        }
    }

    fn request_id(&mut self) -> u32 {
        let id = self.next_id;
        // Ids need only be unique among outstanding requests; skip the
        // handshake's so that a late join reply cannot be mistaken.
        self.next_id = self.next_id.checked_add(1).unwrap_or(JOIN_ID + 1);
        id
    }
}

/// Appends a final binary client frame holding `payload`, masked with `key`.
fn ws_client_frame(out: &mut Vec<u8>, payload: &[u8], key: [u8; 4]) {
    out.push(0x82);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
}

/// A server frame: its first byte, its payload, and the bytes it took.
type WsFrame<'a> = (u8, &'a [u8], usize);

/// A whole server frame at the start of `input`; `Ok(None)` if
/// incomplete. Server frames are not masked, and the server sends every
/// message in one frame.
fn ws_server_frame(input: &[u8]) -> Result<Option<WsFrame<'_>>, String> {
    let (Some(&first), Some(&second)) = (input.first(), input.get(1)) else { return Ok(None) };
    if second & 0x80 != 0 {
        return Err("a masked server frame".into());
    }
    let (len, at) = match second & 0x7f {
        126 => match input.get(2..4) {
            Some(l) => (u16::from_be_bytes([l[0], l[1]]) as usize, 4),
            None => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(l) => (u64::from_be_bytes(l.try_into().map_err(|_| "short length")?) as usize, 10),
            None => return Ok(None),
        },
        n => (n as usize, 2),
    };
    if len > MAX_FRAME {
        return Err(format!("server frame of {len} bytes, over the protocol's {MAX_FRAME}"));
    }
    Ok(input.get(at..at + len).map(|p| (first, p, at + len)))
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
        match &self.framing {
            Framing::LengthPrefix => self.login_and_join(out),
            Framing::WebSocket { host, .. } => {
                // The login follows the 101 (see `payload`).
                let req = format!(
                    "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                );
                out.extend_from_slice(req.as_bytes());
            }
        }
    }

    fn publish(&mut self, out: &mut Vec<u8>, payload: &[u8]) {
        // Stamps are ASCII; anything else would be refused as InvalidUtf8.
        let Ok(text) = std::str::from_utf8(payload) else { return };
        let id = self.request_id();
        let room = std::mem::take(&mut self.room);
        self.send(out, id, RequestRef::Say { room: &room, text });
        self.room = room;
    }

    fn next<'a>(&mut self, input: &'a [u8], out: &mut Vec<u8>) -> Result<Option<(Event<'a>, usize)>, String> {
        let Some((payload, len)) = self.payload(input, out)? else { return Ok(None) };
        if payload.is_empty() {
            return Ok(Some((Event::Other, len)));
        }
        if let Some(text) = live_message_text(payload) {
            return Ok(Some((Event::Message(text), len)));
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
                self.send(out, 0, RequestRef::Pong { nonce });
                Event::Other
            }
            ServerFrameRef::Push(PushRef::Error { code, .. }) => Event::Refused(error_name(code)),
            ServerFrameRef::Push(PushRef::GoingAway { .. }) => Event::Refused(Cow::Borrowed("GoingAway")),
            _ => Event::Other,
        };
        Ok(Some((event, len)))
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
pub(crate) mod tests {
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
    pub(crate) fn requests(mut out: &[u8]) -> Vec<ClientFrame> {
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

    /// Client frames in `out`: unmasked payloads, decoded.
    fn ws_requests(mut out: &[u8]) -> Vec<ClientFrame> {
        let mut v = Vec::new();
        while !out.is_empty() {
            assert_eq!(out[0], 0x82);
            assert!(out[1] & 0x80 != 0, "masked");
            let (len, at) = match out[1] & 0x7f {
                126 => (u16::from_be_bytes([out[2], out[3]]) as usize, 4),
                n => (n as usize, 2),
            };
            let key = &out[at..at + 4];
            let payload: Vec<u8> =
                out[at + 4..at + 4 + len].iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
            v.push(ClientFrame::decode(&payload).unwrap());
            out = &out[at + 4 + len..];
        }
        v
    }

    #[test]
    fn over_websocket_the_login_follows_the_upgrade_and_payloads_are_messages() {
        let mut w = ChatWire::websocket("a".into(), "r".into(), String::new(), "h:1".into(), 7);
        let mut out = Vec::new();
        w.handshake(&mut out);
        let req = String::from_utf8(out.clone()).unwrap();
        assert!(req.starts_with("GET /ws HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\n"), "{req}");
        out.clear();
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(w.next(head, &mut out).unwrap(), Some((Event::Other, head.len())));
        let reqs: Vec<u32> = ws_requests(&out).iter().map(|f| f.request_id).collect();
        assert_eq!(reqs, [LOGIN_ID, JOIN_ID]);
        out.clear();
        w.publish(&mut out, &[b'x'; 300]);
        assert!(matches!(&ws_requests(&out)[0].request, Request::Say { text, .. } if text.len() == 300));
        // A server message: unmasked, one binary frame.
        let framed_msg = framed(ServerFrame::Push(Push::Message {
            room: "r".into(),
            id: 1,
            ts_us: 1,
            offset: 1,
            from: "b".into(),
            text: "hi".into(),
            history: false,
        }));
        let mut frame = vec![0x82, (framed_msg.len() - 4) as u8];
        frame.extend_from_slice(&framed_msg[4..]);
        assert_eq!(w.next(&frame[..3], &mut out).unwrap(), None);
        assert_eq!(w.next(&frame, &mut out).unwrap(), Some((Event::Message(b"hi"), frame.len())));
        assert!(w.next(&[0x88, 2, 0x03, 0xe9], &mut out).unwrap_err().contains("1001"));
        let mut refused = ChatWire::websocket("a".into(), "r".into(), String::new(), "h:1".into(), 7);
        let err = refused.next(b"HTTP/1.1 426 Upgrade Required\r\n\r\n", &mut out).unwrap_err();
        assert!(err.contains("426"), "{err}");
    }

    #[test]
    fn bad_server_frames_close() {
        let mut w = ChatWire::new("a".into(), "b".into(), String::new());
        assert!(w.next(&[0, 0, 0, 1, 0x7f], &mut Vec::new()).is_err());
        assert!(w.next(&[0x10, 0, 0, 0], &mut Vec::new()).is_err());
    }
}
