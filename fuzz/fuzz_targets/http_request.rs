//! The HTTP/1.1 request decoder of `http1` (heads by httparse, body framing, chunked bodies) on
//! the arbitrary byte stream of one connection, cut into arbitrary reads.
//!
//! The decoder comes from `http1::fuzzing`, exported for this purpose.
//!
//! Input: byte 0 selects the limits (`HttpConfig::default()` when bit 7 is clear, else tight
//! limits from the other bits), byte 1 seeds the read sizes (0: one read), the rest is the
//! stream. Invariants, for every request the decoder returns:
//!
//! - no panic anywhere; a refusal is one of the documented statuses and ends the stream;
//! - never a request with both Transfer-Encoding and Content-Length (looked up in the raw head,
//!   not only through `Request::headers`), nor Transfer-Encoding in HTTP/1.0;
//! - the bytes the decoder consumed for the request are exactly: empty lines, a head ending at
//!   its first empty line, then the body as framed: `Content-Length` bytes (all values equal),
//!   or a chunked body that an independent de-chunker reads to its very end, or nothing; so it
//!   never reads past the declared body, and the body returned is those bytes (de-chunked);
//! - the body is within `max_body_size`; the request line is `METHOD SP target SP HTTP/1.x`;
//! - decoding never grows the input buffer; after `Ok(None)` the decoder is inside a head or a
//!   body, or the input is empty;
//! - the requests do not depend on read boundaries: the stream in one read and in many gives
//!   the same requests and the same refusal (a refusal may show as a head still waiting when
//!   the decoder defers re-parsing a long head until its end may have come, and a head over
//!   `max_head_size` may be refused for its size or for a syntax error past the limit).
#![no_main]

use bytes::BytesMut;
use http1::fuzzing::{Decoder, Reject};
use http1::{HttpConfig, Request, Version};
use libfuzzer_sys::fuzz_target;

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// Statuses the adapter documents for a refused request.
const STATUSES: [u16; 7] = [400, 413, 414, 417, 431, 501, 505];

fuzz_target!(|data: &[u8]| {
    let [limits, chunk_seed, stream @ ..] = data else {
        return;
    };
    let config = config(*limits);
    let whole = run(&config, stream, 0);
    if *chunk_seed != 0 {
        let pieces = run(&config, stream, *chunk_seed);
        assert_eq!(whole.requests, pieces.requests, "requests depend on read boundaries");
        match (&whole.end, &pieces.end) {
            (a, b) if a == b => {}
            (End::Refused(_), End::Waiting { in_head: true, .. }) => {}
            // A head over max_head_size is refused as soon as the bytes over the limit are seen
            // (414/431), before a syntax error further on is (400): which one depends on reads.
            (End::Refused(a), End::Refused(b)) if [a, b].iter().any(|s| [414, 431].contains(s)) => {}
            (a, b) => panic!("end of stream depends on read boundaries: one read {a:?}, many {b:?}"),
        }
    }
});

fn config(limits: u8) -> HttpConfig {
    if limits & 0x80 == 0 {
        return HttpConfig::default();
    }
    let config = HttpConfig {
        max_head_size: 64 + usize::from(limits & 0x0F) * 32,
        max_headers: 1 + usize::from((limits >> 4) & 7),
        max_body_size: usize::from(limits & 0x0F) * 4,
        ..HttpConfig::default()
    };
    config.validate().expect("tight limits are valid");
    config
}

/// What one run saw.
struct Run {
    requests: Vec<Seen>,
    end: End,
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Refused(u16),
    Waiting { in_head: bool, in_body: bool },
}

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: &'static str,
    target: String,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn run(config: &HttpConfig, stream: &[u8], chunk_seed: u8) -> Run {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(chunk_seed));
    let mut decoder = Decoder::new();
    let mut input = BytesMut::new();
    let mut fed = 0usize;
    // End of the bytes consumed by the previous request.
    let mut done = 0usize;
    let mut requests = Vec::new();
    loop {
        let capacity = input.capacity();
        let result = decoder.decode(&mut input, config);
        assert!(input.capacity() <= capacity, "decode grew the input buffer");
        match result {
            Ok(Some(req)) => {
                let consumed = fed - input.len();
                check_request(config, &stream[done..consumed], &req);
                done = consumed;
                requests.push(seen(&req));
            }
            Ok(None) => {
                assert!(
                    decoder.in_head() || decoder.in_body() || input.is_empty(),
                    "decoder idle with {} bytes of input left",
                    input.len()
                );
                if fed == stream.len() {
                    let end = End::Waiting { in_head: decoder.in_head(), in_body: decoder.in_body() };
                    return Run { requests, end };
                }
                let size = match chunk_seed {
                    0 => stream.len(),
                    _ if rng.next() % 4 == 0 => 1 + (rng.next() % 512) as usize,
                    _ => 1 + (rng.next() % 16) as usize,
                };
                let size = size.min(stream.len() - fed);
                input.extend_from_slice(&stream[fed..fed + size]);
                fed += size;
            }
            Err(Reject { status, reason }) => {
                assert!(STATUSES.contains(&status), "undocumented status {status} ({reason})");
                return Run { requests, end: End::Refused(status) };
            }
        }
    }
}

