//! Chunked request bodies (RFC 9112 section 7.1), decoded strictly: a chunk
//! size is hex digits and nothing else, a line ends with CRLF, data is
//! followed by CRLF. Sloppy chunk-size parsing ("123x", "5 0") is a request
//! smuggling primitive (ANCHORS 8.12), so anything off is a 400.

use crate::config::{HttpConfig, MAX_HEADERS_LIMIT};
use crate::parse::{reject, Reject};
use bytes::{Buf, BytesMut};

/// Longest chunk-size line, extensions included.
const MAX_SIZE_LINE: usize = 4096;
/// Most bytes of chunk extensions over one body: they are skipped, and a
/// body of one-byte chunks with long extensions would otherwise be free.
const MAX_EXTENSIONS: usize = 16 << 10;

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data: bytes still to come.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
}

/// Decodes one chunked body, across as many reads as it takes.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    extensions: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new() -> ChunkedDecoder {
        ChunkedDecoder { state: State::Size, extensions: 0 }
    }

    /// Consumes what it can of `input`, appending chunk data to `body`.
    /// `Ok(true)` once the body and its trailers are complete (what follows
    /// in `input` is the next request); `Ok(false)` if it needs more input.
    pub(crate) fn decode(
        &mut self,
        input: &mut BytesMut,
        body: &mut BytesMut,
        config: &HttpConfig,
    ) -> Result<bool, Reject> {
        loop {
            match self.state {
                State::Size => {
                    let window = &input[..input.len().min(MAX_SIZE_LINE)];
                    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
                        if input.len() >= MAX_SIZE_LINE {
                            return Err(reject(400, "chunk size line too long"));
                        }
                        return Ok(false);
                    };
                    let line = window[..nl]
                        .strip_suffix(b"\r")
                        .ok_or(reject(400, "chunk size line must end with CRLF"))?;
                    let (size, ext) = parse_size_line(line)?;
                    self.extensions += ext;
                    if self.extensions > MAX_EXTENSIONS {
                        return Err(reject(400, "too many chunk extensions"));
                    }
                    input.advance(nl + 1);
                    if size == 0 {
                        self.state = State::Trailers;
                    } else if body.len() as u64 + size > config.max_body_size as u64 {
                        return Err(reject(413, "request body too large"));
                    } else {
                        self.state = State::Data(size);
                    }
                }
                State::Data(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    if n == 0 {
                        return Ok(false);
                    }
                    body.extend_from_slice(&input[..n]);
                    input.advance(n);
                    let left = left - n as u64;
                    self.state = if left == 0 { State::DataEnd } else { State::Data(left) };
                }
                State::DataEnd => {
                    let want = b"\r\n";
                    let have = &input[..input.len().min(2)];
                    if have != &want[..have.len()] {
                        return Err(reject(400, "chunk data not followed by CRLF"));
                    }
                    if have.len() < 2 {
                        return Ok(false);
                    }
                    input.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => return self.trailers(input, config),
            }
        }
    }

    /// Trailer fields are checked with httparse and dropped: nothing here
    /// needs them, and a recipient may discard them (RFC 9110 section 6.5).
    fn trailers(&mut self, input: &mut BytesMut, config: &HttpConfig) -> Result<bool, Reject> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS_LIMIT];
        let slots = &mut slots[..config.max_headers.min(MAX_HEADERS_LIMIT)];
        match httparse::parse_headers(input, slots) {
            Ok(httparse::Status::Complete((n, _))) if n <= config.max_head_size => {
                input.advance(n);
                Ok(true)
            }
            Ok(httparse::Status::Partial) if input.len() <= config.max_head_size => Ok(false),
            Ok(_) | Err(httparse::Error::TooManyHeaders) => Err(reject(431, "trailer section too large")),
            Err(_) => Err(reject(400, "malformed trailer section")),
        }
    }
}

