//! Responses of the HTTP door: JSON bodies, and errors in HTTP's words
//! (a status, `{"status", "error", "message"}`, and the headers a status
//! asks for: `WWW-Authenticate` with 401, `Retry-After` with 429 and 503).

use crate::protocol::ErrorCode;
use http1::Response;
use serde::Serialize;

/// The `WWW-Authenticate` challenge of a 401.
pub const CHALLENGE: &str = "Bearer realm=\"chat\"";

#[derive(Serialize)]
struct Problem<'a> {
    status: u16,
    error: &'a str,
    message: &'a str,
}

/// A JSON response.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => Response::json(status, body),
        Err(e) => Response::text(500, format!("cannot encode the response: {e}\n")),
    }
}

/// The short word of a status, in the JSON body.
fn word(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        413 => "too_large",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "error",
    }
}

/// An error: its status, a JSON body saying why, and the headers the
/// status needs (`retry_after_ms` becomes `Retry-After` in whole seconds).
pub fn problem(status: u16, message: &str) -> Response {
    let resp = json(status, &Problem { status, error: word(status), message });
    match status {
        401 => resp.header("WWW-Authenticate", CHALLENGE),
        429 | 503 => resp.header("Retry-After", "1"),
        _ => resp,
    }
}

/// A 429 or 503 whose client should come back after `ms`.
pub fn retry_after(status: u16, message: &str, ms: u64) -> Response {
    let secs = ms.div_ceil(1000).max(1);
    let resp = json(status, &Problem { status, error: word(status), message });
    resp.header("Retry-After", secs.to_string())
}

/// 400 for a body that is not the JSON expected.
pub fn invalid_json(e: &serde_json::Error) -> Response {
    problem(400, &format!("invalid JSON: {e}"))
}

/// The HTTP status for a chat error.
pub fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::UnknownRoom | ErrorCode::UnknownUser => 404,
        ErrorCode::TextTooLong => 413,
        ErrorCode::RateLimited => 429,
        ErrorCode::NicknameTaken => 409,
        ErrorCode::BadToken | ErrorCode::NotLoggedIn => 401,
        ErrorCode::TooManyRooms | ErrorCode::StoreFailed | ErrorCode::ShuttingDown => 503,
        _ => 400,
    }
}

/// A chat error as an HTTP one.
pub fn chat_error(code: ErrorCode, message: &str) -> Response {
    problem(status_of(code), message)
}
