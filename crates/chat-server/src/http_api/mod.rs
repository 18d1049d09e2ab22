//! The chat over HTTP: the same core as the binary protocol, served by the
//! `http1` adapter on its own listener of the same reactor. One chat, three
//! doors: a message posted over HTTP reaches TCP and WebSocket members like
//! any other, and their messages are visible (and long-pollable) over HTTP.
//! Every route but the page, `/healthz` and `/metrics` needs a session
//! (`POST /session`), whose nickname is held on every door.
//!
//! | route | does |
//! | --- | --- |
//! | `GET /` | the chat page (and its `/app.js`, `/protocol.js`, `/app.css`) |
//! | `POST /session` | JSON `{"nick", "token"}` (token: the server's shared secret, if set): `201 {"nick", "session", ...}` and the session cookie; 409 if the nickname is held on any door |
//! | `GET /session`, `DELETE /session` | whose session this is; log out |
//! | `GET /ws` | the chat protocol over WebSocket (see docs/PROTOCOL.md) |
//! | `POST /rooms/{room}/messages` | JSON `{"text"}`: posts as the session's nickname; `201 {"id", "ts_us", "offset"}` once stored as the fsync policy requires |
//! | `GET /rooms/{room}/messages?since=OFFSET&wait=S` | messages after offset `OFFSET` (JSON, with the room's `epoch` and `last_offset`); with `wait`, long-polls up to `S` seconds for the next one. A `since` ahead of the room is answered at once with the room's real position |
//! | `GET /rooms` | rooms and member counts |
//! | `GET /users` | nicknames held, and whether each is connected |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | the reactor's per-service counters, the chat's, the room log's and the cluster's, OpenMetrics text (see `crate::metrics`) |
//!
//! On a node of a cluster, what needs Redis (posts, reads of the log, long
//! polls of a room the node does not hold, the room list, opening a
//! session: its nickname is claimed across the cluster) waits for it
//! without holding the loop ([`Waiting::Cluster`]).
//!
//! Errors are HTTP statuses with `{"status", "error", "message"}`: 400
//! (`invalid JSON: ...`, a bad name), 401 (`WWW-Authenticate: Bearer`), 403,
//! 404, 405, 409, 413, 429 and 503 (with `Retry-After`).

mod auth;
mod page;
mod reply;

pub use auth::COOKIE;

use crate::completion::{Completion, Mailbox, ReplyTo};
use crate::core::{AckTo, ChatCore, Page, ACK, ACK_FAILED};
use crate::protocol::validate_name;
use crate::ws_session::ChatSocket;
use http1::{HttpContext, HttpHandler, Method, Outcome, Request, Response, Wake};
use reply::{chat_error, invalid_json, json, problem};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages one response carries at most; the client polls again from the
/// last one for the rest.
const PAGE: usize = 1000;
/// Nicknames `GET /users` lists at most.
const MAX_USERS: usize = 1000;

/// The chat's HTTP handler, one per event loop.
pub struct ChatHttp {
    core: Arc<ChatCore>,
    max_wait: Duration,
    /// Sequence numbers of posts waiting for the log.
    next_seq: u64,
    /// Each session's message rate bucket on this loop: tokens, refilled.
    buckets: HashMap<Arc<str>, (f64, Instant)>,
    /// Served over TLS: the session cookie is marked `Secure`.
    secure: bool,
}

/// A response not given yet.
pub enum Waiting {
    /// A long poll waiting for a room's next message.
    Poll {
        /// The room.
        room: String,
        /// The offset the client has seen.
        since: u64,
    },
    /// A post waiting for its message to be stored.
    Post {
        /// The token the log writer notifies.
        seq: u64,
        /// The answer once stored.
        posted: crate::core::Posted,
    },
    /// In a cluster: a request waiting for Redis.
    Cluster {
        /// Where the answer lands.
        reply: ReplyTo,
        /// What the request is at.
        step: ClusterStep,
    },
}

