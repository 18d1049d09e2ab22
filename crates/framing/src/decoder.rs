//! [`FrameDecoder`]: splits whole frames off a growing buffer.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::{Endian, FrameConfig, FrameError};

/// Where the next frame lies in a borrowed buffer; returned by [`FrameDecoder::peek`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSpan {
    /// Bytes the whole frame (head included) takes at the front of the buffer: advance by this
    /// much to reach the next frame.
    pub frame_len: usize,
    /// Where the frame lies in the buffer once `strip` bytes are skipped: what
    /// [`FrameDecoder::decode`] would have returned.
    pub payload: Range<usize>,
}

/// Incremental, I/O-free decoder of length-prefixed frames.
///
/// Feed it the bytes of one stream as they arrive, in a buffer the caller owns and grows; each
/// call returns the next whole frame or `None` when more bytes are needed. It never reserves
/// buffer space (a peer announcing a huge frame costs nothing until the bytes arrive) and never
/// panics on what a peer sends. One decoder per connection: it remembers where it is in the
/// stream between calls (a frame head already read, bytes still to discard).
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    config: FrameConfig,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No head read yet for the frame at the front of the buffer.
    Head,
    /// The head was read and accepted: the frame takes `frame_len` bytes, known to be at least
    /// `strip`. Remembered so that a later `set_max_frame_length` cannot reject it halfway.
    Body { frame_len: usize },
    /// Dropping a too-long frame: `remaining` bytes of it are still to come off the front.
    /// `report` is set when the error is owed once they are gone (`fail_fast(false)`).
    Discard { remaining: u64, len: u64, max: usize, report: bool },
}

/// What the head at the front of a buffer says.
enum Head {
    /// A frame of this many bytes, head included.
    Frame(usize),
    /// A frame with a body of `len` bytes, over the maximum; `total` bytes to discard.
    TooLong { total: u64, len: u64 },
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new(config: FrameConfig) -> Self {
        FrameDecoder { config, state: State::Head }
    }

    /// The configuration in force, including the current maximum.
    pub fn config(&self) -> &FrameConfig {
        &self.config
    }

