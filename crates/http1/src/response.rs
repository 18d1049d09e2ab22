//! Responses: a small builder, and the encoder that writes one straight into
//! a connection's output buffer.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;

/// Bodies up to this size are copied after the head, so that the response
/// leaves in one contiguous buffer; larger ones are queued as they are.
const COPY_BODY_MAX: usize = 4096;

type Text = Cow<'static, str>;

/// A response to give a request. It always leaves with a `Content-Length`
/// (and a `Date`); the adapter adds `Connection` as keep-alive requires.
///
/// ```
/// use http1::Response;
///
/// let ok = Response::text(200, "hello");
/// let created = Response::json(201, r#"{"id":7}"#).header("Location", "/items/7");
/// let gone = Response::empty(204);
/// assert_eq!((ok.status(), created.status(), gone.status()), (200, 201, 204));
/// ```
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    content_type: Option<Text>,
    headers: Vec<(Text, Text)>,
    body: Bytes,
    close: bool,
}

/// Header fields the adapter writes itself; a handler's are dropped.
const RESERVED: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// No CR, LF or other control characters but HTAB: a value taken from a
/// request cannot split the response.
fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

impl Response {
    /// A response with this status, no body and no `Content-Type`. Statuses
    /// are 200 to 999 (interim responses are the adapter's); any other is
    /// sent as a 500.
    pub fn empty(status: u16) -> Response {
        Response { status, content_type: None, headers: Vec::new(), body: Bytes::new(), close: false }
    }

    /// A `text/plain; charset=utf-8` response. `&'static str`, `String`,
    /// `Vec<u8>` and `Bytes` bodies need no copy.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Response {
        Response::empty(status).content_type("text/plain; charset=utf-8").with_body(body)
    }

    /// An `application/json` response; the body is already encoded.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Response {
        Response::empty(status).content_type("application/json").with_body(body)
    }

    /// 404 with a short text body.
    pub fn not_found() -> Response {
        Response::text(404, "not found\n")
    }

    /// 405 with the `Allow` header a route must send (RFC 9110 section
    /// 15.5.6), e.g. `Response::method_not_allowed("GET, HEAD")`.
    pub fn method_not_allowed(allow: &'static str) -> Response {
        Response::text(405, "method not allowed\n").header("Allow", allow)
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Response {
        self.body = body.into();
        self
    }

    /// Sets the `Content-Type`.
    pub fn content_type(mut self, value: impl Into<Cow<'static, str>>) -> Response {
        let value = value.into();
        if is_field_value(&value) {
            self.content_type = Some(value);
        } else {
            log::warn!("http1: invalid Content-Type value {value:?} dropped");
        }
        self
    }

    /// Adds a header field. `Content-Type` replaces the content type;
    /// `Content-Length`, `Transfer-Encoding`, `Connection` and `Date` are the
    /// adapter's and are dropped (use [`Response::close`] to close). A field
    /// whose name is not a token, or whose value holds CR, LF or another
    /// control character, is dropped and logged: the response stays well
    /// formed whatever a handler copies into it.
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        let (name, value) = (name.into(), value.into());
        if !is_token(&name) || !is_field_value(&value) {
            log::warn!("http1: invalid response header {name:?}: {value:?} dropped");
        } else if name.eq_ignore_ascii_case("content-type") {
            self.content_type = Some(value);
        } else if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            log::debug!("http1: response header {name} is set by the adapter; dropped");
        } else {
            self.headers.push((name, value));
        }
        self
    }

    /// Closes the connection once this response is sent (it carries
    /// `Connection: close`).
    pub fn close(mut self) -> Response {
        self.close = true;
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The value of the first extra header field called `name`, or the
    /// content type.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("content-type") {
            return self.content_type.as_deref();
        }
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| &**v)
    }

    pub(crate) fn wants_close(&self) -> bool {
        self.close
    }
}

/// What the response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// HTTP/1.1 keep-alive: the default, no header needed.
    Default,
    /// An HTTP/1.0 client that asked for keep-alive must be told it got it.
    KeepAlive,
    /// `Connection: close`, and the connection closes after this response.
    Close,
}

/// The reason phrase sent with a status (any is valid; clients ignore it).
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Writes `n` in decimal, without `format!`.
pub(crate) fn put_decimal(buf: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&digits[i..]);
}

fn put_status_line(buf: &mut BytesMut, status: u16) {
    buf.put_slice(b"HTTP/1.1 ");
    buf.put_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
    buf.put_u8(b' ');
    buf.put_slice(reason(status).as_bytes());
    buf.put_slice(b"\r\n");
}

