//! HTTP/1.1 responses, parsed minimally but correctly: the head with
//! `httparse`, then the body framed by `Content-Length` or `chunked`
//! (RFC 9112 section 6). Stateless: each call parses from the start of
//! the buffer, so a response split over reads is parsed again once more
//! has arrived (responses to a load generator are small).

/// Headers a response may have.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (with extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// Largest body accepted.
const MAX_BODY: usize = 64 << 20;

/// A whole response at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Status code.
    pub status: u16,
    /// Bytes it takes, head and body.
    pub len: usize,
    /// The server will close the connection after it.
    pub close: bool,
}

impl Parsed {
    /// An interim (1xx) response: the final one is still to come.
    pub fn interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// The response at the start of `buf`, if it has all arrived; `head` says
/// it answers a HEAD request (a body is announced, not sent).
pub fn parse(buf: &[u8], head: bool) -> Result<Option<Parsed>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = response.code.unwrap_or(0);
    if status == 101 {
        return Err("the server switched protocols".into());
    }
    let (mut length, mut chunked, mut close) = (None, false, false);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| "bad Content-Length".to_string())?;
            if length.is_some_and(|m| m != n) {
                return Err("conflicting Content-Length headers".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding frames the body.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h.value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let body = if head || (100..200).contains(&status) || status == 204 || status == 304 {
        Some(0)
    } else if chunked {
        chunked_len(&buf[head_len..])?
    } else {
        match length {
            Some(n) if n > MAX_BODY => return Err(format!("body of {n} bytes")),
            Some(n) => (buf.len() - head_len >= n).then_some(n),
            None => {
                return Err("response without Content-Length or chunked on a kept-alive connection".into())
            }
        }
    };
    Ok(body.map(|b| Parsed { status, len: head_len + b, close }))
}

/// The length of the chunked body at the start of `buf` (trailers
/// included), if it has all arrived.
fn chunked_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(line) = line_at(buf, at, MAX_CHUNK_LINE)? else { return Ok(None) };
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .filter(|&n| n <= MAX_BODY)
            .ok_or_else(|| format!("bad chunk size line {:?}", String::from_utf8_lossy(line)))?;
        at += line.len() + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(line) = line_at(buf, at, MAX_CHUNK_LINE)? else { return Ok(None) };
                at += line.len() + 2;
                if line.is_empty() {
                    return Ok(Some(at));
                }
            }
        }
        let Some(end) = buf.get(at + size..at + size + 2) else { return Ok(None) };
        if end != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += size + 2;
    }
}

/// The line starting at `at` (without its CRLF), if it has arrived.
fn line_at(buf: &[u8], at: usize, max: usize) -> Result<Option<&[u8]>, String> {
    let rest = buf.get(at..).unwrap_or_default();
    match rest.windows(2).take(max + 1).position(|w| w == b"\r\n") {
        Some(n) => Ok(Some(&rest[..n])),
        None if rest.len() > max + 1 => Err(format!("line longer than {max} bytes in a chunked body")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `stream` fed in two pieces at every split, as the worker does.
    fn parse_all(stream: &[u8], head: bool) -> Vec<Parsed> {
        let mut first = None;
        for cut in 0..=stream.len() {
            let (mut pending, mut got) = (Vec::new(), Vec::new());
            for chunk in [&stream[..cut], &stream[cut..]] {
                pending.extend_from_slice(chunk);
                while let Some(p) = parse(&pending, head).unwrap() {
                    got.push(p);
                    pending.drain(..p.len);
                }
            }
            assert!(pending.is_empty(), "cut at {cut}: {} bytes left", pending.len());
            let first = first.get_or_insert_with(|| got.clone());
            assert!(*first == got, "cut at {cut}");
        }
        first.unwrap_or_default()
    }

    #[test]
    fn content_length_responses_across_splits() {
        let stream =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!\
            HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n\
            HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: keep-alive, close\r\n\r\n{}";
        let got = parse_all(stream, false);
        let summary: Vec<(u16, bool)> = got.iter().map(|p| (p.status, p.close)).collect();
        assert_eq!(summary, [(200, false), (404, false), (201, true)]);
        assert_eq!(got.iter().map(|p| p.len).sum::<usize>(), stream.len());
    }

    #[test]
    fn chunked_responses_across_splits() {
        let stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5\r\nhello\r\n1;ext=\"a;b\"\r\n!\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
            HTTP/1.1 204 No Content\r\n\r\n";
        let got = parse_all(stream, false);
        assert_eq!(got.iter().map(|p| p.status).collect::<Vec<_>>(), [200, 200, 204]);
        assert_eq!(got.iter().map(|p| p.len).sum::<usize>(), stream.len());
    }

    #[test]
    fn heads_and_interim_responses_have_no_body() {
        let stream = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
        let got = parse_all(stream, true);
        assert!(got[0].interim() && !got[1].interim());
        assert_eq!(got[1].len, stream.len() - got[0].len);
    }

    #[test]
    fn malformed_responses_are_errors() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert!(parse(bad, false).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = [&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..], &[b'1'; 2000]].concat();
        assert!(parse(&long, false).is_err());
    }
}
