//! Request heads: httparse reads the syntax; this module decides what the
//! head means for the connection: body framing (RFC 9112 section 6),
//! keep-alive, `Expect`, `Host`, and which limit a bad head broke.

use crate::config::{HttpConfig, MAX_HEADERS_LIMIT};
use crate::request::{Layout, Method, Version};
use std::mem::MaybeUninit;

/// A request the adapter refuses: answered with `status` and the
/// connection closed, since what follows cannot be trusted to be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The status the request is refused with.
    pub status: u16,
    /// Why, for the response body and the log.
    pub reason: &'static str,
}

pub(crate) fn reject(status: u16, reason: &'static str) -> Reject {
    Reject { status, reason }
}

/// How the body of a request is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// What a complete, acceptable head says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    /// Bytes of input the head takes, final empty line included.
    pub len: usize,
    pub layout: Layout,
    pub body: BodyKind,
    pub expect_continue: bool,
}

/// What the header fields say about framing and the connection.
#[derive(Default)]
struct Fields {
    content_length: Option<u64>,
    /// Transfer codings in order, over every Transfer-Encoding line.
    codings: usize,
    chunked_last: bool,
    chunked_count: usize,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    hosts: usize,
}

/// Parses the head at the start of `buf`: `Ok(None)` if it is not complete
/// yet (and still within the limits).
pub(crate) fn parse_head(buf: &[u8], config: &HttpConfig) -> Result<Option<Head>, Reject> {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS_LIMIT] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS_LIMIT];
    let mut req = httparse::Request::new(&mut []);
    let slots = &mut slots[..config.max_headers.min(MAX_HEADERS_LIMIT)];
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) if n <= config.max_head_size => n,
        Ok(httparse::Status::Complete(_)) => return Err(too_large(buf, config)),
        Ok(httparse::Status::Partial) if buf.len() > config.max_head_size => {
            return Err(too_large(buf, config))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many header fields")),
        Err(httparse::Error::Version) => return Err(reject(505, "only HTTP/1.0 and HTTP/1.1 are served")),
        Err(e) => return Err(reject(400, error_text(e))),
    };
    // Complete: httparse filled in the method, path and version.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(reject(400, "incomplete request line"));
    };
    let method = Method::parse(method).ok_or(reject(501, "method not implemented"))?;
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    let offset = |s: &[u8]| (s.as_ptr() as usize - buf.as_ptr() as usize) as u32;
    let target_start = offset(target.as_bytes());
    let target_range = (target_start, target_start + target.len() as u32);
    let (path, query) = split_target(method, target, target_start)?;
    let line_start = offset(req.method.unwrap_or_default().as_bytes()) as usize;
    let fields_at = buf[line_start..].iter().position(|&b| b == b'\n').map_or(len, |i| line_start + i + 1);

    let mut f = Fields::default();
    for h in req.headers.iter() {
        read_field(&mut f, h)?;
    }
    if version == Version::Http11 && f.hosts != 1 {
        return Err(reject(400, "an HTTP/1.1 request needs exactly one Host field"));
    }
    if f.hosts > 1 {
        return Err(reject(400, "several Host fields"));
    }
    let body = framing(&f, version, config)?;
    let keep_alive = match version {
        Version::Http11 => !f.close,
        Version::Http10 => f.keep_alive && !f.close,
    };
    let layout =
        Layout { method, version, path, query, target: target_range, fields: fields_at as u32, keep_alive };
    // A 1.0 client does not know 100 Continue (RFC 9110 section 10.1.1).
    let expect_continue = f.expect_continue && version == Version::Http11 && body != BodyKind::None;
    Ok(Some(Head { len, layout, body, expect_continue }))
}

/// 414 if the request line alone is over the limit, else 431.
fn too_large(buf: &[u8], config: &HttpConfig) -> Reject {
    let window = &buf[..buf.len().min(config.max_head_size)];
    // Leading empty lines are skipped by the parser, so look past them.
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(window.len());
    if window[start..].contains(&b'\n') {
        reject(431, "request header fields too large")
    } else {
        reject(414, "request line too long")
    }
}

