//! What a service's factory makes for each loop: the stack a connection's
//! bytes go through, transport under codec under handler.

use crate::handler::Handler;
use crate::transport::{Plain, Transport};

/// A service's parts on one loop: the [`Handler`], the codec its connections
/// speak, and the [`Transport`] under that codec ([`Plain`] TCP unless said
/// otherwise).
///
/// ```text
/// socket ⇄ transport (plain, TLS) ⇄ codec (frames, HTTP) ⇄ handler
/// ```
///
/// The loop drives the stack the same way whatever its parts: swapping the
/// transport (TLS for plain) or the codec changes neither the loop nor the
/// handler's other callbacks.
pub struct Service<H: Handler, T: Transport = Plain> {
    pub(crate) handler: H,
    pub(crate) codec: H::Codec,
    pub(crate) transport: T,
}

impl<H: Handler> Service<H, Plain> {
    /// `handler`, speaking through `codec` over plain TCP.
    pub fn new(codec: H::Codec, handler: H) -> Service<H, Plain> {
        Service { handler, codec, transport: Plain }
    }
}

impl<H: Handler, T: Transport> Service<H, T> {
    /// The same service over another transport.
    pub fn with_transport<U: Transport>(self, transport: U) -> Service<H, U> {
        Service { handler: self.handler, codec: self.codec, transport }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }
}

/// Anything a service factory may return: a [`Service`], or a type that
/// knows its own codec (such as an HTTP adapter built from its config).
pub trait IntoService {
    /// The handler.
    type Handler: Handler;
    /// The transport.
    type Transport: Transport;
    /// The service's parts.
    fn into_service(self) -> Service<Self::Handler, Self::Transport>;
}

impl<H: Handler, T: Transport> IntoService for Service<H, T> {
    type Handler = H;
    type Transport = T;
    fn into_service(self) -> Service<H, T> {
        self
    }
}
