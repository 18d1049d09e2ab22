//! The HTTP/1.1 adapter over real loopback sockets: raw sockets for the
//! edge cases (keep-alive, pipelining, HTTP/1.0, HEAD, limits, timeouts,
//! Expect), a real client library (ureq) for the ordinary paths, and long
//! polls woken by `notify` or by their timeout.

mod common;

use common::{init_logs, wait_until, DEADLINE};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use switchboard::http1::{
    HttpConfig, HttpContext, HttpHandler, HttpService, Method, Outcome, Request, Response, Wake,
};
use switchboard::reactor::{ConnId, Reactor, ReactorHandle, ServiceConfig, ServiceId};

/// Routes for the tests. Long polls register their connection in `waiters`.
#[derive(Clone, Default)]
struct Api {
    waiters: Arc<Mutex<Vec<ConnId>>>,
    cancelled: Arc<AtomicUsize>,
}

impl HttpHandler for Api {
    type Pending = ();

    fn on_request(&mut self, cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<()> {
        match (req.method(), req.path()) {
            (Method::Get | Method::Head, "/") => Response::text(200, "Hello, World!").into(),
            (Method::Post | Method::Put, "/echo") => Response::empty(200)
                .content_type("application/octet-stream")
                .with_body(req.body().clone())
                .into(),
            (_, "/echo") => Response::method_not_allowed("POST, PUT").into(),
            (Method::Get, "/close") => Response::text(200, "bye").close().into(),
            (Method::Get, "/big") => Response::text(200, vec![b'b'; 100 << 10]).into(),
            (Method::Get, "/wait") => {
                let ms = req.query_param("ms").and_then(|v| v.parse().ok()).unwrap_or(10_000);
                self.waiters.lock().unwrap().push(cx.id());
                Outcome::Wait { pending: (), timeout: Duration::from_millis(ms) }
            }
            (Method::Get, p) if p.starts_with("/n/") => Response::text(200, p.to_string()).into(),
            _ => Response::not_found().into(),
        }
    }

    fn on_wake(
        &mut self,
        cx: &mut HttpContext<'_, '_>,
        _req: &Request,
        _p: &mut (),
        wake: Wake,
    ) -> Option<Response> {
        self.waiters.lock().unwrap().retain(|&id| id != cx.id());
        match wake {
            Wake::Notify(token) => Some(Response::text(200, format!("woken {token}"))),
            Wake::Timeout => Some(Response::text(200, "timeout")),
            Wake::Shutdown => Some(Response::text(503, "shutting down")),
            Wake::Timer(_) => None,
        }
    }

    fn on_cancel(&mut self, cx: &mut HttpContext<'_, '_>, _req: &Request, _p: ()) {
        self.waiters.lock().unwrap().retain(|&id| id != cx.id());
        self.cancelled.fetch_add(1, Ordering::SeqCst);
    }
}

struct Server {
    reactor: Reactor,
    addr: SocketAddr,
    api: Api,
}

impl Server {
    fn start(config: HttpConfig) -> Server {
        init_logs();
        let api = Api::default();
        let a = api.clone();
        // Clients still connected at the end would hold shutdown for the
        // default linger (waiting for their FIN).
        let service = ServiceConfig { linger: Duration::from_millis(100), ..ServiceConfig::new("http") };
        let reactor = Reactor::builder()
            .threads(2)
            .service(service, "127.0.0.1:0", move |_| HttpService::new(config.clone(), a.clone()))
            .build()
            .expect("start reactor");
        let addr = reactor.local_addr(ServiceId::from_index(0)).unwrap();
        Server { reactor, addr, api }
    }

    fn handle(&self) -> ReactorHandle {
        self.reactor.handle()
    }

