//! The room log's scenario group (`--scenarios room-log`, issue 12): the
//! chat fan-outs with the log in memory, on disk with `fsync = "interval"`
//! and with `fsync = "always"`, side by side; its tables (with the log's
//! appends and fsyncs per second from `/metrics`) and its targets.

use super::plan::{Case, Entry, Load};
use super::render::{generator_cpu, opt, ratios, time};
use super::servers::Server;
use super::stats::{
    best_rate, median, of_case, rep_ratios, servers_of, Bound, Metric, RunRecord, TargetCheck,
};
use crate::report::grouped;
use std::fmt::Write;

/// The one room of 1,000 members at rising rates.
pub const ROOM: &str = "room-log-room";
/// 100 rooms of 10, 100 senders, at rising rates.
pub const ROOMS: &str = "room-log-rooms";
/// The modes compared, the in-memory one first (the ratios' base).
pub const MODES: [Server; 3] = [Server::ChatOurs, Server::ChatInterval, Server::ChatAlways];

/// Whether `group` is one of the room log's.
pub fn is_room_log(group: &str) -> bool {
    group == ROOM || group == ROOMS
}

fn entries(load: Load) -> Vec<Entry> {
    MODES.iter().map(|&server| Entry { name: server.name().into(), server, load }).collect()
}

/// The group's cases: `--quick` runs one rate of each fan-out.
pub fn cases(quick: bool) -> Vec<Case> {
    let (room_rates, rooms_rates): (&[u64], &[u64]) = if quick {
        (&[2_000], &[20_000])
    } else {
        (&[1_000, 2_000, 4_000, 6_000, 7_000, 8_000, 9_000, 10_000], &[10_000, 25_000, 50_000, 60_000])
    };
    let mut out = Vec::new();
    for &rate in room_rates {
        out.push(Case {
            group: ROOM,
            label: format!("{rate} msgs/s"),
            entries: entries(Load::Fanout { clients: 1000, rooms: 1, senders: 1, rate }),
            unit: "delivery",
            rate: Some(rate),
        });
    }
    for &rate in rooms_rates {
        out.push(Case {
            group: ROOMS,
            label: format!("100 rooms × 10, 100 senders, {rate} msgs/s"),
            entries: entries(Load::Fanout { clients: 1000, rooms: 100, senders: 100, rate }),
            unit: "delivery",
            rate: Some(rate),
        });
    }
    out
}

/// The most acknowledged messages per second `server` had in the 100 × 10
/// fan-out: the highest median over the rates tried, among rates where no
/// rep counted an error (a refusal, a lost connection, a missing delivery).
pub fn best_acked(runs: &[RunRecord], server: &str) -> Option<f64> {
    let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.group == ROOMS && r.server == server).collect();
    let mut cases: Vec<&str> = mine.iter().map(|r| r.case.as_str()).collect();
    cases.dedup();
    cases
        .into_iter()
        .filter_map(|case| {
            let figs: Vec<_> =
                mine.iter().filter(|r| r.case == case).filter_map(|r| r.figures.as_ref()).collect();
            let clean = !figs.is_empty() && figs.iter().all(|f| f.errors == 0);
            clean.then(|| median(&figs.iter().filter_map(|f| f.acked_per_s).collect::<Vec<_>>()))?
        })
        .max_by(f64::total_cmp)
}

/// The targets for the room log.
pub fn targets(runs: &[RunRecord]) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let memory = Server::ChatOurs.name();
    if runs.iter().any(|r| r.group == ROOM) {
        let best = |s: &str| best_rate(runs, ROOM, s).map(|r| r as f64);
        let ratio = match (best(Server::ChatInterval.name()), best(memory)) {
            (Some(i), Some(m)) if m > 0.0 => Some(i / m),
            (None, Some(_)) => Some(0.0),
            _ => None,
        };
        out.push(TargetCheck::new(
            "room log, 1 room of 1,000: highest rate with p99 < 50 ms, fsync interval ÷ in memory",
            ratio,
            Bound::AtLeast,
            0.9,
        ));
    }
    if runs.iter().any(|r| r.group == ROOMS) {
        out.push(TargetCheck::new(
            "room log, 100 rooms × 10: acknowledged msgs/s with fsync always (no refusals)",
            best_acked(runs, Server::ChatAlways.name()),
            Bound::AtLeast,
            50_000.0,
        ));
    }
    out
}