/// Where a request of the HTTP door stands in a cluster.
pub enum ClusterStep {
    /// A post, waiting for Redis to store it.
    Post,
    /// The room list.
    Rooms,
    /// A new session, waiting for its nickname's claim across the cluster.
    Session {
        /// Its credential.
        credential: String,
        /// Its nickname.
        nick: Arc<str>,
    },
    /// A read of the room's messages after `since` (a long poll when
    /// `poll`: then it waits on if there are none).
    Read {
        /// The room.
        room: String,
        /// The offset the client has seen.
        since: u64,
        /// Registered to wait for the next message.
        poll: bool,
    },
    /// A long poll waiting for its room to be loaded on this node.
    Load {
        /// The room.
        room: String,
        /// The offset the client has seen.
        since: u64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostBody {
    /// Optional: if given, it must be the session's own.
    #[serde(default)]
    nick: Option<String>,
    text: String,
}
#[derive(Serialize)]
struct PostedJson {
    id: u64,
    ts_us: u64,
    offset: u64,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    id: u64,
    ts_us: u64,
    offset: u64,
    from: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct Messages<'a> {
    room: &'a str,
    /// The room log's epoch: a different one than before means the
    /// positions seen before are gone (start again from 0).
    epoch: u64,
    messages: Vec<MessageJson<'a>>,
    /// The offset to pass as `since` next time: the last message's, or the
    /// room's latest if there is none.
    last_offset: u64,
}

#[derive(Serialize)]
struct RoomJson {
    name: String,
    members: u32,
}

#[derive(Serialize)]
struct Rooms {
    rooms: Vec<RoomJson>,
}

#[derive(Serialize)]
struct UserJson {
    nick: String,
    connected: bool,
}

#[derive(Serialize)]
struct Users {
    total: usize,
    users: Vec<UserJson>,
}

fn messages_response(room: &str, page: &Page) -> Response {
    let messages: Vec<MessageJson<'_>> = page
        .messages
        .iter()
        .map(|m| MessageJson { id: m.id, ts_us: m.ts_us, offset: m.offset, from: &m.from, text: &m.text })
        .collect();
    let last_offset = page.messages.last().map_or(page.last_offset, |m| m.offset);
    json(200, &Messages { room, epoch: page.epoch, messages, last_offset })
}

fn posted(p: &crate::core::Posted) -> Response {
    json(201, &PostedJson { id: p.id, ts_us: p.ts_us, offset: p.offset })
}

impl ChatHttp {
    /// A handler sharing `core`; long polls wait at most `max_wait`.
    pub fn new(core: Arc<ChatCore>, max_wait: Duration) -> ChatHttp {
        ChatHttp { core, max_wait, next_seq: 0, buckets: HashMap::new(), secure: false }
    }

    /// The same handler for an HTTPS listener: session cookies are marked
    /// `Secure`.
    pub fn over_tls(mut self) -> ChatHttp {
        self.secure = true;
        self
    }

    /// Takes one message from the session's rate on this loop.
    fn take_token(&mut self, nick: &Arc<str>, now: Instant) -> bool {
        let rate = f64::from(self.core.settings().limits.rate_per_sec);
        if rate == 0.0 {
            return true;
        }
        if self.buckets.len() > 4 * self.core.settings().sessions.max_sessions {
            // Forget buckets that refilled: they hold nothing.
            self.buckets.retain(|_, (_, at)| now.saturating_duration_since(*at) < Duration::from_secs(1));
        }
        let (tokens, at) = self.buckets.entry(nick.clone()).or_insert((rate, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A reply slot for a request waiting for the cluster.
    fn reply_to(&mut self, cx: &HttpContext<'_, '_>) -> ReplyTo {
        self.next_seq += 1;
        ReplyTo { conn: cx.id(), seq: self.next_seq, mailbox: Mailbox::default() }
    }

    /// Waits for the cluster's answer to `reply`.
    fn wait_cluster(reply: ReplyTo, step: ClusterStep, timeout: Duration) -> Outcome<Waiting> {
        Outcome::Wait { pending: Waiting::Cluster { reply, step }, timeout }
    }

    /// `POST /session` on a node of a cluster: opened here, answered once
    /// its nickname is claimed across the cluster (or 409, and closed).
    fn cluster_session(&mut self, cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<Waiting> {
        let Some(cluster) = self.core.cluster().cloned() else {
            return auth::open(&self.core, cx, req, self.secure).into();
        };
        match auth::begin(&self.core, cx, req) {
            Ok((credential, nick)) => {
                let reply = self.reply_to(cx);
                self.core.cluster_claim_session(&cluster, &nick, reply.clone());
                Self::wait_cluster(reply, ClusterStep::Session { credential, nick }, Duration::from_secs(30))
            }
            Err(resp) => resp.into(),
        }
    }

    /// A read (and, for a long poll, a watch) of a room in a cluster.
    fn cluster_get(
        &mut self,
        cx: &mut HttpContext<'_, '_>,
        cluster: &crate::cluster::Cluster,
        room: &str,
        since: u64,
        wait: Option<Duration>,
    ) -> Outcome<Waiting> {
        let reply = self.reply_to(cx);
        let timeout = wait.map_or(Duration::from_secs(30), |w| w.min(self.max_wait));
        let room_s = room.to_string();
        if wait.is_some() {
            // Watch before reading, so that a message posted in between wakes us.
            match self.core.cluster_watch(cluster, room, cx.id(), reply.clone()) {
                Ok(true) => {}
                Ok(false) => {
                    return Self::wait_cluster(reply, ClusterStep::Load { room: room_s, since }, timeout)
                }
                Err(code) => return chat_error(code, &format!("cannot read {room}")).into(),
            }
        }
        self.core.cluster_read(cluster, room, since, PAGE, reply.clone());
        Self::wait_cluster(reply, ClusterStep::Read { room: room_s, since, poll: wait.is_some() }, timeout)
    }

    /// Wakes a request waiting for the cluster: its answer, or a next step.
    fn cluster_wake(
        &mut self,
        cx: &mut HttpContext<'_, '_>,
        w: &mut Waiting,
        wake: Wake,
    ) -> Option<Response> {
        let Waiting::Cluster { reply, step } = w else { return None };
        let done = std::mem::take(&mut *crate::core::lock(&reply.mailbox));
        let Some((_, completion)) = done.into_iter().find(|(seq, _)| *seq == reply.seq) else {
            if !wake.is_final() {
                return None;
            }
            if let ClusterStep::Read { room, poll: true, .. } | ClusterStep::Load { room, .. } = step {
                self.core.stop_waiting(room, cx.id());
            }
            return Some(problem(503, "no answer from the cluster in time"));
        };
        let cluster = self.core.cluster().cloned()?;
        match (std::mem::replace(step, ClusterStep::Post), completion) {
            (ClusterStep::Post, Completion::Sent(Ok(p))) => Some(posted(&p)),
            (ClusterStep::Post, Completion::Sent(Err(_))) => {
                Some(problem(503, "the message could not be stored"))
            }
            (ClusterStep::Session { credential, nick }, Completion::Login(Ok(_))) => {
                Some(auth::opened(&self.core, &credential, &nick, self.secure))
            }
            (ClusterStep::Session { credential, nick }, Completion::Login(Err(code))) => {
                self.core.end_session(cx, &credential);
                Some(match code {
                    crate::protocol::ErrorCode::NicknameTaken => problem(409, &format!("{nick} is taken")),
                    _ => problem(503, "the cluster could not claim the nickname"),
                })
            }
            (ClusterStep::Rooms, Completion::Reply(Ok(crate::protocol::OkBody::Rooms { rooms, .. }))) => {
                let rooms =
                    rooms.into_iter().map(|r| RoomJson { name: r.name, members: r.members }).collect();
                Some(json(200, &Rooms { rooms }))
            }
            (ClusterStep::Load { room, since }, Completion::Retry(_)) => {
                match self.cluster_get(cx, &cluster, &room, since, Some(self.max_wait)) {
                    Outcome::Respond(r) => Some(r),
                    Outcome::Wait { pending, .. } => {
                        *w = pending;
                        None
                    }
                    _ => Some(problem(503, "the cluster could not answer")),
                }
            }
            (ClusterStep::Read { room, since, poll }, Completion::Page(Ok(Some(page)))) => {
                if !poll || !page.messages.is_empty() || since > page.last_offset || wake.is_final() {
                    if poll {
                        self.core.stop_waiting(&room, cx.id());
                    }
                    return Some(messages_response(&room, &page));
                }
                // Nothing new: wait for the room's next message.
                *w = Waiting::Poll { room, since };
                None
            }
            (ClusterStep::Read { room, poll, .. }, Completion::Page(Ok(None))) => {
                if poll {
                    self.core.stop_waiting(&room, cx.id());
                }
                Some(problem(404, &format!("no room {room}")))
            }
            (step, c) => {
                if let ClusterStep::Read { room, poll: true, .. } | ClusterStep::Load { room, .. } = &step {
                    self.core.stop_waiting(room, cx.id());
                }
                let code = match c {
                    Completion::Reply(Err((code, _))) | Completion::Page(Err(code)) => code,
                    _ => crate::protocol::ErrorCode::StoreFailed,
                };
                Some(chat_error(code, "the cluster could not answer"))
            }
        }
    }

    fn post(&mut self, cx: &mut HttpContext<'_, '_>, room: &str, req: &Request) -> Outcome<Waiting> {
        let nick = match auth::authorise(&self.core, req) {
            Ok(n) => n,
            Err(resp) => return resp.into(),
        };
        let body: PostBody = match serde_json::from_slice(req.body()) {
            Ok(b) => b,
            Err(e) => return invalid_json(&e).into(),
        };
        if body.nick.as_deref().is_some_and(|n| n != &*nick) {
            return problem(403, &format!("this session posts as {nick} only")).into();
        }
        let max = self.core.settings().limits.max_text_len();
        if body.text.len() > max {
            return problem(413, &format!("text of {} bytes, at most {max}", body.text.len())).into();
        }
        if !self.take_token(&nick, cx.now()) {
            let rate = self.core.settings().limits.rate_per_sec;
            return reply::retry_after(429, &format!("over {rate} messages per second"), 1000).into();
        }
        if let Some(cluster) = self.core.cluster().cloned() {
            let reply = self.reply_to(cx);
            return match self.core.cluster_post(&cluster, None, room, &nick, &body.text, None, reply.clone())
            {
                Ok(()) => Self::wait_cluster(reply, ClusterStep::Post, Duration::from_secs(30)),
                Err(code) => chat_error(code, &format!("cannot post to {room}")).into(),
            };
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let ack = AckTo { conn: cx.id(), token: seq };
        match self.core.post_to(cx, room, &nick, &body.text, Some(ack)) {
            Ok(p) if p.stored => posted(&p).into(),
            // Answered when the log reports it stored; the wait is long
            // enough for any fsync, and a timeout answers 503 (not stored).
            Ok(p) => {
                Outcome::Wait { pending: Waiting::Post { seq, posted: p }, timeout: Duration::from_secs(30) }
            }
            Err(code) => chat_error(code, &format!("cannot post to {room}")).into(),
        }
    }

    fn get_messages(&mut self, cx: &mut HttpContext<'_, '_>, room: &str, req: &Request) -> Outcome<Waiting> {
        if let Err(resp) = auth::authorise(&self.core, req) {
            return resp.into();
        }
        let since = match req.query_param("since").map(str::parse::<u64>).transpose() {
            Ok(s) => s.unwrap_or(0),
            Err(_) => return problem(400, "since: not an offset").into(),
        };
        let wait = match req.query_param("wait").map(str::parse::<f64>).transpose() {
            Ok(w) => w.filter(|w| w.is_finite() && *w > 0.0).map(Duration::from_secs_f64),
            Err(_) => return problem(400, "wait: not a number of seconds").into(),
        };
        if let Some(cluster) = self.core.cluster().cloned() {
            return self.cluster_get(cx, &cluster, room, since, wait);
        }
        let read = |core: &ChatCore| match core.messages_after(room, since, PAGE) {
            Ok(Some(page)) => Ok(page),
            Ok(None) => Err(problem(404, &format!("no room {room}"))),
            Err(code) => Err(chat_error(code, &format!("cannot read {room}"))),
        };
        let Some(wait) = wait.map(|w| w.min(self.max_wait)) else {
            return match read(&self.core) {
                Ok(page) => messages_response(room, &page),
                Err(r) => r,
            }
            .into();
        };
        // Register before looking, so a message posted in between wakes us.
        match self.core.wait_for_message(room, cx.id()) {
            Ok(true) => {}
            Ok(false) => return problem(404, &format!("no room {room}")).into(),
            Err(code) => return chat_error(code, &format!("cannot read {room}")).into(),
        }
        match read(&self.core) {
            // Something to say now: new messages, or a position ahead of the
            // room (waiting would skip what comes until it catches up).
            Ok(page) if !page.messages.is_empty() || since > page.last_offset => {
                self.core.stop_waiting(room, cx.id());
                messages_response(room, &page).into()
            }
            Ok(_) => {
                Outcome::Wait { pending: Waiting::Poll { room: room.to_string(), since }, timeout: wait }
            }
            Err(r) => {
                self.core.stop_waiting(room, cx.id());
                r.into()
            }
        }
    }

    fn rooms(&mut self, cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<Waiting> {
        if let Err(resp) = auth::authorise(&self.core, req) {
            return resp.into();
        }
        if let Some(cluster) = self.core.cluster().cloned() {
            let reply = self.reply_to(cx);
            self.core.cluster_rooms(&cluster, reply.clone());
            return Self::wait_cluster(reply, ClusterStep::Rooms, Duration::from_secs(30));
        }
        let rooms =
            self.core.rooms().1.into_iter().map(|r| RoomJson { name: r.name, members: r.members }).collect();
        json(200, &Rooms { rooms }).into()
    }

    fn users(&self, req: &Request) -> Response {
        if let Err(resp) = auth::authorise(&self.core, req) {
            return resp;
        }
        let (total, all) = self.core.online(MAX_USERS);
        let users = all.into_iter().map(|(nick, connected)| UserJson { nick, connected }).collect();
        json(200, &Users { total, users })
    }

    /// `GET /ws`: the chat over WebSocket. A session credential in the
    /// upgrade request (cookie, or `Authorization`) lets a `Login` with the
    /// session's nickname omit the token.
    fn websocket(&self, req: &Request) -> Outcome<Waiting> {
        let preauth = match auth::credential(req) {
            Some((_, auth::Via::Cookie)) if auth::cross_origin(req) => {
                return problem(403, "a session cookie is not accepted from another origin").into()
            }
            Some((c, _)) => Some(c),
            None => None,
        };
        Outcome::upgrade(req, ChatSocket::new(self.core.clone(), preauth))
    }
}

fn room_name(room: &str) -> Result<(), Response> {
    validate_name(room).map_err(|e| problem(400, &format!("room: {e}")))
}

impl HttpHandler for ChatHttp {
    type Pending = Waiting;

    fn on_request(&mut self, cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<Waiting> {
        let path = req.path();
        if matches!(req.method(), Method::Get | Method::Head) {
            if let Some(asset) = page::asset_at(path) {
                return asset.into();
            }
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method(), segments.as_slice()) {
            (Method::Get | Method::Head, ["healthz"]) => Response::text(200, "ok\n").into(),
            (Method::Get | Method::Head, ["metrics"]) => {
                let text = crate::metrics::render(&cx.handle().all_stats(), &self.core);
                Response::text(200, text).content_type(crate::metrics::CONTENT_TYPE).into()
            }
            (Method::Get, ["ws"]) => self.websocket(req),
            (Method::Post, ["session"]) => self.cluster_session(cx, req),
            (Method::Get | Method::Head, ["session"]) => auth::current(&self.core, req).into(),
            (Method::Delete, ["session"]) => auth::end(&self.core, cx, req, self.secure).into(),
            (Method::Get | Method::Head, ["rooms"]) => self.rooms(cx, req),
            (Method::Get | Method::Head, ["users"]) => self.users(req).into(),
            (Method::Post, ["rooms", room, "messages"]) => match room_name(room) {
                Ok(()) => self.post(cx, room, req),
                Err(e) => e.into(),
            },
            (Method::Get | Method::Head, ["rooms", room, "messages"]) => match room_name(room) {
                Ok(()) => self.get_messages(cx, room, req),
                Err(e) => e.into(),
            },
            (_, ["healthz" | "metrics" | "rooms" | "users"]) => {
                Response::method_not_allowed("GET, HEAD").into()
            }
            (_, ["ws"]) => Response::method_not_allowed("GET").into(),
            (_, ["session"]) => Response::method_not_allowed("GET, HEAD, POST, DELETE").into(),
            (_, ["rooms", _, "messages"]) => Response::method_not_allowed("GET, HEAD, POST").into(),
            _ => problem(404, &format!("no such resource: {path}")).into(),
        }
    }

    fn on_wake(
        &mut self,
        cx: &mut HttpContext<'_, '_>,
        _req: &Request,
        w: &mut Waiting,
        wake: Wake,
    ) -> Option<Response> {
        match w {
            Waiting::Cluster { .. } => self.cluster_wake(cx, w, wake),
            Waiting::Post { seq, posted: p } => match wake {
                Wake::Notify(token) if token & ACK != 0 && token & !(ACK | ACK_FAILED) == *seq => {
                    Some(if token & ACK_FAILED == 0 {
                        posted(p)
                    } else {
                        problem(503, "the message could not be stored")
                    })
                }
                _ if wake.is_final() => Some(problem(503, "the message was not stored in time")),
                _ => None,
            },
            Waiting::Poll { room, since } => {
                let page = self.core.messages_after(room, *since, PAGE).ok().flatten();
                let ready = page.as_ref().is_some_and(|p| !p.messages.is_empty());
                if ready || wake.is_final() {
                    self.core.stop_waiting(room, cx.id());
                    let page = page.unwrap_or(Page { epoch: 0, last_offset: *since, messages: Vec::new() });
                    return Some(messages_response(room, &page));
                }
                // Woken for nothing new (a wake meant for an earlier poll): wait on.
                let _ = self.core.wait_for_message(room, cx.id());
                None
            }
        }
    }

    fn on_cancel(&mut self, cx: &mut HttpContext<'_, '_>, _req: &Request, w: Waiting) {
        match w {
            Waiting::Poll { room, .. }
            | Waiting::Cluster {
                step: ClusterStep::Read { room, poll: true, .. } | ClusterStep::Load { room, .. },
                ..
            } => self.core.stop_waiting(&room, cx.id()),
            _ => {}
        }
    }

    fn on_loop_notify(&mut self, cx: &mut HttpContext<'_, '_>, _token: u64) {
        self.core.deliver_queued(cx);
    }
}
