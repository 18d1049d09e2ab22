//! `GET /metrics`: the reactor's per-service counters, the chat's gauges,
//! the room log's and (on a node of a cluster) the cluster's counters, in
//! the OpenMetrics text format, through the Prometheus project's own
//! client (`prometheus-client`): counters end in `_total`, `# HELP` and
//! `# TYPE` name the family, the page ends with `# EOF`.
//!
//! The reactor's and the log's counters are plain numbers kept by their
//! owners; each scrape copies them into a registry of its own. The
//! cluster's are `prometheus-client` metrics already (its round-trip
//! histogram among them), shared into the registry.

use crate::core::ChatCore;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;

/// The content type of the page (OpenMetrics 1.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A reactor counter: name (without `_total`), help, and how to read it.
type ServiceCounter = (&'static str, &'static str, fn(&reactor::ServiceStats) -> u64);

/// Labels: `service="chat"`.
type Labels = Vec<(&'static str, String)>;

/// A counter holding `value` (a copy of a count kept elsewhere).
fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

/// A gauge holding `value`.
fn gauge(value: usize) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    g
}

/// The metrics page for a server whose services have `stats`.
pub fn render(stats: &[reactor::ServiceStats], core: &ChatCore) -> String {
    let mut registry = Registry::default();
    let counters: [ServiceCounter; 13] = [
        ("connections_accepted", "Connections accepted", |s| s.accepted),
        ("connections_closed", "Connections closed, for any reason", |s| s.closed),
        ("connections_rejected", "Connections refused at max_connections", |s| s.rejected),
        ("accept_errors", "Failed accept calls (EMFILE and the like)", |s| s.accept_errors),
        ("bytes_in", "Bytes read from peers", |s| s.bytes_in),
        ("bytes_out", "Bytes written to peers", |s| s.bytes_out),
        ("frames_in", "Frames decoded", |s| s.frames_in),
        ("frames_out", "Frames sent", |s| s.frames_out),
        ("slow_consumers", "Connections closed as slow consumers", |s| s.slow_consumers),
        ("idle_timeouts", "Connections closed by the reactor's idle timeout", |s| s.idle_timeouts),
        ("handshake_timeouts", "TLS connections closed for a stalled handshake", |s| s.handshake_timeouts),
        ("protocol_errors", "Connections closed for a protocol error", |s| s.protocol_errors),
        ("handler_panics", "Handler panics", |s| s.panics),
    ];
    {
        let sb = registry.sub_registry_with_prefix("switchboard");
        for (name, help, get) in counters {
            let family = Family::<Labels, Counter>::default();
            for s in stats {
                family.get_or_create(&vec![("service", s.name.to_string())]).inc_by(get(s));
            }
            sb.register(name, help, family);
        }
        let open = Family::<Labels, Gauge>::default();
        for s in stats {
            open.get_or_create(&vec![("service", s.name.to_string())])
                .set(i64::try_from(s.open).unwrap_or(i64::MAX));
        }
        sb.register("connections_open", "Connections open now", open);
    }
    {
        let chat = registry.sub_registry_with_prefix("chat");
        chat.register("users", "Nicknames held on this node, on every door", gauge(core.user_count()));
        chat.register("sessions", "HTTP sessions open", gauge(core.session_count()));
        chat.register("rooms", "Rooms in memory (rooms without members leave it)", gauge(core.room_count()));
        if let Some(log) = core.log_stats() {
            let log_counters = [
                ("log_appends", "Messages stored in the room log", log.appends.load(Relaxed)),
                ("log_commits", "Room log transactions (one per batch)", log.commits.load(Relaxed)),
                ("log_fsyncs", "Durable room log commits (fsyncs)", log.fsyncs.load(Relaxed)),
                ("log_failures", "Room log writes that failed", log.failures.load(Relaxed)),
                ("log_overflows", "Messages refused: the log's queue was full", log.overflows.load(Relaxed)),
            ];
            for (name, help, value) in log_counters {
                chat.register(name, help, counter(value));
            }
        }
    }
    if let Some(cluster) = core.cluster() {
        cluster.stats().register(&mut registry);
        let c = registry.sub_registry_with_prefix("chat_cluster");
        c.register(
            "node",
            "This node of the cluster",
            Info::new(vec![("node", cluster.name().to_string()), ("id", cluster.node().to_string())]),
        );
        c.register("redis_queued", "Calls waiting to be sent to Redis", gauge(cluster.queued()));
    }
    let mut out = String::with_capacity(8192);
    if let Err(e) = encode(&mut out, &registry) {
        log::error!("metrics: cannot encode: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    /// The page's shape, as a scraper reads it.
    #[test]
    fn openmetrics_text() {
        let stats = reactor::ServiceStats { name: "chat".into(), accepted: 3, open: 2, ..Default::default() };
        let config = crate::config::Config::builtin();
        let log = std::sync::Arc::new(crate::store::MemoryLog::new(10));
        let policy = crate::store::FsyncPolicy::Interval(std::time::Duration::from_secs(1));
        let core = crate::core::ChatCore::new(
            crate::server::settings(&config),
            log,
            policy,
            crate::core::Wiring { loops: 1, service: reactor::ServiceId::from_index(0), sessions_file: None },
        );
        let text = super::render(&[stats], &core);
        assert!(text.contains("# TYPE switchboard_connections_accepted counter"), "{text}");
        assert!(text.contains("switchboard_connections_accepted_total{service=\"chat\"} 3"), "{text}");
        assert!(text.contains("switchboard_connections_open{service=\"chat\"} 2"), "{text}");
        assert!(text.contains("chat_users 0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
