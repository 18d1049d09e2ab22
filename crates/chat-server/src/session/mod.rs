//! One chat connection: the protocol state machine run by the event loop
//! that owns the connection, calling the shared [`ChatCore`].
//!
//! Replies leave in request order (PROTOCOL.md §4.2) even when a `Sent`
//! must wait for the room log to make its message durable: while such a
//! reply is outstanding, later replies queue behind it, and requests other
//! than `Say` wait (so that, say, a join's history is never split by a
//! late reply). The queue is bounded per connection.

mod replies;
mod requests;

use crate::cluster::node::ClusterJoin;
use crate::completion::{Completion, Mailbox, ReplyTo, COMPLETION};
use crate::core::{AckTo, ChatCore, Joined, RoomRef, Settings, ACK, ACK_FAILED, KICK};
use crate::protocol::{
    ClientFrame, ClientFrameRef, DecodeErrorKind, ErrorCode, OkBody, Position, Push, PushRef, Request,
    RequestRef, ServerFrame, PROTOCOL_VERSION,
};
use crate::store::Entry;
use bytes::BytesMut;
use framing::FrameError;
use reactor::{CloseReason, Context, Frame, FrameCodec, FrameDecodeError, FramedContext, Handler};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::DerefMut;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timer token of the heartbeat check.
const HEARTBEAT: u64 = 1;
/// Fixed part of a list reply (opcode, id, kind, total, count), for cutting
/// lists to the frame limit.
const LIST_REPLY_OVERHEAD: usize = 1 + 4 + 1 + 4 + 4;
/// Replies and requests a connection may have waiting behind a message
/// that is not yet durable; past it the connection is closed.
const MAX_WAITING: usize = 4096;

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

/// A reply in request order: ready, or waiting for the log.
enum Slot {
    Ready(ServerFrame),
    /// A `Say` whose message the log has not yet reported durable.
    Stored {
        seq: u64,
        request_id: u32,
        body: OkBody,
    },
    /// A request waiting for the cluster (a [`Completion`] with `seq`).
    Pending {
        seq: u64,
        request_id: u32,
        /// It is a `Say` (later `Say`s may go ahead behind it).
        say: bool,
        /// The request, to run again on [`Completion::Retry`].
        retry: Option<ClientFrame>,
    },
}

impl Slot {
    /// Later `Say`s may be handled behind this slot.
    fn lets_say_through(&self) -> bool {
        matches!(self, Slot::Stored { .. } | Slot::Pending { say: true, .. })
    }
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
    /// Rooms created in the current minute, and when that minute began.
    created: u32,
    created_since: Instant,
    /// Replies waiting for the log, in request order.
    slots: VecDeque<Slot>,
    /// Requests waiting for `slots` to empty.
    deferred: VecDeque<ClientFrame>,
    next_seq: u64,
    /// The session credential a WebSocket handshake carried (cookie or
    /// `Authorization`): a `Login` with its nickname needs no token.
    preauth: Option<Box<str>>,
    /// In a cluster: where answers from Redis land (made at first use).
    mailbox: Option<Mailbox>,
    /// In a cluster: the nickname being claimed, until the claim is answered.
    claiming: Option<Arc<str>>,
}

impl Session {
    fn waiting(&self) -> usize {
        self.slots.len() + self.deferred.len()
    }

    /// Where the answer to a request waiting for the cluster goes: a new
    /// sequence number on this connection's mailbox.
    fn reply_to(&mut self, conn: reactor::ConnId) -> ReplyTo {
        self.next_seq += 1;
        let mailbox = self.mailbox.get_or_insert_with(Mailbox::default).clone();
        ReplyTo { conn, seq: self.next_seq, mailbox }
    }
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

    /// Whether the session may create another room now.
    fn may_create(&self, s: &mut Session, now: Instant) -> bool {
        if now.saturating_duration_since(s.created_since) >= Duration::from_secs(60) {
            s.created = 0;
            s.created_since = now;
        }
        s.created < self.settings.room_creations_per_minute
    }
}

fn reply<'a>(cx: &mut impl Door<'a>, frame: ServerFrame) {
    cx.send_payload(|buf| frame.encode(buf));
}

fn reply_err<'a>(cx: &mut impl Door<'a>, request_id: u32, code: ErrorCode, message: &str) {
    reply(cx, ServerFrame::error(request_id, code, message));
}

fn error_push<'a>(cx: &mut impl Door<'a>, code: ErrorCode, message: &str) {
    let push = Push::Error { code, message: message.to_string() };
    cx.send_payload(|buf| push.encode(buf));
}

/// What a door does that the protocol needs: send one payload in its own
/// framing (a length-prefixed frame, a WebSocket message), and close in
/// its own words. Everything else is the reactor [`Context`] it derefs to.
pub trait Door<'a>: DerefMut<Target = Context<'a>> {
    /// Sends one payload that `fill` writes into the output buffer.
    fn send_payload(&mut self, fill: impl FnOnce(&mut BytesMut));

    /// Closes the connection once what is queued is written (a WebSocket
    /// says `why` in its close frame).
    fn close_door(&mut self, why: &str) {
        let _ = why;
        self.close();
    }
}

impl<'a> Door<'a> for FramedContext<'_, 'a> {
    fn send_payload(&mut self, fill: impl FnOnce(&mut BytesMut)) {
        if let Err(e) = self.send_frame_with(fill) {
            log::error!("a reply does not fit a frame: {e}");
        }
    }
}

