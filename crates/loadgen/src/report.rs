//! The result of a run: one structure, printed as a table for people or as
//! one JSON object (`--json`) for scripts and for comparing runs.

use crate::runner::{Outcome, RunSpec};
use crate::scenario::TimedRun;
use crate::session::Tally;
use crate::stats::{LatencySummary, Spread};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Everything a run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name (`echo`, `idle`, `chat`, `nats`, `http`).
    pub scenario: String,
    /// Server address.
    pub target: String,
    /// How the load was applied: `closed loop, depth 16`, `open loop`, `idle`.
    pub mode: String,
    /// Connections asked for.
    pub connections: usize,
    /// Connections established.
    pub connected: u64,
    /// Load threads.
    pub threads: usize,
    /// Payload bytes per frame (the 4-byte length prefix not included).
    pub payload_bytes: usize,
    /// Frames in flight per connection (closed loop).
    pub depth: Option<usize>,
    /// Frames per second asked for in all (open loop).
    pub rate: Option<u64>,
    /// Seconds of warm-up.
    pub warmup_s: f64,
    /// Seconds measured.
    pub duration_s: f64,
    /// Seconds it took to establish the connections.
    pub connect_s: f64,
    /// Seconds the handshakes (login and join, subscribe) took after that.
    pub handshake_s: f64,
    /// Replies received during the measured window.
    pub frames: u64,
    /// Replies per second.
    pub frames_per_s: f64,
    /// Reply bytes on the wire per second, in 10⁶ bytes.
    pub mb_per_s: f64,
    /// Frames sent (open loop: scheduled) per second in the window.
    pub sent_per_s: f64,
    /// Latency of replies to frames of the window; open loop from the
    /// scheduled send time.
    pub latency: LatencySummary,
    /// What went wrong.
    pub errors: Errors,
    /// The generator's own CPU use over the window, in % of one core.
    pub cpu_percent: f64,
    /// How much of the latency may be the generator's.
    pub generator: GeneratorFigures,
    /// The server's CPU time over the window (`--server-pid`).
    pub server: Option<ServerCpu>,
    /// Idle-connection figures (`idle` scenario).
    pub idle: Option<IdleFigures>,
    /// Fan-out figures (`chat`, `nats`).
    pub fanout: Option<FanoutFigures>,
    /// HTTP figures (`http`).
    pub http: Option<HttpFigures>,
}

impl Report {
    /// The figures every timed scenario reports, from `outcome` of `spec`
    /// over `run`'s window; the scenario adds its own (payload size, depth
    /// or rate, server CPU per unit, its section).
    pub fn timed(
        scenario: &str,
        target: String,
        mode: String,
        spec: &RunSpec,
        run: &TimedRun,
        outcome: &Outcome,
    ) -> Report {
        let tally = &outcome.tally;
        let secs = run.duration.as_secs_f64();
        Report {
            scenario: scenario.into(),
            target,
            mode,
            connections: spec.connections,
            connected: tally.connected,
            threads: spec.threads,
            warmup_s: run.warmup.as_secs_f64(),
            duration_s: secs,
            connect_s: outcome.connect_s,
            handshake_s: outcome.handshake_s,
            frames: tally.replies,
            frames_per_s: tally.replies as f64 / secs,
            mb_per_s: tally.reply_bytes as f64 / secs / 1e6,
            sent_per_s: tally.sent as f64 / secs,
            latency: tally.latency.summary(),
            generator: GeneratorFigures::from_tally(tally),
            errors: Errors::from_tally(tally),
            cpu_percent: outcome.measured.cpu_percent,
            ..Report::default()
        }
    }
}

/// The generator's own delays: where they are small next to the latency,
/// the latency is the server's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorFigures {
    /// Open loop: how late sends went out after their scheduled time.
    pub send_lag: LatencySummary,
    /// Event-loop turns: a reply waits at most one turn to be read.
    pub turn: LatencySummary,
}

impl GeneratorFigures {
    /// The figures of a run's tally.
    pub fn from_tally(t: &Tally) -> GeneratorFigures {
        GeneratorFigures { send_lag: t.send_lag.summary(), turn: t.turns.summary() }
    }
}

