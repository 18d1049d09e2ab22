//! One chat connection: the protocol state machine run by the event loop
//! that owns the connection, calling the shared [`ChatCore`].

use crate::core::{lock, send_push, ChatCore, RoomRef, Settings};
use crate::protocol::{
    ClientFrameRef, ErrorCode, OkBody, Push, PushRef, RequestRef, ServerFrame, PROTOCOL_VERSION,
};
use framing::FrameError;
use reactor::{CloseReason, Context, Frame, FrameCodec, FrameDecodeError, FramedContext, Handler};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timer token of the heartbeat check.
const HEARTBEAT: u64 = 1;
/// Fixed part of a list reply (opcode, id, kind, total, count), for cutting
/// lists to the frame limit.
const LIST_REPLY_OVERHEAD: usize = 1 + 4 + 1 + 4 + 4;

/// The chat protocol service, one per event loop.
pub struct ChatService {
    core: Arc<ChatCore>,
    settings: Arc<Settings>,
    generation: u64,
}

/// A room the session is in.
struct Membership {
    name: Arc<str>,
    room: RoomRef,
}

/// Per-connection state.
pub struct Session {
    nick: Option<Arc<str>>,
    rooms: Vec<Membership>,
    /// Token bucket of the rate limit: tokens left, and when last refilled.
    tokens: f64,
    refilled: Instant,
    last_heard: Instant,
    pinged: bool,
}

impl ChatService {
    /// A service for one loop, sharing `core`.
    pub fn new(core: Arc<ChatCore>) -> ChatService {
        ChatService { settings: core.settings(), generation: core.generation(), core }
    }

    fn refresh(&mut self) {
        let generation = self.core.generation();
        if generation != self.generation {
            self.settings = self.core.settings();
            self.generation = generation;
        }
    }

    fn heartbeat_period(&self) -> Duration {
        let idle = Duration::from_millis(u64::from(self.settings.limits.idle_timeout_ms));
        // Check often enough that neither the ping nor the idle close is late
        // by more than a quarter of the shorter interval.
        (self.settings.ping_interval.min(idle) / 4).max(Duration::from_millis(10))
    }

