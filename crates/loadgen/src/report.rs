//! The result of a run: one structure, printed as a table for people or as
//! one JSON object (`--json`) for scripts and for comparing runs.

use crate::session::Tally;
use crate::stats::LatencySummary;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Everything a run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name (`echo`, `idle`).
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
    /// Idle-connection figures (`idle` scenario).
    pub idle: Option<IdleFigures>,
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
    /// All of the above.
    pub total: u64,
    /// The first error seen.
    pub first: Option<String>,
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
            total: t.errors() + t.unanswered,
            first: t.first_error.clone(),
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
        if self.idle.is_none() {
            let _ = writeln!(
                w,
                "  {:<14} {:.2} s after {:.2} s of warm-up",
                "measured", self.duration_s, self.warmup_s
            );
            let _ = writeln!(
                w,
                "  {:<14} {} frames/s   {:.2} MB/s   (sent {} frames/s)",
                "throughput",
                grouped(self.frames_per_s.round() as u64),
                self.mb_per_s,
                grouped(self.sent_per_s.round() as u64)
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
            "  {:<14} {}   (connect {}, io {}, closed by server {}, verify {}, unanswered {})",
            "errors",
            grouped(e.total),
            e.connect,
            e.io,
            e.closed,
            e.verify,
            e.unanswered
        );
        if let Some(first) = &e.first {
            let _ = writeln!(w, "  {:<14} {first}", "first error");
        }
        let _ = writeln!(w, "  {:<14} {:.1}% of one core", "generator CPU", self.cpu_percent);
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
