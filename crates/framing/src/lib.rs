//! Length-prefixed frames on [`bytes`] buffers, with no I/O in sight.
//!
//! A TCP stream carries bytes, not messages; this crate puts the message boundaries back. Each
//! frame is a length field followed by a body of that many bytes. The crate never touches a
//! socket: the caller appends whatever it read to a [`BytesMut`](bytes::BytesMut) and asks a
//! [`FrameDecoder`] for whole frames; to send, it asks a [`FrameConfig`] to append encoded frames
//! to a buffer it will write out. Being deterministic and I/O-free (like `quinn-proto`), the same
//! code runs under a mio reactor, in tests and in fuzzers.
//!
//! # Layout and options
//!
//! The options are those of Netty's `LengthFieldBasedFrameDecoder` and tokio-util's
//! `LengthDelimitedCodec`: field width (1, 2, 3, 4 or 8 bytes), byte order, offset of the field,
//! length adjustment, bytes to strip from decoded frames, maximum length, fail-fast. A frame is
//! Netty's: `offset bytes | length field | body`, the body being field value + adjustment bytes.
//! See [`FrameConfig`] for the picture.
//!
//! - **`max_frame_length` bounds the body** (the bytes after the length field, i.e. the payload
//!   the encoder is given), not the whole frame as in Netty: the default 1 MiB accepts a 1 MiB
//!   payload under the default 4-byte header. A maximum over what the field can express is
//!   clipped to it, as tokio-util does.
//! - **Nothing is allocated for a frame before its bytes arrive.** An announced length over the
//!   maximum is an error as soon as the head is read; the decoder never reserves buffer space, so
//!   a peer announcing 4 GiB costs nothing. Such a frame is dropped as it arrives (Netty's discard
//!   mode) and reported at once (`fail_fast(true)`, the default) or once dropped.
//! - **The encoder writes whole frames**: given a message (the frame without its length field:
//!   the `length_field_offset` bytes before the field, then the body) it puts the length field
//!   where the decoder reads it, with the adjustment applied in reverse, and refuses a message too
//!   short to hold the bytes before the field. With offset 0 (tokio-util's only layout for
//!   encoding) the message is the body, and with the default strip decoding returns it.
//! - **No panics on peer input.** Lengths that are negative or overflow after adjustment, or a
//!   strip longer than the frame, are [`FrameError::Corrupt`]; the end of the stream inside a
//!   frame is [`FrameError::Incomplete`].
//!
//! # Example
//!
//! Two frames encoded, then arriving in two reads that cut the second one in half:
//!
//! ```
//! use bytes::BytesMut;
//! use framing::{FrameConfig, FrameDecoder};
//!
//! let config = FrameConfig::default(); // 4-byte big-endian length, max 1 MiB
//! let mut wire = BytesMut::new();
//! config.encode(b"hello", &mut wire)?;
//! config.encode(b"world!", &mut wire)?;
//! assert_eq!(&wire[..4], &[0, 0, 0, 5]);
//!
//! let later = wire.split_off(12); // the first read ends 3 bytes into the second frame
//! let mut decoder = FrameDecoder::new(config);
//! let mut buf = BytesMut::new();
//!
//! buf.extend_from_slice(&wire);
//! assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(decoder.decode(&mut buf)?, None); // needs more bytes
//!
//! buf.extend_from_slice(&later);
//! assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"world!"[..]));
//! assert_eq!(decoder.decode_eof(&mut buf)?, None); // clean end: nothing left over
//! # Ok::<(), framing::FrameError>(())
//! ```
#![deny(missing_docs)]

mod config;
mod decoder;
mod encoder;
mod error;

pub use config::{ConfigError, Endian, FrameConfig, FrameConfigBuilder};
pub use decoder::{FrameDecoder, FrameSpan};
pub use error::FrameError;
