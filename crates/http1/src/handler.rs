//! The interface an HTTP service implements.

use crate::request::Request;
use crate::response::Response;
use crate::websocket::WebSocketHandler;
use reactor::Context;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// What a handler does with a request: answer now, later, or switch the
/// connection to WebSocket.
pub enum Outcome<P> {
    /// Send this response now.
    Respond(Response),
    /// Answer later (a long poll): keep `pending` until
    /// [`HttpHandler::on_wake`] returns a response. The wait ends after
    /// `timeout` at the latest, with [`Wake::Timeout`]. Requests the client
    /// pipelines meanwhile are queued and answered after this one.
    Wait {
        /// The state needed to answer later.
        pending: P,
        /// Longest wait before [`Wake::Timeout`].
        timeout: Duration,
    },
    /// Answer `101 Switching Protocols` and hand the connection to a
    /// WebSocket handler: made by [`Outcome::upgrade`].
    Upgrade(Upgrade),
}

/// An accepted WebSocket handshake and the handler of the connection.
pub struct Upgrade {
    pub(crate) accept: String,
    pub(crate) handler: Box<dyn WebSocketHandler>,
}

impl<P> Outcome<P> {
    /// Switches the connection to WebSocket with `handler` if `req` is a
    /// valid opening handshake (RFC 6455 section 4.2); otherwise answers
    /// the refusal: 400, 405, or 426 naming version 13.
    pub fn upgrade(req: &Request, handler: impl WebSocketHandler) -> Outcome<P> {
        match crate::websocket::handshake::accept_key(req) {
            Ok(accept) => Outcome::Upgrade(Upgrade { accept, handler: Box::new(handler) }),
            Err(refusal) => Outcome::Respond(refusal),
        }
    }
}

impl<P> From<Response> for Outcome<P> {
    fn from(r: Response) -> Outcome<P> {
        Outcome::Respond(r)
    }
}

/// Why [`HttpHandler::on_wake`] is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// `notify(conn, token)` reached the connection, from
    /// [`reactor::ReactorHandle::notify`] (any thread) or
    /// [`reactor::Context::notify`] (any handler). Wakes may be spurious (a
    /// notify meant for an earlier request can reach a later one): check,
    /// and return `None` to keep waiting.
    Notify(u64),
    /// A timer the handler armed with `set_timer(after, token)` on this
    /// connection fired; tokens from `1 << 63` up are the adapter's own.
    Timer(u64),
    /// The wait's timeout passed: the handler must answer now.
    Timeout,
    /// The reactor is shutting down: the handler must answer now (the
    /// connection closes after it).
    Shutdown,
}

impl Wake {
    /// True for the wakes after which a wait cannot go on: a `None` from
    /// [`HttpHandler::on_wake`] is then answered with 503.
    pub fn is_final(self) -> bool {
        matches!(self, Wake::Timeout | Wake::Shutdown)
    }
}

/// An HTTP service: one value per event loop (made by the factory given to
/// `ReactorBuilder::service`), so it needs no locks for its own fields.
///
/// A request reaches `on_request` whole (body included), in the order the
/// client sent it; the adapter answers malformed requests, limits and
/// timeouts itself. Routing is a `match`:
///
/// ```
/// use http1::{HttpContext, HttpHandler, Method, Outcome, Request, Response, Wake};
/// use std::time::Duration;
///
/// struct Api;
///
/// impl HttpHandler for Api {
///     type Pending = u64; // the message id a long poll waits to pass
///
///     fn on_request(&mut self, cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<u64> {
///         match (req.method(), req.path()) {
///             (Method::Get | Method::Head, "/") => Response::text(200, "hi").into(),
///             (Method::Get, "/poll") => {
///                 let since = req.query_param("since").and_then(|s| s.parse().ok()).unwrap_or(0);
///                 // Register cx.id() somewhere a poster finds it, to `notify` it.
///                 let _waiter = cx.id();
///                 Outcome::Wait { pending: since, timeout: Duration::from_secs(30) }
///             }
///             (_, "/" | "/poll") => Response::method_not_allowed("GET, HEAD").into(),
///             _ => Response::not_found().into(),
///         }
///     }
///
///     fn on_wake(&mut self, _cx: &mut HttpContext<'_, '_>, _req: &Request, since: &mut u64, wake: Wake)
///         -> Option<Response> {
///         match wake {
///             Wake::Notify(newest) if newest > *since => Some(Response::json(200, format!("[{newest}]"))),
///             w if w.is_final() => Some(Response::json(200, "[]")),
///             _ => None, // spurious: keep waiting
///         }
///     }
/// }
/// ```
pub trait HttpHandler: Send + 'static {
    /// The state of a response not given yet ([`Outcome::Wait`]); `()` for
    /// a service that always answers at once.
    type Pending: 'static;

    /// A whole request arrived: answer it, or wait.
    fn on_request(&mut self, cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<Self::Pending>;

    /// Something happened while a response is pending for `req`: return
    /// `Some` to send it now, `None` to keep waiting (not allowed when
    /// [`Wake::is_final`]: the adapter then sends 503).
    fn on_wake(
        &mut self,
        cx: &mut HttpContext<'_, '_>,
        req: &Request,
        pending: &mut Self::Pending,
        wake: Wake,
    ) -> Option<Response> {
        let _ = (cx, req, pending);
        wake.is_final().then(|| Response::text(503, "service unavailable\n"))
    }

    /// `notify_loop(loop, service, token)` reached this service on this
    /// loop: work for the loop rather than for one request (see
    /// [`reactor::Handler::on_loop_notify`]). The context has no current
    /// connection.
    fn on_loop_notify(&mut self, cx: &mut HttpContext<'_, '_>, token: u64) {
        let _ = (cx, token);
    }

    /// The connection closed while a response was pending (the client went
    /// away): drop whatever refers to it, e.g. a waiter registration.
    fn on_cancel(&mut self, cx: &mut HttpContext<'_, '_>, req: &Request, pending: Self::Pending) {
        let _ = (cx, req, pending);
    }
}

/// A handler's view of the connection and its loop: derefs to the reactor's
/// [`Context`] for the connection id (to be notified later), the loop's
/// clock, timers, a [`ReactorHandle`](reactor::ReactorHandle), and messages
/// to other connections by id (say, raw-TCP chat clients on the same
/// reactor, each framed by its own codec).
///
/// A handler answers through its return values only: it cannot write bytes
/// into its own connection, where they would land in the middle of the HTTP
/// stream.
///
/// ```compile_fail
/// fn corrupt(cx: &mut http1::HttpContext<'_, '_>) {
///     cx.write(b"HTTP/1.1 200 OK\r\n\r\n"); // no such method
/// }
/// ```
///
/// ```compile_fail
/// fn corrupt(cx: &mut http1::HttpContext<'_, '_>) {
///     cx.send(bytes::Bytes::from_static(b"junk")); // nor this: messages go by id, through codecs
/// }
/// ```
pub struct HttpContext<'c, 'a> {
    cx: &'c mut Context<'a>,
}

impl<'c, 'a> HttpContext<'c, 'a> {
    pub(crate) fn new(cx: &'c mut Context<'a>) -> HttpContext<'c, 'a> {
        HttpContext { cx }
    }
}

impl<'a> Deref for HttpContext<'_, 'a> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        self.cx
    }
}

impl<'a> DerefMut for HttpContext<'_, 'a> {
    fn deref_mut(&mut self) -> &mut Context<'a> {
        self.cx
    }
}
