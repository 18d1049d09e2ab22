//! Length-prefixed framing on top of a [`Handler`]: [`Framed`] decodes
//! frames with the `framing` crate and hands each to a [`FrameHandler`].

use crate::context::Context;
use crate::handler::{CloseReason, Handler};
use crate::id::ConnId;
use bytes::{BufMut, Bytes, BytesMut};
use framing::{FrameConfig, FrameDecoder, FrameError};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

/// A service that speaks in frames rather than bytes. Wrap it in
/// [`Framed`] to serve it. Every method but `on_open` and `on_frame` has a
/// default.
pub trait FrameHandler: Send + 'static {
    /// Per-connection state.
    type Conn: 'static;

    /// A connection was accepted.
    fn on_open(&mut self, cx: &mut FramedContext<'_, '_>, peer: SocketAddr) -> Self::Conn;

    /// A whole frame arrived (its header stripped per the frame config).
    /// The `Bytes` shares the read buffer: keeping it costs no copy.
    fn on_frame(&mut self, cx: &mut FramedContext<'_, '_>, conn: &mut Self::Conn, frame: Bytes);

    /// The input could not be framed (a length over the maximum, a corrupt
    /// header, or EOF inside a frame). The default closes the connection
    /// with a protocol error, which is logged; override it to send an error
    /// message first. The connection is closed after this call anyway.
    fn on_frame_error(&mut self, cx: &mut FramedContext<'_, '_>, conn: &mut Self::Conn, error: &FrameError) {
        let _ = (cx, conn, error);
    }

    /// The largest frame to accept now, if it may change at run time (e.g.
    /// on a config reload). Applied to each connection's decoder before its
    /// next frame header is read.
    fn max_frame_length(&self) -> Option<usize> {
        None
    }

    /// See [`Handler::on_timer`].
    fn on_timer(&mut self, cx: &mut FramedContext<'_, '_>, conn: &mut Self::Conn, token: u64) {
        let _ = (cx, conn, token);
    }

    /// See [`Handler::on_notify`].
    fn on_notify(&mut self, cx: &mut FramedContext<'_, '_>, conn: &mut Self::Conn, token: u64) {
        let _ = (cx, conn, token);
    }

    /// See [`Handler::on_drained`].
    fn on_drained(&mut self, cx: &mut FramedContext<'_, '_>, conn: &mut Self::Conn) {
        let _ = (cx, conn);
    }

    /// See [`Handler::on_loop_notify`].
    fn on_loop_notify(&mut self, cx: &mut FramedContext<'_, '_>, token: u64) {
        let _ = (cx, token);
    }

    /// See [`Handler::on_shutdown`].
    fn on_shutdown(&mut self, cx: &mut FramedContext<'_, '_>, conn: &mut Self::Conn) {
        let _ = (cx, conn);
    }

    /// See [`Handler::on_close`].
    fn on_close(&mut self, cx: &mut FramedContext<'_, '_>, conn: Self::Conn, reason: &CloseReason) {
        let _ = (cx, conn, reason);
    }
}

/// A [`Context`] that also knows the service's frame format, to send frames.
/// Derefs to the [`Context`] for everything else.
pub struct FramedContext<'c, 'a> {
    cx: &'c mut Context<'a>,
    config: &'c FrameConfig,
}

impl<'a> Deref for FramedContext<'_, 'a> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        self.cx
    }
}

impl<'a> DerefMut for FramedContext<'_, 'a> {
    fn deref_mut(&mut self) -> &mut Context<'a> {
        self.cx
    }
}

impl FramedContext<'_, '_> {
    /// The service's frame format.
    pub fn frame_config(&self) -> &FrameConfig {
        self.config
    }

