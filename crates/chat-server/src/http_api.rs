//! The chat over HTTP: the same core as the binary protocol, served by the
//! `http1` adapter on its own listener of the same reactor. One chat, two
//! doors: a message posted over HTTP reaches TCP members like any other,
//! and TCP messages are visible (and long-pollable) over HTTP.
//!
//! | route | does |
//! | --- | --- |
//! | `POST /rooms/{room}/messages` | JSON `{"nick": .., "text": ..}`: posts; `201 {"id", "ts_us"}` |
//! | `GET /rooms/{room}/messages?since=ID&wait=S` | messages after `ID` (JSON); with `wait`, long-polls up to `S` seconds for the next one |
//! | `GET /rooms` | rooms and member counts |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | the reactor's per-service counters, Prometheus text format |

use crate::core::{ChatCore, StoredMessage};
use crate::protocol::{validate_name, ErrorCode};
use http1::{HttpContext, HttpHandler, Method, Outcome, Request, Response, Wake};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// A Prometheus counter: metric name, help text, and how to read it.
type Counter = (&'static str, &'static str, fn(&reactor::ServiceStats) -> u64);

/// The chat's HTTP handler, one per event loop.
pub struct ChatHttp {
    core: Arc<ChatCore>,
    max_wait: Duration,
}

/// A long poll waiting for a room's next message.
pub struct Waiting {
    room: String,
    since: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostBody {
    nick: String,
    text: String,
}

#[derive(Serialize)]
struct Posted {
    id: u64,
    ts_us: u64,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    id: u64,
    ts_us: u64,
    from: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct Messages<'a> {
    room: &'a str,
    messages: Vec<MessageJson<'a>>,
    /// The id to pass as `since` next time.
    last_id: u64,
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
        ErrorCode::TooManyRooms => 503,
        _ => 400,
    }
}

fn messages_response(room: &str, since: u64, list: &[StoredMessage]) -> Response {
    let messages: Vec<MessageJson<'_>> =
        list.iter().map(|m| MessageJson { id: m.id, ts_us: m.ts_us, from: &m.from, text: &m.text }).collect();
    let last_id = list.last().map_or(since, |m| m.id);
    json(200, &Messages { room, messages, last_id })
}

impl ChatHttp {
    /// A handler sharing `core`; long polls wait at most `max_wait`.
    pub fn new(core: Arc<ChatCore>, max_wait: Duration) -> ChatHttp {
        ChatHttp { core, max_wait }
    }

    fn post(&mut self, cx: &mut HttpContext<'_, '_>, room: &str, req: &Request) -> Response {
        let body: PostBody = match serde_json::from_slice(req.body()) {
            Ok(b) => b,
            Err(e) => {
                return error(400, ErrorCode::Malformed, &format!("body must be {{\"nick\", \"text\"}}: {e}"))
            }
        };
        if let Err(e) = validate_name(&body.nick) {
            return error(400, e.code(), &format!("nick: {e}"));
        }
        let max = self.core.settings().limits.max_text_len();
        if body.text.len() > max {
            return error(
                413,
                ErrorCode::TextTooLong,
                &format!("text of {} bytes, at most {max}", body.text.len()),
            );
        }
        match self.core.post_to(cx, room, &body.nick, &body.text) {
            Ok((id, ts_us)) => json(201, &Posted { id, ts_us }),
            Err(code) => error(status_of(code), code, &format!("cannot post to {room}")),
        }
    }

    fn get_messages(&mut self, cx: &mut HttpContext<'_, '_>, room: &str, req: &Request) -> Outcome<Waiting> {
        let since = match req.query_param("since").map(str::parse::<u64>).transpose() {
            Ok(s) => s.unwrap_or(0),
            Err(_) => return error(400, ErrorCode::Malformed, "since: not a message id").into(),
        };
        let wait = match req.query_param("wait").map(str::parse::<f64>).transpose() {
            Ok(w) => w.filter(|w| w.is_finite() && *w > 0.0).map(Duration::from_secs_f64),
            Err(_) => return error(400, ErrorCode::Malformed, "wait: not a number of seconds").into(),
        };
        let Some(wait) = wait.map(|w| w.min(self.max_wait)) else {
            return match self.core.messages_since(room, since) {
                Some(list) => messages_response(room, since, &list),
                None => error(404, ErrorCode::UnknownRoom, &format!("no room {room}")),
            }
            .into();
        };
        // Register before looking, so a message posted in between wakes us.
        if !self.core.wait_for_message(room, cx.id()) {
            return error(404, ErrorCode::UnknownRoom, &format!("no room {room}")).into();
        }
        match self.core.messages_since(room, since) {
            Some(list) if !list.is_empty() => {
                self.core.stop_waiting(room, cx.id());
                messages_response(room, since, &list).into()
            }
            _ => Outcome::Wait { pending: Waiting { room: room.to_string(), since }, timeout: wait },
        }
    }

    fn rooms(&self) -> Response {
        let rooms =
            self.core.rooms().into_iter().map(|r| RoomJson { name: r.name, members: r.members }).collect();
        json(200, &Rooms { rooms })
    }

    fn metrics(&self, cx: &HttpContext<'_, '_>) -> Response {
        let stats = cx.handle().all_stats();
        let mut out = String::with_capacity(4096);
        let counters: [Counter; 12] = [
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
        let _ = writeln!(out, "# HELP chat_rooms Rooms held.\n# TYPE chat_rooms gauge");
        let _ = writeln!(out, "chat_rooms {}", self.core.room_count());
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
                Ok(()) => self.post(cx, room, req).into(),
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
        let list = self.core.messages_since(&w.room, w.since).unwrap_or_default();
        if !list.is_empty() || wake.is_final() {
            self.core.stop_waiting(&w.room, cx.id());
            return Some(messages_response(&w.room, w.since, &list));
        }
        // Woken for nothing new (a wake meant for an earlier poll): wait on.
        self.core.wait_for_message(&w.room, cx.id());
        None
    }

    fn on_cancel(&mut self, cx: &mut HttpContext<'_, '_>, _req: &Request, w: Waiting) {
        self.core.stop_waiting(&w.room, cx.id());
    }
}