    /// Changes the maximum body length (clipped like
    /// [`FrameConfigBuilder::max_frame_length`](crate::FrameConfigBuilder::max_frame_length)).
    ///
    /// It applies from the next frame head not yet read: a frame whose head was already accepted
    /// finishes under the old limit, as in tokio-util.
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.config = self.config.with_max_frame_length(max);
    }

    /// Splits the next whole frame off the front of `buf`, without copying, with `strip` bytes
    /// removed from its front. `Ok(None)` means more bytes are needed; call again after appending
    /// them. Call in a loop: a buffer may hold many frames.
    ///
    /// A frame over the maximum is dropped from `buf` as its bytes arrive and reported as
    /// [`FrameError::TooLong`], at its head or once it is gone as `fail_fast` says; called again,
    /// the decoder carries on with the next frame. After [`FrameError::Corrupt`] the stream has no known frame
    /// boundary: every later call reports it again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            match self.state {
                State::Head => match read_head(&self.config, buf)? {
                    None => return Ok(None),
                    Some(Head::Frame(frame_len)) => self.state = State::Body { frame_len },
                    Some(Head::TooLong { total, len }) => {
                        let max = self.config.max_frame_length;
                        let fail_fast = self.config.fail_fast;
                        self.state = State::Discard { remaining: total, len, max, report: !fail_fast };
                        if fail_fast {
                            self.discard(buf);
                            return Err(FrameError::TooLong { len, max });
                        }
                    }
                },
                State::Body { frame_len } => {
                    if buf.len() < frame_len {
                        return Ok(None);
                    }
                    self.state = State::Head;
                    // strip <= frame_len was checked when the head was read.
                    buf.advance(self.config.strip);
                    return Ok(Some(buf.split_to(frame_len - self.config.strip).freeze()));
                }
                State::Discard { len, max, report, .. } => {
                    if !self.discard(buf) {
                        return Ok(None);
                    }
                    if report {
                        return Err(FrameError::TooLong { len, max });
                    }
                }
            }
        }
    }

    /// Drops as much of the frame being discarded as `buf` holds; true once all of it is gone.
    fn discard(&mut self, buf: &mut BytesMut) -> bool {
        let State::Discard { remaining, .. } = &mut self.state else {
            return true;
        };
        // Bounded by buf.len(), so it fits in usize.
        let drop = (*remaining).min(buf.len() as u64);
        buf.advance(drop as usize);
        *remaining -= drop;
        if *remaining > 0 {
            return false;
        }
        self.state = State::Head;
        true
    }

    /// Like [`decode`](Self::decode), for when the stream has ended: bytes left over in `buf`
    /// (a partial head or body) are [`FrameError::Incomplete`]. An empty buffer at a frame
    /// boundary is `Ok(None)`: the stream ended cleanly. A too-long frame cut short is still
    /// reported as [`FrameError::TooLong`] if that was not done yet.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        let state = std::mem::replace(&mut self.state, State::Head);
        match state {
            State::Discard { len, max, report: true, .. } => Err(FrameError::TooLong { len, max }),
            // Reported when its head was read; nothing of it is left in buf.
            State::Discard { .. } => Ok(None),
            _ if buf.is_empty() => Ok(None),
            _ => Err(FrameError::Incomplete { buffered: buf.len() }),
        }
    }

    /// Locates the next whole frame at the front of `buf` without splitting or copying, for
    /// loops that process frames in place. Positions in the returned span are relative to `buf`.
    ///
    /// After `Some(span)`, the decoder assumes the frame is consumed: pass the bytes after
    /// `span.frame_len` next time. After `None`, pass the same bytes again with more appended.
    ///
    /// ```
    /// # use framing::{FrameConfig, FrameDecoder};
    /// let config = FrameConfig::default();
    /// let mut wire = bytes::BytesMut::new();
    /// config.encode_batch([&b"ab"[..], b"cde"], &mut wire)?;
    /// let mut decoder = FrameDecoder::new(config);
    /// let mut pos = 0;
    /// let mut seen = Vec::new();
    /// while let Some(span) = decoder.peek(&wire[pos..])? {
    ///     seen.push(wire[pos..][span.payload].to_vec());
    ///     pos += span.frame_len;
    /// }
    /// assert_eq!(seen, [b"ab".to_vec(), b"cde".to_vec()]);
    /// # Ok::<(), framing::FrameError>(())
    /// ```
    ///
    /// A borrowed slice cannot be shortened, so `peek` cannot discard: it reports a too-long
    /// frame at once whatever `fail_fast` says and leaves the decoder where it was. To drop that
    /// frame and keep the stream, hand the buffer to [`decode`](Self::decode), which discards it
    /// (and reports it again under `fail_fast` rules). While `decode` is discarding a frame,
    /// `peek` reports that frame's error.
    pub fn peek(&mut self, buf: &[u8]) -> Result<Option<FrameSpan>, FrameError> {
        let frame_len = match self.state {
            State::Head => match read_head(&self.config, buf)? {
                None => return Ok(None),
                Some(Head::Frame(frame_len)) => frame_len,
                Some(Head::TooLong { len, .. }) => {
                    return Err(FrameError::TooLong { len, max: self.config.max_frame_length })
                }
            },
            State::Body { frame_len } => frame_len,
            State::Discard { len, max, .. } => return Err(FrameError::TooLong { len, max }),
        };
        if buf.len() < frame_len {
            self.state = State::Body { frame_len };
            return Ok(None);
        }
        self.state = State::Head;
        Ok(Some(FrameSpan { frame_len, payload: self.config.strip..frame_len }))
    }

    /// How many more bytes must arrive to finish the frame at the front of `buf` (0 if it is
    /// complete), once its head is readable; `None` while the head is incomplete, or when it is
    /// invalid or over the maximum (then `decode` reports why). While a too-long frame is being
    /// discarded, the bytes of it still to come.
    ///
    /// Meant for sizing one read, not for reserving: the caller should grow its buffer with the
    /// bytes that actually arrive, capped at a sensible read size.
    pub fn bytes_needed(&self, buf: &[u8]) -> Option<usize> {
        match self.state {
            State::Head => match read_head(&self.config, buf) {
                Ok(Some(Head::Frame(frame_len))) => Some(frame_len.saturating_sub(buf.len())),
                _ => None,
            },
            State::Body { frame_len } => Some(frame_len.saturating_sub(buf.len())),
            State::Discard { remaining, .. } => {
                let left = remaining.saturating_sub(buf.len() as u64);
                Some(usize::try_from(left).unwrap_or(usize::MAX))
            }
        }
    }
}

