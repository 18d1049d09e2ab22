//! A parsed request: method, target, header lookup and body, all sharing
//! the connection's read buffer.

use bytes::Bytes;
use std::fmt;

/// A request method this adapter serves. Any other method is answered with
/// 501 before a handler sees it; `CONNECT` too, since tunnels are not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: answer it as `GET`; the adapter sends the headers only.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 section 9.1): `get` is unknown.
    pub(crate) fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            _ => return None,
        })
    }

    /// The method's name, as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless the
    /// request asked for `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: keep-alive unless `Connection: close`.
    Http11,
}

/// Where the parts of a request head are, as offsets into its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub method: Method,
    pub version: Version,
    /// The path part of the target (empty for an absolute-form target with
    /// no path, which means `/`).
    pub path: (u32, u32),
    /// After the `?`, if there is one.
    pub query: Option<(u32, u32)>,
    /// The whole request target, as sent.
    pub target: (u32, u32),
    /// Start of the first header line.
    pub fields: u32,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
}

/// A request, whole: its head and its body (de-chunked if it came chunked).
///
/// The head and body share the connection's read buffer, so making a
/// request costs no copy; a handler that keeps `body()` for long should copy
/// it (`Bytes::copy_from_slice`) so as not to pin that buffer.
pub struct Request {
    head: Bytes,
    layout: Layout,
    body: Bytes,
}

fn slice(head: &Bytes, (start, end): (u32, u32)) -> &[u8] {
    head.get(start as usize..end as usize).unwrap_or_default()
}

/// The parser only records offsets of text httparse checked to be UTF-8,
/// so the fallback is never taken.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

impl Request {
    pub(crate) fn new(head: Bytes, layout: Layout, body: Bytes) -> Request {
        Request { head, layout, body }
    }

    /// Moves the request out of the connection's read buffer (a loop-wide
    /// 64 KiB scratch buffer, or the connection's own), for a request kept
    /// past the read that brought it: a waiting long poll would otherwise
    /// pin a whole read buffer.
    pub(crate) fn detach(&mut self) {
        self.head = Bytes::copy_from_slice(&self.head);
        if !self.body.is_empty() {
            self.body = Bytes::copy_from_slice(&self.body);
        }
    }

    pub(crate) fn keep_alive(&self) -> bool {
        self.layout.keep_alive
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.layout.method
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.layout.version
    }

    /// The request target as sent: `/path?query`, `*`, or an absolute URI.
    pub fn target(&self) -> &str {
        text(slice(&self.head, self.layout.target))
    }

    /// The path, not percent-decoded: `/rooms/r/messages`. For an
    /// absolute-form target (`http://host/path`) this is its path part, `/`
    /// if it has none; for `OPTIONS *` it is `*`.
    pub fn path(&self) -> &str {
        match text(slice(&self.head, self.layout.path)) {
            "" => "/",
            p => p,
        }
    }

    /// The query, after the `?`, not percent-decoded.
    pub fn query(&self) -> Option<&str> {
        self.layout.query.map(|q| text(slice(&self.head, q)))
    }

    /// The value of the first `name=value` pair of the query, not
    /// percent-decoded; a name without `=` has the empty value.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if pair == name => Some(""),
            _ => None,
        })
    }

    /// The value of the first header field called `name` (compared without
    /// regard to case), without surrounding whitespace; `None` if there is
    /// none or its value is not UTF-8 (see [`Request::header_bytes`]).
    pub fn header(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.header_bytes(name)?).ok()
    }

    /// Like [`Request::header`], for values that may hold non-UTF-8 bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Every header field, in order, as (name, value); a field sent several
    /// times appears several times.
    pub fn headers(&self) -> Fields<'_> {
        Fields { rest: self.head.get(self.layout.fields as usize..).unwrap_or_default() }
    }

    /// The body (empty if the request had none).
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The header fields of a [`Request`], from [`Request::headers`].
///
/// It walks the head that httparse already validated (names are tokens
/// ending at the colon, values hold no CR or LF, no line folding), so a
/// request needs no table of fields of its own.
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let end = self.rest.iter().position(|&b| b == b'\n')?;
        let line = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.rest = &[];
            return None;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let name = std::str::from_utf8(&line[..colon]).ok()?;
        // httparse let no CR, LF or form feed into a value: this trims OWS.
        Some((name, line[colon + 1..].trim_ascii()))
    }
}

#[cfg(test)]
mod tests {
    use crate::decoder::tests::parse_one;
    use crate::{Method, Version};

    #[test]
    fn accessors_read_the_head() {
        let req = parse_one(
            b"GET /rooms/r/messages?since=42&wait=30&flag HTTP/1.1\r\nHost: x\r\n\
              X-Thing:  a: b \t\r\nx-thing: second\r\n\r\n",
        );
        assert_eq!(req.method(), Method::Get);
        assert_eq!(req.version(), Version::Http11);
        assert_eq!(req.target(), "/rooms/r/messages?since=42&wait=30&flag");
        assert_eq!(req.path(), "/rooms/r/messages");
        assert_eq!(req.query(), Some("since=42&wait=30&flag"));
        assert_eq!(req.query_param("since"), Some("42"));
        assert_eq!(req.query_param("wait"), Some("30"));
        assert_eq!(req.query_param("flag"), Some(""));
        assert_eq!(req.query_param("nope"), None);
        assert_eq!(req.header("HOST"), Some("x"));
        assert_eq!(req.header("x-thing"), Some("a: b"));
        let all: Vec<_> = req.headers().map(|(n, v)| (n, v.to_vec())).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2], ("x-thing", b"second".to_vec()));
        assert!(req.body().is_empty());
    }

    #[test]
    fn absolute_form_and_asterisk_targets() {
        let req = parse_one(b"GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((req.path(), req.query()), ("/a/b", Some("c=d")));
        let req = parse_one(b"GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((req.path(), req.query()), ("/", None));
        let req = parse_one(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req.path(), "*");
    }

    #[test]
    fn bare_lf_heads_and_leading_empty_lines_are_read() {
        let req = parse_one(b"\r\n\nGET / HTTP/1.0\nA: 1\nB:2\n\n");
        assert_eq!(req.version(), Version::Http10);
        assert_eq!((req.header("a"), req.header("b")), (Some("1"), Some("2")));
        assert_eq!(req.path(), "/");
    }
}
