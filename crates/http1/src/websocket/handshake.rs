//! The opening handshake of RFC 6455 section 4.2, I/O-free: checking an
//! upgrade request and writing the `101 Switching Protocols` head.

use crate::request::{Method, Request, Version};
use crate::response::Response;
use bytes::{BufMut, BytesMut};

/// The only version of the protocol (RFC 6455 section 4.4).
const VERSION: &str = "13";

/// True if the comma-separated header `value` lists `token` (any case).
fn lists(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn bad(reason: &'static str) -> Response {
    Response::text(400, format!("bad WebSocket handshake: {reason}\n")).close()
}

/// A base64 string that decodes to exactly 16 bytes: 22 symbols and `==`.
fn is_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[22..] == *b"=="
        && b[..22].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        // The last symbol carries 2 bits of the key and 4 zero bits.
        && b"AQgw".contains(&b[21])
}

/// Checks a request for a WebSocket upgrade and returns the value of its
/// `Sec-WebSocket-Accept`, or the response that refuses it: 400 for a
/// malformed handshake, 426 with `Sec-WebSocket-Version: 13` for another
/// version (RFC 6455 section 4.4), 405 for a method other than GET.
pub(crate) fn accept_key(req: &Request) -> Result<String, Response> {
    if req.method() != Method::Get {
        return Err(Response::method_not_allowed("GET"));
    }
    if req.version() != Version::Http11 {
        return Err(bad("HTTP/1.1 is required"));
    }
    if !lists(req.header("upgrade"), "websocket") {
        return Err(Response::text(426, "this resource speaks WebSocket only\n")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", VERSION));
    }
    if !lists(req.header("connection"), "upgrade") {
        return Err(bad("Connection must list upgrade"));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some(VERSION) {
        return Err(Response::text(426, "unsupported WebSocket version; this server speaks 13\n")
            .header("Sec-WebSocket-Version", VERSION)
            .close());
    }
    let key = req.header("sec-websocket-key").map(str::trim).unwrap_or_default();
    if !is_key(key) {
        return Err(bad("Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    Ok(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// Writes the `101 Switching Protocols` head. A 1xx response has no
/// `Content-Length`, so it does not go through the response encoder.
pub(crate) fn encode_switch(accept: &str, buf: &mut BytesMut) {
    buf.put_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    buf.put_slice(b"Sec-WebSocket-Accept: ");
    buf.put_slice(accept.as_bytes());
    buf.put_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::tests::parse_one;

    const GOOD: &str =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn the_rfc_example_key() {
        let req = parse_one(GOOD.as_bytes());
        // RFC 6455 section 1.3.
        assert_eq!(accept_key(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let mut buf = BytesMut::new();
        encode_switch("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &mut buf);
        assert!(buf.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(buf.ends_with(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
    }

    #[test]
    fn refusals() {
        let cases = [
            (GOOD.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"), 426),
            (GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400),
            (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400),
            (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZR=="), 400),
            (GOOD.replace("Upgrade: websocket\r\n", ""), 426),
            (GOOD.replace("keep-alive, Upgrade", "keep-alive"), 400),
            (GOOD.replace("GET", "POST"), 405),
            (GOOD.replace("HTTP/1.1", "HTTP/1.0"), 400),
        ];
        for (text, status) in cases {
            let req = parse_one(text.as_bytes());
            let resp = accept_key(&req).unwrap_err();
            assert_eq!(resp.status(), status, "{text}");
            if status == 426 {
                assert_eq!(resp.header_value("Sec-WebSocket-Version"), Some("13"));
            }
        }
    }
}
