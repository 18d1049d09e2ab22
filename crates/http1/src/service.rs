//! The reactor side: [`HttpService`] drives the decoder with a connection's
//! input, calls the handler in request order, writes responses and keeps the
//! connection's deadlines with reactor timers.

use crate::codec::{Continue, HttpCodec, Incoming, Reply};
use crate::config::HttpConfig;
use crate::handler::{HttpContext, HttpHandler, Outcome, Wake};
use crate::parse::{reject, Reject};
use crate::request::{Method, Request, Version};
use crate::response::{Persistence, Response};
use reactor::{CloseReason, ConnContext, Context, Handler, IntoService, Plain, Service};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// The context of an HTTP connection, as the adapter sees it.
type Cx<'c, 'a> = ConnContext<'c, 'a, HttpCodec>;

/// Timer tokens with this bit are the adapter's; others are the handler's.
const INTERNAL: u64 = 1 << 63;
/// The connection's deadline (head, body or keep-alive).
const DEADLINE: u64 = INTERNAL;
/// A wait's timeout; the low bits are the wait's sequence number, so that
/// the timer of a wait already answered is recognised and ignored.
const WAIT: u64 = INTERNAL | 1 << 62;
const WAIT_SEQ: u64 = (1 << 62) - 1;

/// What a connection's deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a request head: 408 when it passes.
    Head,
    /// Reading a body, and nothing came for a while: 408.
    Body,
    /// Between requests: close quietly.
    Idle,
}

/// A request parsed while an earlier response is pending.
enum Queued {
    Request(Request),
    /// A bad request: answered in its turn, then the connection closes.
    Reject(Reject),
    /// Too many requests queued: close once those before are answered.
    Close,
}

/// A response not given yet, and what came after its request.
struct Waiting<P> {
    req: Request,
    pending: P,
    seq: u64,
    queue: VecDeque<Queued>,
}

/// Per-connection state of an [`HttpService`] (the request stream's is the
/// codec's). Between requests it holds no heap memory: a request waited on
/// is boxed.
pub struct HttpConn<P> {
    waiting: Option<Box<Waiting<P>>>,
    /// When the connection gives up on its client, and why.
    deadline: Option<(Instant, Phase)>,
    /// When the earliest deadline timer still armed fires: a timer is armed
    /// only when the deadline moves before it, so keep-alive requests arm
    /// none (a timer that fires early finds a later deadline and re-arms).
    timer_at: Option<Instant>,
    wait_seq: u64,
    /// A request completed during the current read.
    completed: bool,
    /// The close is requested: nothing more is written.
    closed: bool,
}

/// Serves an [`HttpHandler`] as a reactor [`Handler`]:
///
/// ```no_run
/// # use http1::{HttpConfig, HttpContext, HttpHandler, HttpService, Outcome, Request, Response};
/// # struct MyHandler;
/// # impl HttpHandler for MyHandler {
/// #     type Pending = ();
/// #     fn on_request(&mut self, _: &mut HttpContext<'_, '_>, _: &Request) -> Outcome<()> {
/// #         Response::empty(204).into()
/// #     }
/// # }
/// use reactor::{Reactor, ServiceConfig};
///
/// let reactor = Reactor::builder()
///     .service(ServiceConfig::new("http"), "127.0.0.1:8080", |_| {
///         HttpService::new(HttpConfig::default(), MyHandler)
///     })
///     .build()?;
/// reactor.join();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct HttpService<H: HttpHandler> {
    handler: H,
    config: HttpConfig,
}

impl<H: HttpHandler> IntoService for HttpService<H> {
    type Handler = HttpService<H>;
    type Transport = Plain;

    /// The service with its codec, built from the same config.
    fn into_service(self) -> Service<HttpService<H>> {
        Service::new(HttpCodec::new(self.config.clone()), self)
    }
}