/// `chunk-size [ chunk-ext ]`, the CRLF already removed: returns the size
/// and the length of the extensions. Whitespace is allowed only before a
/// `;` (the BWS of RFC 9112 `chunk-ext`); extensions are skipped, but may
/// not hold control characters.
fn parse_size_line(line: &[u8]) -> Result<(u64, usize), Reject> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(reject(400, "invalid chunk size"));
    }
    let size = line[..digits]
        .iter()
        .try_fold(0u64, |n, &b| {
            let d = (b as char).to_digit(16)?;
            n.checked_mul(16)?.checked_add(u64::from(d))
        })
        .ok_or(reject(400, "chunk size overflow"))?;
    let rest = &line[digits..];
    if rest.is_empty() {
        return Ok((size, 0));
    }
    let bws = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let ext = &rest[bws..];
    if !ext.starts_with(b";") {
        return Err(reject(400, "invalid chunk size"));
    }
    if ext.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
        return Err(reject(400, "invalid chunk extension"));
    }
    Ok((size, rest.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes; the body, or the status.
    fn decode_in_steps(wire: &[u8], step: usize, config: &HttpConfig) -> Result<(Vec<u8>, Vec<u8>), u16> {
        let mut dec = ChunkedDecoder::new();
        let mut input = BytesMut::new();
        let mut body = BytesMut::new();
        for piece in wire.chunks(step.max(1)) {
            input.extend_from_slice(piece);
            match dec.decode(&mut input, &mut body, config) {
                Ok(true) => return Ok((body.to_vec(), input.to_vec())),
                Ok(false) => {}
                Err(r) => return Err(r.status),
            }
        }
        Err(0) // incomplete
    }

    fn decode(wire: &[u8]) -> Result<(Vec<u8>, Vec<u8>), u16> {
        decode_in_steps(wire, wire.len(), &HttpConfig::default())
    }

    #[test]
    fn decodes_at_every_split() {
        let wire =
            b"5\r\nhello\r\n1;name=value;q=\"a b\"\r\n,\r\n0006\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        for step in 1..=wire.len() {
            let (body, rest) = decode_in_steps(wire, step, &HttpConfig::default()).unwrap();
            assert_eq!(body, b"hello, world", "step {step}");
            // Whatever followed the body (as much of it as came) is left.
            assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
        }
        assert_eq!(decode(b"0\r\n\r\n").unwrap().0, b"");
        assert_eq!(decode(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap().0, b"0123456789");
        assert_eq!(decode(b"3 ;ext\r\nabc\r\n0\r\n\r\n").unwrap().0, b"abc", "BWS before ';'");
    }

    #[test]
    fn malformed_chunk_sizes_are_400() {
        for bad in [
            &b"123x\r\n"[..],
            b"5 0\r\nhello\r\n0\r\n\r\n",
            b"-1\r\n",
            b"+5\r\n",
            b"0x5\r\n",
            b" 5\r\n",
            b"5 \r\nhello\r\n",
            b"\r\n",
            b"5\nhello\r\n",
            b"5\r\r\nhello\r\n",
            b"5\x0b;x\r\n",
            b"5;a\x00b\r\n",
            b"5;a\rb\r\n",
            b"10000000000000000\r\n",
            b"ffffffffffffffffff\r\n",
        ] {
            assert_eq!(decode(bad), Err(400), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn data_must_match_its_size() {
        // More data than announced, less, or no CRLF after it.
        assert_eq!(decode(b"3\r\nhello\r\n0\r\n\r\n"), Err(400));
        assert_eq!(decode(b"5\r\nhel\r\n0\r\n\r\n"), Err(400));
        assert_eq!(decode(b"5\r\nhelloXY0\r\n\r\n"), Err(400));
        assert_eq!(decode(b"5\r\nhello\n0\r\n\r\n"), Err(400));
        assert_eq!(decode(b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"), Err(400));
    }

    #[test]
    fn limits() {
        let config = HttpConfig { max_body_size: 8, max_head_size: 64, ..HttpConfig::default() };
        let d = |w: &[u8]| decode_in_steps(w, w.len(), &config);
        assert_eq!(d(b"9\r\n").unwrap_err(), 413, "one chunk over the limit");
        assert_eq!(d(b"5\r\nhello\r\n4\r\n").unwrap_err(), 413, "the sum over the limit");
        assert_eq!(d(b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n").unwrap().0, b"helloabc");
        let mut long_line = b"1;".to_vec();
        long_line.extend(std::iter::repeat_n(b'x', MAX_SIZE_LINE));
        assert_eq!(d(&long_line).unwrap_err(), 400);
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b"A: b\r\n".as_slice(), 20).flatten());
        assert_eq!(d(&trailers).unwrap_err(), 431);
        let mut exts = Vec::new();
        for _ in 0..8 {
            exts.extend_from_slice(b"1;");
            exts.extend(std::iter::repeat_n(b'e', 4000));
            exts.extend_from_slice(b"\r\na\r\n");
        }
        let big = HttpConfig { max_body_size: 1 << 20, ..config };
        assert_eq!(decode_in_steps(&exts, exts.len(), &big).unwrap_err(), 400, "extension bytes bounded");
    }
}
