//! The reactor side: [`HttpService`] drives the decoder with a connection's
//! input, calls the handler in request order, writes responses and keeps the
//! connection's deadlines with reactor timers.

use crate::config::HttpConfig;
use crate::date::DateCache;
use crate::decoder::Decoder;
use crate::handler::{HttpContext, HttpHandler, Outcome, Wake};
use crate::parse::{reject, Reject};
use crate::request::{Method, Request, Version};
use crate::response::{encode, Persistence, Response, CONTINUE};
use crate::websocket::{close_code, handshake, WsConn};
use bytes::BytesMut;
use reactor::{CloseReason, Context, Handler};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

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

/// Per-connection state of an [`HttpService`]. Between requests it holds
/// no heap memory: a request being read or waited on is boxed.
pub struct HttpConn<P> {
    decoder: Decoder,
    waiting: Option<Box<Waiting<P>>>,
    /// When the connection gives up on its client, and why.
    deadline: Option<(Instant, Phase)>,
    /// When the earliest deadline timer still armed fires: a timer is armed
    /// only when the deadline moves before it, so keep-alive requests arm
    /// none (a timer that fires early finds a later deadline and re-arms).
    timer_at: Option<Instant>,
    wait_seq: u64,
    /// Input is no longer parsed (a bad request, a closing response, too
    /// many queued): what is queued is answered, the rest discarded.
    stopped: bool,
    /// The close is requested: nothing more is written.
    closed: bool,
    /// Set once the connection switched to WebSocket: input is frames.
    ws: Option<Box<WsConn>>,
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
    date: DateCache,
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
        HttpService { handler, config, date: DateCache::new() }
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
    fn dispatch(&mut self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>, req: Request) {
        let Some(w) = conn.waiting.as_mut() else {
            return self.serve(cx, conn, req);
        };
        if w.queue.len() >= self.config.max_pipelined {
            log::debug!("http1: {}: over {} queued requests; closing", cx.id(), self.config.max_pipelined);
            w.queue.push_back(Queued::Close);
            conn.stopped = true;
        } else {
            let mut req = req;
            req.detach();
            w.queue.push_back(Queued::Request(req));
        }
    }