impl<H: HttpHandler> HttpService<H> {
    /// Serves `handler` with the limits of `config`.
    ///
    /// # Panics
    ///
    /// If `config` is invalid (see [`HttpConfig::validate`]).
    pub fn new(config: HttpConfig, handler: H) -> HttpService<H> {
        if let Err(e) = config.validate() {
            panic!("invalid HttpConfig: {e}");
        }
        HttpService { handler, config }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The limits in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Routes a whole request: to the handler, or behind a pending response.
    fn dispatch(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>, req: Request) {
        let Some(w) = conn.waiting.as_mut() else {
            return self.serve(cx, conn, req);
        };
        if w.queue.len() >= self.config.max_pipelined {
            log::debug!("http1: {}: over {} queued requests; closing", cx.id(), self.config.max_pipelined);
            w.queue.push_back(Queued::Close);
            cx.codec_state().stopped = true;
        } else {
            let mut req = req;
            req.detach();
            w.queue.push_back(Queued::Request(req));
        }
    }

    fn serve(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>, req: Request) {
        match self.handler.on_request(&mut HttpContext::new(cx), &req) {
            Outcome::Respond(resp) => self.respond(cx, conn, &req, &resp),
            Outcome::Wait { pending, timeout } => {
                let mut req = req;
                req.detach();
                conn.wait_seq = (conn.wait_seq + 1) & WAIT_SEQ;
                cx.set_timer(timeout, WAIT | conn.wait_seq);
                let seq = conn.wait_seq;
                conn.waiting = Some(Box::new(Waiting { req, pending, seq, queue: VecDeque::new() }));
            }
        }
    }

    fn respond(
        &mut self,
        cx: &mut Cx<'_, '_>,
        conn: &mut HttpConn<H::Pending>,
        req: &Request,
        resp: &Response,
    ) {
        if conn.closed {
            return;
        }
        let keep = req.keep_alive() && !resp.wants_close() && !cx.is_shutting_down();
        let persistence = match (keep, req.version()) {
            (false, _) => Persistence::Close,
            (true, Version::Http10) => Persistence::KeepAlive,
            (true, Version::Http11) => Persistence::Default,
        };
        let head_only = req.method() == Method::Head;
        let now = cx.now();
        let Ok(()) = cx.send(Reply { response: resp, head_only, persistence, now });
        if !keep {
            cx.codec_state().stopped = true;
            conn.closed = true;
            cx.close();
        }
    }

    /// Refuses the request being read: at once, or after the responses
    /// still owed for earlier requests.
    fn refuse(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>, r: Reject) {
        cx.codec_state().stopped = true;
        match conn.waiting.as_mut() {
            Some(w) => w.queue.push_back(Queued::Reject(r)),
            None => self.send_reject(cx, conn, r),
        }
    }

    fn send_reject(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>, r: Reject) {
        if conn.closed {
            return;
        }
        log::debug!("http1: {}: {} {}", cx.id(), r.status, r.reason);
        let resp = Response::text(r.status, format!("{}\n", r.reason));
        let now = cx.now();
        let Ok(()) =
            cx.send(Reply { response: &resp, head_only: false, persistence: Persistence::Close, now });
        cx.codec_state().stopped = true;
        conn.closed = true;
        // Counted by the reactor: slow clients as timeouts, the rest as
        // protocol errors.
        cx.close_with(match r.status {
            408 => CloseReason::IdleTimeout,
            status => CloseReason::Protocol(format!("http {status}: {}", r.reason)),
        });
    }

    /// Lets the handler answer a pending response; then serves what queued.
    fn wake(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>, wake: Wake) {
        let Some(w) = conn.waiting.as_mut() else { return };
        let resp = match self.handler.on_wake(&mut HttpContext::new(cx), &w.req, &mut w.pending, wake) {
            Some(resp) => resp,
            None if wake.is_final() => {
                log::warn!("http1: {}: no response after {wake:?}; sending 503", cx.id());
                Response::text(503, "service unavailable\n")
            }
            None => return,
        };
        let Some(w) = conn.waiting.take() else { return };
        self.respond(cx, conn, &w.req, &resp);
        let mut queue = w.queue;
        while let Some(item) = queue.pop_front() {
            if conn.closed {
                break; // the rest stay unanswered, as the close tells the client
            }
            match item {
                Queued::Request(req) => {
                    self.serve(cx, conn, req);
                    if let Some(w) = conn.waiting.as_mut() {
                        w.queue = queue;
                        break;
                    }
                }
                Queued::Reject(r) => self.send_reject(cx, conn, r),
                Queued::Close => {
                    conn.closed = true;
                    cx.close();
                }
            }
        }
        self.send_continue(cx, conn);
        // A head that arrived during the wait is timed from now.
        self.rearm(cx, conn, true);
    }

    /// Sends `100 Continue` if the body being read waits for it and no
    /// earlier response is owed (it would be taken as that one's).
    fn send_continue(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>) {
        let stream = cx.codec_state();
        if !stream.stopped && conn.waiting.is_none() && stream.decoder.continue_owed() {
            stream.decoder.continue_sent();
            let Ok(()) = cx.send(Continue);
        }
    }

    /// Sets the connection's deadline for what it is doing now. `new_head`:
    /// a head in progress started now (a request before it just completed).
    fn rearm(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>, new_head: bool) {
        let now = cx.now();
        // Still within the same head (or, on a new connection, still before
        // the first complete one).
        let same_head = !new_head && matches!(conn.deadline, Some((_, Phase::Head)));
        let stream = cx.codec_state();
        conn.deadline = if stream.stopped || conn.waiting.is_some() {
            None // a wait has its own timeout; a stopped connection, the reactor's linger
        } else if stream.decoder.in_body() {
            Some((now + self.config.body_timeout, Phase::Body))
        } else if same_head {
            conn.deadline
        } else if stream.decoder.in_head() {
            Some((now + self.config.head_timeout, Phase::Head))
        } else {
            Some((now + self.config.keep_alive_timeout, Phase::Idle))
        };
        self.arm_timer(cx, conn);
    }

    /// Arms a timer for the deadline unless one fires at or before it.
    fn arm_timer(&self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>) {
        if let Some((at, _)) = conn.deadline {
            if conn.timer_at.is_none_or(|t| t > at) {
                let after = at.saturating_duration_since(cx.now());
                cx.set_timer(after, DEADLINE);
                conn.timer_at = Some(at);
            }
        }
    }

    fn deadline_passed(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>) {
        let now = cx.now();
        if conn.timer_at.is_some_and(|t| t <= now) {
            conn.timer_at = None;
        }
        match conn.deadline {
            Some((at, Phase::Head)) if at <= now => {
                self.refuse(cx, conn, reject(408, "request head timeout"))
            }
            Some((at, Phase::Body)) if at <= now => {
                self.refuse(cx, conn, reject(408, "request body timeout"))
            }
            Some((at, Phase::Idle)) if at <= now => {
                cx.codec_state().stopped = true;
                conn.closed = true;
                cx.close_with(CloseReason::IdleTimeout);
            }
            // Not yet: this timer was armed for an earlier deadline.
            Some(_) => self.arm_timer(cx, conn),
            None => {}
        }
    }
}

impl<H: HttpHandler> Handler for HttpService<H> {
    type Codec = HttpCodec;
    type Conn = HttpConn<H::Pending>;

