//! Length-prefixed frames as a [`Codec`]: [`FrameCodec`] decodes frames in
//! the layout a [`FrameConfig`] describes and lends each to the handler as a
//! [`Frame`] borrowing the read buffer (no allocation, no reference count
//! per frame); replies are encoded straight into the connection's output.

use crate::codec::{Codec, Encoder, Output, Refused};
use crate::context::ConnContext;
use bytes::{Bytes, BytesMut};
use framing::{FrameConfig, FrameError};
use std::fmt;
use std::ops::Deref;

/// The frame codec: frames in the layout `config` describes.
///
/// A message, as a handler sends it, is the frame without its length field:
/// with the length field first (offset 0, most protocols) that is the
/// payload; with a header before the length (LOCO's 22-byte header, length
/// at offset 18), the header bytes before the field, then the body. The
/// codec puts the length field in, and refuses a message that cannot be a
/// frame ([`FrameError::Prefix`], [`FrameError::TooLong`]).
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    config: FrameConfig,
    /// The layout is the common one (a 4-byte big-endian length first, no
    /// adjustment): heads are read without the general path's arithmetic.
    plain_u32: bool,
}

/// A [`ConnContext`] of a frame codec.
pub type FramedContext<'c, 'a> = ConnContext<'c, 'a, FrameCodec>;

/// Where a connection is in its frame stream: the length of the frame at
/// the front of its input once the head was read (0: not read yet), so that
/// a limit lowered meanwhile applies from the next frame on.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameState {
    frame_len: usize,
}

impl FrameCodec {
    /// Frames in the layout `config` describes.
    pub fn new(config: FrameConfig) -> FrameCodec {
        let plain_u32 = config.length_field_offset() == 0
            && config.length_field_length() == 4
            && config.length_adjustment() == 0
            && config.endian() == framing::Endian::Big
            && config.strip() <= 4;
        FrameCodec { config, plain_u32 }
    }

    /// The length of the frame at the front of `input`, from its head.
    #[inline]
    fn frame_len(&self, input: &[u8]) -> Result<Option<usize>, FrameError> {
        if self.plain_u32 {
            let Some(head) = input.first_chunk::<4>() else { return Ok(None) };
            let body = u32::from_be_bytes(*head) as usize;
            if body <= self.config.max_frame_length() {
                return Ok(Some(4 + body));
            }
            // Over the limit: the general path says exactly how.
        }
        self.config.frame_len(input)
    }

    /// The layout and limits in force.
    #[inline]
    pub fn config(&self) -> &FrameConfig {
        &self.config
    }

    /// Changes the largest body accepted and sent (clipped to what the
    /// length field can express); applies from each connection's next frame
    /// head. Call it from [`Handler::tune_codec`](crate::Handler::tune_codec)
    /// to follow a setting that changes at run time.
    pub fn set_max_frame_length(&mut self, max: usize) {
        if max != self.config.max_frame_length() {
            *self = FrameCodec::new(self.config.with_max_frame_length(max));
        }
    }

    fn error(&self, error: FrameError, input: &[u8]) -> FrameDecodeError {
        let head = input.len().min(self.config.length_field_end());
        FrameDecodeError { error, header: Bytes::copy_from_slice(&input[..head]) }
    }
}

impl Default for FrameCodec {
    /// [`FrameConfig::default`]: a 4-byte big-endian length, max 1 MiB.
    fn default() -> FrameCodec {
        FrameCodec::new(FrameConfig::default())
    }
}

/// A frame, lent to the handler: it borrows the loop's read buffer, so
/// reading it costs nothing and keeping it means copying it
/// ([`Frame::to_bytes`]). Derefs to the [`payload`](Frame::payload).
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    strip: usize,
    offset: usize,
    field_end: usize,
}