/// The server's CPU time over the measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerCpu {
    /// The server process.
    pub pid: u32,
    /// More processes whose CPU is counted with it (a cluster's other
    /// nodes and Redis).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<u32>,
    /// User plus system seconds over the window.
    pub cpu_s: f64,
    /// The same, in % of one core.
    pub cpu_percent: f64,
    /// Microseconds of server CPU per unit of work (`frame`, `message`,
    /// `delivery`, `request`).
    pub us_per: BTreeMap<String, f64>,
}

impl ServerCpu {
    /// Adds the CPU cost per `unit`, `count` of which the window saw.
    pub fn per(mut self, unit: &str, count: u64) -> ServerCpu {
        if count > 0 {
            self.us_per.insert(unit.to_string(), self.cpu_s * 1e6 / count as f64);
        }
        self
    }
}

/// What a fan-out run (one publication delivered to every other member of
/// a room) measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FanoutFigures {
    /// Clients, all of them members of one room.
    pub clients: usize,
    /// Rooms (NATS subjects).
    pub rooms: usize,
    /// Clients that also publish.
    pub senders: usize,
    /// Members whose join (subscription) was acknowledged before the window.
    pub joined: u64,
    /// Messages published in the window (by scheduled time).
    pub messages: u64,
    /// Per second.
    pub messages_per_s: f64,
    /// Messages received by members during the window.
    pub deliveries: u64,
    /// Per second.
    pub deliveries_per_s: f64,
    /// Deliveries the window's messages owe: each message times the
    /// members of its room but its sender.
    pub expected: u64,
    /// Distinct deliveries of the window's messages.
    pub delivered: u64,
    /// `expected - delivered`.
    pub missing: u64,
    /// Deliveries a member had already received (whole run).
    pub duplicates: u64,
    /// Deliveries that came after a later one of the same sender (whole run).
    pub reordered: u64,
    /// Messages that were not this run's (another run, or history).
    pub foreign: u64,
    /// Publications the server acknowledged (chat `Sent` replies) that
    /// arrived during the window: under `fsync = "always"`, messages
    /// stored on disk.
    #[serde(default)]
    pub acked: u64,
    /// Per second.
    #[serde(default)]
    pub acked_per_s: f64,
    /// Senders with a missing, duplicate or reordered delivery.
    pub senders_with_anomalies: usize,
    /// The first of those (at most 100).
    pub anomalies: Vec<SenderAnomaly>,
    /// Messages per second of each publisher.
    pub publishers: Spread,
    /// Deliveries per second of each member.
    pub subscribers: Spread,
}

/// One sender's deliveries, when something was wrong with them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SenderAnomaly {
    /// Sender index (client index).
    pub sender: usize,
    /// Its room.
    pub room: usize,
    /// Messages it published in the window.
    pub sent: u64,
    /// Deliveries they owe.
    pub expected: u64,
    /// Distinct deliveries received.
    pub delivered: u64,
    /// Duplicate deliveries.
    pub duplicates: u64,
    /// Out-of-order deliveries.
    pub reordered: u64,
}

/// What an HTTP run measured beyond the common figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpFigures {
    /// The URL requested.
    pub url: String,
    /// Its method.
    pub method: String,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Bytes of each request on the wire.
    pub request_bytes: usize,
    /// Responses with a status outside 2xx (whole run), also in the errors.
    pub non_2xx: u64,
}

/// Error counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// Connections that could not be established.
    pub connect: u64,
    /// Connections lost to I/O or protocol errors.
    pub io: u64,
    /// Connections the server closed.
    pub closed: u64,
    /// Replies that differed from what was sent.
    pub verify: u64,
    /// Frames of the window never answered.
    pub unanswered: u64,
    /// Error replies (HTTP non-2xx, chat error replies, NATS `-ERR`).
    pub replies: u64,
    /// Error replies by kind.
    pub kinds: BTreeMap<String, u64>,
    /// All of the above.
    pub total: u64,
    /// The first error seen.
    pub first: Option<String>,
    /// What to change when an error has a known cause.
    pub hints: Vec<String>,
}

impl Errors {
    /// The error counts of a run's tally.
    pub fn from_tally(t: &Tally) -> Errors {
        Errors {
            connect: t.connect_errors,
            io: t.io_errors,
            closed: t.closed,
            verify: t.verify_errors,
            unanswered: t.unanswered,
            replies: t.reply_errors,
            kinds: t.error_kinds.clone(),
            total: t.errors() + t.unanswered,
            first: t.first_error.clone(),
            hints: Vec::new(),
        }
    }
}

