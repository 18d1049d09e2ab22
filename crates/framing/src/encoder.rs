//! Encoding: methods on [`FrameConfig`] that append frames to a [`BytesMut`].
//!
//! A frame is `offset bytes | length field | body`. The encoder writes all of it: the caller
//! gives the *message*, the frame without its length field (the `length_field_offset` bytes
//! before the field, then the body), and the encoder puts the length field where the decoder
//! looks for it, with the adjustment applied in reverse: field = body length -
//! `length_adjustment`. A message shorter than the offset cannot be a frame and is refused
//! ([`FrameError::Prefix`]), never written half. With offset 0 (most protocols) the message is
//! the body, and with the default strip, what [`FrameDecoder`](crate::FrameDecoder) returns is
//! exactly the message given here.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Endian, FrameConfig, FrameError};

/// Payloads sized per reservation in [`FrameConfig::encode_batch`]: enough that a typical batch
/// takes one, small enough to live on the stack (1 KiB of slice references).
const BATCH_CHUNK: usize = 64;

impl FrameConfig {
    /// Appends one frame to `dst`, reserving once: the message's first `length_field_offset`
    /// bytes, the length field, then the rest of the message (the body).
    ///
    /// [`FrameError::Prefix`] if the message is shorter than the offset; [`FrameError::TooLong`]
    /// if the body is over `max_frame_length`; [`FrameError::Corrupt`] if it is shorter than a
    /// positive `length_adjustment` (its field would be negative). `dst` is untouched on error.
    #[inline]
    pub fn encode(&self, message: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        let (prefix, body) = self.split_message(message)?;
        self.encode_parts(prefix, body, dst)
    }

    /// Appends one frame whose message comes in two parts: the `length_field_offset` bytes that
    /// go before the length field, and the body. For protocols whose header starts before the
    /// length (the length at offset 18 of a 22-byte header, say), without joining the parts
    /// first. [`FrameError::Prefix`] if `prefix` is not exactly `length_field_offset` bytes;
    /// otherwise as [`encode`](Self::encode).
    #[inline]
    pub fn encode_parts(&self, prefix: &[u8], body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        if prefix.len() != self.length_field_offset {
            return Err(FrameError::Prefix { expected: self.length_field_offset, len: prefix.len() });
        }
        let field = self.field_value(body.len())?;
        dst.reserve(prefix.len() + self.length_field_length() + body.len());
        dst.extend_from_slice(prefix);
        self.put_field(field, dst);
        dst.extend_from_slice(body);
        Ok(())
    }

    /// Appends one frame whose message `fill` writes straight into `dst` (the
    /// `length_field_offset` prefix bytes, then the body), so that a message needs no buffer of
    /// its own; the length field is put in afterwards (with offset 0, into room left for it, so
    /// the body is not moved). On error `dst` is cut back to its length on entry.
    #[inline]
    pub fn encode_with(
        &self,
        dst: &mut BytesMut,
        fill: impl FnOnce(&mut BytesMut),
    ) -> Result<(), FrameError> {
        let start = dst.len();
        let width = self.length_field_length();
        let offset = self.length_field_offset;
        if offset == 0 {
            dst.put_bytes(0, width);
            fill(dst);
            let body = dst.len() - start - width;
            match self.field_value(body) {
                Ok(field) => {
                    self.write_field(field, &mut dst[start..start + width]);
                    Ok(())
                }
                Err(e) => {
                    dst.truncate(start);
                    Err(e)
                }
            }
        } else {
            fill(dst);
            let len = dst.len() - start;
            let field = match len.checked_sub(offset) {
                None => Err(FrameError::Prefix { expected: offset, len }),
                Some(body) => self.field_value(body),
            };
            let field = match field {
                Ok(field) => field,
                Err(e) => {
                    dst.truncate(start);
                    return Err(e);
                }
            };
            // Make room for the field after the prefix: the body moves by its width.
            dst.put_bytes(0, width);
            let at = start + offset;
            dst.copy_within(at..start + len, at + width);
            self.write_field(field, &mut dst[at..at + width]);
            Ok(())
        }
    }

