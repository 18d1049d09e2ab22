//! Wire primitives: a bounds-checked reader and string writers.
//!
//! Integers are big-endian. A `str8` is a one-byte length followed by that
//! many bytes of UTF-8; a `text` is every remaining byte of the payload.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, DecodeErrorKind, ErrorCode};
use super::{validate_name, MAX_STR8_LEN};

/// A cursor over a payload. Every read is bounds-checked and fails with
/// [`DecodeErrorKind::Truncated`] instead of panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    request_id: Option<u32>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, request_id: None }
    }

    /// Records the request id so that later errors carry it.
    pub(crate) fn set_request_id(&mut self, request_id: u32) {
        self.request_id = Some(request_id);
    }

    pub(crate) fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { request_id: self.request_id, kind }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(self.err(DecodeErrorKind::Truncated)),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| self.err(DecodeErrorKind::Truncated))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    fn utf8(&self, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(bytes).map_err(|_| self.err(DecodeErrorKind::InvalidUtf8))
    }

    /// A `str8`: u8 length, then UTF-8 bytes.
    pub(crate) fn str8(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u8()?;
        let bytes = self.take(usize::from(len))?;
        self.utf8(bytes)
    }

    /// A `str8` where length 0 means "absent".
    pub(crate) fn opt_str8(&mut self) -> Result<Option<&'a str>, DecodeError> {
        let s = self.str8()?;
        Ok((!s.is_empty()).then_some(s))
    }

    /// A `str8` that must satisfy the name rules.
    pub(crate) fn name(&mut self) -> Result<&'a str, DecodeError> {
        let s = self.str8()?;
        validate_name(s).map_err(|e| self.err(DecodeErrorKind::InvalidName(e)))?;
        Ok(s)
    }

    /// A `text`: all remaining bytes, UTF-8.
    pub(crate) fn text(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = std::mem::take(&mut self.buf);
        self.utf8(bytes)
    }

    /// A u16 error code, rejecting undefined values.
    pub(crate) fn error_code(&mut self) -> Result<ErrorCode, DecodeError> {
        let value = self.u16()?;
        ErrorCode::from_u16(value).ok_or_else(|| self.err(DecodeErrorKind::InvalidField("error code")))
    }

    /// Succeeds only if the whole payload has been consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(DecodeErrorKind::TrailingBytes))
        }
    }
}

/// `s` cut to at most [`MAX_STR8_LEN`] bytes at a character boundary.
fn clamp_str8(s: &str) -> &str {
    if s.len() <= MAX_STR8_LEN {
        return s;
    }
    let mut end = MAX_STR8_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Encoded size of a `str8`.
pub(crate) fn str8_len(s: &str) -> usize {
    1 + clamp_str8(s).len()
}

/// Writes a `str8`, truncating strings longer than [`MAX_STR8_LEN`].
pub(crate) fn put_str8(dst: &mut BytesMut, s: &str) {
    let s = clamp_str8(s);
    dst.put_u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
    dst.put_slice(s.as_bytes());
}
