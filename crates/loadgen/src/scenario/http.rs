//! `http`: HTTP/1.1 keep-alive requests, closed loop (`--pipeline`
//! requests in flight per connection) or open loop (`--rate`, sent on a
//! fixed schedule and timed from it, at most `--pipeline` in flight per
//! connection as wrk2 does). The request is written once, up front; the
//! responses are parsed by [`crate::http_response`]. A non-2xx status is an
//! error reply (counted by status), apart from socket errors.

use super::{Common, TimedRun};
use crate::http_response;
use crate::parse;
use crate::report::{grouped, HttpFigures, Report};
use crate::runner;
use crate::schedule::{Pacer, Schedule};
use crate::session::{Io, Session};
use clap::Args;
use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How long after the window responses to its requests are waited for.
const DRAIN: Duration = Duration::from_secs(2);

/// Arguments of `http`.
#[derive(Args, Clone, Debug)]
pub struct HttpArgs {
    /// URL to request (http:// only), e.g.
    /// http://127.0.0.1:8080/rooms/room0/messages.
    #[arg(long, default_value = "http://127.0.0.1:8080/")]
    pub url: String,
    /// Keep-alive connections (100, 1k).
    #[arg(long, short, default_value = "100", value_parser = parse::count_usize)]
    pub connections: usize,
    /// Requests in flight per connection (HTTP/1.1 pipelining when above 1).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Open loop: requests per second over all connections (50k), sent on
    /// a fixed schedule; latency counts from the scheduled time.
    #[arg(long, value_parser = parse::count)]
    pub rate: Option<u64>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Request body, sent with its Content-Length (and, if it is JSON and
    /// no --header says otherwise, Content-Type: application/json).
    #[arg(long)]
    pub body: Option<String>,
    /// Extra request header, 'Name: value'; repeat for several.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: TimedRun,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// Where an `http://` URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// The `Host` header: the authority as written.
    pub host: String,
    /// Path and query, from `/`.
    pub path: String,
    /// The address it resolves to.
    pub addr: SocketAddr,
}

/// Parses and resolves an `http://` URL.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| format!("'{url}': only http:// URLs are supported"))?;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or_default();
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("'{url}': expected http://host[:port]/path"));
    }
    // A port follows the last ':' unless that is inside an IPv6 literal.
    let with_port = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => authority.to_string(),
        _ => format!("{authority}:80"),
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("'{url}': cannot resolve {with_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("'{url}': {with_port} resolves to nothing"))?;
    Ok(Url { host: authority.to_string(), path, addr })
}

/// The bytes of one request.
pub fn build_request(
    method: &str,
    url: &Url,
    headers: &[String],
    body: Option<&str>,
) -> Result<Vec<u8>, String> {
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("--method '{method}': expected an upper-case method such as GET or POST"));
    }
    let mut head = format!("{method} {} HTTP/1.1\r\nHost: {}\r\n", url.path, url.host);
    let mut has_type = false;
    for h in headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| format!("--header '{h}': expected 'Name: value'"))?;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) || value.contains(['\r', '\n']) {
            return Err(format!("--header '{h}': not a valid header"));
        }
        has_type |= name.eq_ignore_ascii_case("content-type");
        head.push_str(&format!("{name}: {}\r\n", value.trim()));
    }
    let body = body.unwrap_or_default();
    if !has_type && !body.is_empty() && serde_json::from_str::<serde_json::Value>(body).is_ok() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body);
    Ok(head.into_bytes())
}

/// One keep-alive connection.
pub struct HttpSession {
    request: Arc<[u8]>,
    /// It asks with HEAD: responses announce a body but carry none.
    head: bool,
    depth: usize,
    /// Open loop: where this connection is in the schedule.
    pacer: Option<Pacer>,
    /// Requests awaiting their response: send (or scheduled) time, and
    /// whether the request belongs to the window.
    in_flight: VecDeque<(u64, bool)>,
    /// The server said it closes the connection: send nothing more.
    closing: bool,
}

impl HttpSession {
    /// Connection `conn` sending `request`, `depth` in flight, on
    /// `schedule` if open loop.
    pub fn new(
        conn: usize,
        request: Arc<[u8]>,
        head: bool,
        depth: usize,
        schedule: Option<Schedule>,
    ) -> Self {
        let pacer = schedule.map(|s| Pacer::new(s, conn));
        HttpSession { request, head, depth, pacer, in_flight: VecDeque::with_capacity(depth), closing: false }
    }