    /// Appends only the length field for a body of `len` bytes, for callers that send the body
    /// from its own buffer (vectored writes). Only for layouts with the field first
    /// (`length_field_offset` 0): otherwise [`FrameError::Prefix`], since the bytes before the
    /// field would be missing. Same checks as [`encode`](Self::encode); `dst` is untouched on
    /// error.
    #[inline]
    pub fn encode_header(&self, len: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
        if self.length_field_offset != 0 {
            return Err(FrameError::Prefix { expected: self.length_field_offset, len: 0 });
        }
        let field = self.field_value(len)?;
        self.put_field(field, dst);
        Ok(())
    }

    /// Encodes one frame into a shared [`Bytes`] of exactly its size: for sending the same frame
    /// to many connections, each clone costs a reference count, not a copy.
    pub fn encode_to_bytes(&self, message: &[u8]) -> Result<Bytes, FrameError> {
        let mut dst = BytesMut::with_capacity(self.length_field_length() + message.len());
        self.encode(message, &mut dst)?;
        Ok(dst.freeze())
    }

    /// Appends one frame per message to `dst` and returns the number of bytes appended.
    ///
    /// Space is reserved once per 64 payloads (so once for most batches) rather than per frame,
    /// without iterating `payloads` twice. All or nothing: on the first payload that cannot be
    /// encoded, `dst` is cut back to its length on entry and that payload's error returned.
    pub fn encode_batch<'a, I: IntoIterator<Item = &'a [u8]>>(
        &self,
        payloads: I,
        dst: &mut BytesMut,
    ) -> Result<usize, FrameError> {
        let start = dst.len();
        let mut iter = payloads.into_iter();
        // Each payload with its length field value, checked before anything is written.
        let mut chunk: [(u64, &[u8]); BATCH_CHUNK] = [(0, &[]); BATCH_CHUNK];
        loop {
            let mut filled = 0;
            let mut bytes = 0usize;
            for (slot, payload) in chunk.iter_mut().zip(iter.by_ref()) {
                let field =
                    match self.split_message(payload).and_then(|(_, body)| self.field_value(body.len())) {
                        Ok(field) => field,
                        Err(err) => {
                            dst.truncate(start);
                            return Err(err);
                        }
                    };
                *slot = (field, payload);
                filled += 1;
                // Saturating only for form: the payloads are all in memory.
                bytes = bytes.saturating_add(self.length_field_length() + payload.len());
            }
            dst.reserve(bytes);
            for &(field, message) in &chunk[..filled] {
                let (prefix, body) = message.split_at(self.length_field_offset);
                dst.extend_from_slice(prefix);
                self.put_field(field, dst);
                dst.extend_from_slice(body);
            }
            if filled < BATCH_CHUNK {
                return Ok(dst.len() - start);
            }
        }
    }

    /// The length field's value for a payload of `len` bytes, or why there is none.
    #[inline]
    fn field_value(&self, len: usize) -> Result<u64, FrameError> {
        if len > self.max_frame_length {
            return Err(FrameError::TooLong { len: len as u64, max: self.max_frame_length });
        }
        // The builder clipped max to what the field can express after adjustment, so a payload
        // within max always yields a value that fits the field; only the lower end can fail.
        let value = len as i128 - self.length_adjustment as i128;
        u64::try_from(value).map_err(|_| FrameError::Corrupt {
            reason: "payload is shorter than length_adjustment: its length field would be negative",
        })
    }

    /// A message cut into the bytes before the length field and the body.
    #[inline]
    fn split_message<'m>(&self, message: &'m [u8]) -> Result<(&'m [u8], &'m [u8]), FrameError> {
        if message.len() < self.length_field_offset {
            return Err(FrameError::Prefix { expected: self.length_field_offset, len: message.len() });
        }
        Ok(message.split_at(self.length_field_offset))
    }

    /// Writes `value` as the length field into `field` (exactly its width).
    #[inline]
    fn write_field(&self, value: u64, field: &mut [u8]) {
        let width = field.len();
        match self.endian {
            Endian::Little => field.copy_from_slice(&value.to_le_bytes()[..width]),
            Endian::Big | Endian::Native => field.copy_from_slice(&value.to_be_bytes()[8 - width..]),
        }
    }

    /// Writes `value` as the length field.
    #[inline]
    fn put_field(&self, value: u64, dst: &mut BytesMut) {
        let width = self.length_field_length();
        match self.endian {
            Endian::Little => dst.put_uint_le(value, width),
            Endian::Big | Endian::Native => dst.put_uint(value, width),
        }
    }
}