    /// Takes one token from the bucket; false if the sender is over the rate.
    fn take_token(&self, s: &mut Session, now: Instant) -> bool {
        let rate = f64::from(self.settings.limits.rate_per_sec);
        if rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.tokens = (s.tokens + elapsed * rate).min(rate);
        s.refilled = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn request(
        &mut self,
        cx: &mut FramedContext<'_, '_>,
        s: &mut Session,
        request_id: u32,
        req: RequestRef<'_>,
    ) {
        let result = match (req, &s.nick) {
            (RequestRef::Ping { nonce }, _) => Ok(OkBody::Pong { nonce }),
            (RequestRef::Pong { .. }, _) => return, // answers our ping: no reply
            (RequestRef::Login { version, nick, token }, None) => {
                if version != PROTOCOL_VERSION {
                    reply_err(
                        cx,
                        request_id,
                        ErrorCode::UnsupportedVersion,
                        "this server speaks protocol version 1",
                    );
                    return cx.close();
                }
                self.login(cx, s, nick, token)
            }
            (RequestRef::Login { .. }, Some(_)) => {
                Err((ErrorCode::AlreadyLoggedIn, "already logged in".into()))
            }
            (_, None) => Err((ErrorCode::NotLoggedIn, "log in first".into())),
            (RequestRef::Join { room }, Some(nick)) => {
                let nick = nick.clone();
                return self.join(cx, s, request_id, room, &nick);
            }
            (RequestRef::Leave { room }, Some(nick)) => {
                let nick = nick.clone();
                self.leave(cx, s, room, &nick)
            }
            (RequestRef::Say { room, text }, Some(nick)) => {
                let nick = nick.clone();
                self.say(cx, s, room, text, &nick)
            }
            (RequestRef::Direct { to, text }, Some(nick)) => {
                let nick = nick.clone();
                self.direct(cx, s, to, text, &nick)
            }
            (RequestRef::ListRooms, Some(_)) => Ok(self.list_rooms()),
            (RequestRef::Who { room }, Some(_)) => match self.core.who(room) {
                Ok(nicks) => Ok(self.members(nicks)),
                Err(code) => Err((code, format!("no room {room}"))),
            },
        };
        match result {
            Ok(body) => reply(cx, ServerFrame::ok(request_id, body)),
            Err((code, message)) => reply_err(cx, request_id, code, &message),
        }
    }

    fn login(
        &mut self,
        cx: &mut FramedContext<'_, '_>,
        s: &mut Session,
        nick: &str,
        token: Option<&str>,
    ) -> Result<OkBody, (ErrorCode, String)> {
        if let Some(expected) = &self.settings.token {
            if token != Some(expected.as_str()) {
                return Err((ErrorCode::BadToken, "wrong or missing token".into()));
            }
        }
        let nick = self.core.login(nick, cx.id()).map_err(|c| (c, format!("{nick} is taken")))?;
        log::debug!("{} logged in as {nick}", cx.id());
        s.nick = Some(nick);
        Ok(OkBody::Welcome(self.settings.limits))
    }

    fn join(
        &mut self,
        cx: &mut FramedContext<'_, '_>,
        s: &mut Session,
        request_id: u32,
        room: &str,
        nick: &Arc<str>,
    ) {
        if s.rooms.iter().any(|m| &*m.name == room) {
            return reply_err(cx, request_id, ErrorCode::AlreadyMember, &format!("already in {room}"));
        }
        if s.rooms.len() >= self.settings.limits.max_rooms_per_user as usize {
            let max = self.settings.limits.max_rooms_per_user;
            return reply_err(
                cx,
                request_id,
                ErrorCode::TooManyRooms,
                &format!("at most {max} rooms per user"),
            );
        }
        match self.core.join(cx, room, nick) {
            Ok(joined) => {
                let history = joined.history.len() as u32;
                reply(cx, ServerFrame::ok(request_id, OkBody::Joined { members: joined.members, history }));
                for m in &joined.history {
                    let push = PushRef::Message {
                        room,
                        id: m.id,
                        ts_us: m.ts_us,
                        from: &m.from,
                        text: &m.text,
                        history: true,
                    };
                    if let Err(e) = cx.send_frame_with(|buf| push.encode(buf)) {
                        log::error!("history message {} does not fit a frame: {e}", m.id);
                    }
                }
                let name = lock(&joined.room).name().clone();
                s.rooms.push(Membership { name, room: joined.room });
            }
            Err(code) => reply_err(cx, request_id, code, &format!("cannot join {room}")),
        }
    }

    fn leave(
        &mut self,
        cx: &mut FramedContext<'_, '_>,
        s: &mut Session,
        room: &str,
        nick: &str,
    ) -> Result<OkBody, (ErrorCode, String)> {
        let i = s
            .rooms
            .iter()
            .position(|m| &*m.name == room)
            .ok_or((ErrorCode::NotMember, format!("not in {room}")))?;
        s.rooms.swap_remove(i);
        self.core.leave(cx, room, nick).map_err(|c| (c, format!("cannot leave {room}")))?;
        Ok(OkBody::Empty)
    }

    fn check_message(
        &self,
        cx: &FramedContext<'_, '_>,
        s: &mut Session,
        text: &str,
    ) -> Result<(), (ErrorCode, String)> {
        let max = self.settings.limits.max_text_len();
        if text.len() > max {
            return Err((ErrorCode::TextTooLong, format!("text of {} bytes, at most {max}", text.len())));
        }
        if !self.take_token(s, cx.now()) {
            let rate = self.settings.limits.rate_per_sec;
            return Err((
                ErrorCode::RateLimited,
                format!("over {rate} messages per second; message dropped"),
            ));
        }
        Ok(())
    }

    fn say(
        &mut self,
        cx: &mut FramedContext<'_, '_>,
        s: &mut Session,
        room: &str,
        text: &str,
        nick: &Arc<str>,
    ) -> Result<OkBody, (ErrorCode, String)> {
        let Some(m) = s.rooms.iter().find(|m| &*m.name == room) else {
            return Err((ErrorCode::NotMember, format!("not in {room}")));
        };
        let room_ref = m.room.clone();
        self.check_message(cx, s, text)?;
        let (id, ts_us) = self.core.post(cx, &room_ref, nick, text);
        Ok(OkBody::Sent { id, ts_us })
    }

    fn direct(
        &mut self,
        cx: &mut FramedContext<'_, '_>,
        s: &mut Session,
        to: &str,
        text: &str,
        nick: &str,
    ) -> Result<OkBody, (ErrorCode, String)> {
        self.check_message(cx, s, text)?;
        let (id, ts_us) = self.core.direct(cx, to, nick, text).map_err(|c| (c, format!("no user {to}")))?;
        Ok(OkBody::Sent { id, ts_us })
    }

    fn list_rooms(&self) -> OkBody {
        let all = self.core.rooms();
        let total = all.len() as u32;
        let rooms = self.fitting(all, |r| 1 + r.name.len() + 4);
        OkBody::Rooms { total, rooms }
    }

    fn members(&self, all: Vec<String>) -> OkBody {
        let total = all.len() as u32;
        let nicks = self.fitting(all, |n| 1 + n.len());
        OkBody::Members { total, nicks }
    }

    /// The leading items of a list reply that fit one frame, given each
    /// item's encoded size; the reply's total tells the client of the rest.
    fn fitting<T>(&self, all: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<T> {
        let budget = self.settings.limits.max_payload as usize;
        let mut used = LIST_REPLY_OVERHEAD;
        all.into_iter()
            .take_while(|item| {
                used += size(item);
                used <= budget
            })
            .collect()
    }
}

fn reply(cx: &mut FramedContext<'_, '_>, frame: ServerFrame) {
    if let Err(e) = cx.send_frame_with(|buf| frame.encode(buf)) {
        log::error!("reply does not fit a frame: {e}");
    }
}

fn reply_err(cx: &mut FramedContext<'_, '_>, request_id: u32, code: ErrorCode, message: &str) {
    reply(cx, ServerFrame::error(request_id, code, message));
}

fn error_push(cx: &mut FramedContext<'_, '_>, code: ErrorCode, message: &str) {
    send_push(cx, &Push::Error { code, message: message.to_string() });
}

impl Handler for ChatService {
    type Codec = FrameCodec;
    type Conn = Session;

    fn on_open(&mut self, cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) -> Session {
        self.refresh();
        cx.set_timer(self.heartbeat_period(), HEARTBEAT);
        let now = cx.now();
        Session {
            nick: None,
            rooms: Vec::new(),
            tokens: f64::from(self.settings.limits.rate_per_sec),
            refilled: now,
            last_heard: now,
            pinged: false,
        }
    }

    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, s: &mut Session, frame: Frame<'_>) {
        self.refresh();
        s.last_heard = cx.now();
        s.pinged = false;
        match ClientFrameRef::decode(&frame) {
            Ok(f) => self.request(cx, s, f.request_id, f.request),
            Err(e) => {
                let unreadable = e.request_id.is_none();
                reply(cx, e.response());
                if unreadable {
                    // Without a request id the client cannot match the error
                    // to anything: it is not speaking this protocol.
                    cx.close_with(CloseReason::Protocol(format!("undecodable frame: {e}")));
                }
            }
        }
    }

    fn on_decode_error(
        &mut self,
        cx: &mut FramedContext<'_, '_>,
        _s: &mut Session,
        error: &FrameDecodeError,
    ) {
        let code = match error.error {
            FrameError::TooLong { .. } => ErrorCode::FrameTooLarge,
            _ => ErrorCode::Malformed,
        };
        error_push(cx, code, &error.to_string());
    }

    fn tune_codec(&mut self, codec: &mut FrameCodec) {
        codec.set_max_frame_length(self.core.max_payload() as usize);
    }

    fn on_timer(&mut self, cx: &mut FramedContext<'_, '_>, s: &mut Session, token: u64) {
        if token != HEARTBEAT {
            return;
        }
        self.refresh();
        let silent = cx.now().saturating_duration_since(s.last_heard);
        let idle = Duration::from_millis(u64::from(self.settings.limits.idle_timeout_ms));
        if silent >= idle {
            error_push(
                cx,
                ErrorCode::IdleTimeout,
                &format!("nothing received for {} ms", silent.as_millis()),
            );
            cx.close_with(CloseReason::IdleTimeout);
            return;
        }
        if silent >= self.settings.ping_interval && !s.pinged {
            s.pinged = true;
            send_push(cx, &Push::Ping { nonce: crate::core::now_us() });
        }
        cx.set_timer(self.heartbeat_period(), HEARTBEAT);
    }

    fn on_shutdown(&mut self, cx: &mut FramedContext<'_, '_>, _s: &mut Session) {
        let (reason, retry_after_ms) = self.core.going_away();
        send_push(cx, &Push::GoingAway { retry_after_ms, reason });
    }

    fn on_close(&mut self, cx: &mut Context<'_>, s: Session, reason: &CloseReason) {
        let Some(nick) = s.nick else { return };
        for m in s.rooms {
            // NotMember can only mean the room was already left.
            let _ = self.core.leave(cx, &m.name, &nick);
        }
        self.core.logout(&nick, cx.id());
        log::debug!("{nick} ({}) left: {reason}", cx.id());
    }
}