impl ChatService {
    /// A new connection's session (`preauth`: the credential its WebSocket
    /// handshake carried, if any); arms the heartbeat.
    pub(crate) fn open<'a>(&mut self, cx: &mut impl Door<'a>, preauth: Option<Box<str>>) -> Session {
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
            created: 0,
            created_since: now,
            slots: VecDeque::new(),
            deferred: VecDeque::new(),
            next_seq: 0,
            preauth,
            mailbox: None,
            claiming: None,
        }
    }

    /// One payload from the client (a frame's, a WebSocket message's).
    pub(crate) fn payload<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session, payload: &[u8]) {
        self.refresh();
        s.last_heard = cx.now();
        s.pinged = false;
        match ClientFrameRef::decode(payload) {
            Ok(f) => self.take(cx, s, f),
            Err(e) => {
                let fatal = match e.kind {
                    // Another version may lay frames out otherwise: nothing
                    // more from this client can be read (§4.1).
                    DecodeErrorKind::UnsupportedVersion(v) => {
                        reply(
                            cx,
                            ServerFrame::error(
                                e.request_id.unwrap_or(0),
                                ErrorCode::UnsupportedVersion,
                                format!("protocol version {v} is not supported; this server speaks {PROTOCOL_VERSION}"),
                            ),
                        );
                        Some(format!("protocol version {v}"))
                    }
                    // Without a request id the client cannot match the error
                    // to anything: it is not speaking this protocol.
                    _ if e.request_id.is_none() => {
                        reply(cx, e.response());
                        Some(format!("undecodable frame: {e}"))
                    }
                    _ => {
                        let frame = e.response();
                        self.answer(cx, s, frame);
                        None
                    }
                };
                if let Some(why) = fatal {
                    cx.close_with(CloseReason::Protocol(why));
                }
            }
        }
    }

    /// The heartbeat timer: ping a silent client, close an idle one.
    /// Returns false if the connection was closed as idle.
    pub(crate) fn heartbeat<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session, token: u64) -> bool {
        if token != HEARTBEAT {
            return true;
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
            return false;
        }
        if silent >= self.settings.ping_interval && !s.pinged {
            s.pinged = true;
            let push = Push::Ping { nonce: crate::core::now_us() };
            cx.send_payload(|buf| push.encode(buf));
        }
        cx.set_timer(self.heartbeat_period(), HEARTBEAT);
        true
    }

    /// A notify for the connection: the log's answer about a message, or
    /// the end of its hold on its nickname ([`KICK`]).
    pub(crate) fn notified<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session, token: u64) {
        if token & (ACK | KICK) == 0 && token & COMPLETION != 0 {
            self.completed(cx, s);
        } else if token & ACK != 0 {
            let seq = token & !(ACK | ACK_FAILED);
            self.stored(cx, s, seq, token & ACK_FAILED == 0);
        } else if token & KICK != 0 {
            let code = ErrorCode::from_u16(token as u16).unwrap_or(ErrorCode::BadToken);
            let why = match code {
                ErrorCode::NicknameTaken => "signed in again from elsewhere",
                _ => "the session ended (logged out or expired)",
            };
            error_push(cx, code, why);
            cx.close_door(why);
        }
    }

    /// The going-away push of a shutdown or an upgrade.
    pub(crate) fn going_away<'a>(&mut self, cx: &mut impl Door<'a>) {
        let (reason, retry_after_ms) = self.core.going_away();
        let push = Push::GoingAway { retry_after_ms, reason };
        cx.send_payload(|buf| push.encode(buf));
    }

    /// The connection closed: leave its rooms, free its nickname.
    pub(crate) fn closed(&mut self, cx: &mut Context<'_>, s: Session, reason: &CloseReason) {
        if let Some(nick) = &s.claiming {
            self.core.logout(nick, cx.id());
        }
        let Some(nick) = s.nick else { return };
        for m in s.rooms {
            // NotMember can only mean the room was already left.
            let _ = match self.core.cluster().cloned() {
                Some(c) => self.core.cluster_leave(&c, cx, &m.room),
                None => self.core.leave(cx, &m.room),
            };
        }
        self.core.logout(&nick, cx.id());
        log::debug!("{nick} ({}) left: {reason}", cx.id());
    }
}

impl Handler for ChatService {
    type Codec = FrameCodec;
    type Conn = Session;

    fn on_open(&mut self, cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) -> Session {
        self.open(cx, None)
    }

    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, s: &mut Session, frame: Frame<'_>) {
        self.payload(cx, s, frame.payload());
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
        self.heartbeat(cx, s, token);
    }

    fn on_notify(&mut self, cx: &mut FramedContext<'_, '_>, s: &mut Session, token: u64) {
        self.notified(cx, s, token);
    }

    fn on_loop_notify(&mut self, cx: &mut Context<'_>, _token: u64) {
        self.core.deliver_queued(cx);
    }

    fn on_shutdown(&mut self, cx: &mut FramedContext<'_, '_>, _s: &mut Session) {
        self.going_away(cx);
    }

    fn on_close(&mut self, cx: &mut Context<'_>, s: Session, reason: &CloseReason) {
        self.closed(cx, s, reason);
    }
}
