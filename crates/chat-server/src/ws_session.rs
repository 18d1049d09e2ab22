//! The chat over WebSocket (`GET /ws`): the same protocol, sessions and
//! limits as the TCP door, each binary WebSocket message carrying exactly
//! one chat payload (no length prefix). The protocol logic is the
//! [`ChatService`]'s, run through the WebSocket [`Door`].

use crate::core::ChatCore;
use crate::session::{ChatService, Door, Session};
use bytes::BytesMut;
use http1::{close_code, WebSocketHandler, WsContext, WsMessage};
use reactor::{CloseReason, Context};
use std::sync::Arc;

impl<'a> Door<'a> for WsContext<'_, '_, 'a> {
    fn send_payload(&mut self, fill: impl FnOnce(&mut BytesMut)) {
        self.send_binary_with(fill);
    }

    fn close_door(&mut self, why: &str) {
        self.close(close_code::POLICY, why);
    }
}

/// One WebSocket chat connection: the protocol and its session state.
pub struct ChatSocket {
    service: ChatService,
    /// `None` until opened, and again once closed.
    session: Option<Session>,
    /// The credential the handshake carried, until the session is opened.
    preauth: Option<Box<str>>,
}

impl ChatSocket {
    /// A connection sharing `core`; `preauth`: the session credential its
    /// upgrade request carried (cookie or `Authorization: Bearer`), which a
    /// `Login` with the session's nickname may then omit.
    pub fn new(core: Arc<ChatCore>, preauth: Option<&str>) -> ChatSocket {
        ChatSocket { service: ChatService::new(core), session: None, preauth: preauth.map(Box::from) }
    }
}

impl WebSocketHandler for ChatSocket {
    fn on_open(&mut self, cx: &mut WsContext<'_, '_, '_>) {
        self.session = Some(self.service.open(cx, self.preauth.take()));
    }

    fn on_message(&mut self, cx: &mut WsContext<'_, '_, '_>, msg: WsMessage<'_>) {
        let Some(s) = self.session.as_mut() else { return };
        match msg {
            WsMessage::Binary(payload) => self.service.payload(cx, s, payload),
            WsMessage::Text(_) => {
                cx.close(close_code::UNSUPPORTED_DATA, "binary messages only: one chat payload each")
            }
        }
    }

    fn on_timer(&mut self, cx: &mut WsContext<'_, '_, '_>, token: u64) {
        if let Some(s) = self.session.as_mut() {
            if !self.service.heartbeat(cx, s, token) {
                cx.close(close_code::GOING_AWAY, "idle timeout");
            }
        }
    }

    fn on_notify(&mut self, cx: &mut WsContext<'_, '_, '_>, token: u64) {
        if let Some(s) = self.session.as_mut() {
            self.service.notified(cx, s, token);
        }
    }

    fn on_shutdown(&mut self, cx: &mut WsContext<'_, '_, '_>) {
        self.service.going_away(cx);
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: &CloseReason) {
        if let Some(s) = self.session.take() {
            self.service.closed(cx, s, reason);
        }
    }
}