fn error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header field name",
        httparse::Error::HeaderValue => "invalid header field value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid request line",
        _ => "malformed request head",
    }
}

/// Splits the request target (RFC 9112 section 3.2) into path and query
/// offsets. Origin form `/p?q`; absolute form `http://host/p?q`; `*` for
/// OPTIONS only. Authority form is CONNECT's, refused earlier.
#[allow(clippy::type_complexity)]
fn split_target(
    method: Method,
    target: &str,
    start: u32,
) -> Result<((u32, u32), Option<(u32, u32)>), Reject> {
    let end = start + target.len() as u32;
    if target == "*" {
        return match method {
            Method::Options => Ok(((start, end), None)),
            _ => Err(reject(400, "asterisk target is for OPTIONS only")),
        };
    }
    let path_at = if target.starts_with('/') {
        0
    } else {
        let after_scheme = ["http://", "https://"]
            .iter()
            .find(|s| target.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)))
            .map(|s| s.len())
            .ok_or(reject(400, "invalid request target"))?;
        let rest = &target[after_scheme..];
        if rest.is_empty() || rest.starts_with(['/', '?']) {
            return Err(reject(400, "absolute target without a host"));
        }
        after_scheme + rest.find(['/', '?']).unwrap_or(rest.len())
    };
    let (path_end, query) = match target[path_at..].find('?') {
        Some(q) => {
            let q = path_at + q;
            (q, Some((start + q as u32 + 1, end)))
        }
        None => (target.len(), None),
    };
    Ok(((start + path_at as u32, start + path_end as u32), query))
}

/// Comma-separated list elements, trimmed, empty ones dropped (RFC 9110
/// section 5.6.1).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|e| !e.is_empty())
}

fn read_field(f: &mut Fields, h: &httparse::Header<'_>) -> Result<(), Reject> {
    let name = h.name;
    if name.eq_ignore_ascii_case("content-length") {
        // A list of equal values counts as one; anything else is refused
        // (RFC 9112 section 6.3, item 5).
        let mut any = false;
        for element in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            any = true;
            let n = parse_decimal(element).ok_or(reject(400, "invalid Content-Length"))?;
            match f.content_length {
                Some(m) if m != n => return Err(reject(400, "conflicting Content-Length values")),
                _ => f.content_length = Some(n),
            }
        }
        if !any {
            return Err(reject(400, "invalid Content-Length"));
        }
    } else if name.eq_ignore_ascii_case("transfer-encoding") {
        let mut any = false;
        for coding in list(h.value) {
            any = true;
            f.codings += 1;
            // Parameters (`;q=..`) make it some other coding.
            f.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
            f.chunked_count += f.chunked_last as usize;
        }
        if !any {
            return Err(reject(400, "empty Transfer-Encoding"));
        }
    } else if name.eq_ignore_ascii_case("connection") {
        for option in list(h.value) {
            f.close |= option.eq_ignore_ascii_case(b"close");
            f.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    } else if name.eq_ignore_ascii_case("expect") {
        if h.value.eq_ignore_ascii_case(b"100-continue") {
            f.expect_continue = true;
        } else {
            return Err(reject(417, "only 100-continue is expected"));
        }
    } else if name.eq_ignore_ascii_case("host") {
        f.hosts += 1;
    }
    Ok(())
}

