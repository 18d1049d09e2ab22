//! Server-to-client frames, encoded straight into a connection's output.
//! A server never masks
//! (RFC 6455 section 5.1), so a frame is a 2-, 4- or 10-byte header and the
//! payload; decoding, with its many more cases, is tungstenite's.

#[cfg(test)]
use bytes::Bytes;
use bytes::{BufMut, BytesMut};

/// First header byte of a final binary frame.
pub(crate) const BINARY: u8 = 0x82;
/// First header byte of a final text frame.
pub(crate) const TEXT: u8 = 0x81;
/// First header byte of a close frame.
const CLOSE: u8 = 0x88;
/// Most bytes of reason a close frame carries (125 minus the code).
const MAX_REASON: usize = 123;

fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    }
}

/// Appends the header of a frame of `len` bytes (its payload follows).
pub(crate) fn put_header(first: u8, len: usize, buf: &mut BytesMut) {
    let at = buf.len();
    let need = header_len(len);
    buf.put_bytes(0, need);
    write_header(first, len, &mut buf[at..at + need]);
}

fn write_header(first: u8, len: usize, buf: &mut [u8]) {
    buf[0] = first;
    match len {
        0..=125 => buf[1] = len as u8,
        126..=0xffff => {
            buf[1] = 126;
            buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            buf[1] = 127;
            buf[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Appends one frame whose payload `fill` writes: a 4-byte header is
/// reserved (the common case for chat messages), and the payload moved
/// once the length asks for another size.
pub(crate) fn encode_in_place(first: u8, buf: &mut BytesMut, fill: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_bytes(0, 4);
    fill(buf);
    let len = buf.len() - start - 4;
    let need = header_len(len);
    match need {
        2 => {
            buf.copy_within(start + 4.., start + 2);
            buf.truncate(buf.len() - 2);
        }
        10 => {
            buf.put_bytes(0, 6);
            let end = buf.len();
            buf.copy_within(start + 4..end - 6, start + 10);
        }
        _ => {}
    }
    write_header(first, len, &mut buf[start..start + need]);
}

/// One binary frame holding `payload`.
#[cfg(test)]
fn encode_frame(payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(header_len(payload.len()) + payload.len());
    encode_in_place(BINARY, &mut buf, |b| b.extend_from_slice(payload));
    buf.freeze()
}

/// Appends a close frame with `code` and `reason` (cut at a character
/// boundary to fit a control frame).
pub(crate) fn encode_close(code: u16, reason: &str, buf: &mut BytesMut) {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    buf.put_u8(CLOSE);
    buf.put_u8((2 + reason.len()) as u8);
    buf.put_u16(code);
    buf.put_slice(reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tungstenite::protocol::frame::FrameHeader;

    #[test]
    fn frames_decode_with_tungstenite_at_every_header_size() {
        for len in [0usize, 1, 125, 126, 127, 0xffff, 0x10000, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut buf = BytesMut::from(&b"before"[..]);
            encode_in_place(BINARY, &mut buf, |b| b.extend_from_slice(&payload));
            assert_eq!(&buf[..6], b"before");
            let mut cursor = Cursor::new(&buf[6..]);
            let (header, n) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(n as usize, len);
            let at = 6 + cursor.position() as usize;
            assert_eq!(&buf[at..], &payload[..], "len {len}");
            assert_eq!(encode_frame(&payload), buf.split_off(6).freeze());
        }
    }

    #[test]
    fn close_frames_fit_a_control_frame() {
        let mut buf = BytesMut::new();
        encode_close(1009, &"é".repeat(100), &mut buf);
        assert_eq!(buf[0], 0x88);
        assert!(buf[1] as usize <= 125 && buf.len() == 2 + buf[1] as usize);
        assert_eq!(&buf[2..4], &1009u16.to_be_bytes());
        assert!(std::str::from_utf8(&buf[4..]).is_ok());
    }
}
