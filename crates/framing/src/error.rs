//! [`FrameError`]: what can go wrong with a frame.

use std::fmt;

/// A frame that cannot be decoded or encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The body (bytes after the length field; the payload when encoding) is longer than
    /// `max_frame_length`. When decoding, the frame's bytes are dropped from the buffer, not
    /// buffered; see [`FrameConfigBuilder::fail_fast`](crate::FrameConfigBuilder::fail_fast).
    TooLong {
        /// Announced body length (field value + adjustment), or the payload length when encoding.
        len: u64,
        /// The maximum in force when the frame's head was read.
        max: usize,
    },
    /// The header cannot describe a valid frame (negative or overflowing length, strip longer
    /// than the frame), or a payload cannot be given a header. The decoder cannot find the next
    /// frame boundary after this: close the connection.
    Corrupt {
        /// What is wrong, for the log.
        reason: &'static str,
    },
    /// The stream ended inside a frame (its head or its body).
    Incomplete {
        /// Bytes left in the buffer, belonging to the unfinished frame.
        buffered: usize,
    },
    /// Encoding: the message does not hold the bytes that go before the length field (the
    /// layout has `length_field_offset` > 0), so it cannot be a frame the decoder reads back.
    Prefix {
        /// `length_field_offset`: the bytes needed before the length field.
        expected: usize,
        /// The bytes given for them.
        len: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::TooLong { len, max } => {
                write!(f, "frame too long: body of {len} bytes, max_frame_length is {max}")
            }
            FrameError::Corrupt { reason } => write!(f, "corrupt frame: {reason}"),
            FrameError::Incomplete { buffered } => {
                write!(f, "stream ended inside a frame with {buffered} bytes of it buffered")
            }
            FrameError::Prefix { expected, len } => {
                write!(f, "a frame needs the {expected} bytes that go before its length field; {len} given")
            }
        }
    }
}

impl std::error::Error for FrameError {}