/// `1*DIGIT`, nothing else: no sign, no spaces inside, no overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Body framing (RFC 9112 section 6.3). A request with both
/// Transfer-Encoding and Content-Length is refused rather than guessed at:
/// a proxy in front may have framed it the other way (request smuggling).
fn framing(f: &Fields, version: Version, config: &HttpConfig) -> Result<BodyKind, Reject> {
    if f.codings > 0 {
        if f.content_length.is_some() {
            return Err(reject(400, "both Transfer-Encoding and Content-Length"));
        }
        // RFC 9112 section 6.1: framing of a 1.0 message with
        // Transfer-Encoding is faulty.
        if version == Version::Http10 {
            return Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !f.chunked_last || f.chunked_count > 1 {
            return Err(reject(400, "chunked must be the final transfer coding, once"));
        }
        if f.codings > 1 {
            return Err(reject(501, "transfer codings other than chunked are not implemented"));
        }
        return Ok(BodyKind::Chunked);
    }
    match f.content_length {
        Some(n) if n > config.max_body_size as u64 => Err(reject(413, "request body too large")),
        Some(0) | None => Ok(BodyKind::None),
        Some(n) => Ok(BodyKind::Length(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Head>, Reject> {
        parse_head(s.as_bytes(), &HttpConfig::default())
    }

    fn status(s: &str) -> u16 {
        match parse(s) {
            Err(r) => r.status,
            Ok(h) => panic!("accepted: {h:?}"),
        }
    }

    fn body(s: &str) -> BodyKind {
        parse(s).unwrap().unwrap().body
    }

    #[test]
    fn framing_of_bodies() {
        assert_eq!(body("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), BodyKind::None);
        assert_eq!(body("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), BodyKind::None);
        assert_eq!(body("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n"), BodyKind::Length(12));
        assert_eq!(
            body("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5, 5\r\n\r\n"),
            BodyKind::Length(5)
        );
        assert_eq!(
            body("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            BodyKind::Chunked
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        // CL + TE, in either order (ANCHORS 8.11).
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
            400
        );
        // Conflicting or malformed Content-Length.
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n"), 400);
        for bad in ["+5", "-1", "5 5", "0x5", "", "5,", "99999999999999999999999"] {
            let s = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(status(&s), 400, "Content-Length: {bad:?}");
        }
        // chunked not last, twice, or in 1.0.
        assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        // A coding we cannot undo is not implemented, not misread.
        assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
        // Whitespace before the colon (httparse#88) and obs-fold.
        assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n"), 400);
    }

    #[test]
    fn request_line_and_host_rules() {
        assert_eq!(status("BREW / HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
        assert_eq!(status("get / HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
        assert_eq!(status("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
        assert_eq!(status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(status("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400, "1.1 without Host");
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status("GET nothing HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"), 417);
        assert_eq!(status("\x16\x03\x01\x02\x00\x01\x00\x01\x03\x03"), 400, "TLS on a plain port");
        assert!(parse("GET / HTTP/1.0\r\n\r\n").unwrap().is_some(), "1.0 needs no Host");
    }

    #[test]
    fn keep_alive_and_expect() {
        let ka = |s: &str| parse(s).unwrap().unwrap().layout.keep_alive;
        assert!(ka("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        let exp = |s: &str| parse(s).unwrap().unwrap().expect_continue;
        assert!(exp("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"));
        assert!(!exp("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"), "no body, no 100");
        assert!(!exp("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
    }

    #[test]
    fn limits() {
        let config =
            HttpConfig { max_headers: 4, max_head_size: 200, max_body_size: 10, ..HttpConfig::default() };
        let p = |s: &[u8]| parse_head(s, &config);
        let many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(p(many).unwrap_err().status, 431);
        let mut big = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 300));
        assert_eq!(p(&big).unwrap_err().status, 431, "partial head over the limit");
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(p(&big).unwrap_err().status, 431, "complete head over the limit");
        let mut line = b"GET /".to_vec();
        line.extend(std::iter::repeat_n(b'a', 300));
        assert_eq!(p(&line).unwrap_err().status, 414);
        assert_eq!(p(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n").unwrap_err().status, 413);
        assert!(p(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n").unwrap().is_some());
        assert!(p(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap().is_none(), "partial within the limit");
    }
}