/// What idle connections cost the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleFigures {
    /// Seconds the connections were held.
    pub hold_s: f64,
    /// Connections still open at the end of the hold.
    pub held: u64,
    /// The server process measured.
    pub server_pid: Option<u32>,
    /// Server resident memory before connecting, in bytes.
    pub rss_before: Option<u64>,
    /// Server resident memory at the end of the hold, in bytes.
    pub rss_held: Option<u64>,
    /// (rss_held − rss_before) / held.
    pub bytes_per_connection: Option<f64>,
    /// Change in the kernel's TCP memory over the same span, whole machine
    /// (both ends of every connection, and anyone else's), in bytes.
    pub kernel_tcp_delta: Option<i64>,
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Report {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a table for people.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "loadgen {} -> {}: {} of {} connections on {} thread(s), {} B payloads, {}",
            self.scenario,
            self.target,
            grouped(self.connected),
            grouped(self.connections as u64),
            self.threads,
            self.payload_bytes,
            self.mode
        );
        let _ = writeln!(w, "  {:<14} {:.2} s", "connecting", self.connect_s);
        if self.handshake_s >= 0.005 {
            let _ = writeln!(w, "  {:<14} {:.2} s", "handshakes", self.handshake_s);
        }
        if let Some(f) = &self.fanout {
            let _ = writeln!(
                w,
                "  {:<14} {:.2} s after {:.2} s of warm-up",
                "measured", self.duration_s, self.warmup_s
            );
            f.write_table(w);
        } else if self.idle.is_none() {
            let _ = writeln!(
                w,
                "  {:<14} {:.2} s after {:.2} s of warm-up",
                "measured", self.duration_s, self.warmup_s
            );
            let _ = writeln!(
                w,
                "  {:<14} {} {unit}/s   {:.2} MB/s   (sent {} {unit}/s)",
                "throughput",
                grouped(self.frames_per_s.round() as u64),
                self.mb_per_s,
                grouped(self.sent_per_s.round() as u64),
                unit = self.unit(),
            );
        }
        if let Some(h) = &self.http {
            let _ = writeln!(
                w,
                "  {:<14} {} {} ({} B requests), {} in flight per connection; {} non-2xx",
                "http",
                h.method,
                h.url,
                h.request_bytes,
                h.pipeline,
                grouped(h.non_2xx)
            );
        }
        let l = &self.latency;
        let _ = writeln!(
            w,
            "  {:<14} p50 {:.1}   p90 {:.1}   p99 {:.1}   p99.9 {:.1}   max {:.1}   (mean {:.1}, n = {})",
            "latency µs",
            l.p50_us,
            l.p90_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            l.mean_us,
            grouped(l.samples)
        );
        let e = &self.errors;
        let _ = writeln!(
            w,
            "  {:<14} {}   (connect {}, io {}, closed by server {}, verify {}, unanswered {}, error replies {})",
            "errors",
            grouped(e.total),
            e.connect,
            e.io,
            e.closed,
            e.verify,
            e.unanswered,
            e.replies
        );
        if !e.kinds.is_empty() {
            let kinds: Vec<String> = e.kinds.iter().map(|(k, n)| format!("{k} {}", grouped(*n))).collect();
            let _ = writeln!(w, "  {:<14} {}", "error replies", kinds.join(", "));
        }
        if let Some(first) = &e.first {
            let _ = writeln!(w, "  {:<14} {first}", "first error");
        }
        for hint in &e.hints {
            let _ = writeln!(w, "  {:<14} {hint}", "hint");
        }
        let _ = writeln!(w, "  {:<14} {:.1}% of one core", "generator CPU", self.cpu_percent);
        let (lag, turn) = (&self.generator.send_lag, &self.generator.turn);
        if turn.samples > 0 {
            let mut line = format!("loop turns p99 {:.1}, max {:.1}", turn.p99_us, turn.max_us);
            if lag.samples > 0 {
                line += &format!("; sends late by p99 {:.1}, max {:.1}", lag.p99_us, lag.max_us);
            }
            let _ = writeln!(w, "  {:<14} {line}", "generator µs");
        }
        if let Some(c) = &self.server {
            let per: Vec<String> = c.us_per.iter().map(|(unit, us)| format!("{us:.3} µs/{unit}")).collect();
            let _ = writeln!(
                w,
                "  {:<14} pid {}: {:.2} s, {:.1}% of one core; {}",
                "server CPU",
                std::iter::once(c.pid)
                    .chain(c.also.iter().copied())
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("+"),
                c.cpu_s,
                c.cpu_percent,
                per.join(", ")
            );
        }
        if let Some(idle) = &self.idle {
            let _ = writeln!(
                w,
                "  {:<14} {} connections for {:.1} s (latency above: their one echo)",
                "held",
                grouped(idle.held),
                idle.hold_s
            );
            if let (Some(pid), Some(before), Some(held)) = (idle.server_pid, idle.rss_before, idle.rss_held) {
                let _ = writeln!(
                    w,
                    "  {:<14} pid {pid}: {} before, {} holding; {:.0} bytes per connection",
                    "server RSS",
                    mib(before),
                    mib(held),
                    idle.bytes_per_connection.unwrap_or(0.0)
                );
            }
            if let Some(delta) = idle.kernel_tcp_delta {
                let _ = writeln!(
                    w,
                    "  {:<14} {:+.1} MiB (whole machine, both ends)",
                    "kernel TCP mem",
                    delta as f64 / (1024.0 * 1024.0)
                );
            }
        }
        s
    }

    /// What the throughput counts.
    fn unit(&self) -> &'static str {
        if self.http.is_some() {
            "requests"
        } else {
            "frames"
        }
    }
}

