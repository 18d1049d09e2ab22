//! Encoding: methods on [`FrameConfig`] that append frames to a [`BytesMut`].
//!
//! As in tokio-util, the encoder writes the length field alone (no `length_field_offset` bytes)
//! with the adjustment applied in reverse: field = payload length - `length_adjustment`. With
//! offset 0 and the default strip, what [`FrameDecoder`](crate::FrameDecoder) returns is exactly
//! the payload given here.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Endian, FrameConfig, FrameError};

/// Payloads sized per reservation in [`FrameConfig::encode_batch`]: enough that a typical batch
/// takes one, small enough to live on the stack (1 KiB of slice references).
const BATCH_CHUNK: usize = 64;

impl FrameConfig {
    /// Appends one frame (length field, then payload) to `dst`, reserving once.
    ///
    /// [`FrameError::TooLong`] if the payload is over `max_frame_length`;
    /// [`FrameError::Corrupt`] if it is shorter than a positive `length_adjustment` (its field
    /// would be negative). `dst` is untouched on error.
    pub fn encode(&self, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        let field = self.field_value(payload.len())?;
        dst.reserve(self.header_len() + payload.len());
        self.put_field(field, dst);
        dst.extend_from_slice(payload);
        Ok(())
    }

    /// Appends only the length field for a payload of `len` bytes, for callers that send the
    /// payload from its own buffer (vectored writes). Same checks as [`encode`](Self::encode);
    /// `dst` is untouched on error.
    pub fn encode_header(&self, len: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
        let field = self.field_value(len)?;
        self.put_field(field, dst);
        Ok(())
    }

    /// Encodes one frame into a shared [`Bytes`] of exactly its size: for sending the same frame
    /// to many connections, each clone costs a reference count, not a copy.
    pub fn encode_to_bytes(&self, payload: &[u8]) -> Result<Bytes, FrameError> {
        let mut dst = BytesMut::with_capacity(self.header_len() + payload.len());
        self.encode(payload, &mut dst)?;
        Ok(dst.freeze())
    }

    /// Appends one frame per payload to `dst` and returns the number of bytes appended.
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
                let field = match self.field_value(payload.len()) {
                    Ok(field) => field,
                    Err(err) => {
                        dst.truncate(start);
                        return Err(err);
                    }
                };
                *slot = (field, payload);
                filled += 1;
                // Saturating only for form: the payloads are all in memory.
                bytes = bytes.saturating_add(self.header_len() + payload.len());
            }
            dst.reserve(bytes);
            for &(field, payload) in &chunk[..filled] {
                self.put_field(field, dst);
                dst.extend_from_slice(payload);
            }
            if filled < BATCH_CHUNK {
                return Ok(dst.len() - start);
            }
        }
    }

    /// The length field's value for a payload of `len` bytes, or why there is none.
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

    /// Writes `value` as the length field.
    fn put_field(&self, value: u64, dst: &mut BytesMut) {
        let width = self.length_field_length();
        match self.endian {
            Endian::Little => dst.put_uint_le(value, width),
            Endian::Big | Endian::Native => dst.put_uint(value, width),
        }
    }
}
