//! Turns a connection's input into whole requests, one after another: head,
//! then body by its framing. No I/O: it consumes a `BytesMut` and says when
//! it needs more.

use crate::chunked::ChunkedDecoder;
use crate::config::HttpConfig;
use crate::parse::{parse_head, BodyKind, Reject};
use crate::request::{Layout, Request};
use bytes::{Buf, Bytes, BytesMut};

/// A request whose head is read and whose body is still arriving. Boxed in
/// the decoder, so that a connection between requests stays small.
struct Partial {
    head: Bytes,
    layout: Layout,
    body: PartialBody,
    /// The client sent `Expect: 100-continue` and no body byte came yet.
    continue_owed: bool,
}

enum PartialBody {
    /// A `Content-Length` body of this many bytes, kept in the input until
    /// it is whole, then split off without a copy.
    Length(usize),
    /// Chunk data is copied out of the input as it comes.
    Chunked(ChunkedDecoder, BytesMut),
}

enum State {
    Head,
    Body(Box<Partial>),
}

/// The request decoder of one connection.
pub struct Decoder {
    state: State,
    /// Bytes of an incomplete head already seen without its end: the head
    /// is parsed again only once an empty line may have arrived, so that a
    /// client sending a byte at a time costs linear, not quadratic, work.
    scanned: usize,
    /// A CR ended the input between requests: the first half of an empty
    /// line split across reads, consumed; its LF must come next.
    pending_cr: bool,
}

/// Incomplete heads up to this size are parsed again on every read.
const EAGER_PARSE: usize = 1024;

