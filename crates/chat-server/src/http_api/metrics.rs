//! `GET /metrics`: the reactor's per-service counters and the chat's
//! gauges, in the Prometheus text format.

use crate::core::ChatCore;
use http1::Response;
use std::fmt::Write;

/// A Prometheus counter: metric name, help text, and how to read it.
type Counter = (&'static str, &'static str, fn(&reactor::ServiceStats) -> u64);

/// The metrics page.
pub fn metrics(stats: &[reactor::ServiceStats], core: &ChatCore) -> Response {
    let mut out = String::with_capacity(4096);
    let counters: [Counter; 13] = [
        ("connections_accepted_total", "Connections accepted.", |s| s.accepted),
        ("connections_closed_total", "Connections closed, for any reason.", |s| s.closed),
        ("connections_rejected_total", "Connections refused at max_connections.", |s| s.rejected),
        ("accept_errors_total", "Failed accept calls (EMFILE and the like).", |s| s.accept_errors),
        ("bytes_in_total", "Bytes read from peers.", |s| s.bytes_in),
        ("bytes_out_total", "Bytes written to peers.", |s| s.bytes_out),
        ("frames_in_total", "Frames decoded.", |s| s.frames_in),
        ("frames_out_total", "Frames sent.", |s| s.frames_out),
        ("slow_consumers_total", "Connections closed as slow consumers.", |s| s.slow_consumers),
        ("idle_timeouts_total", "Connections closed by the reactor's idle timeout.", |s| s.idle_timeouts),
        ("handshake_timeouts_total", "TLS connections closed for a stalled handshake.", |s| {
            s.handshake_timeouts
        }),
        ("protocol_errors_total", "Connections closed for a protocol error.", |s| s.protocol_errors),
        ("handler_panics_total", "Handler panics.", |s| s.panics),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP switchboard_{name} {help}\n# TYPE switchboard_{name} counter");
        for s in stats {
            let _ = writeln!(out, "switchboard_{name}{{service=\"{}\"}} {}", s.name, get(s));
        }
    }
    let _ = writeln!(out, "# HELP switchboard_connections_open Connections open now.");
    let _ = writeln!(out, "# TYPE switchboard_connections_open gauge");
    for s in stats {
        let _ = writeln!(out, "switchboard_connections_open{{service=\"{}\"}} {}", s.name, s.open);
    }
    let gauges = [
        ("chat_users", "Nicknames held, on every door.", core.user_count()),
        ("chat_sessions", "HTTP sessions open.", core.session_count()),
        ("chat_rooms", "Rooms in memory (rooms without members leave it).", core.room_count()),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    if let Some(log) = core.log_stats() {
        use std::sync::atomic::Ordering::Relaxed;
        let counters = [
            ("chat_log_appends_total", "Messages stored in the room log.", log.appends.load(Relaxed)),
            ("chat_log_commits_total", "Room log transactions (one per batch).", log.commits.load(Relaxed)),
            ("chat_log_fsyncs_total", "Durable room log commits (fsyncs).", log.fsyncs.load(Relaxed)),
            ("chat_log_failures_total", "Room log writes that failed.", log.failures.load(Relaxed)),
            (
                "chat_log_overflows_total",
                "Messages refused: the log's queue was full.",
                log.overflows.load(Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
    }
    Response::text(200, out).content_type("text/plain; version=0.0.4; charset=utf-8")
}