/// The Markdown table of a room log group, with the sustained rates under
/// the one-room table.
pub fn table(w: &mut String, runs: &[RunRecord], group: &str) {
    let memory = Server::ChatOurs.name();
    let _ = writeln!(
        w,
        "| case | server | deliveries/s | acked msgs/s | p50 | p99 | server µs/delivery | server CPU | \
         generator CPU | appends/s | fsyncs/s | msgs per fsync | errors | this ÷ in memory: deliveries/s | \
         this ÷ in memory: p99 |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let mut cases: Vec<&str> = Vec::new();
    for r in runs.iter().filter(|r| r.group == group) {
        if !cases.contains(&r.case.as_str()) {
            cases.push(&r.case);
        }
    }
    for case in cases {
        let rs = of_case(runs, group, case);
        for server in servers_of(&rs) {
            let mine: Vec<&&RunRecord> = rs.iter().filter(|r| r.server == server).collect();
            let figs: Vec<_> = mine.iter().filter_map(|r| r.figures.as_ref()).collect();
            if figs.is_empty() {
                let why = mine.iter().find_map(|r| r.note.clone()).unwrap_or_else(|| "no figures".into());
                let _ = writeln!(w, "| {case} | {server} | {why} |");
                continue;
            }
            let med = |f: &dyn Fn(&super::stats::Figures) -> Option<f64>| {
                median(&figs.iter().filter_map(|x| f(x)).collect::<Vec<f64>>())
            };
            let errors: u64 = figs.iter().map(|f| f.errors).sum();
            let rat = |metric| {
                if server == memory {
                    "–".to_string()
                } else {
                    ratios(&rep_ratios(&rs, &server, memory, metric))
                }
            };
            let count = |v: f64| grouped(v.round() as u64);
            let _ = writeln!(
                w,
                "| {case} | {server} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {errors} | {} | {} |",
                opt(med(&|f| Some(f.throughput)), count),
                opt(med(&|f| f.acked_per_s), count),
                opt(med(&|f| Some(f.p50_us)), time),
                opt(med(&|f| Some(f.p99_us)), time),
                opt(med(&|f| f.cpu_us_per), |v| format!("{v:.3}")),
                opt(med(&|f| f.server_cpu_percent), |v| format!("{v:.0} %")),
                opt(med(&|f| Some(f.generator_cpu_percent)), generator_cpu),
                opt(med(&|f| f.log.map(|l| l.appends_per_s)), count),
                opt(med(&|f| f.log.map(|l| l.fsyncs_per_s)), count),
                opt(med(&|f| f.log.and_then(|l| l.appends_per_fsync)), |v| format!("{v:.1}")),
                rat(Metric::Throughput),
                rat(Metric::P99),
            );
        }
    }
    let _ = writeln!(
        w,
        "\nAcked: `Sent` replies that reached the senders in the window (with `always`, messages on \
         disk). Appends and fsyncs: the server's `chat_log_appends_total` and `chat_log_fsyncs_total` \
         before and after the run, per second of load (warm-up and window); msgs per fsync is the \
         group commit's batch (in memory the writer's periodic syncs are counted too, and do \
         nothing). Ratios: this mode ÷ the in-memory log in the same rep.\n"
    );
    if group == ROOM {
        let servers = servers_of(&runs.iter().filter(|r| r.group == group).collect::<Vec<_>>());
        let _ =
            writeln!(w, "Highest rate sustained with p99 < 50 ms (median over reps, ≥ 99 % delivered):\n");
        let base = best_rate(runs, group, memory);
        for s in servers {
            let best = best_rate(runs, group, &s);
            let vs = match (best, base) {
                (Some(b), Some(m)) if s != memory && m > 0 => {
                    format!(" ({:.2}× in memory)", b as f64 / m as f64)
                }
                _ => String::new(),
            };
            let line = best.map_or("none of the rates tried".into(), |r| {
                format!("{} msgs/s = {} deliveries/s{vs}", grouped(r), grouped(r * 999))
            });
            let _ = writeln!(w, "- {s}: {line}");
        }
        let _ = writeln!(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::stats::{Figures, LogRates};

    fn run(
        group: &str,
        server: &str,
        rate: u64,
        rep: usize,
        p99_ms: f64,
        acked: f64,
        errors: u64,
    ) -> RunRecord {
        RunRecord {
            group: group.into(),
            case: format!("{rate} msgs/s"),
            server: server.into(),
            ours: server == "chat-server",
            rep,
            rate: Some(rate),
            unit: "delivery".into(),
            figures: Some(Figures {
                throughput: rate as f64 * 999.0,
                p99_us: p99_ms * 1000.0,
                errors,
                acked_per_s: Some(acked),
                delivered_share: Some(1.0),
                log: Some(LogRates::new(rate * 3, rate / 100, 3.0)),
                ..Figures::default()
            }),
            ..RunRecord::default()
        }
    }

    #[test]
    fn every_mode_runs_every_case_memory_first() {
        for quick in [true, false] {
            let cases = cases(quick);
            assert!(cases.iter().any(|c| c.group == ROOM) && cases.iter().any(|c| c.group == ROOMS));
            for c in &cases {
                let servers: Vec<Server> = c.entries.iter().map(|e| e.server).collect();
                assert_eq!(servers, MODES);
            }
        }
        assert_eq!(cases(true).len(), 2, "--quick stays short");
        assert!(cases(false).iter().any(|c| c.group == ROOMS && c.rate > Some(50_000)), "past 50,000");
    }

    #[test]
    fn targets_compare_interval_with_memory_and_count_acks_without_refusals() {
        let runs = vec![
            run(ROOM, "chat-server", 8000, 0, 30.0, 8000.0, 0),
            run(ROOM, "chat-server-interval", 8000, 0, 60.0, 8000.0, 0),
            run(ROOM, "chat-server", 7000, 0, 20.0, 7000.0, 0),
            run(ROOM, "chat-server-interval", 7000, 0, 40.0, 7000.0, 0),
            run(ROOMS, "chat-server-always", 50_000, 0, 20.0, 50_000.0, 0),
            run(ROOMS, "chat-server-always", 60_000, 0, 20.0, 60_000.0, 3),
        ];
        let t = targets(&runs);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].measured, t[0].met()), (Some(7000.0 / 8000.0), Some(false)), "{t:?}");
        assert_eq!((t[1].measured, t[1].met()), (Some(50_000.0), Some(true)), "60,000 had refusals");
        let mut md = String::new();
        table(&mut md, &runs, ROOM);
        assert!(
            md.contains("- chat-server-interval: 7,000 msgs/s = 6,993,000 deliveries/s (0.88× in memory)"),
            "{md}"
        );
        assert!(md.contains("| 8000 msgs/s | chat-server-interval | 7,992,000 | 8,000 |"), "{md}");
        assert!(md.contains("| 8,000 | 27 | 300.0 | 0 |"), "appends, fsyncs, batch: {md}");
    }
}