/// Whether `bytes` holds the empty line that ends a head.
fn has_blank_line(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Decoder {
        Decoder { state: State::Head, scanned: 0, pending_cr: false }
    }

    /// True while a body is being read.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body(_))
    }

    /// True while part of a head has arrived.
    pub fn in_head(&self) -> bool {
        self.scanned > 0
    }

    /// True if a `100 Continue` should be sent now for the request being read.
    pub(crate) fn continue_owed(&self) -> bool {
        matches!(&self.state, State::Body(p) if p.continue_owed)
    }

    /// Records that `100 Continue` was sent.
    pub(crate) fn continue_sent(&mut self) {
        if let State::Body(p) = &mut self.state {
            p.continue_owed = false;
        }
    }

    /// Takes the next whole request from the start of `input`, consuming its
    /// bytes; `Ok(None)` if more input is needed (what is there is kept, or
    /// taken into the body being decoded). After an error the connection
    /// must be closed: the decoder is left where it failed.
    pub fn decode(&mut self, input: &mut BytesMut, config: &HttpConfig) -> Result<Option<Request>, Reject> {
        if let State::Head = self.state {
            let Some(head) = self.head(input, config)? else { return Ok(None) };
            // A Content-Length within max_body_size fits a usize.
            let length = match head.body {
                BodyKind::None => Some(0),
                BodyKind::Length(n) => Some(n as usize),
                BodyKind::Chunked => None,
            };
            if let Some(n) = length.filter(|&n| input.len() - head.len >= n) {
                // Whole already (the common case): no copy, no allocation.
                let bytes = input.split_to(head.len).freeze();
                let body = input.split_to(n).freeze();
                return Ok(Some(Request::new(bytes, head.layout, body)));
            }
            // The body will take more reads: the head gets its own copy
            // rather than pin the read buffer meanwhile.
            let bytes = Bytes::copy_from_slice(&input[..head.len]);
            input.advance(head.len);
            // A client that sent body bytes already is not waiting for a 100.
            let continue_owed = head.expect_continue && input.is_empty();
            let body = match length {
                Some(n) => PartialBody::Length(n),
                None => PartialBody::Chunked(ChunkedDecoder::new(), BytesMut::new()),
            };
            let partial = Partial { head: bytes, layout: head.layout, body, continue_owed };
            self.state = State::Body(Box::new(partial));
        } else if let State::Body(p) = &mut self.state {
            if !input.is_empty() {
                // Body bytes came: the client is not waiting for a 100 any more.
                p.continue_owed = false;
            }
        }
        let State::Body(p) = &mut self.state else { return Ok(None) };
        let body = match &mut p.body {
            PartialBody::Length(n) if input.len() >= *n => input.split_to(*n).freeze(),
            PartialBody::Length(_) => return Ok(None),
            PartialBody::Chunked(dec, buf) => match dec.decode(input, buf, config)? {
                true => std::mem::take(buf).freeze(),
                false => return Ok(None),
            },
        };
        match std::mem::replace(&mut self.state, State::Head) {
            State::Body(p) => Ok(Some(Request::new(p.head, p.layout, body))),
            State::Head => Ok(None),
        }
    }

    /// Parses the head at the start of `input`, once it may be complete.
    fn head(
        &mut self,
        input: &mut BytesMut,
        config: &HttpConfig,
    ) -> Result<Option<crate::parse::Head>, Reject> {
        if self.scanned == 0 {
            if std::mem::take(&mut self.pending_cr) {
                match input.first() {
                    Some(b'\n') => input.advance(1),
                    Some(_) => return Err(crate::parse::reject(400, "bare CR between requests")),
                    None => {
                        self.pending_cr = true;
                        return Ok(None);
                    }
                }
            }
            // Empty lines before a request line are ignored (RFC 9112
            // section 2.2): some clients send a CRLF after a POST body.
            let mut skip = 0;
            loop {
                match &input[skip..] {
                    [b'\r', b'\n', ..] => skip += 2,
                    [b'\n', ..] => skip += 1,
                    _ => break,
                }
            }
            input.advance(skip);
            // A lone CR may be the first half of an empty line split across
            // reads: not the start of a head yet.
            if input[..] == [b'\r'] {
                input.advance(1);
                self.pending_cr = true;
                return Ok(None);
            }
        }
        if input.is_empty() {
            return Ok(None);
        }
        // A short head is parsed on every read, so that garbage (TLS on a
        // plain port, say) is refused at once rather than at the timeout; a
        // longer one once its end may have come (it could straddle the old
        // and new bytes) or it passes the size limit.
        if self.scanned > 0
            && input.len() > EAGER_PARSE
            && input.len() <= config.max_head_size
            && !has_blank_line(&input[self.scanned.saturating_sub(2).min(input.len())..])
        {
            self.scanned = input.len();
            return Ok(None);
        }
        match parse_head(input, config)? {
            None => {
                self.scanned = input.len();
                Ok(None)
            }
            Some(head) => {
                self.scanned = 0;
                Ok(Some(head))
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Method;

    /// Decodes exactly one request from `bytes`.
    pub(crate) fn parse_one(bytes: &[u8]) -> Request {
        let mut input = BytesMut::from(bytes);
        let req = Decoder::new().decode(&mut input, &HttpConfig::default()).unwrap().unwrap();
        assert!(input.is_empty(), "left over: {input:?}");
        req
    }

    type Seen = (Method, String, Vec<u8>, bool);

    #[test]
    fn an_empty_line_split_across_reads_is_not_a_head() {
        // Found by fuzzing: "\r" then "\n" left the decoder "in a head", so
        // an idle keep-alive client got a 408 instead of a quiet close.
        let mut dec = Decoder::new();
        let mut input = BytesMut::from(&b"\r"[..]);
        assert!(dec.decode(&mut input, &HttpConfig::default()).unwrap().is_none());
        assert!(!dec.in_head());
        assert!(input.is_empty(), "an idle decoder holds no input");
        input.extend_from_slice(b"\n");
        assert!(dec.decode(&mut input, &HttpConfig::default()).unwrap().is_none());
        assert!(!dec.in_head());
        assert!(input.is_empty());
        input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(dec.decode(&mut input, &HttpConfig::default()).unwrap().is_some());
        // A CR followed by anything but LF is malformed.
        let mut dec = Decoder::new();
        let mut input = BytesMut::from(&b"\r"[..]);
        assert!(dec.decode(&mut input, &HttpConfig::default()).unwrap().is_none());
        input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(dec.decode(&mut input, &HttpConfig::default()).unwrap_err().status, 400);
    }

    /// Feeds `pieces` one after another; every request decoded, in order.
    fn feed(pieces: &[&[u8]], config: &HttpConfig) -> Result<Vec<Seen>, Reject> {
        let mut dec = Decoder::new();
        let mut input = BytesMut::new();
        let mut seen = Vec::new();
        for piece in pieces {
            input.extend_from_slice(piece);
            while let Some(r) = dec.decode(&mut input, config)? {
                seen.push((r.method(), r.target().to_string(), r.body().to_vec(), r.keep_alive()));
            }
        }
        assert!(input.is_empty() && !dec.in_body() && !dec.in_head(), "left over: {input:?}");
        Ok(seen)
    }

    const PIPELINE: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n\
        POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
        \r\n\
        POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n\
        HEAD /d HTTP/1.1\nHost: h\n\n\
        PUT /e HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n\
        GET /f HTTP/1.0\r\n\r\n";

    fn expected() -> Vec<Seen> {
        vec![
            (Method::Get, "/a".into(), vec![], true),
            (Method::Post, "/b".into(), b"hello".to_vec(), true),
            (Method::Post, "/c".into(), b"abcde".to_vec(), true),
            (Method::Head, "/d".into(), vec![], true),
            (Method::Put, "/e".into(), vec![], true),
            (Method::Get, "/f".into(), vec![], false),
        ]
    }

    #[test]
    fn pipelined_requests_split_at_every_byte_boundary() {
        let config = HttpConfig::default();
        assert_eq!(feed(&[PIPELINE], &config).unwrap(), expected());
        for i in 0..=PIPELINE.len() {
            let (a, b) = PIPELINE.split_at(i);
            assert_eq!(feed(&[a, b], &config).unwrap(), expected(), "split at {i}");
        }
        let bytes: Vec<&[u8]> = PIPELINE.chunks(1).collect();
        assert_eq!(feed(&bytes, &config).unwrap(), expected(), "a byte at a time");
        let threes: Vec<&[u8]> = PIPELINE.chunks(3).collect();
        assert_eq!(feed(&threes, &config).unwrap(), expected(), "three bytes at a time");
    }

    #[test]
    fn a_bad_request_after_good_ones_is_reported_in_turn() {
        let mut dec = Decoder::new();
        let mut input =
            BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost h\r\n\r\n"[..]);
        let config = HttpConfig::default();
        assert!(dec.decode(&mut input, &config).unwrap().is_some());
        assert_eq!(dec.decode(&mut input, &config).unwrap_err().status, 400);
    }

    #[test]
    fn a_head_dribbled_a_byte_at_a_time_is_still_limited() {
        let config = HttpConfig { max_head_size: 100, ..HttpConfig::default() };
        let mut dec = Decoder::new();
        let mut input = BytesMut::new();
        let mut status = None;
        for b in b"GET / HTTP/1.1\r\nHost: h\r\n".iter().chain(std::iter::repeat_n(&b'x', 200)) {
            input.extend_from_slice(&[*b]);
            match dec.decode(&mut input, &config) {
                Ok(r) => assert!(r.is_none()),
                Err(r) => {
                    status = Some(r.status);
                    break;
                }
            }
        }
        assert_eq!(status, Some(431));
        assert!(input.len() <= 101, "stopped at the limit, not later");
    }

    #[test]
    fn garbage_is_refused_on_its_first_bytes() {
        let mut input = BytesMut::from(&b"\x16\x03\x01"[..]);
        assert_eq!(Decoder::new().decode(&mut input, &HttpConfig::default()).unwrap_err().status, 400);
    }

    #[test]
    fn expect_continue_is_owed_until_body_bytes_come() {
        let config = HttpConfig::default();
        let mut dec = Decoder::new();
        let mut input = BytesMut::from(
            &b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"[..],
        );
        assert!(dec.decode(&mut input, &config).unwrap().is_none());
        assert!(dec.in_body() && dec.continue_owed());
        input.extend_from_slice(b"a");
        assert!(dec.decode(&mut input, &config).unwrap().is_none());
        assert!(!dec.continue_owed(), "a body byte came: no 100 needed");
        input.extend_from_slice(b"bc");
        assert_eq!(dec.decode(&mut input, &config).unwrap().unwrap().body().as_ref(), b"abc");
    }

    #[test]
    fn stray_empty_lines_between_requests_leave_the_connection_idle() {
        let mut dec = Decoder::new();
        let mut input = BytesMut::from(&b"\r\n\r\n\n"[..]);
        assert!(dec.decode(&mut input, &HttpConfig::default()).unwrap().is_none());
        assert!(input.is_empty() && !dec.in_head());
        // A lone CR is not a line end: it waits for its LF, then fails.
        let mut input = BytesMut::from(&b"\r"[..]);
        assert!(dec.decode(&mut input, &HttpConfig::default()).unwrap().is_none());
        input.extend_from_slice(b"\rGET");
        assert_eq!(dec.decode(&mut input, &HttpConfig::default()).unwrap_err().status, 400);
    }
}