    fn accepted(&self) -> u64 {
        self.handle().stats(ServiceId::from_index(0)).unwrap().accepted
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn stop(self) {
        self.reactor.shutdown(DEADLINE);
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// A blocking client on a raw socket, reading responses one at a time
/// (pipelined ones stay buffered for the next read).
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw { stream, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 << 10];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Reads one response; `head_only` for the answer to a HEAD.
    fn response(&mut self, head_only: bool) -> io::Result<Resp> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("utf-8 head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "status line {status_line:?}");
        let status: u16 = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let resp = Resp { status, headers, body: Vec::new() };
        let len: usize = match resp.header("content-length") {
            _ if head_only || status < 200 || status == 204 || status == 304 => 0,
            Some(v) => v.parse().unwrap(),
            None => panic!("response without Content-Length: {head}"),
        };
        while self.buf.len() < end + len {
            self.fill()?;
        }
        let body = self.buf[end..end + len].to_vec();
        self.buf.drain(..end + len);
        Ok(Resp { body, ..resp })
    }

    fn get(&mut self, path: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response(false).expect("response")
    }

    /// True if the server closed the connection, with nothing more sent.
    fn closed_quietly(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => self.buf.is_empty() && rest.is_empty(),
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let server = Server::start(HttpConfig::default());
    let mut c = Raw::connect(server.addr);
    for _ in 0..5 {
        let r = c.get("/");
        assert_eq!((r.status, r.text()), (200, "Hello, World!"));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("content-length"), Some("13"));
        assert_eq!(r.header("date").map(|d| d.len()), Some(29));
        assert_eq!(r.header("connection"), None, "1.1 keep-alive needs no header");
    }
    let r = c.get("/nowhere");
    assert_eq!(r.status, 404);
    let big = c.get("/big");
    assert_eq!(big.body.len(), 100 << 10);
    assert_eq!(c.get("/").status, 200, "still in step after a large body");
    assert_eq!(server.accepted(), 1);
    server.stop();
}

#[test]
fn sixteen_pipelined_requests_in_one_write_are_answered_in_order() {
    let server = Server::start(HttpConfig::default());
    let mut c = Raw::connect(server.addr);
    let mut batch = Vec::new();
    for i in 0..16 {
        match i {
            5 => batch.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nfive"),
            9 => batch.extend_from_slice(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnine\r\n0\r\n\r\n",
            ),
            12 => batch.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"),
            _ => batch.extend_from_slice(format!("GET /n/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()),
        }
    }
    c.send(&batch);
    for i in 0..16 {
        let r = c.response(i == 12).unwrap();
        assert_eq!(r.status, 200, "response {i}");
        match i {
            5 => assert_eq!(r.text(), "five"),
            9 => assert_eq!(r.text(), "nine"),
            12 => assert_eq!((r.header("content-length"), r.body.len()), (Some("13"), 0)),
            _ => assert_eq!(r.text(), format!("/n/{i}")),
        }
    }
    assert_eq!(c.get("/").status, 200);
    server.stop();
}

#[test]
fn head_gets_the_length_of_get_and_no_body() {
    let server = Server::start(HttpConfig::default());
    let mut c = Raw::connect(server.addr);
    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(true).unwrap();
    assert_eq!((r.status, r.header("content-length")), (200, Some("13")));
    // Were any body bytes sent, this response would be read out of step.
    let r = c.get("/n/after-head");
    assert_eq!(r.text(), "/n/after-head");
    server.stop();
}

#[test]
fn http_1_0_closes_unless_it_asks_for_keep_alive() {
    let server = Server::start(HttpConfig::default());
    let mut c = Raw::connect(server.addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.closed_quietly());

    let mut c = Raw::connect(server.addr);
    for _ in 0..3 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response(false).unwrap();
        assert_eq!((r.text(), r.header("connection")), ("Hello, World!", Some("keep-alive")));
    }
    server.stop();
}

#[test]
fn connection_close_is_honoured_after_the_response() {
    let server = Server::start(HttpConfig::default());
    let mut c = Raw::connect(server.addr);
    // The second request must not be answered: the first closes.
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.closed_quietly());
    // A handler can close too.
    let mut c = Raw::connect(server.addr);
    let r = c.get("/close");
    assert_eq!((r.text(), r.header("connection")), ("bye", Some("close")));
    assert!(c.closed_quietly());
    server.stop();
}

#[test]
fn every_limit_answers_with_its_status_then_closes() {
    let config =
        HttpConfig { max_head_size: 1024, max_headers: 8, max_body_size: 1024, ..HttpConfig::default() };
    let server = Server::start(config);
    let mut bystander = Raw::connect(server.addr);
    let many_headers: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (format!("GET / HTTP/1.1\r\nHost: t\r\n{many_headers}\r\n").into_bytes(), 431),
        (format!("GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n", "a".repeat(2000)).into_bytes(), 431),
        (format!("GET /{} HTTP/1.1\r\n", "a".repeat(2000)).into_bytes(), 414),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n".to_vec(), 413),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n".to_vec(), 413),
        (b"GET / HTTP/1.1\r\nHost t\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 501),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: tea\r\nContent-Length: 1\r\n\r\nx".to_vec(), 417),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5 0\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(), 501),
    ];
    for (request, status) in cases {
        let mut c = Raw::connect(server.addr);
        c.send(&request);
        let r = c.response(false).unwrap_or_else(|e| panic!("no answer to a {status} case: {e}"));
        let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
        assert_eq!(r.status, status, "{shown:?}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"), "{shown:?}");
        assert!(c.closed_quietly(), "{shown:?}: connection left open");
    }
    // A 405 comes from the handler and keeps the connection.
    let mut c = Raw::connect(server.addr);
    let r = c.get("/echo");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST, PUT")));
    assert_eq!(c.get("/").status, 200);
    assert_eq!(bystander.get("/").text(), "Hello, World!", "bad requests touched nobody else");
    // Counted when each connection is gone (after the client's FIN).
    wait_until("protocol errors counted", || {
        server.handle().stats(ServiceId::from_index(0)).unwrap().protocol_errors == 14
    });
    server.stop();
}

