//! The codec seam: where a connection's byte stream becomes the messages a
//! handler sees, and messages become bytes again. In the spirit of
//! tokio-util's `Decoder`/`Encoder`, kept apart from what drives them: the
//! loop reads, asks the codec for messages, hands each to the
//! [`Handler`](crate::Handler), and lets the codec encode what the handler
//! (or another connection, with `send_to`/`broadcast`) sends.
//!
//! A codec never touches a socket or a handler: it is I/O-free and can be
//! unit-tested on buffers alone. Under it, a [`Transport`](crate::Transport)
//! turns wire bytes into the plaintext the codec reads (TLS, say); over it,
//! the handler never writes raw bytes to its own connection, so it cannot
//! corrupt the stream.

use crate::write_queue::{BufferPool, WriteQueue};
use bytes::{Bytes, BytesMut};
use std::fmt;

/// Turns a connection's input into messages, and messages sent to the
/// connection into output.
///
/// One value per service per event loop (so it may keep per-loop caches,
/// such as a formatted date), plus a [`Codec::Conn`] per connection for
/// where that connection's stream is (a frame half read, a protocol switch).
pub trait Codec: Send + 'static {
    /// Per-connection state. Keep it small: every idle connection holds one.
    type Conn: Send + 'static;
    /// A decoded message, handed to [`Handler::on_message`]. It may borrow
    /// the input buffer: a handler that does not keep it costs no copy.
    ///
    /// [`Handler::on_message`]: crate::Handler::on_message
    type Item<'a>;
    /// Why the input cannot be decoded. The connection is closed after
    /// [`Handler::on_decode_error`](crate::Handler::on_decode_error):
    /// a codec that can carry on after bad input reports it as an item.
    type DecodeError: fmt::Display;

    /// State for a connection just accepted.
    fn open(&mut self) -> Self::Conn;

    /// Decodes the message at the front of `input`, if it is whole.
    /// Returns it with the number of bytes of `input` it took, which the
    /// loop removes once the handler is done with the message (a codec may
    /// also split bytes off `input` itself and return 0). `Ok(None)`: more
    /// input is needed, and what is in `input` is kept for the next call.
    #[allow(clippy::type_complexity)]
    fn decode<'a>(
        &mut self,
        conn: &mut Self::Conn,
        input: &'a mut BytesMut,
    ) -> Result<Option<(Self::Item<'a>, usize)>, Self::DecodeError>;

    /// Like [`Codec::decode`] once the peer closed its side: bytes left that
    /// form no whole message are the codec's to judge (an error, for most).
    /// The default decodes as usual and ignores what is left.
    #[allow(clippy::type_complexity)]
    fn decode_eof<'a>(
        &mut self,
        conn: &mut Self::Conn,
        input: &'a mut BytesMut,
    ) -> Result<Option<(Self::Item<'a>, usize)>, Self::DecodeError> {
        self.decode(conn, input)
    }

    /// Encodes `payload`, a message another connection or thread sent to
    /// this connection ([`Context::send_to`], [`Context::broadcast`],
    /// [`ReactorHandle::send`]): a frame codec puts a header before it, a
    /// WebSocket codec a WebSocket frame header. `Err` if this connection
    /// cannot take such a message (nothing was written; the loop drops it
    /// and logs why).
    ///
    /// [`Context::send_to`]: crate::Context::send_to
    /// [`Context::broadcast`]: crate::Context::broadcast
    /// [`ReactorHandle::send`]: crate::ReactorHandle::send
    fn encode_payload(
        &mut self,
        conn: &mut Self::Conn,
        payload: &Bytes,
        out: &mut Output<'_>,
    ) -> Result<(), Refused>;

    /// `payload` encoded once for every connection of this codec, if that
    /// encoding does not depend on the connection: a broadcast then copies
    /// (or shares) these bytes to each recipient instead of encoding the
    /// payload once per recipient, which in a room of a thousand was the
    /// larger part of the loop's own cost per delivery. `None` (the
    /// default): each recipient's [`Codec::encode_payload`] is used. When
    /// `Some`, it must be exactly what `encode_payload` would write.
    fn encode_shared(&mut self, payload: &Bytes) -> Option<Bytes> {
        let _ = payload;
        None
    }
}

/// Encodes one kind of message a handler sends on its own connection with
/// [`ConnContext::send`](crate::ConnContext::send).
pub trait Encoder<M>: Codec {
    /// Why a message cannot be encoded.
    type Error;

    /// Appends `msg`, encoded, to `out`. On error `out` must be left as it
    /// was.
    fn encode(&mut self, conn: &mut Self::Conn, msg: M, out: &mut Output<'_>) -> Result<(), Self::Error>;
}

/// Why a connection's codec refused a message sent to it from elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

/// A connection's output, as a codec's encoder sees it: bytes can only be
/// appended, in order. Small pieces are copied into a buffer the connection
/// owns while it has output to send; large shared ones are queued without a
/// copy.
pub struct Output<'q> {
    queue: &'q mut WriteQueue,
    pool: &'q mut BufferPool,
}

impl<'q> Output<'q> {
    pub(crate) fn new(queue: &'q mut WriteQueue, pool: &'q mut BufferPool) -> Output<'q> {
        Output { queue, pool }
    }

    /// Bytes queued for the connection and not yet written, these included.
    #[inline]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Appends a copy of `bytes`.
    #[inline]
    pub fn append(&mut self, bytes: &[u8]) {
        self.queue.append_with(self.pool, |tail| tail.extend_from_slice(bytes));
    }

    /// Lets `f` append to the connection's buffer (it must only append:
    /// bytes already there may be on their way out). Encoding in place this
    /// way needs no buffer per message.
    #[inline]
    pub fn append_with<R>(&mut self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        self.queue.append_with(self.pool, f)
    }

    /// Queues shared bytes: copied if small (a copy costs less than the
    /// reference count), else queued as they are, without a copy.
    #[inline]
    pub fn push(&mut self, bytes: &Bytes) {
        self.queue.push(self.pool, bytes);
    }
}
