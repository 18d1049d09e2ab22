//! One chat connection: the protocol state machine run by the event loop
//! that owns the connection, calling the shared [`ChatCore`].
//!
//! Replies leave in request order (PROTOCOL.md §4.2) even when a `Sent`
//! must wait for the room log to make its message durable: while such a
//! reply is outstanding, later replies queue behind it, and requests other
//! than `Say` wait (so that, say, a join's history is never split by a
//! late reply). The queue is bounded per connection.

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

    /// Takes a decoded request: handled now, or queued behind a reply that
    /// waits for the log.
    fn take<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session, frame: ClientFrameRef<'_>) {
        let is_say = matches!(frame.request, RequestRef::Say { .. });
        if matches!(frame.request, RequestRef::Pong { .. }) {
            return; // answers our ping: no reply, nothing to order
        }
        let may_pass = is_say && s.slots.iter().all(Slot::lets_say_through);
        if !s.deferred.is_empty() || (!s.slots.is_empty() && !may_pass) {
            if s.waiting() >= MAX_WAITING {
                error_push(cx, ErrorCode::RateLimited, "too many requests waiting for the room log");
                return cx.close_with(CloseReason::Protocol("too many requests in flight".into()));
            }
            s.deferred.push_back(frame.into_owned());
            return;
        }
        self.request(cx, s, frame.request_id, frame.request);
    }

    /// Answers in request order: now, or behind the replies still waiting.
    fn answer<'a>(&self, cx: &mut impl Door<'a>, s: &mut Session, frame: ServerFrame) {
        if s.slots.is_empty() {
            reply(cx, frame);
        } else {
            s.slots.push_back(Slot::Ready(frame));
        }
    }

    fn request<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session, request_id: u32, req: RequestRef<'_>) {
        let result = match (req, &s.nick) {
            (RequestRef::Ping { nonce }, _) => Ok(OkBody::Pong { nonce }),
            (RequestRef::Pong { .. }, _) => return,
            (RequestRef::Login { nick, token, .. }, None) => match self.core.cluster().cloned() {
                Some(c) => return self.cluster_login(cx, s, request_id, &c, nick, token),
                None => self.login(cx, s, nick, token),
            },
            (RequestRef::Login { .. }, Some(_)) => {
                Err((ErrorCode::AlreadyLoggedIn, "already logged in".into()))
            }
            (_, None) => Err((ErrorCode::NotLoggedIn, "log in first".into())),
            (RequestRef::Join { room, resume }, Some(nick)) => {
                let nick = nick.clone();
                return self.join(cx, s, request_id, room, resume, &nick, None);
            }
            (RequestRef::Leave { room }, Some(_)) => self.leave(cx, s, room),
            (RequestRef::Say { room, text }, Some(nick)) => {
                let nick = nick.clone();
                return self.say(cx, s, request_id, room, text, &nick);
            }
            (RequestRef::Direct { to, text }, Some(nick)) => {
                let nick = nick.clone();
                if let Some(c) = self.core.cluster().cloned() {
                    if let Err((code, message)) = self.check_message(cx, s, text) {
                        return self.answer(cx, s, ServerFrame::error(request_id, code, &message));
                    }
                    let reply = s.reply_to(cx.id());
                    self.pending(s, request_id, &reply, false, None);
                    return self.core.cluster_direct(&c, to, &nick, text, reply);
                }
                self.direct(cx, s, to, text, &nick)
            }
            (RequestRef::ListRooms, Some(_)) => match self.core.cluster().cloned() {
                Some(c) => {
                    let reply = s.reply_to(cx.id());
                    self.pending(s, request_id, &reply, false, None);
                    return self.core.cluster_rooms(&c, reply);
                }
                None => Ok(self.list_rooms()),
            },
            (RequestRef::Who { room }, Some(_)) => match self.core.cluster().cloned() {
                Some(c) => {
                    let reply = s.reply_to(cx.id());
                    self.pending(s, request_id, &reply, false, None);
                    return self.core.cluster_who(&c, room, reply);
                }
                None => match self.core.who(room) {
                    Ok(nicks) => Ok(self.members(nicks)),
                    Err(code) => Err((code, format!("no room {room}"))),
                },
            },
        };
        let frame = match result {
            Ok(body) => ServerFrame::ok(request_id, body),
            Err((code, message)) => ServerFrame::error(request_id, code, &message),
        };
        self.answer(cx, s, frame);
    }

    /// Queues a slot for a request whose answer comes from the cluster.
    fn pending(
        &self,
        s: &mut Session,
        request_id: u32,
        reply: &ReplyTo,
        say: bool,
        retry: Option<ClientFrame>,
    ) {
        s.slots.push_back(Slot::Pending { seq: reply.seq, request_id, say, retry });
    }

    /// A login on a node of a cluster: the nickname is claimed on this
    /// node's identity table, then across the cluster (the answer comes
    /// when Redis has said). A session credential attaches at once: its
    /// nickname was claimed across the cluster when the session opened.
    fn cluster_login<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        cluster: &crate::cluster::Cluster,
        nick: &str,
        token: Option<&str>,
    ) {
        let credential = token.filter(|t| crate::core::is_credential(t)).or(s.preauth.as_deref());
        if credential.is_some() {
            let frame = match self.login(cx, s, nick, token) {
                Ok(body) => ServerFrame::ok(request_id, body),
                Err((code, message)) => ServerFrame::error(request_id, code, &message),
            };
            return self.answer(cx, s, frame);
        }
        if let Some(expected) = &self.settings.token {
            if token != Some(expected.as_str()) {
                self.core.login_failed(cx.peer_addr().map(|a| a.ip()));
                return reply_err(cx, request_id, ErrorCode::BadToken, "wrong or missing token");
            }
        }
        let reply = s.reply_to(cx.id());
        match self.core.cluster_login(cluster, nick, reply.clone()) {
            Ok(()) => {
                s.claiming = Some(Arc::from(nick));
                self.pending(s, request_id, &reply, false, None);
            }
            Err(code) => reply_err(cx, request_id, code, &format!("{nick} is taken")),
        }
    }

    fn login<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        nick: &str,
        token: Option<&str>,
    ) -> Result<OkBody, (ErrorCode, String)> {
        let ip = cx.peer_addr().map(|a| a.ip());
        let needs_check = self.settings.token.is_some() || token.is_some() || s.preauth.is_some();
        if needs_check {
            if let Err(ms) = self.core.login_allowed(ip) {
                return Err((
                    ErrorCode::RateLimited,
                    format!("too many failed logins; retry in {} s", ms.div_ceil(1000)),
                ));
            }
        }
        // A session credential, in the token or from the WebSocket
        // handshake (cookie or Authorization), speaks as its nickname.
        let credential = token.filter(|t| crate::core::is_credential(t)).or(s.preauth.as_deref());
        let by_session = credential.map(|c| self.core.login_session(cx, nick, c));
        let nick = match by_session {
            Some(Ok(nick)) => nick,
            // A credential given as the token that names no session of this
            // nickname is a wrong token (unless it is the shared one).
            Some(Err(_))
                if token.is_some_and(crate::core::is_credential)
                    && self.settings.token.as_deref() != token =>
            {
                self.core.login_failed(ip);
                return Err((ErrorCode::BadToken, "no such session for this nickname".into()));
            }
            _ => {
                if let Some(expected) = &self.settings.token {
                    if token != Some(expected.as_str()) {
                        self.core.login_failed(ip);
                        return Err((ErrorCode::BadToken, "wrong or missing token".into()));
                    }
                }
                self.core.login(nick, cx.id()).map_err(|c| (c, format!("{nick} is taken")))?
            }
        };
        log::debug!("{} logged in as {nick}", cx.id());
        s.nick = Some(nick);
        Ok(OkBody::Welcome(self.settings.limits))
    }

    #[allow(clippy::too_many_arguments)]
    fn join<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        room: &str,
        resume: Option<Position>,
        nick: &Arc<str>,
        prefetched: Option<Vec<Arc<Entry>>>,
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
        let may_create = self.may_create(s, cx.now());
        if let Some(cluster) = self.core.cluster().cloned() {
            let reply = s.reply_to(cx.id());
            let retry = ClientFrame { request_id, request: Request::Join { room: room.to_string(), resume } };
            let joining = self.core.cluster_join(
                &cluster,
                cx,
                room,
                nick,
                resume,
                may_create,
                prefetched,
                reply.clone(),
            );
            return match joining {
                Ok((ClusterJoin::Done(joined), created)) => {
                    if created {
                        s.created += 1;
                    }
                    self.joined(cx, s, request_id, room, joined);
                }
                Ok((ClusterJoin::Wait, created)) => {
                    if created {
                        s.created += 1;
                    }
                    self.pending(s, request_id, &reply, false, Some(retry));
                }
                Err(code) => reply_err(cx, request_id, code, &format!("cannot join {room}")),
            };
        }
        match self.core.join(cx, room, nick, resume, may_create) {
            Ok((joined, created)) => {
                if created {
                    s.created += 1;
                }
                self.joined(cx, s, request_id, room, joined);
            }
            Err(ErrorCode::UnknownRoom) if !may_create => {
                let max = self.settings.room_creations_per_minute;
                reply_err(
                    cx,
                    request_id,
                    ErrorCode::TooManyRooms,
                    &format!("at most {max} new rooms per minute"),
                );
            }
            Err(code) => reply_err(cx, request_id, code, &format!("cannot join {room}")),
        }
    }

    /// Sends a join's reply and history, and keeps the room.
    fn joined<'a>(
        &self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        room: &str,
        joined: Joined,
    ) {
        {
            {
                let body = OkBody::Joined {
                    members: joined.members,
                    history: joined.history.len() as u32,
                    epoch: joined.epoch,
                    last_offset: joined.last_offset,
                    recovered: joined.recovered,
                };
                reply(cx, ServerFrame::ok(request_id, body));
                for m in &joined.history {
                    let push = PushRef::Message {
                        room,
                        id: m.id,
                        ts_us: m.ts_us,
                        offset: m.offset,
                        from: &m.from,
                        text: &m.text,
                        history: true,
                    };
                    cx.send_payload(|buf| push.encode(buf));
                }
                let name = joined.room.name.clone();
                s.rooms.push(Membership { name, room: joined.room });
            }
        }
    }

    /// The error for a room the session is not in: it may not exist.
    fn not_in(&self, room: &str) -> (ErrorCode, String) {
        // In a cluster, whether the room exists is Redis' to say: not
        // worth a round trip for an error.
        if self.core.cluster().is_some() || self.core.room_exists(room) {
            (ErrorCode::NotMember, format!("not in {room}"))
        } else {
            (ErrorCode::UnknownRoom, format!("no room {room}"))
        }
    }

    fn leave<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        room: &str,
    ) -> Result<OkBody, (ErrorCode, String)> {
        let Some(i) = s.rooms.iter().position(|m| &*m.name == room) else { return Err(self.not_in(room)) };
        let m = s.rooms.swap_remove(i);
        // The room's events the leaver has yet to get go before the reply.
        let missed = match self.core.cluster().cloned() {
            Some(c) => self.core.cluster_leave(&c, cx, &m.room),
            None => self.core.leave(cx, &m.room),
        }
        .map_err(|c| (c, format!("cannot leave {room}")))?;
        for payload in missed {
            cx.send_payload(|buf| buf.extend_from_slice(&payload));
        }
        Ok(OkBody::Empty)
    }

    fn check_message<'a>(
        &self,
        cx: &impl Door<'a>,
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

    fn say<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        room: &str,
        text: &str,
        nick: &Arc<str>,
    ) {
        if let Some(cluster) = self.core.cluster().cloned() {
            let room_ref = s.rooms.iter().find(|m| &*m.name == room).map(|m| m.room.clone());
            let result = match room_ref {
                None => Err((ErrorCode::NotMember, format!("not in {room}"))),
                Some(r) => self.check_message(cx, s, text).and_then(|()| {
                    let reply = s.reply_to(cx.id());
                    self.core
                        .cluster_post(&cluster, Some(&r), room, nick, text, Some(cx.id()), reply.clone())
                        .map(|()| reply)
                        .map_err(|c| (c, format!("cannot post to {room}")))
                }),
            };
            return match result {
                Ok(reply) => self.pending(s, request_id, &reply, true, None),
                Err((code, message)) => self.answer(cx, s, ServerFrame::error(request_id, code, &message)),
            };
        }
        let result = match s.rooms.iter().find(|m| &*m.name == room).map(|m| m.room.clone()) {
            None => Err(self.not_in(room)),
            Some(room_ref) => self.check_message(cx, s, text).and_then(|()| {
                s.next_seq += 1;
                let me = cx.id();
                let ack = AckTo { conn: me, token: s.next_seq };
                self.core
                    .post(cx, &room_ref, nick, text, Some(me), Some(ack))
                    .map_err(|c| (c, format!("cannot post to {room}")))
            }),
        };
        match result {
            Ok(p) if !p.stored => s.slots.push_back(Slot::Stored {
                seq: s.next_seq,
                request_id,
                body: OkBody::Sent { id: p.id, ts_us: p.ts_us, offset: p.offset },
            }),
            Ok(p) => {
                let body = OkBody::Sent { id: p.id, ts_us: p.ts_us, offset: p.offset };
                self.answer(cx, s, ServerFrame::ok(request_id, body));
            }
            Err((code, message)) => self.answer(cx, s, ServerFrame::error(request_id, code, &message)),
        }
    }

    fn direct<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        to: &str,
        text: &str,
        nick: &str,
    ) -> Result<OkBody, (ErrorCode, String)> {
        self.check_message(cx, s, text)?;
        let p = self.core.direct(cx, to, nick, text).map_err(|c| (c, format!("no user {to}")))?;
        Ok(OkBody::Sent { id: p.id, ts_us: p.ts_us, offset: 0 })
    }

    /// The log reported message `seq` stored (or not): its reply and the
    /// ones queued behind it leave, then the requests that waited run.
    fn stored<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session, seq: u64, ok: bool) {
        for slot in s.slots.iter_mut() {
            if let Slot::Stored { seq: q, request_id, body } = slot {
                if *q == seq {
                    let frame = if ok {
                        ServerFrame::ok(*request_id, body.clone())
                    } else {
                        ServerFrame::error(
                            *request_id,
                            ErrorCode::StoreFailed,
                            "the message could not be stored",
                        )
                    };
                    *slot = Slot::Ready(frame);
                    break;
                }
            }
        }
        self.flush(cx, s);
    }

    /// Sends the replies ready at the front, then runs the requests that
    /// waited for them.
    fn flush<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session) {
        loop {
            while let Some(Slot::Ready(_)) = s.slots.front() {
                if let Some(Slot::Ready(frame)) = s.slots.pop_front() {
                    reply(cx, frame);
                }
            }
            let Some(next) = s.deferred.front() else { break };
            let is_say = matches!(next.request, Request::Say { .. });
            let may_run = s.slots.is_empty() || (is_say && s.slots.iter().all(Slot::lets_say_through));
            if !may_run || !cx.is_open() {
                break;
            }
            let Some(frame) = s.deferred.pop_front() else { break };
            let request = frame.request.as_borrowed();
            self.request(cx, s, frame.request_id, request);
        }
        // An idle connection keeps no queue memory: a burst (a login and a
        // join waiting for Redis) leaves none behind.
        if s.slots.is_empty() && s.slots.capacity() > 0 {
            s.slots = VecDeque::new();
        }
        if s.deferred.is_empty() && s.deferred.capacity() > 0 {
            s.deferred = VecDeque::new();
        }
    }

    /// Answers from the cluster arrived in the mailbox.
    fn completed<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session) {
        let done = match &s.mailbox {
            Some(m) => std::mem::take(&mut *crate::core::lock(m)),
            None => return,
        };
        for (seq, completion) in done {
            let Some(i) =
                s.slots.iter().position(|sl| matches!(sl, Slot::Pending { seq: q, .. } if *q == seq))
            else {
                continue;
            };
            let Slot::Pending { request_id, retry, .. } = &mut s.slots[i] else { continue };
            let request_id = *request_id;
            let frame = match completion {
                Completion::Sent(Ok(p)) => {
                    ServerFrame::ok(request_id, OkBody::Sent { id: p.id, ts_us: p.ts_us, offset: p.offset })
                }
                Completion::Sent(Err(code)) => {
                    ServerFrame::error(request_id, code, "the message could not be stored")
                }
                Completion::Login(Ok(nick)) => {
                    s.claiming = None;
                    log::debug!("{} logged in as {nick}", cx.id());
                    s.nick = Some(nick);
                    ServerFrame::ok(request_id, OkBody::Welcome(self.settings.limits))
                }
                Completion::Login(Err(code)) => {
                    let nick = s.claiming.take();
                    let nick = nick.as_deref().unwrap_or("");
                    ServerFrame::error(request_id, code, format!("{nick} is taken"))
                }
                Completion::Reply(Ok(body)) => ServerFrame::ok(request_id, body),
                Completion::Reply(Err((code, message))) => ServerFrame::error(request_id, code, &message),
                Completion::Page(_) => {
                    ServerFrame::error(request_id, ErrorCode::Internal, "unexpected answer")
                }
                Completion::Retry(prefetched) => {
                    let retry = retry.take();
                    s.slots.remove(i);
                    if let (Some(ClientFrame { request: Request::Join { room, resume }, .. }), Some(nick)) =
                        (retry, s.nick.clone())
                    {
                        self.join(cx, s, request_id, &room, resume, &nick, prefetched);
                    }
                    continue;
                }
            };
            s.slots[i] = Slot::Ready(frame);
        }
        self.flush(cx, s);
    }

    fn list_rooms(&self) -> OkBody {
        let (total, all) = self.core.rooms();
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
