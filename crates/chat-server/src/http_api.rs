//! The chat over HTTP: the same core as the binary protocol, served by the
//! `http1` adapter on its own listener of the same reactor. One chat, two
//! doors: a message posted over HTTP reaches TCP members like any other,
//! and TCP messages are visible (and long-pollable) over HTTP.
//!
//! | route | does |
//! | --- | --- |
//! | `POST /rooms/{room}/messages` | JSON `{"nick": .., "text": ..}`: posts; `201 {"id", "ts_us", "offset"}` once the message is stored as the fsync policy requires |
//! | `GET /rooms/{room}/messages?since=OFFSET&wait=S` | messages after offset `OFFSET` (JSON, with the room's `epoch` and `last_offset`); with `wait`, long-polls up to `S` seconds for the next one. A `since` ahead of the room is answered at once with the room's real position |
//! | `GET /rooms` | rooms and member counts |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | the reactor's per-service counters, Prometheus text format |

use crate::core::{AckTo, ChatCore, Page, ACK, ACK_FAILED};
use crate::protocol::{validate_name, ErrorCode};
use http1::{HttpContext, HttpHandler, Method, Outcome, Request, Response, Wake};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// A Prometheus counter: metric name, help text, and how to read it.
type Counter = (&'static str, &'static str, fn(&reactor::ServiceStats) -> u64);

/// Messages one response carries at most; the client polls again from the
/// last one for the rest.
const PAGE: usize = 1000;

/// The chat's HTTP handler, one per event loop.
pub struct ChatHttp {
    core: Arc<ChatCore>,
    max_wait: Duration,
    /// Sequence numbers of posts waiting for the log.
    next_seq: u64,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostBody {
    nick: String,
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
struct ErrorJson<'a> {
    error: &'a str,
    code: u16,
    message: &'a str,
}

fn json<T: Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => Response::json(status, body),
        Err(e) => Response::text(500, format!("cannot encode the response: {e}\n")),
    }
}

fn error(status: u16, code: ErrorCode, message: &str) -> Response {
    json(status, &ErrorJson { error: &code.to_string(), code: code.as_u16(), message })
}