impl<'a> Frame<'a> {
    /// What follows the config's `strip` bytes: the payload, for the usual
    /// layouts (the whole frame with `strip(0)`).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.strip..]
    }

    /// The frame's head: every byte up to the end of the length field (for
    /// LOCO, the 22-byte header with the packet id at its front).
    #[inline]
    pub fn header(&self) -> &'a [u8] {
        &self.bytes[..self.field_end]
    }

    /// The bytes before the length field (empty when the field is first).
    #[inline]
    pub fn prefix(&self) -> &'a [u8] {
        &self.bytes[..self.offset]
    }

    /// What follows the length field.
    #[inline]
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.field_end..]
    }

    /// The whole frame as it arrived.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// A copy of the payload to keep past the callback.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.payload())
    }
}

impl Deref for Frame<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.payload()
    }
}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame").field("len", &self.bytes.len()).field("payload", &self.payload()).finish()
    }
}

/// Input that is not a valid frame, with the frame's head as far as it
/// arrived (so that an error reply can echo, say, a packet id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameDecodeError {
    /// What is wrong.
    pub error: FrameError,
    /// The bytes of the bad frame's head (up to the end of its length
    /// field) that had arrived.
    pub header: Bytes,
}

impl fmt::Display for FrameDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)?;
        // A TLS record header (handshake, TLS 1.x) read as a length: the
        // likeliest cause is a TLS client on a plain port; say so in the log.
        if self.header.starts_with(&[0x16, 0x03]) {
            f.write_str(" (the bytes begin like a TLS handshake: a TLS client on a plain port?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for FrameDecodeError {}

impl Codec for FrameCodec {
    type Conn = FrameState;
    type Item<'a> = Frame<'a>;
    type DecodeError = FrameDecodeError;

    fn open(&mut self) -> FrameState {
        FrameState::default()
    }

    #[inline]
    fn decode<'a>(
        &mut self,
        conn: &mut FrameState,
        input: &'a mut BytesMut,
    ) -> Result<Option<(Frame<'a>, usize)>, FrameDecodeError> {
        let frame_len = match conn.frame_len {
            0 => match self.frame_len(input) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.error(e, input)),
            },
            len => len,
        };
        if input.len() < frame_len {
            conn.frame_len = frame_len;
            return Ok(None);
        }
        conn.frame_len = 0;
        let frame = Frame {
            bytes: &input[..frame_len],
            strip: self.config.strip(),
            offset: self.config.length_field_offset(),
            field_end: self.config.length_field_end(),
        };
        Ok(Some((frame, frame_len)))
    }

    fn decode_eof<'a>(
        &mut self,
        conn: &mut FrameState,
        input: &'a mut BytesMut,
    ) -> Result<Option<(Frame<'a>, usize)>, FrameDecodeError> {
        let head = match conn.frame_len {
            0 => self.frame_len(input),
            len => Ok(Some(len)),
        };
        match head {
            Ok(Some(len)) if input.len() >= len => self.decode(conn, input),
            Err(e) => Err(self.error(e, input)),
            _ if input.is_empty() => Ok(None),
            _ => Err(self.error(FrameError::Incomplete { buffered: input.len() }, input)),
        }
    }

    fn encode_payload(
        &mut self,
        _: &mut FrameState,
        payload: &Bytes,
        out: &mut Output<'_>,
    ) -> Result<(), Refused> {
        let config = &self.config;
        let small = payload.len() <= crate::write_queue::COPY_MAX;
        if small || config.length_field_offset() != 0 {
            return out
                .append_with(|buf| config.encode(payload, buf))
                .map_err(|_| Refused("the message does not fit this connection's frame layout"));
        }
        // A large message: the header is copied, the payload shared.
        out.append_with(|buf| config.encode_header(payload.len(), buf))
            .map_err(|_| Refused("the message does not fit this connection's frame layout"))?;
        out.push(payload);
        Ok(())
    }

    fn encode_shared(&mut self, payload: &Bytes) -> Option<Bytes> {
        // A frame depends on the payload and the config alone.
        let mut frame = BytesMut::new();
        self.config.encode(payload, &mut frame).ok()?;
        Some(frame.freeze())
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = FrameError;

    #[inline]
    fn encode(&mut self, _: &mut FrameState, message: &[u8], out: &mut Output<'_>) -> Result<(), FrameError> {
        let config = &self.config;
        out.append_with(|buf| config.encode(message, buf))
    }
}

