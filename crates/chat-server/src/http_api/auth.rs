//! Who an HTTP request comes from: the session credential it carries (an
//! `Authorization: Bearer` header or the session cookie), and the session
//! routes (`POST`, `GET`, `DELETE /session`).

use super::reply::{invalid_json, json, problem, retry_after};
use crate::core::{is_credential, ChatCore, SessionError};
use crate::protocol::validate_name;
use http1::{HttpContext, Request, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The session cookie's name.
pub const COOKIE: &str = "chat_session";

/// How a request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`: a header a page on another site cannot
    /// make a browser send.
    Bearer,
    /// The cookie, which a browser attaches by itself.
    Cookie,
}

/// The credential a request carries, and how.
pub fn credential(req: &Request) -> Option<(&str, Via)> {
    if let Some(auth) = req.header("authorization") {
        let (scheme, value) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| (value.trim(), Via::Bearer));
    }
    let cookies = req.headers().filter(|(n, _)| n.eq_ignore_ascii_case("cookie"));
    for (_, value) in cookies {
        let value = std::str::from_utf8(value).ok()?;
        for pair in value.split(';') {
            if let Some((name, v)) = pair.trim().split_once('=') {
                if name == COOKIE && is_credential(v) {
                    return Some((v, Via::Cookie));
                }
            }
        }
    }
    None
}

/// True if a browser sent `req` from a page of another origin: its
/// `Origin` names another host than the one asked. A cookie alone does not
/// authorise such a request (cross-site request forgery, or a cross-site
/// WebSocket hijacking).
pub fn cross_origin(req: &Request) -> bool {
    let Some(origin) = req.header("origin") else { return false };
    let host = req.header("host").unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !origin_host.eq_ignore_ascii_case(host)
}

/// The nickname of the session a request belongs to, or the 401 (or 403)
/// to answer.
pub fn authorise(core: &ChatCore, req: &Request) -> Result<Arc<str>, Response> {
    let Some((credential, via)) = credential(req) else {
        return Err(problem(401, "log in first: POST /session, then send its credential"));
    };
    if via == Via::Cookie && cross_origin(req) {
        return Err(problem(403, "a session cookie is not accepted from another origin"));
    }
    core.authenticate(credential).ok_or_else(|| problem(401, "no such session (logged out, or expired)"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    nick: String,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Serialize)]
struct Opened<'a> {
    nick: &'a str,
    /// The credential: `Authorization: Bearer` it, or let the cookie carry it.
    session: &'a str,
    /// The session ends after this long unused.
    idle_timeout_ms: u64,
    /// And at the latest this long from now.
    max_age_ms: u64,
}

#[derive(Serialize)]
struct Current<'a> {
    nick: &'a str,
}

/// The session cookie; `Secure` (sent over HTTPS only) when served over
/// TLS, where a browser would otherwise also send it in clear to plain HTTP.
fn cookie(value: &str, max_age_s: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// `POST /session {"nick", "token"}`: opens a session (`secure`: the
/// request came over TLS, so the cookie says `Secure`).
pub fn open(core: &ChatCore, cx: &HttpContext<'_, '_>, req: &Request, secure: bool) -> Response {
    match begin(core, cx, req) {
        Ok((credential, nick)) => opened(core, &credential, &nick, secure),
        Err(resp) => resp,
    }
}

/// Opens a session on this node's identity table: its credential and
/// nickname, or the error to answer. (A node of a cluster then claims the
/// nickname across the cluster before it answers with [`opened`].)
pub fn begin(
    core: &ChatCore,
    cx: &HttpContext<'_, '_>,
    req: &Request,
) -> Result<(String, Arc<str>), Response> {
    let login: Login = match serde_json::from_slice(req.body()) {
        Ok(l) => l,
        Err(e) => return Err(invalid_json(&e)),
    };
    if let Err(e) = validate_name(&login.nick) {
        return Err(problem(400, &format!("nick: {e}")));
    }
    let ip = cx.peer_addr().map(|a| a.ip());
    match core.open_session(&login.nick, login.token.as_deref(), ip) {
        Ok(opened) => Ok(opened),
        Err(SessionError::Taken) => Err(problem(409, &format!("{} is taken", login.nick))),
        Err(SessionError::BadToken) => Err(problem(401, "wrong or missing token")),
        Err(SessionError::RateLimited(ms)) => Err(retry_after(429, "too many logins from this address", ms)),
        Err(SessionError::Full) => Err(retry_after(503, "too many sessions open; try again later", 60_000)),
    }
}

/// The `201` of a session opened: its credential in the body and the cookie.
pub fn opened(core: &ChatCore, credential: &str, nick: &str, secure: bool) -> Response {
    let limits = core.settings().sessions;
    let body =
        Opened { nick, session: credential, idle_timeout_ms: limits.idle_ms, max_age_ms: limits.max_age_ms };
    json(201, &body)
        .header("Set-Cookie", cookie(credential, limits.max_age_ms / 1000, secure))
        .header("Cache-Control", "no-store")
}

/// `GET /session`: whose session this is.
pub fn current(core: &ChatCore, req: &Request) -> Response {
    match authorise(core, req) {
        Ok(nick) => json(200, &Current { nick: &nick }),
        Err(resp) => resp,
    }
}

/// `DELETE /session`: logs out (the session's chat connection is closed).
pub fn end(core: &ChatCore, cx: &mut HttpContext<'_, '_>, req: &Request, secure: bool) -> Response {
    if let Err(resp) = authorise(core, req) {
        return resp;
    }
    match credential(req) {
        Some((c, _)) if core.end_session(cx, c) => Response::empty(204)
            .header("Set-Cookie", cookie("", 0, secure))
            .header("Cache-Control", "no-store"),
        _ => problem(401, "no such session"),
    }
}