    fn send(&mut self, io: &mut Io<'_>, stamp_ns: u64) {
        io.out.extend_from_slice(&self.request);
        let of_window = io.sent(stamp_ns);
        self.in_flight.push_back((stamp_ns, of_window));
    }

    /// Sends what the loop allows: up to `depth` in flight, and open loop
    /// only what is due.
    fn fill(&mut self, io: &mut Io<'_>) {
        if self.closing {
            return;
        }
        let Some(mut pacer) = self.pacer else {
            while self.in_flight.len() < self.depth && io.sending() {
                self.send(io, io.now_ns);
            }
            return;
        };
        pacer.release();
        while self.in_flight.len() < self.depth {
            // No cap on queued output beyond `depth` requests.
            let Some(at) = pacer.due(io, usize::MAX) else { break };
            self.send(io, at);
            pacer.advance();
        }
        if self.in_flight.len() >= self.depth {
            // Due requests wait for a response (and are timed from their schedule).
            pacer.hold();
        }
        self.pacer = Some(pacer);
    }
}

impl Session for HttpSession {
    fn start(&mut self, io: &mut Io<'_>) {
        self.fill(io);
    }

    fn on_input(&mut self, input: &[u8], io: &mut Io<'_>) -> Result<usize, String> {
        let mut used = 0;
        while let Some(r) = http_response::parse(&input[used..], self.head)? {
            used += r.len;
            if r.interim() {
                continue;
            }
            let Some((stamp, of_window)) = self.in_flight.pop_front() else {
                io.mismatch("a response to no request");
                continue;
            };
            io.reply(Some(stamp), of_window, r.len);
            if !(200..300).contains(&r.status) {
                io.reply_error(&format!("HTTP {}", r.status));
            }
            // The close that follows counts as an error of its own.
            self.closing |= r.close;
        }
        self.fill(io);
        Ok(used)
    }

    fn next_due(&self) -> Option<u64> {
        self.pacer.and_then(|p| p.next_due())
    }

    fn on_due(&mut self, io: &mut Io<'_>) {
        self.fill(io);
    }

    fn outstanding(&self) -> u64 {
        self.in_flight.iter().filter(|(_, w)| *w).count() as u64
    }

    fn finish(&mut self, io: &mut Io<'_>) {
        if let Some(pacer) = self.pacer {
            io.unsent(pacer.unsent(io.plan));
        }
    }
}