    fn serve(&mut self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>, req: Request) {
        match self.handler.on_request(&mut HttpContext::new(cx), &req) {
            Outcome::Respond(resp) => self.respond(cx, conn, &req, &resp),
            Outcome::Upgrade(up) => self.upgrade(cx, conn, &req, up),
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

    /// Answers 101 and hands the connection to the WebSocket handler; input
    /// after the handshake's head is WebSocket frames.
    fn upgrade(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut HttpConn<H::Pending>,
        req: &Request,
        up: crate::handler::Upgrade,
    ) {
        if conn.closed || cx.is_shutting_down() || !req.body().is_empty() {
            let resp = Response::text(400, "cannot switch this connection to WebSocket\n").close();
            return self.respond(cx, conn, req, &resp);
        }
        cx.write_with(|buf| handshake::encode_switch(&up.accept, buf));
        let mut ws = Box::new(WsConn::new(up.handler, self.config.ws_max_message));
        ws.open(cx);
        conn.ws = Some(ws);
    }

    fn respond(
        &mut self,
        cx: &mut Context<'_>,
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
        let date = self.date.get(cx.now());
        if let Some(Some(body)) = cx.write_with(|buf| encode(resp, head_only, persistence, date, buf)) {
            cx.send(body);
        }
        if !keep {
            conn.stopped = true;
            conn.closed = true;
            cx.close();
        }
    }

    /// Refuses the request being read: at once, or after the responses
    /// still owed for earlier requests.
    fn refuse(&mut self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>, r: Reject) {
        conn.stopped = true;
        match conn.waiting.as_mut() {
            Some(w) => w.queue.push_back(Queued::Reject(r)),
            None => self.send_reject(cx, conn, r),
        }
    }

    fn send_reject(&mut self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>, r: Reject) {
        if conn.closed {
            return;
        }
        log::debug!("http1: {}: {} {}", cx.id(), r.status, r.reason);
        let resp = Response::text(r.status, format!("{}\n", r.reason));
        let date = self.date.get(cx.now());
        cx.write_with(|buf| encode(&resp, false, Persistence::Close, date, buf));
        conn.stopped = true;
        conn.closed = true;
        // Counted by the reactor: slow clients as timeouts, the rest as
        // protocol errors.
        cx.close_with(match r.status {
            408 => CloseReason::IdleTimeout,
            status => CloseReason::Protocol(format!("http {status}: {}", r.reason)),
        });
    }

    /// Lets the handler answer a pending response; then serves what queued.
    fn wake(&mut self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>, wake: Wake) {
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
                        // What followed an upgrade was parsed as requests
                        // before the upgrade was answered: not trustworthy.
                        if let Some(ws) = conn.ws.as_mut() {
                            ws.fail(cx, close_code::PROTOCOL_ERROR, "data pipelined before the upgrade");
                        }
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
    fn send_continue(&mut self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>) {
        if !conn.stopped && conn.waiting.is_none() && conn.decoder.continue_owed() {
            cx.write(CONTINUE);
            conn.decoder.continue_sent();
        }
    }

    /// Sets the connection's deadline for what it is doing now. `new_head`:
    /// a head in progress started now (a request before it just completed).
    fn rearm(&mut self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>, new_head: bool) {
        let now = cx.now();
        // Still within the same head (or, on a new connection, still before
        // the first complete one).
        let same_head = !new_head && matches!(conn.deadline, Some((_, Phase::Head)));
        conn.deadline = if conn.ws.is_some() {
            Some((now + self.config.ws_idle_timeout, Phase::WsIdle))
        } else if conn.stopped || conn.waiting.is_some() {
            None // a wait has its own timeout; a stopped connection, the reactor's linger
        } else if conn.decoder.in_body() {
            Some((now + self.config.body_timeout, Phase::Body))
        } else if same_head {
            conn.deadline
        } else if conn.decoder.in_head() {
            Some((now + self.config.head_timeout, Phase::Head))
        } else {
            Some((now + self.config.keep_alive_timeout, Phase::Idle))
        };
        self.arm_timer(cx, conn);
    }

    /// Arms a timer for the deadline unless one fires at or before it.
    fn arm_timer(&self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>) {
        if let Some((at, _)) = conn.deadline {
            if conn.timer_at.is_none_or(|t| t > at) {
                cx.set_timer(at.saturating_duration_since(cx.now()), DEADLINE);
                conn.timer_at = Some(at);
            }
        }
    }

    fn deadline_passed(&mut self, cx: &mut Context<'_>, conn: &mut HttpConn<H::Pending>) {
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
            Some((at, Phase::WsIdle)) if at <= now => {
                if let Some(ws) = conn.ws.as_mut() {
                    ws.fail(cx, close_code::GOING_AWAY, "idle timeout");
                }
            }
            Some((at, Phase::Idle)) if at <= now => {
                conn.stopped = true;
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
    type Conn = HttpConn<H::Pending>;

    fn on_open(&mut self, cx: &mut Context<'_>, _peer: SocketAddr) -> Self::Conn {
        let mut conn = HttpConn {
            decoder: Decoder::new(),
            waiting: None,
            // The first head is timed from the accept: a client that sends
            // nothing gets its 408 too.
            deadline: Some((cx.now() + self.config.head_timeout, Phase::Head)),
            timer_at: None,
            wait_seq: 0,
            stopped: false,
            closed: false,
            ws: None,
        };
        self.rearm(cx, &mut conn, false);
        conn
    }

    fn on_data(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, input: &mut BytesMut) {
        if let Some(ws) = conn.ws.as_mut() {
            ws.on_data(cx, input);
            return self.rearm(cx, conn, false);
        }
        let mut completed = false;
        while !conn.stopped && conn.ws.is_none() {
            match conn.decoder.decode(input, &self.config) {
                Ok(Some(req)) => {
                    completed = true;
                    self.dispatch(cx, conn, req);
                }
                Ok(None) => break,
                Err(r) => self.refuse(cx, conn, r),
            }
        }
        if conn.stopped {
            input.clear();
        }
        if let Some(ws) = conn.ws.as_mut() {
            // Frames the client sent right behind its handshake.
            if !input.is_empty() {
                ws.on_data(cx, input);
            }
            return self.rearm(cx, conn, false);
        }
        self.send_continue(cx, conn);
        self.rearm(cx, conn, completed);
    }

    // On EOF the reactor's default applies: close once output is written.
    // A FIN during a long poll almost always means the client went away
    // (a half-close after the request is rare in HTTP), so the wait is
    // cancelled rather than held open for a reader that may be gone.

    fn on_timer(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, token: u64) {
        if token == DEADLINE {
            self.deadline_passed(cx, conn);
        } else if token & WAIT == WAIT {
            if conn.waiting.as_ref().is_some_and(|w| w.seq == token & WAIT_SEQ) {
                self.wake(cx, conn, Wake::Timeout);
            }
        } else if token & INTERNAL == 0 {
            match conn.ws.as_mut() {
                Some(ws) => ws.timer(cx, token),
                None => self.wake(cx, conn, Wake::Timer(token)),
            }
        }
    }

    fn on_notify(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, token: u64) {
        match conn.ws.as_mut() {
            Some(ws) => ws.notify(cx, token),
            None => self.wake(cx, conn, Wake::Notify(token)),
        }
    }

    fn on_loop_notify(&mut self, cx: &mut Context<'_>, token: u64) {
        self.handler.on_loop_notify(&mut HttpContext::new(cx), token);
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn) {
        match conn.ws.as_mut() {
            Some(ws) => ws.shutdown(cx),
            None => self.wake(cx, conn, Wake::Shutdown),
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, conn: Self::Conn, reason: &CloseReason) {
        if let Some(ws) = conn.ws {
            ws.closed(cx, reason);
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
        // Its slab entry is all an idle keep-alive connection costs (ANCHORS 8.5).
        let size = std::mem::size_of::<HttpConn<()>>();
        assert!(size <= 96, "HttpConn is {size} bytes");
    }
}