/// The HTTP status for a chat error.
fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::UnknownRoom | ErrorCode::UnknownUser => 404,
        ErrorCode::TextTooLong => 413,
        ErrorCode::RateLimited => 429,
        ErrorCode::TooManyRooms | ErrorCode::StoreFailed => 503,
        _ => 400,
    }
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
        ChatHttp { core, max_wait, next_seq: 0 }
    }

    fn post(&mut self, cx: &mut HttpContext<'_, '_>, room: &str, req: &Request) -> Outcome<Waiting> {
        let body: PostBody = match serde_json::from_slice(req.body()) {
            Ok(b) => b,
            Err(e) => {
                return error(400, ErrorCode::Malformed, &format!("body must be {{\"nick\", \"text\"}}: {e}"))
                    .into()
            }
        };
        if let Err(e) = validate_name(&body.nick) {
            return error(400, e.code(), &format!("nick: {e}")).into();
        }
        let max = self.core.settings().limits.max_text_len();
        if body.text.len() > max {
            let msg = format!("text of {} bytes, at most {max}", body.text.len());
            return error(413, ErrorCode::TextTooLong, &msg).into();
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let ack = AckTo { conn: cx.id(), token: seq };
        match self.core.post_to(cx, room, &body.nick, &body.text, Some(ack)) {
            Ok(p) if p.stored => posted(&p).into(),
            // Answered when the log reports it stored; the wait is long
            // enough for any fsync, and a timeout answers 503 (not stored).
            Ok(p) => {
                Outcome::Wait { pending: Waiting::Post { seq, posted: p }, timeout: Duration::from_secs(30) }
            }
            Err(code) => error(status_of(code), code, &format!("cannot post to {room}")).into(),
        }
    }

    fn get_messages(&mut self, cx: &mut HttpContext<'_, '_>, room: &str, req: &Request) -> Outcome<Waiting> {
        let since = match req.query_param("since").map(str::parse::<u64>).transpose() {
            Ok(s) => s.unwrap_or(0),
            Err(_) => return error(400, ErrorCode::Malformed, "since: not an offset").into(),
        };
        let wait = match req.query_param("wait").map(str::parse::<f64>).transpose() {
            Ok(w) => w.filter(|w| w.is_finite() && *w > 0.0).map(Duration::from_secs_f64),
            Err(_) => return error(400, ErrorCode::Malformed, "wait: not a number of seconds").into(),
        };
        let read = |core: &ChatCore| match core.messages_after(room, since, PAGE) {
            Ok(Some(page)) => Ok(page),
            Ok(None) => Err(error(404, ErrorCode::UnknownRoom, &format!("no room {room}"))),
            Err(code) => Err(error(status_of(code), code, &format!("cannot read {room}"))),
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
            Ok(false) => return error(404, ErrorCode::UnknownRoom, &format!("no room {room}")).into(),
            Err(code) => return error(status_of(code), code, &format!("cannot read {room}")).into(),
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

    fn rooms(&self) -> Response {
        let rooms =
            self.core.rooms().1.into_iter().map(|r| RoomJson { name: r.name, members: r.members }).collect();
        json(200, &Rooms { rooms })
    }

    fn metrics(&self, cx: &HttpContext<'_, '_>) -> Response {
        let stats = cx.handle().all_stats();
        let mut out = String::with_capacity(4096);
        let counters: &[Counter] = &[
            ("connections_accepted_total", "Connections accepted.", |s| s.accepted),
            ("connections_closed_total", "Connections closed, for any reason.", |s| s.closed),
            ("connections_rejected_total", "Connections refused at max_connections.", |s| s.rejected),
            ("accept_errors_total", "Failed accept calls (EMFILE and the like).", |s| s.accept_errors),
            ("bytes_in_total", "Bytes read from peers.", |s| s.bytes_in),
            ("bytes_out_total", "Bytes written to peers.", |s| s.bytes_out),
            ("frames_in_total", "Frames decoded.", |s| s.frames_in),
            ("frames_out_total", "Frames sent.", |s| s.frames_out),
            ("slow_consumers_total", "Connections closed as slow consumers.", |s| s.slow_consumers),
            ("idle_timeouts_total", "Connections closed by the reactor's idle timeout.", |s| s.idle_timeouts),
            ("handshake_timeouts_total", "TLS connections closed for a stalled handshake.", |s| {
                s.handshake_timeouts
            }),
            ("protocol_errors_total", "Connections closed for a protocol error.", |s| s.protocol_errors),
            ("handler_panics_total", "Handler panics.", |s| s.panics),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP switchboard_{name} {help}\n# TYPE switchboard_{name} counter");
            for s in &stats {
                let _ = writeln!(out, "switchboard_{name}{{service=\"{}\"}} {}", s.name, get(s));
            }
        }
        let _ = writeln!(out, "# HELP switchboard_connections_open Connections open now.");
        let _ = writeln!(out, "# TYPE switchboard_connections_open gauge");
        for s in &stats {
            let _ = writeln!(out, "switchboard_connections_open{{service=\"{}\"}} {}", s.name, s.open);
        }
        let _ = writeln!(out, "# HELP chat_users Users logged in.\n# TYPE chat_users gauge");
        let _ = writeln!(out, "chat_users {}", self.core.user_count());
        let _ = writeln!(
            out,
            "# HELP chat_rooms Rooms in memory (rooms without members leave it).\n# TYPE chat_rooms gauge"
        );
        let _ = writeln!(out, "chat_rooms {}", self.core.room_count());
        if let Some(log) = self.core.log_stats() {
            use std::sync::atomic::Ordering::Relaxed;
            let counters = [
                ("chat_log_appends_total", "Messages stored in the room log.", log.appends.load(Relaxed)),
                (
                    "chat_log_commits_total",
                    "Room log transactions (one per batch).",
                    log.commits.load(Relaxed),
                ),
                ("chat_log_fsyncs_total", "Durable room log commits (fsyncs).", log.fsyncs.load(Relaxed)),
                ("chat_log_failures_total", "Room log writes that failed.", log.failures.load(Relaxed)),
                (
                    "chat_log_overflows_total",
                    "Messages refused: the log's queue was full.",
                    log.overflows.load(Relaxed),
                ),
            ];
            for (name, help, value) in counters {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
            }
        }
        Response::text(200, out).content_type("text/plain; version=0.0.4; charset=utf-8")
    }
}

impl HttpHandler for ChatHttp {
    type Pending = Waiting;

    fn on_request(&mut self, cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<Waiting> {
        let path = req.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method(), segments.as_slice()) {
            (Method::Get | Method::Head, ["healthz"]) => Response::text(200, "ok\n").into(),
            (Method::Get | Method::Head, ["metrics"]) => self.metrics(cx).into(),
            (Method::Get | Method::Head, ["rooms"]) => self.rooms().into(),
            (Method::Post, ["rooms", room, "messages"]) => match validate_name(room) {
                Ok(()) => self.post(cx, room, req),
                Err(e) => error(400, e.code(), &format!("room: {e}")).into(),
            },
            (Method::Get | Method::Head, ["rooms", room, "messages"]) => match validate_name(room) {
                Ok(()) => self.get_messages(cx, room, req),
                Err(e) => error(400, e.code(), &format!("room: {e}")).into(),
            },
            (_, ["healthz" | "metrics" | "rooms"]) => Response::method_not_allowed("GET, HEAD").into(),
            (_, ["rooms", _, "messages"]) => Response::method_not_allowed("GET, HEAD, POST").into(),
            _ => Response::not_found().into(),
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
            Waiting::Post { seq, posted: p } => match wake {
                Wake::Notify(token) if token & ACK != 0 && token & !(ACK | ACK_FAILED) == *seq => {
                    Some(if token & ACK_FAILED == 0 {
                        posted(p)
                    } else {
                        error(503, ErrorCode::StoreFailed, "the message could not be stored")
                    })
                }
                _ if wake.is_final() => {
                    Some(error(503, ErrorCode::StoreFailed, "the message was not stored in time"))
                }
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
        if let Waiting::Poll { room, .. } = w {
            self.core.stop_waiting(&room, cx.id());
        }
    }

    fn on_loop_notify(&mut self, cx: &mut HttpContext<'_, '_>, _token: u64) {
        self.core.deliver_queued(cx);
    }
}
