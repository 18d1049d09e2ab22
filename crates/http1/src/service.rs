//! The reactor side: [`HttpService`] drives the decoder with a connection's
//! input, calls the handler in request order, writes responses and keeps the
//! connection's deadlines with reactor timers.

use crate::codec::{Arrived, Continue, HttpCodec, Incoming, Reply, Switch, WsClose, WsPending};
use crate::config::HttpConfig;
use crate::handler::{HttpContext, HttpHandler, Outcome, Wake};
use crate::parse::{reject, Reject};
use crate::request::{Method, Request, Version};
use crate::response::{Persistence, Response};
use crate::websocket::{close_code, WebSocketHandler, WsContext, WsEvent, WsMessage, WsStream};
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
    /// An upgraded WebSocket connection that sent nothing: close with 1001.
    WsIdle,
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
    /// (Its time; the phase is `phase`, kept apart so that both pack small.)
    deadline_at: Option<Instant>,
    /// When the earliest deadline timer still armed fires: a timer is armed
    /// only when the deadline moves before it, so keep-alive requests arm
    /// none (a timer that fires early finds a later deadline and re-arms).
    timer_at: Option<Instant>,
    wait_seq: u32,
    /// What `deadline_at` is for.
    phase: Phase,
    /// A request completed during the current read.
    completed: bool,
    /// The close is requested: nothing more is written.
    closed: bool,
    /// The WebSocket handler, once the connection switched to WebSocket
    /// (boxed twice: a thin pointer keeps every idle HTTP connection small).
    #[allow(clippy::redundant_allocation)]
    ws: Option<Box<Box<dyn WebSocketHandler>>>,
}

impl<P> HttpConn<P> {
    /// When the connection gives up on its client, and why.
    fn deadline(&self) -> Option<(Instant, Phase)> {
        self.deadline_at.map(|at| (at, self.phase))
    }