/// A message in two parts: the bytes before the length field, and the body.
#[derive(Clone, Copy, Debug)]
pub struct Parts<'m> {
    /// The `length_field_offset` bytes that go before the length field.
    pub prefix: &'m [u8],
    /// What follows the length field.
    pub body: &'m [u8],
}

impl Encoder<Parts<'_>> for FrameCodec {
    type Error = FrameError;

    fn encode(
        &mut self,
        _: &mut FrameState,
        parts: Parts<'_>,
        out: &mut Output<'_>,
    ) -> Result<(), FrameError> {
        let config = &self.config;
        out.append_with(|buf| config.encode_parts(parts.prefix, parts.body, buf))
    }
}

/// A message written in place by a closure (see [`FramedContext::send_frame_with`]).
pub struct Fill<F>(pub F);

impl<F: FnOnce(&mut BytesMut)> Encoder<Fill<F>> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, _: &mut FrameState, fill: Fill<F>, out: &mut Output<'_>) -> Result<(), FrameError> {
        let config = &self.config;
        out.append_with(|buf| config.encode_with(buf, fill.0))
    }
}

impl FramedContext<'_, '_> {
    /// The service's frame layout.
    ///
    /// **Thread:** the loop's, inside a callback.
    #[inline]
    pub fn frame_config(&self) -> &FrameConfig {
        self.codec().config()
    }

    /// Sends one frame to the current connection: `message` with its length
    /// field put in (see [`FrameCodec`]), copied into the connection's
    /// output. Refused, with nothing sent, if it cannot be a frame.
    ///
    /// **Thread:** the loop's, inside a callback.
    #[inline]
    pub fn send_frame(&mut self, message: &[u8]) -> Result<(), FrameError> {
        self.send(message)
    }

    /// Sends one frame given as the bytes before its length field and its
    /// body (for a layout with a header before the length).
    ///
    /// **Thread:** the loop's, inside a callback.
    #[inline]
    pub fn send_frame_parts(&mut self, prefix: &[u8], body: &[u8]) -> Result<(), FrameError> {
        self.send(Parts { prefix, body })
    }