impl FanoutFigures {
    fn write_table(&self, w: &mut String) {
        let _ = writeln!(
            w,
            "  {:<14} {} clients in {} room(s), {} sender(s); {} joined before the window",
            "fan-out",
            grouped(self.clients as u64),
            self.rooms,
            grouped(self.senders as u64),
            grouped(self.joined)
        );
        let _ = writeln!(
            w,
            "  {:<14} {} msgs/s ({} messages)",
            "sent",
            grouped(self.messages_per_s.round() as u64),
            grouped(self.messages)
        );
        let _ = writeln!(
            w,
            "  {:<14} {} deliveries/s ({} received in the window)",
            "delivered",
            grouped(self.deliveries_per_s.round() as u64),
            grouped(self.deliveries)
        );
        let _ = writeln!(
            w,
            "  {:<14} {} expected, {} delivered: missing {}, duplicate {}, out of order {} ({} sender(s) affected)",
            "checked",
            grouped(self.expected),
            grouped(self.delivered),
            grouped(self.missing),
            grouped(self.duplicates),
            grouped(self.reordered),
            self.senders_with_anomalies
        );
        if self.acked > 0 {
            let _ = writeln!(
                w,
                "  {:<14} {} msgs/s acknowledged ({} in the window)",
                "acked",
                grouped(self.acked_per_s.round() as u64),
                grouped(self.acked)
            );
        }
        if self.foreign > 0 {
            let _ =
                writeln!(w, "  {:<14} {} messages of another run ignored", "foreign", grouped(self.foreign));
        }
        for (name, s) in [("publishers", &self.publishers), ("subscribers", &self.subscribers)] {
            let _ = writeln!(
                w,
                "  {:<14} min {} | avg {} | max {} | stddev {} msgs/s over {}",
                name,
                grouped(s.min.round() as u64),
                grouped(s.avg.round() as u64),
                grouped(s.max.round() as u64),
                grouped(s.stddev.round() as u64),
                grouped(s.clients as u64)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
    }

    #[test]
    fn json_round_trips_and_table_shows_the_figures() {
        let r = Report {
            scenario: "echo".into(),
            target: "127.0.0.1:9000".into(),
            mode: "closed loop, depth 16".into(),
            connections: 100,
            connected: 100,
            frames_per_s: 123456.0,
            latency: LatencySummary { p99_us: 42.5, samples: 10, ..LatencySummary::default() },
            errors: Errors { verify: 2, total: 2, ..Errors::default() },
            cpu_percent: 55.5,
            ..Report::default()
        };
        let back: Report = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
        let table = r.to_table();
        for needle in ["123,456 frames/s", "p99 42.5", "verify 2", "55.5% of one core"] {
            assert!(table.contains(needle), "{needle} missing from\n{table}");
        }
    }
}