    /// Sends one frame to the current connection, encoding the header and
    /// copying the payload into its output buffer.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        let config = self.config;
        match self.cx.write_with(|buf| config.encode(payload, buf)) {
            Some(Ok(())) => {
                self.cx.count_frames_out(1);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()), // closing: dropped like any send to a closing connection
        }
    }

    /// Sends one frame whose payload `fill` writes straight into the output
    /// buffer, so that a reply needs no buffer of its own. Refused, with
    /// nothing sent, if the payload comes out over the maximum.
    pub fn send_frame_with(&mut self, fill: impl FnOnce(&mut BytesMut)) -> Result<(), FrameError> {
        let config = self.config;
        match self.cx.write_with(|buf| encode_in_place(config, buf, fill)) {
            Some(Ok(())) => {
                self.cx.count_frames_out(1);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Encodes one frame, its payload written by `fill`, into shared bytes
    /// to send to many connections.
    pub fn encode_shared_with(&self, fill: impl FnOnce(&mut BytesMut)) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::new();
        encode_in_place(self.config, &mut buf, fill)?;
        Ok(buf.freeze())
    }

    /// Encodes a frame once into shared bytes, to send to many connections.
    pub fn encode_shared(&self, payload: &[u8]) -> Result<Bytes, FrameError> {
        self.config.encode_to_bytes(payload)
    }

    /// Sends an already encoded frame to any connection.
    pub fn send_encoded_to(&mut self, id: ConnId, frame: Bytes) {
        self.cx.send_to(id, frame);
        self.cx.count_frames_out(1);
    }

    /// Sends one already encoded frame to many connections, sharing it.
    pub fn broadcast_encoded(&mut self, ids: &[ConnId], frame: &Bytes) {
        let sent = self.cx.broadcast(ids, frame);
        self.cx.count_frames_out(sent as u64);
    }

    /// Like [`FramedContext::broadcast_encoded`], skipping the current
    /// connection if it is among `ids`.
    pub fn broadcast_encoded_others(&mut self, ids: &[ConnId], frame: &Bytes) {
        let sent = self.cx.broadcast_others(ids, frame);
        self.cx.count_frames_out(sent as u64);
    }
}

/// Appends a frame to `buf`: a header placeholder, the payload `fill`
/// writes, then the real header once the length is known. On error `buf`
/// is left as it was.
fn encode_in_place(
    config: &FrameConfig,
    buf: &mut BytesMut,
    fill: impl FnOnce(&mut BytesMut),
) -> Result<(), FrameError> {
    let header_len = config.header_len();
    let start = buf.len();
    buf.put_bytes(0, header_len);
    fill(buf);
    let len = buf.len() - start - header_len;
    let mut header = BytesMut::with_capacity(header_len);
    let result = match config.encode_header(len, &mut header) {
        Ok(()) if header.len() == header_len => {
            buf[start..start + header_len].copy_from_slice(&header);
            return Ok(());
        }
        Ok(()) => Err(FrameError::Corrupt { reason: "encoder header length mismatch" }),
        Err(e) => Err(e),
    };
    buf.truncate(start);
    result
}

/// Per-connection state of a [`Framed`] service: the decoder and the inner
/// handler's state.
pub struct FramedConn<C> {
    decoder: FrameDecoder,
    inner: C,
}

/// Adapts a [`FrameHandler`] to a [`Handler`] with the given frame format.
pub struct Framed<H> {
    inner: H,
    config: FrameConfig,
}

impl<H: FrameHandler> Framed<H> {
    /// Serves `inner` with frames in the format `config` describes.
    pub fn new(config: FrameConfig, inner: H) -> Framed<H> {
        Framed { inner, config }
    }

    /// The wrapped frame handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: FrameHandler> Framed<H> {
    fn fail(&mut self, cx: &mut Context<'_>, conn: &mut FramedConn<H::Conn>, error: &FrameError) {
        let mut fcx = FramedContext { cx, config: &self.config };
        self.inner.on_frame_error(&mut fcx, &mut conn.inner, error);
        cx.close_with(CloseReason::Protocol(error.to_string()));
    }
}

impl<H: FrameHandler> Handler for Framed<H> {
    type Conn = FramedConn<H::Conn>;

    fn on_open(&mut self, cx: &mut Context<'_>, peer: SocketAddr) -> Self::Conn {
        let mut decoder = FrameDecoder::new(self.config);
        if let Some(max) = self.inner.max_frame_length() {
            decoder.set_max_frame_length(max);
        }
        let inner = self.inner.on_open(&mut FramedContext { cx, config: &self.config }, peer);
        FramedConn { decoder, inner }
    }

    fn on_data(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, input: &mut BytesMut) {
        if let Some(max) = self.inner.max_frame_length() {
            conn.decoder.set_max_frame_length(max);
        }
        let mut frames = 0;
        loop {
            match conn.decoder.decode(input) {
                Ok(Some(frame)) => {
                    frames += 1;
                    self.inner.on_frame(
                        &mut FramedContext { cx, config: &self.config },
                        &mut conn.inner,
                        frame,
                    );
                    if !cx.is_open() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(cx, conn, &e);
                    break;
                }
            }
        }
        cx.count_frames_in(frames);
    }

    fn on_eof(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, input: &mut BytesMut) -> bool {
        if let Err(e) = conn.decoder.decode_eof(input) {
            self.fail(cx, conn, &e);
        }
        true
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, token: u64) {
        self.inner.on_timer(&mut FramedContext { cx, config: &self.config }, &mut conn.inner, token);
    }

    fn on_notify(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, token: u64) {
        self.inner.on_notify(&mut FramedContext { cx, config: &self.config }, &mut conn.inner, token);
    }

    fn on_drained(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn) {
        self.inner.on_drained(&mut FramedContext { cx, config: &self.config }, &mut conn.inner);
    }

    fn on_loop_notify(&mut self, cx: &mut Context<'_>, token: u64) {
        self.inner.on_loop_notify(&mut FramedContext { cx, config: &self.config }, token);
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn) {
        self.inner.on_shutdown(&mut FramedContext { cx, config: &self.config }, &mut conn.inner);
    }

    fn on_close(&mut self, cx: &mut Context<'_>, conn: Self::Conn, reason: &CloseReason) {
        self.inner.on_close(&mut FramedContext { cx, config: &self.config }, conn.inner, reason);
    }
}