/// Runs the http scenario.
pub fn run(args: &HttpArgs) -> Result<Report, String> {
    let url = parse_url(&args.url)?;
    let request: Arc<[u8]> = build_request(&args.method, &url, &args.headers, args.body.as_deref())?.into();
    if args.pipeline == 0 {
        return Err("--pipeline must be at least 1".into());
    }
    args.common.check()?;
    let schedule = args.rate.map(|r| Schedule::new(r, args.connections)).transpose()?;
    let mode = match args.rate {
        Some(r) => format!("open loop, {} requests/s, at most {} in flight each", grouped(r), args.pipeline),
        None => format!("closed loop, pipeline {}", args.pipeline),
    };
    let spec = args.run.spec(url.addr, args.connections, &args.common, DRAIN)?;
    let (head, depth, bytes) = (args.method == "HEAD", args.pipeline, request.len());
    let req = request.clone();
    let outcome = runner::start(&spec, move |i| HttpSession::new(i, req.clone(), head, depth, schedule))?
        .complete(&args.common.pids(), DRAIN + Duration::from_secs(1));
    let report = Report::timed("http", url.addr.to_string(), mode, &spec, &args.run, &outcome);
    Ok(Report {
        payload_bytes: args.body.as_ref().map_or(0, String::len),
        depth: args.rate.is_none().then_some(depth),
        rate: args.rate,
        server: outcome.measured.server.map(|s| s.per("request", outcome.tally.replies)),
        http: Some(HttpFigures {
            url: args.url.clone(),
            method: args.method.clone(),
            pipeline: depth,
            request_bytes: bytes,
            non_2xx: outcome.tally.reply_errors,
        }),
        ..report
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Phases, Plan, Tally};
    use std::time::Instant;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/rooms/room0/messages?x=1#frag").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("127.0.0.1:8080", "/rooms/room0/messages?x=1"));
        assert_eq!(u.addr, "127.0.0.1:8080".parse().unwrap());
        let u = parse_url("http://127.0.0.1").unwrap();
        assert_eq!((u.path.as_str(), u.addr.port()), ("/", 80));
        assert_eq!(parse_url("http://[::1]:81?q").unwrap().path, "/?q");
        assert_eq!(parse_url("http://[::1]").unwrap().addr.port(), 80);
        assert!(parse_url("https://127.0.0.1/").is_err());
        assert!(parse_url("http://u@127.0.0.1/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn requests_are_built_once() {
        let url = parse_url("http://127.0.0.1:8080/rooms/room0/messages").unwrap();
        let body = r#"{"nick":"lg","text":"hi"}"#;
        let req = build_request("POST", &url, &["X-A:  b ".into()], Some(body)).unwrap();
        let want = format!(
            "POST /rooms/room0/messages HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-A: b\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(String::from_utf8(req).unwrap(), want);
        let get = build_request("GET", &url, &[], None).unwrap();
        assert!(get.ends_with(b"Host: 127.0.0.1:8080\r\n\r\n"));
        let typed = build_request("POST", &url, &["content-type: text/plain".into()], Some("{}")).unwrap();
        assert!(!String::from_utf8(typed).unwrap().contains("application/json"));
        assert!(build_request("get", &url, &[], None).is_err());
        assert!(build_request("GET", &url, &["X-A\r\nEvil: 1".into()], None).is_err());
        assert!(build_request("GET", &url, &["no colon".into()], None).is_err());
    }

    #[test]
    fn pipelined_responses_pop_their_requests() {
        let phases =
            Phases { warmup: Duration::ZERO, measure: Some(Duration::from_secs(1)), drain: Duration::ZERO };
        let (plan, mut tally) = (Plan::new(Instant::now(), phases), Tally::default());
        let mut s = HttpSession::new(0, Arc::from(&b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"[..]), false, 3, None);
        let mut out = Vec::new();
        s.start(&mut Io { out: &mut out, now_ns: 1_000, plan: &plan, tally: &mut tally });
        assert_eq!((out.len(), tally.sent, s.outstanding()), (3 * 27, 3, 3));
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let input = [&ok[..], missing, &ok[..10]].concat();
        let mut out = Vec::new();
        let used =
            s.on_input(&input, &mut Io { out: &mut out, now_ns: 5_000, plan: &plan, tally: &mut tally });
        assert_eq!(used, Ok(ok.len() + missing.len()));
        assert_eq!(out.len(), 2 * 27, "two answered, two more sent");
        assert_eq!((tally.answered, tally.reply_errors, s.outstanding()), (2, 1, 3));
        assert_eq!(tally.error_kinds.get("HTTP 404"), Some(&1));
        assert!((tally.latency.summary().p50_us - 4.0).abs() < 0.1);
    }

    #[test]
    fn open_loop_waits_for_responses_beyond_the_pipeline() {
        let phases =
            Phases { warmup: Duration::ZERO, measure: Some(Duration::from_secs(1)), drain: Duration::ZERO };
        let (plan, mut tally) = (Plan::new(Instant::now(), phases), Tally::default());
        // 1000/s on one connection: due at 0, 1, 2... ms; one in flight.
        let schedule = Schedule::new(1000, 1).ok();
        let mut s = HttpSession::new(0, Arc::from(&b"GET / HTTP/1.1\r\n\r\n"[..]), false, 1, schedule);
        let mut out = Vec::new();
        s.start(&mut Io { out: &mut out, now_ns: 0, plan: &plan, tally: &mut tally });
        assert_eq!((tally.sent, s.next_due()), (1, None), "held until the response");
        // The response comes at 3.5 ms: the request due at 1 ms goes now.
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        s.on_input(ok, &mut Io { out: &mut out, now_ns: 3_500_000, plan: &plan, tally: &mut tally }).unwrap();
        assert_eq!(tally.sent, 2);
        s.on_input(ok, &mut Io { out: &mut out, now_ns: 4_000_000, plan: &plan, tally: &mut tally }).unwrap();
        // Timed from its schedule (1 ms), not from when it went (3.5 ms):
        // 3.5 ms and 3 ms.
        let l = tally.latency.summary();
        assert!(l.samples == 2 && (l.mean_us - 3_250.0).abs() < 5.0, "{l:?}");
    }
}