fn seen(req: &Request) -> Seen {
    // The other accessors must not panic either.
    let _ = (req.path(), req.query(), req.query_param("a"), req.header("host"), format!("{req:?}"));
    Seen {
        method: req.method().as_str(),
        target: req.target().to_owned(),
        version: req.version(),
        headers: req.headers().map(|(n, v)| (n.to_owned(), v.to_vec())).collect(),
        body: req.body().to_vec(),
    }
}

/// Index just past the first empty line of `bytes` (a line with nothing before its LF or CRLF),
/// lines starting at index 0.
fn first_empty_line_end(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    while start < bytes.len() {
        let nl = start + bytes[start..].iter().position(|&b| b == b'\n')?;
        if bytes[start..nl].is_empty() || &bytes[start..nl] == b"\r" {
            return Some(nl + 1);
        }
        start = nl + 1;
    }
    None
}

/// The bytes consumed for `req` are empty lines, its head, and exactly its framed body.
fn check_request(config: &HttpConfig, consumed: &[u8], req: &Request) {
    let mut bytes = consumed;
    while let Some(rest) = bytes.strip_prefix(b"\r\n").or_else(|| bytes.strip_prefix(b"\n")) {
        bytes = rest;
    }
    let head_len = first_empty_line_end(bytes).expect("request consumed without a complete head");
    let (head, rest) = bytes.split_at(head_len);

    let version = match req.version() {
        Version::Http10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let line = format!("{} {} {version}", req.method().as_str(), req.target());
    assert!(
        head.starts_with(line.as_bytes()),
        "request line is not {line:?}: {:?}",
        String::from_utf8_lossy(head)
    );

    // Framing fields, read from the raw head.
    let mut te = false;
    let mut lengths = Vec::new();
    for field in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = field.iter().position(|&b| b == b':') else { continue };
        let name = &field[..colon];
        let value = field[colon + 1..].strip_suffix(b"\r").unwrap_or(&field[colon + 1..]);
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for element in value.split(|&b| b == b',') {
                let text = std::str::from_utf8(element.trim_ascii()).expect("accepted a non-ASCII length");
                lengths.push(text.parse::<u64>().expect("accepted an invalid Content-Length"));
            }
        }
    }
    assert!(
        !(te && !lengths.is_empty()),
        "accepted a request with both Transfer-Encoding and Content-Length: {:?}",
        String::from_utf8_lossy(head)
    );
    let body = req.body();
    assert!(body.len() <= config.max_body_size, "body of {} bytes over max_body_size", body.len());
    if te {
        assert_eq!(req.version(), Version::Http11, "accepted Transfer-Encoding in HTTP/1.0");
        let decoded = dechunk(rest).unwrap_or_else(|| {
            panic!("consumed bytes are not exactly a chunked body: {:?}", String::from_utf8_lossy(rest))
        });
        assert_eq!(&decoded[..], &body[..], "chunked body differs from the reference de-chunker");
    } else if let Some(&n) = lengths.first() {
        assert!(lengths.iter().all(|&m| m == n), "accepted conflicting Content-Length values");
        assert_eq!(rest.len() as u64, n, "consumed {} body bytes for Content-Length {n}", rest.len());
        assert_eq!(rest, &body[..], "body differs from the bytes after the head");
    } else {
        assert!(rest.is_empty(), "consumed {} bytes after a head without a body", rest.len());
        assert!(body.is_empty());
    }
}

/// A reference de-chunker, lenient about extensions: the de-chunked body if `bytes` is exactly
/// one chunked body (chunks, last chunk, trailer section, final empty line), else `None`.
fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let nl = bytes.iter().position(|&b| b == b'\n')?;
        let line = bytes[..nl].strip_suffix(b"\r")?;
        bytes = &bytes[nl + 1..];
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
        if size == 0 {
            // Trailer fields, then the empty line: nothing may follow.
            return (first_empty_line_end(bytes)? == bytes.len()).then_some(body);
        }
        let size = usize::try_from(size).ok()?;
        let data = bytes.get(..size)?;
        body.extend_from_slice(data);
        bytes = bytes[size..].strip_prefix(b"\r\n")?;
    }
}