    fn on_open(&mut self, cx: &mut Cx<'_, '_>, _peer: SocketAddr) -> Self::Conn {
        let mut conn = HttpConn {
            waiting: None,
            // The first head is timed from the accept: a client that sends
            // nothing gets its 408 too.
            deadline: Some((cx.now() + self.config.head_timeout, Phase::Head)),
            timer_at: None,
            wait_seq: 0,
            completed: false,
            closed: false,
        };
        self.rearm(cx, &mut conn, false);
        conn
    }

    fn on_message(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn, incoming: Incoming) {
        match incoming.0 {
            Ok(req) => {
                conn.completed = true;
                self.dispatch(cx, conn, req);
            }
            Err(r) => self.refuse(cx, conn, r),
        }
    }

    fn on_read(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn) {
        let completed = std::mem::take(&mut conn.completed);
        self.send_continue(cx, conn);
        self.rearm(cx, conn, completed);
    }

    // On EOF the reactor's default applies: close once output is written.
    // A FIN during a long poll almost always means the client went away
    // (a half-close after the request is rare in HTTP), so the wait is
    // cancelled rather than held open for a reader that may be gone.

    fn on_timer(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn, token: u64) {
        if token == DEADLINE {
            self.deadline_passed(cx, conn);
        } else if token & WAIT == WAIT {
            if conn.waiting.as_ref().is_some_and(|w| w.seq == token & WAIT_SEQ) {
                self.wake(cx, conn, Wake::Timeout);
            }
        } else if token & INTERNAL == 0 {
            self.wake(cx, conn, Wake::Timer(token));
        }
    }

    fn on_notify(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn, token: u64) {
        self.wake(cx, conn, Wake::Notify(token));
    }

    fn on_loop_notify(&mut self, cx: &mut Context<'_>, token: u64) {
        self.handler.on_loop_notify(&mut HttpContext::new(cx), token);
    }

    fn on_shutdown(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn) {
        self.wake(cx, conn, Wake::Shutdown);
    }

    fn on_close(&mut self, cx: &mut Context<'_>, conn: Self::Conn, _reason: &CloseReason) {
        if let Some(w) = conn.waiting {
            self.handler.on_cancel(&mut HttpContext::new(cx), &w.req, w.pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_is_small() {
        // Its slab entry is all an idle keep-alive connection costs (ANCHORS 8.5):
        // the adapter's state and the codec's.
        let size = std::mem::size_of::<HttpConn<()>>() + std::mem::size_of::<crate::codec::HttpStream>();
        assert!(size <= 96, "HttpConn and HttpStream are {size} bytes");
    }
}