    /// Sends one frame whose message `fill` writes straight into the
    /// connection's output, so that a reply needs no buffer of its own.
    /// Refused, with nothing sent, if it comes out too long (or, for a
    /// layout with a header before the length, too short).
    ///
    /// **Thread:** the loop's, inside a callback.
    #[inline]
    pub fn send_frame_with(&mut self, fill: impl FnOnce(&mut BytesMut)) -> Result<(), FrameError> {
        self.send(Fill(fill))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    /// Decodes every frame of `wire` fed in `chunk`-byte reads; the frames,
    /// or the error that stopped them.
    fn decode_all(codec: &mut FrameCodec, wire: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut state = codec.open();
        let mut input = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(chunk.max(1)) {
            input.extend_from_slice(piece);
            loop {
                let (frame, used) = match codec.decode(&mut state, &mut input) {
                    Ok(Some((f, used))) => (f.payload().to_vec(), used),
                    Ok(None) => break,
                    Err(e) => return Err(e.error),
                };
                out.push(frame);
                input.advance(used);
            }
        }
        match codec.decode_eof(&mut state, &mut input) {
            Ok(None) => Ok(out),
            Ok(Some(_)) => unreachable!("every whole frame was taken"),
            Err(e) => Err(e.error),
        }
    }

    #[test]
    fn a_frame_encoded_once_for_a_broadcast_is_what_each_connection_would_get() {
        use crate::write_queue::{BufferPool, WriteQueue};
        let layouts = [
            FrameConfig::default(),
            FrameConfig::builder()
                .length_field_length(2)
                .little_endian()
                .length_adjustment(-2)
                .build()
                .unwrap(),
            FrameConfig::builder().length_field_length(3).build().unwrap(),
        ];
        for config in layouts {
            let mut codec = FrameCodec::new(config);
            for len in [0, 1, 100, crate::write_queue::COPY_MAX, crate::write_queue::COPY_MAX + 1, 5000] {
                let payload = Bytes::from(vec![len as u8; len]);
                let (mut queue, mut pool) = (WriteQueue::default(), BufferPool::new(4096, 1 << 20));
                let mut state = codec.open();
                let each =
                    codec.encode_payload(&mut state, &payload, &mut Output::new(&mut queue, &mut pool));
                let shared = codec.encode_shared(&payload);
                match each {
                    Ok(()) => {
                        let mut wire = Vec::new();
                        queue.write_to(&mut wire, &mut pool).unwrap();
                        assert_eq!(shared.as_deref(), Some(&wire[..]), "{config:?}, {len} bytes");
                    }
                    Err(_) => assert_eq!(shared, None, "{config:?}, {len} bytes"),
                }
            }
        }
    }

    #[test]
    fn the_common_layout_decodes_as_the_general_path_does() {
        let config = FrameConfig::builder().max_frame_length(300).build().unwrap();
        let mut fast = FrameCodec::new(config);
        let mut general = FrameCodec { plain_u32: false, ..fast };
        assert!(fast.plain_u32);
        let mut wire = BytesMut::new();
        for i in 0..50usize {
            config.encode(&vec![i as u8; i * 6], &mut wire).unwrap();
        }
        for chunk in [1, 3, 7, 64, 4096] {
            let a = decode_all(&mut fast, &wire, chunk);
            assert_eq!(a, decode_all(&mut general, &wire, chunk));
            assert_eq!(a.unwrap().len(), 50);
        }
        // Over the limit, and cut short: the same errors.
        let mut bad = wire.clone();
        bad.extend_from_slice(&301u32.to_be_bytes());
        assert_eq!(decode_all(&mut fast, &bad, 5), Err(FrameError::TooLong { len: 301, max: 300 }));
        assert_eq!(decode_all(&mut fast, &bad, 5), decode_all(&mut general, &bad, 5));
        let cut = &wire[..wire.len() - 1];
        assert!(matches!(decode_all(&mut fast, cut, 9), Err(FrameError::Incomplete { .. })));
        assert_eq!(decode_all(&mut fast, cut, 9), decode_all(&mut general, cut, 9));
    }

    #[test]
    fn a_tls_client_hello_on_a_plain_port_is_named_in_the_error() {
        let mut codec = FrameCodec::new(FrameConfig::default());
        let mut state = codec.open();
        let mut input = BytesMut::from(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc][..]);
        let e = codec.decode(&mut state, &mut input).unwrap_err();
        assert!(e.to_string().contains("TLS client on a plain port"), "{e}");
        let mut input = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        let mut state = codec.open();
        let e = codec.decode(&mut state, &mut input).unwrap_err();
        assert!(!e.to_string().contains("TLS"), "{e}");
    }

    #[test]
    fn a_lowered_limit_applies_from_the_next_head() {
        let mut codec = FrameCodec::new(FrameConfig::default());
        let mut state = codec.open();
        let mut input = BytesMut::from(&[0, 0, 0, 10, 1, 2][..]);
        assert!(codec.decode(&mut state, &mut input).unwrap().is_none());
        codec.set_max_frame_length(5);
        input.extend_from_slice(&[3, 4, 5, 6, 7, 8, 9, 10]);
        let (frame, used) = codec.decode(&mut state, &mut input).unwrap().unwrap();
        assert_eq!(frame.payload(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "the frame in flight finishes");
        input.advance(used);
        input.extend_from_slice(&[0, 0, 0, 6]);
        assert!(matches!(
            codec.decode(&mut state, &mut input),
            Err(FrameDecodeError { error: FrameError::TooLong { .. }, .. })
        ));
    }
}