#[test]
fn request_bodies_by_length_and_chunked() {
    let server = Server::start(HttpConfig::default());
    let mut c = Raw::connect(server.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello");
    thread::sleep(Duration::from_millis(50));
    c.send(b" world");
    assert_eq!(c.response(false).unwrap().text(), "hello world");
    c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n");
    thread::sleep(Duration::from_millis(50));
    c.send(b"A\r\n0123456789\r\n0\r\nTrailer-Field: x\r\n\r\n");
    assert_eq!(c.response(false).unwrap().text(), "abc0123456789");
    server.stop();
}

#[test]
fn expect_100_continue_gets_its_interim_response() {
    let server = Server::start(HttpConfig { max_body_size: 4096, ..HttpConfig::default() });
    let mut c = Raw::connect(server.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n");
    let interim = c.response(false).unwrap();
    assert_eq!(interim.status, 100);
    c.send(&[b'x'; 2000]);
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.body.len()), (200, 2000));
    // Over the limit: refused before the body is sent, no 100.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));
    server.stop();
}

#[test]
fn silent_dribbling_and_stalled_body_clients_get_408() {
    let timeout = Duration::from_millis(400);
    let server =
        Server::start(HttpConfig { head_timeout: timeout, body_timeout: timeout, ..HttpConfig::default() });
    // Connects and sends nothing.
    let started = Instant::now();
    let mut silent = Raw::connect(server.addr);
    let r = silent.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (408, Some("close")));
    assert!(silent.closed_quietly());
    let took = started.elapsed();
    assert!(took >= timeout - Duration::from_millis(50) && took < Duration::from_secs(3), "{took:?}");
    // Dribbles a byte every 20 ms, a head that would take 2 s: progress does
    // not extend the deadline.
    let started = Instant::now();
    let mut slow = Raw::connect(server.addr);
    let mut writer = slow.stream.try_clone().unwrap();
    let dribbler = thread::spawn(move || {
        let head = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Padding: {}\r\n\r\n", "a".repeat(70));
        for b in head.bytes() {
            // Stops when the server closes (a write may still succeed after
            // its FIN, the server discarding input while it lingers).
            if writer.write_all(&[b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let r = slow.response(false).unwrap();
    let took = started.elapsed();
    assert_eq!(r.status, 408);
    assert!(took >= timeout - Duration::from_millis(50) && took < Duration::from_millis(1800), "{took:?}");
    dribbler.join().unwrap();
    // A body that stops coming.
    let started = Instant::now();
    let mut stalled = Raw::connect(server.addr);
    stalled.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let r = stalled.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (408, Some("close")));
    assert!(stalled.closed_quietly());
    let took = started.elapsed();
    assert!(took >= timeout - Duration::from_millis(50) && took < Duration::from_secs(3), "{took:?}");
    server.stop();
}

#[test]
fn a_stalled_client_does_not_hold_up_others() {
    let server = Server::start(HttpConfig { head_timeout: Duration::from_secs(3), ..HttpConfig::default() });
    let mut stalled = Raw::connect(server.addr);
    stalled.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ");
    let mut stalled_body = Raw::connect(server.addr);
    stalled_body.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly some");
    let mut others: Vec<Raw> = (0..4).map(|_| Raw::connect(server.addr)).collect();
    for i in 0..20 {
        for other in &mut others {
            assert_eq!(other.get(&format!("/n/{i}")).text(), format!("/n/{i}"));
        }
    }
    // All served while the stalled head is still pending (no 408 yet).
    stalled.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let early = stalled.stream.read(&mut byte);
    assert!(matches!(&early, Err(e) if e.kind() == io::ErrorKind::WouldBlock), "{early:?}");
    stalled.stream.set_nonblocking(false).unwrap();
    assert_eq!(stalled.response(false).unwrap().status, 408);
    assert!(stalled.closed_quietly());
    // The stalled body is timed by the (default, 30 s) body timeout: still open.
    assert_eq!(others[0].get("/").status, 200);
    stalled_body.send(&[b'.'; 91]);
    assert_eq!(stalled_body.response(false).unwrap().body.len(), 100);
    server.stop();
}

#[test]
fn idle_keep_alive_connections_are_closed_quietly() {
    let server =
        Server::start(HttpConfig { keep_alive_timeout: Duration::from_millis(300), ..HttpConfig::default() });
    let mut c = Raw::connect(server.addr);
    assert_eq!(c.get("/").status, 200);
    let started = Instant::now();
    assert!(c.closed_quietly(), "closed without a response");
    assert!(started.elapsed() >= Duration::from_millis(250));
    wait_until("idle close counted", || {
        server.handle().stats(ServiceId::from_index(0)).unwrap().idle_timeouts == 1
    });
    server.stop();
}

#[test]
fn a_real_client_keeps_alive_and_posts_bodies() {
    let server = Server::start(HttpConfig::default());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(DEADLINE))
        .build()
        .into();
    for _ in 0..5 {
        let mut r = agent.get(&server.url("/")).call().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.body_mut().read_to_string().unwrap(), "Hello, World!");
    }
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut r = agent.post(&server.url("/echo")).send(&payload[..]).unwrap();
    assert_eq!(r.body_mut().read_to_vec().unwrap(), payload);
    let mut reader = io::Cursor::new(payload.clone());
    let mut r = agent.put(&server.url("/echo")).send(ureq::SendBody::from_reader(&mut reader)).unwrap();
    assert_eq!(r.body_mut().read_to_vec().unwrap(), payload, "chunked request body");
    let mut r = agent.get(&server.url("/missing")).call().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    r.body_mut().read_to_string().unwrap();
    assert_eq!(server.accepted(), 1, "one connection, kept alive");
    server.stop();
}

/// Waits until a long poll is registered, and returns its connection.
fn waiter(server: &Server) -> ConnId {
    wait_until("long poll registered", || !server.api.waiters.lock().unwrap().is_empty());
    server.api.waiters.lock().unwrap()[0]
}

#[test]
fn long_poll_is_answered_by_notify_from_another_thread() {
    let server = Server::start(HttpConfig::default());
    let url = server.url("/wait?ms=20000");
    let client = thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(DEADLINE)).build().into();
        let started = Instant::now();
        let body = agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap();
        (body, started.elapsed())
    });
    let id = waiter(&server);
    thread::sleep(Duration::from_millis(100));
    assert!(server.handle().notify(id, 42).is_ok());
    let (body, took) = client.join().unwrap();
    assert_eq!(body, "woken 42");
    assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(10), "{took:?}");
    server.stop();
}