/// The interim response to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends `resp` to `buf`: the head, and the body if it is small. Returns
/// a larger body, to be queued after the head without a copy. `head_only`
/// (a HEAD request) keeps the `Content-Length` the body would have and
/// sends no body; 204 and 304 have neither.
pub(crate) fn encode(
    resp: &Response,
    head_only: bool,
    persistence: Persistence,
    date: &[u8],
    buf: &mut BytesMut,
) -> Option<Bytes> {
    if !(200..=999).contains(&resp.status) {
        log::warn!("http1: handler gave status {}; sending 500", resp.status);
        return encode(&Response::empty(500), head_only, persistence, date, buf);
    }
    let has_body = !matches!(resp.status, 204 | 304);
    put_status_line(buf, resp.status);
    buf.put_slice(b"Date: ");
    buf.put_slice(date);
    buf.put_slice(b"\r\n");
    if let Some(ct) = &resp.content_type {
        buf.put_slice(b"Content-Type: ");
        buf.put_slice(ct.as_bytes());
        buf.put_slice(b"\r\n");
    }
    if has_body {
        buf.put_slice(b"Content-Length: ");
        put_decimal(buf, resp.body.len() as u64);
        buf.put_slice(b"\r\n");
    }
    match persistence {
        Persistence::Default => {}
        Persistence::KeepAlive => buf.put_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => buf.put_slice(b"Connection: close\r\n"),
    }
    for (name, value) in &resp.headers {
        buf.put_slice(name.as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
    buf.put_slice(b"\r\n");
    if head_only || !has_body || resp.body.is_empty() {
        None
    } else if resp.body.len() <= COPY_BODY_MAX {
        buf.put_slice(&resp.body);
        None
    } else {
        Some(resp.body.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn encoded(resp: &Response, head_only: bool, p: Persistence) -> String {
        let mut buf = BytesMut::new();
        let rest = encode(resp, head_only, p, DATE, &mut buf);
        buf.extend_from_slice(rest.as_deref().unwrap_or_default());
        String::from_utf8(buf.to_vec()).unwrap()
    }

    #[test]
    fn text_response_on_the_wire() {
        let r = Response::text(200, "Hello, World!");
        assert_eq!(
            encoded(&r, false, Persistence::Default),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nHello, World!"
        );
        let head = encoded(&r, true, Persistence::Close);
        assert!(head.ends_with("Content-Length: 13\r\nConnection: close\r\n\r\n"), "{head}");
        let ka = encoded(&Response::empty(200), false, Persistence::KeepAlive);
        assert!(ka.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"), "{ka}");
    }

    #[test]
    fn no_content_has_no_length_and_bad_statuses_become_500() {
        let s = encoded(&Response::text(204, "ignored"), false, Persistence::Default);
        assert!(!s.contains("Content-Length") && s.ends_with("\r\n\r\n"), "{s}");
        for status in [0, 99, 101, 1000] {
            let s = encoded(&Response::text(status, "x"), false, Persistence::Default);
            assert!(s.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{s}");
        }
        let s = encoded(&Response::empty(299), false, Persistence::Default);
        assert!(s.starts_with("HTTP/1.1 299 \r\n"), "{s}");
    }

    #[test]
    fn headers_are_checked() {
        let r = Response::json(201, "{}")
            .header("Location", "/x")
            .header("X-Bad", "a\r\nSet-Cookie: evil")
            .header("Bad Name", "v")
            .header("Content-Length", "99")
            .header("connection", "close")
            .header("content-type", "application/problem+json");
        let s = encoded(&r, false, Persistence::Default);
        assert!(s.contains("\r\nLocation: /x\r\n"));
        assert!(!s.contains("evil") && !s.contains("Bad Name") && !s.contains("Length: 99"), "{s}");
        assert!(s.contains("Content-Type: application/problem+json\r\nContent-Length: 2\r\n"), "{s}");
        assert_eq!(r.header_value("location"), Some("/x"));
        let allow = Response::method_not_allowed("GET, HEAD");
        assert_eq!((allow.status(), allow.header_value("Allow")), (405, Some("GET, HEAD")));
    }

    #[test]
    fn large_bodies_are_queued_not_copied() {
        let big = Bytes::from(vec![b'x'; COPY_BODY_MAX + 1]);
        let mut buf = BytesMut::new();
        let rest = encode(&Response::text(200, big.clone()), false, Persistence::Default, DATE, &mut buf);
        assert_eq!(rest.unwrap().as_ptr(), big.as_ptr());
        assert!(buf.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 13, 999, 1 << 20, u64::MAX] {
            let mut buf = BytesMut::new();
            put_decimal(&mut buf, n);
            assert_eq!(buf, n.to_string().as_bytes());
        }
    }
}