impl FrameConfig {
    /// The length of the whole frame at the front of `buf` (its head included), read from its
    /// head alone: `Ok(None)` until the length field is complete, whether or not the rest has
    /// arrived. A frame over the maximum is [`FrameError::TooLong`] at once, an impossible head
    /// [`FrameError::Corrupt`]. Stateless, for callers that keep where they are in the stream
    /// themselves (the reactor's frame codec); [`FrameDecoder`] is the stateful way.
    #[inline]
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        match read_head(self, buf)? {
            None => Ok(None),
            Some(Head::Frame(len)) => Ok(Some(len)),
            Some(Head::TooLong { len, .. }) => Err(FrameError::TooLong { len, max: self.max_frame_length }),
        }
    }
}

/// Reads the head at the front of `buf`. `Ok(None)` until the length field is complete.
#[inline]
fn read_head(config: &FrameConfig, buf: &[u8]) -> Result<Option<Head>, FrameError> {
    let end = config.length_field_end();
    let Some(field) = buf.get(config.length_field_offset..end) else {
        return Ok(None);
    };
    let raw = read_uint(field, config.endian);
    let adjustment = config.length_adjustment;
    let body = if adjustment >= 0 {
        raw.checked_add(adjustment as u64).ok_or(FrameError::Corrupt {
            reason: "length field value plus length_adjustment overflows 64 bits",
        })?
    } else {
        raw.checked_sub(adjustment.unsigned_abs() as u64)
            .ok_or(FrameError::Corrupt { reason: "length field value plus length_adjustment is negative" })?
    };
    if body > config.max_frame_length as u64 {
        // Saturating: a frame too long to count is still discarded until the stream ends.
        let total = body.saturating_add(end as u64);
        return Ok(Some(Head::TooLong { total, len: body }));
    }
    // body <= max_frame_length fits in usize; only the header can push the sum over.
    let frame_len = end
        .checked_add(body as usize)
        .ok_or(FrameError::Corrupt { reason: "frame length overflows usize" })?;
    if config.strip > frame_len {
        return Err(FrameError::Corrupt { reason: "strip is longer than the frame" });
    }
    Ok(Some(Head::Frame(frame_len)))
}

/// The unsigned integer in `field` (1 to 8 bytes, as the config guarantees).
#[inline]
fn read_uint(field: &[u8], endian: Endian) -> u64 {
    let mut word = [0u8; 8];
    let width = field.len().min(8);
    let field = &field[..width];
    match endian {
        Endian::Little => {
            word[..width].copy_from_slice(field);
            u64::from_le_bytes(word)
        }
        // Native never reaches a built config; treat it as big rather than panic.
        Endian::Big | Endian::Native => {
            word[8 - width..].copy_from_slice(field);
            u64::from_be_bytes(word)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_uint_widths_and_orders() {
        assert_eq!(read_uint(&[0x12], Endian::Big), 0x12);
        assert_eq!(read_uint(&[0x12, 0x34, 0x56], Endian::Big), 0x12_3456);
        assert_eq!(read_uint(&[0x12, 0x34, 0x56], Endian::Little), 0x56_3412);
        assert_eq!(read_uint(&[0xFF; 8], Endian::Little), u64::MAX);
        assert_eq!(read_uint(&[1, 0, 0, 0, 0, 0, 0, 0], Endian::Big), 1 << 56);
    }
}