#[test]
fn long_poll_is_answered_at_its_timeout() {
    let server = Server::start(HttpConfig::default());
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(DEADLINE)).build().into();
    let started = Instant::now();
    let body = agent.get(&server.url("/wait?ms=300")).call().unwrap().body_mut().read_to_string().unwrap();
    assert_eq!(body, "timeout");
    assert!(started.elapsed() >= Duration::from_millis(290), "{:?}", started.elapsed());
    assert!(server.api.waiters.lock().unwrap().is_empty());
    server.stop();
}

#[test]
fn requests_pipelined_behind_a_long_poll_wait_their_turn() {
    let server = Server::start(HttpConfig { max_pipelined: 4, ..HttpConfig::default() });
    let mut c = Raw::connect(server.addr);
    c.send(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\nGET /n/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo");
    let id = waiter(&server);
    thread::sleep(Duration::from_millis(100));
    server.handle().notify(id, 7).unwrap();
    assert_eq!(c.response(false).unwrap().text(), "woken 7");
    assert_eq!(c.response(false).unwrap().text(), "/n/1");
    assert_eq!(c.response(false).unwrap().text(), "two");

    // Past max_pipelined the queued requests are answered, then the connection closes.
    let mut c = Raw::connect(server.addr);
    let mut batch = b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
    for i in 0..10 {
        batch.extend_from_slice(format!("GET /n/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    c.send(&batch);
    let id = waiter(&server);
    server.handle().notify(id, 1).unwrap();
    assert_eq!(c.response(false).unwrap().text(), "woken 1");
    for i in 0..4 {
        assert_eq!(c.response(false).unwrap().text(), format!("/n/{i}"));
    }
    assert!(c.closed_quietly(), "the rest were dropped with the connection");
    server.stop();
}

#[test]
fn a_client_leaving_during_a_long_poll_cancels_it() {
    let server = Server::start(HttpConfig::default());
    let mut c = Raw::connect(server.addr);
    c.send(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    waiter(&server);
    drop(c);
    wait_until("cancelled", || server.api.cancelled.load(Ordering::SeqCst) == 1);
    assert!(server.api.waiters.lock().unwrap().is_empty());
    server.stop();
}

#[test]
fn shutdown_answers_pending_long_polls() {
    let server = Server::start(HttpConfig::default());
    let mut c = Raw::connect(server.addr);
    c.send(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    waiter(&server);
    let Server { reactor, .. } = server;
    let stopper = thread::spawn(move || reactor.shutdown(DEADLINE));
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (503, Some("close")));
    stopper.join().unwrap();
}