    fn set_deadline(&mut self, deadline: Option<(Instant, Phase)>) {
        self.deadline_at = deadline.map(|(at, _)| at);
        if let Some((_, phase)) = deadline {
            self.phase = phase;
        }
    }
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
            Outcome::Upgrade(up) => self.upgrade(cx, conn, &req, up),
            Outcome::Wait { pending, timeout } => {
                let mut req = req;
                req.detach();
                conn.wait_seq = conn.wait_seq.wrapping_add(1);
                let seq = u64::from(conn.wait_seq) & WAIT_SEQ;
                cx.set_timer(timeout, WAIT | seq);
                conn.waiting = Some(Box::new(Waiting { req, pending, seq, queue: VecDeque::new() }));
            }
        }
    }

    /// Answers 101 and hands the connection to the WebSocket handler: from
    /// now on the codec decodes WebSocket frames (those the client sent
    /// right behind its handshake included).
    fn upgrade(
        &mut self,
        cx: &mut Cx<'_, '_>,
        conn: &mut HttpConn<H::Pending>,
        req: &Request,
        up: crate::handler::Upgrade,
    ) {
        if conn.closed || cx.is_shutting_down() || !req.body().is_empty() {
            let resp = Response::text(400, "cannot switch this connection to WebSocket\n").close();
            return self.respond(cx, conn, req, &resp);
        }
        let Ok(()) = cx.send(Switch(&up.accept));
        cx.codec_state().ws = Some(Box::new(WsStream::new(self.config.ws_max_message)));
        let mut handler = Box::new(up.handler);
        handler.on_open(&mut WsContext::new(cx));
        conn.ws = Some(handler);
    }

    /// Hands what happened on the WebSocket to its handler.
    fn ws_event(&mut self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>, ev: WsEvent) {
        let Some(handler) = conn.ws.as_mut() else { return };
        // Pongs owed for pings that came before this event go first.
        let Ok(()) = cx.send(WsPending);
        match ev {
            WsEvent::Binary(b) => handler.on_message(&mut WsContext::new(cx), WsMessage::Binary(&b)),
            WsEvent::Text(t) => handler.on_message(&mut WsContext::new(cx), WsMessage::Text(&t)),
            // The answer to the peer's close frame went with the pongs.
            WsEvent::Closed => cx.close_with(CloseReason::PeerClosed),
            WsEvent::Failed(code, why) => Self::ws_fail(cx, code, &why),
        }
    }

    /// Fails the WebSocket (RFC 6455 section 7.1.7): a close frame with
    /// `code`, then the TCP close; input from now on is discarded.
    fn ws_fail(cx: &mut Cx<'_, '_>, code: u16, why: &str) {
        log::debug!("http1: websocket {}: closing with {code}: {why}", cx.id());
        let Ok(()) = cx.send(WsClose { code, reason: why });
        let protocol = [close_code::PROTOCOL_ERROR, close_code::INVALID_PAYLOAD, close_code::TOO_BIG];
        cx.close_with(if protocol.contains(&code) {
            CloseReason::Protocol(format!("websocket {code}: {why}"))
        } else {
            CloseReason::Local
        });
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
                    if conn.ws.is_some() {
                        // What followed the upgrade request was parsed as
                        // requests before it was answered: not trustworthy.
                        Self::ws_fail(cx, close_code::PROTOCOL_ERROR, "data pipelined behind the upgrade");
                        break;
                    }
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
        let same_head = !new_head && matches!(conn.deadline(), Some((_, Phase::Head)));
        let stream = cx.codec_state();
        let deadline = if stream.ws.is_some() {
            Some((now + self.config.ws_idle_timeout, Phase::WsIdle))
        } else if stream.stopped || conn.waiting.is_some() {
            None // a wait has its own timeout; a stopped connection, the reactor's linger
        } else if stream.decoder.in_body() {
            Some((now + self.config.body_timeout, Phase::Body))
        } else if same_head {
            conn.deadline()
        } else if stream.decoder.in_head() {
            Some((now + self.config.head_timeout, Phase::Head))
        } else {
            Some((now + self.config.keep_alive_timeout, Phase::Idle))
        };
        conn.set_deadline(deadline);
        self.arm_timer(cx, conn);
    }

    /// Arms a timer for the deadline unless one fires at or before it.
    fn arm_timer(&self, cx: &mut Cx<'_, '_>, conn: &mut HttpConn<H::Pending>) {
        if let Some((at, _)) = conn.deadline() {
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
        match conn.deadline() {
            Some((at, Phase::Head)) if at <= now => {
                self.refuse(cx, conn, reject(408, "request head timeout"))
            }
            Some((at, Phase::Body)) if at <= now => {
                self.refuse(cx, conn, reject(408, "request body timeout"))
            }
            Some((at, Phase::WsIdle)) if at <= now => {
                Self::ws_fail(cx, close_code::GOING_AWAY, "idle timeout")
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
            deadline_at: Some(cx.now() + self.config.head_timeout),
            phase: Phase::Head,
            timer_at: None,
            wait_seq: 0,
            completed: false,
            closed: false,
            ws: None,
        };
        self.rearm(cx, &mut conn, false);
        conn
    }

    fn on_message(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn, incoming: Incoming) {
        match incoming.0 {
            Arrived::Request(req) => {
                conn.completed = true;
                self.dispatch(cx, conn, req);
            }
            Arrived::Reject(r) => self.refuse(cx, conn, r),
            Arrived::Ws(ev) => self.ws_event(cx, conn, ev),
        }
    }

    fn on_read(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn) {
        if conn.ws.is_some() {
            // Pongs tungstenite owes go out with this read's output.
            let Ok(()) = cx.send(WsPending);
            return self.rearm(cx, conn, false);
        }
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
            match conn.ws.as_mut() {
                Some(ws) => ws.on_timer(&mut WsContext::new(cx), token),
                None => self.wake(cx, conn, Wake::Timer(token)),
            }
        }
    }

    fn on_notify(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn, token: u64) {
        match conn.ws.as_mut() {
            Some(ws) => ws.on_notify(&mut WsContext::new(cx), token),
            None => self.wake(cx, conn, Wake::Notify(token)),
        }
    }

    fn on_loop_notify(&mut self, cx: &mut Context<'_>, token: u64) {
        self.handler.on_loop_notify(&mut HttpContext::new(cx), token);
    }

    fn on_shutdown(&mut self, cx: &mut Cx<'_, '_>, conn: &mut Self::Conn) {
        match conn.ws.as_mut() {
            Some(ws) => {
                ws.on_shutdown(&mut WsContext::new(cx));
                WsContext::new(cx).close(close_code::GOING_AWAY, "server shutting down");
            }
            None => self.wake(cx, conn, Wake::Shutdown),
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, conn: Self::Conn, reason: &CloseReason) {
        if let Some(mut ws) = conn.ws {
            ws.on_close(cx, reason);
        }
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
