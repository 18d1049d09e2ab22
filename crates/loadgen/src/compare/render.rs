//! `results.json` (every run, the machine, the commands) and the Markdown
//! report made from it: one table per scenario with medians and per-rep
//! ratios, the highest sustained fan-out rates, and the issue's targets.

use super::stats::{
    best_rate, median, median_of, of_case, rep_ratios, servers_of, Bound, Metric, RunRecord, TargetCheck,
};
use crate::report::grouped;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The machine the comparison ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Online CPUs.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub model: String,
    /// `uname -sr`.
    pub kernel: String,
    /// MemTotal, in GiB.
    pub memory_gib: f64,
}

/// Everything one comparison recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// When it ran (UTC, from `date`).
    pub date: String,
    /// The command that ran it.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// Repetitions (servers alternating within each).
    pub reps: usize,
    /// Warm-up and measured window, in words.
    pub windows: String,
    /// How each server was started (`{addr}` stands for its port).
    pub servers: Vec<String>,
    /// What to know: skipped peers, caveats.
    pub notes: Vec<String>,
    /// Every run.
    pub runs: Vec<RunRecord>,
}

/// The tables, in the order they are rendered, with their headings.
pub const GROUPS: [(&str, &str); 8] = [
    ("echo", "Echo (frames/s; server CPU per frame)"),
    ("idle", "Idle connections (server RSS per connection)"),
    ("chat-room", "Chat fan-out: 1 room of 1,000 members, 1 sender, 64 B, rising rates"),
    ("chat-rooms", "Chat fan-out: 100 rooms of 10 members, 100 senders"),
    ("http", "HTTP/1.1 hello (keep-alive GET /)"),
    ("tcp-vs-http", "Raw TCP vs HTTP: the same chat post-and-deliver workload"),
    (
        super::room_log::ROOM,
        "The room log: 1 room of 1,000 members, 1 sender, 64 B, rising rates (in memory, fsync interval, fsync always)",
    ),
    (super::room_log::ROOMS, "The room log: 100 rooms of 10 members, 100 senders, rising rates"),
];

/// Generator CPU (% of one core) from which a run may be generator-bound.
pub const GENERATOR_BOUND: f64 = 95.0;

/// Microseconds, in µs or ms.
pub fn time(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}×"))
}

/// The median per-rep ratio, with each rep's in parentheses when several.
pub(super) fn ratios(v: &[f64]) -> String {
    match v.len() {
        0 => "–".into(),
        1 => ratio(v.first().copied()),
        _ => {
            let each: Vec<String> = v.iter().map(|r| format!("{r:.2}")).collect();
            format!("{} ({})", ratio(median(v)), each.join(", "))
        }
    }
}

/// Generator CPU, in bold where the generator may bound the run.
pub(super) fn generator_cpu(v: f64) -> String {
    if v >= GENERATOR_BOUND {
        format!("**{v:.0} %**")
    } else {
        format!("{v:.0} %")
    }
}

pub(super) fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("–".into(), f)
}

/// The issue's targets, checked against `runs`.
pub fn targets(runs: &[RunRecord]) -> Vec<TargetCheck> {
    use super::stats::ratio_target;
    let mut out = Vec::new();
    let cases = |group: &str| {
        let mut v: Vec<String> = Vec::new();
        for r in runs.iter().filter(|r| r.group == group) {
            if !v.contains(&r.case) {
                v.push(r.case.clone());
            }
        }
        v
    };
    for case in cases("echo") {
        let at = ("echo", case.as_str());
        let picks: &[(&str, f64)] = if case.ends_with("depth 1") {
            &[("tokio-echo-idiomatic", 1.05), ("mio-echo-bare", 0.95)]
        } else {
            &[("tokio-echo-tuned", 1.15), ("mio-echo-bare", 0.95)]
        };
        for &(base, min) in picks {
            out.extend(ratio_target(runs, at, base, Metric::Throughput, Bound::AtLeast, min));
        }
        if case.ends_with("depth 16") {
            // Issue 13: the framework's own per-frame cost against the bare loop.
            out.extend(ratio_target(runs, at, "mio-echo-bare", Metric::CpuPer, Bound::AtMost, 1.05));
        }
    }
    let idle = of_case(runs, "idle", "idle connections held");
    if let Some(ours) = idle.iter().find(|r| r.ours) {
        let rss = median_of(&idle, &ours.server, Metric::Rss);
        out.push(TargetCheck::new("idle: server RSS per connection, bytes", rss, Bound::AtMost, 512.0));
    }
    if runs.iter().any(|r| r.group == "chat-room") {
        let best = |s: &str| best_rate(runs, "chat-room", s).map_or(0.0, |r| r as f64);
        let ours = best("chat-server");
        for (base, min) in [("nats-server", 1.0), ("tokio-chat", 10.0)] {
            if runs.iter().any(|r| r.group == "chat-room" && r.server == base) {
                // A baseline that sustained no rate counts as 0: any rate of ours beats it.
                let measured = match best(base) {
                    b if b > 0.0 => Some(ours / b),
                    _ if ours > 0.0 => Some(f64::INFINITY),
                    _ => None,
                };
                out.push(TargetCheck::new(
                    format!("chat room of 1,000: highest rate with p99 < 50 ms vs {base}"),
                    measured,
                    Bound::AtLeast,
                    min,
                ));
            }
        }
    }
    for case in cases("http") {
        let at = ("http", case.as_str());
        let min = if case.ends_with("pipeline 1") { 1.0 } else { 1.5 };
        out.extend(ratio_target(runs, at, "hyper-hello", Metric::Throughput, Bound::AtLeast, min));
        out.extend(ratio_target(runs, at, "hyper-hello", Metric::CpuPer, Bound::AtMost, 0.8));
    }
    out.extend(super::room_log::targets(runs));
    out
}

/// The report as a Markdown section for docs/BENCHMARKS.md.
pub fn markdown(res: &Results) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "## Side by side (`loadgen compare`)\n");
    let _ = writeln!(w, "Generated {} by `{}`.\n", res.date, res.command);
    let m = &res.machine;
    let _ = writeln!(w, "| cores | CPU | kernel | memory |\n| --- | --- | --- | --- |");
    let _ = writeln!(w, "| {} | {} | {} | {:.1} GiB |\n", m.cores, m.model, m.kernel, m.memory_gib);
    let _ = writeln!(
        w,
        "Each server runs alone with one event-loop thread pinned to CPU 0; the generator (one load \
         thread, in-process scenario code) is pinned to CPU 1; loopback; a fresh port per run. \
         {} rep(s), servers alternating within each rep (ours, baseline, baseline, ours, ...); \
         {}. Figures are medians over reps; ratios are ours ÷ baseline in the same rep, \
         median first, each rep's in parentheses. Server CPU is user+system time from \
         /proc/PID/stat over the measured window.\n",
        res.reps, res.windows
    );
    let _ = writeln!(w, "Servers:\n");
    for line in &res.servers {
        let _ = writeln!(w, "- `{line}`");
    }
    let _ = writeln!(w);
    for note in &res.notes {
        let _ = writeln!(w, "> {note}\n");
    }
    let checks = targets(&res.runs);
    if !checks.is_empty() {
        let _ = writeln!(
            w,
            "### Targets (issues 8 and 13; the room log: issue 12)\n\n| target | measured | wanted | met |\n| --- | --- | --- | --- |"
        );
        for t in &checks {
            let bound = match t.bound {
                Bound::AtLeast => "≥",
                Bound::AtMost => "≤",
            };
            let fmt = |v: f64| if t.threshold >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") };
            let met = match t.met() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(
                w,
                "| {} | {} | {bound} {} | {met} |",
                t.what,
                opt(t.measured, fmt),
                fmt(t.threshold)
            );
        }
        let _ = writeln!(w);
    }
    for (group, title) in GROUPS {
        if res.runs.iter().any(|r| r.group == group) {
            let _ = writeln!(w, "### {title}\n");
            if super::room_log::is_room_log(group) {
                super::room_log::table(w, &res.runs, group);
            } else {
                table(w, &res.runs, group);
            }
        }
    }
    s
}

fn case_names(runs: &[RunRecord], group: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in runs.iter().filter(|r| r.group == group) {
        if !v.contains(&r.case) {
            v.push(r.case.clone());
        }
    }
    v
}

fn table(w: &mut String, runs: &[RunRecord], group: &str) {
    let unit = runs.iter().find(|r| r.group == group).map_or("unit", |r| r.unit.as_str());
    let idle = group == "idle";
    let fanout = group.starts_with("chat") || group == "tcp-vs-http";
    let throughput = if fanout {
        "deliveries/s"
    } else if group == "http" {
        "requests/s"
    } else {
        "frames/s"
    };
    let _ = if idle {
        writeln!(
            w,
            "| case | server | held | RSS per conn | 100K / 1M conns (projected) | errors | ours ÷ this: RSS |\n\
             | --- | --- | --- | --- | --- | --- | --- |"
        )
    } else {
        writeln!(
            w,
            "| case | server | {throughput} | p50 | p99 | server µs/{unit} | server CPU | generator CPU | errors | \
             ours ÷ this: {throughput} | ours ÷ this: µs/{unit} | ours ÷ this: p99 |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )
    };
    for case in case_names(runs, group) {
        let rs = of_case(runs, group, &case);
        let servers = servers_of(&rs);
        let Some(ours) = rs.iter().find(|r| r.ours).map(|r| r.server.clone()) else { continue };
        for server in &servers {
            let mine: Vec<&&RunRecord> = rs.iter().filter(|r| &r.server == server).collect();
            let figs: Vec<_> = mine.iter().filter_map(|r| r.figures.as_ref()).collect();
            let med = |f: &dyn Fn(&super::stats::Figures) -> Option<f64>| {
                median(&figs.iter().filter_map(|x| f(x)).collect::<Vec<f64>>())
            };
            let errors: u64 = figs.iter().map(|f| f.errors).sum();
            let skipped = figs.is_empty();
            let name = if server == &ours { format!("**{server}**") } else { server.clone() };
            let rat = |metric| {
                if server == &ours {
                    "–".to_string()
                } else {
                    ratios(&rep_ratios(&rs, &ours, server, metric))
                }
            };
            if skipped {
                let why = mine.iter().find_map(|r| r.note.clone()).unwrap_or_else(|| "no figures".into());
                let _ = writeln!(w, "| {case} | {name} | {why} |");
                continue;
            }
            if idle {
                let rss = med(&|f| f.rss_per_conn);
                let held = mine.iter().filter_map(|r| r.report.as_ref()?.idle.as_ref()).map(|i| i.held).max();
                let proj =
                    opt(rss, |b| format!("{:.0} MiB / {:.0} MiB", b * 1e5 / 1048576.0, b * 1e6 / 1048576.0));
                let _ = writeln!(
                    w,
                    "| {case} | {name} | {} | {} | {proj} | {errors} | {} |",
                    held.map_or("–".into(), grouped),
                    opt(rss, |b| format!("{b:.0} B")),
                    rat(Metric::Rss)
                );
                continue;
            }
            let _ = writeln!(
                w,
                "| {case} | {name} | {} | {} | {} | {} | {} | {} | {errors} | {} | {} | {} |",
                opt(med(&|f| Some(f.throughput)), |v| grouped(v.round() as u64)),
                opt(med(&|f| Some(f.p50_us)), time),
                opt(med(&|f| Some(f.p99_us)), time),
                opt(med(&|f| f.cpu_us_per), |v| format!("{v:.3}")),
                opt(med(&|f| f.server_cpu_percent), |v| format!("{v:.0} %")),
                opt(med(&|f| Some(f.generator_cpu_percent)), generator_cpu),
                rat(Metric::Throughput),
                rat(Metric::CpuPer),
                rat(Metric::P99),
            );
        }
    }
    let _ = writeln!(w);
    if !idle {
        let _ = writeln!(
            w,
            "Generator CPU in bold: {GENERATOR_BOUND:.0} % of its core or more, so the one-thread \
             generator may bound the run and throughput ratios understate the servers' difference; \
             server µs/{unit} is the fairer figure there.\n"
        );
    }
    if group == "chat-room" {
        let servers = servers_of(&runs.iter().filter(|r| r.group == group).collect::<Vec<_>>());
        let _ =
            writeln!(w, "Highest rate sustained with p99 < 50 ms (median over reps, ≥ 99 % delivered):\n");
        for s in servers {
            let best = best_rate(runs, group, &s);
            let line = best.map_or("none of the rates tried".into(), |r| {
                format!("{} msgs/s = {} deliveries/s", grouped(r), grouped(r * 999))
            });
            let _ = writeln!(w, "- {s}: {line}");
        }
        let _ = writeln!(w);
    }
    if group == "tcp-vs-http" {
        let _ = writeln!(
            w,
            "The cost of HTTP is the inverse of the ratios above (HTTP ÷ chat protocol). Both sides \
             run the same fan-out (`loadgen chat` and `loadgen chat-http`): one sender, every other \
             member timing each message from its scheduled send; over HTTP the sender POSTs and the \
             members long-poll (`GET ...?since=ID&wait=30`, polling again from each answer's \
             `last_id`).\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::stats::Figures;

    fn fixed() -> Results {
        let json = r#"{
          "date": "2026-01-01 00:00 UTC", "command": "loadgen compare --quick",
          "machine": {"cores": 2, "model": "AMD EPYC", "kernel": "Linux 6.1", "memory_gib": 24.0},
          "reps": 2, "windows": "warm-up 0.3 s, measured 0.7 s",
          "servers": ["echo_server --listen {addr} --threads 1"], "notes": ["nats-server skipped"],
          "runs": []
        }"#;
        let mut res: Results = serde_json::from_str(json).unwrap();
        let run = |server: &str, rep, throughput: f64, cpu: f64, p99_us: f64| RunRecord {
            group: "echo".into(),
            case: "64 B, 100 conns, depth 16".into(),
            server: server.into(),
            ours: server == "echo_server",
            rep,
            unit: "frame".into(),
            figures: Some(Figures {
                throughput,
                p50_us: 500.0,
                p99_us,
                cpu_us_per: Some(cpu),
                server_cpu_percent: Some(99.0),
                generator_cpu_percent: 90.0,
                ..Figures::default()
            }),
            ..RunRecord::default()
        };
        res.runs = vec![
            run("echo_server", 0, 2_000_000.0, 0.5, 2000.0),
            run("tokio-echo-tuned", 0, 1_000_000.0, 1.0, 4000.0),
            run("echo_server", 1, 1_800_000.0, 0.5, 2000.0),
            run("tokio-echo-tuned", 1, 1_200_000.0, 0.8, 2000.0),
        ];
        res
    }

    #[test]
    fn results_round_trip_and_render_the_table() {
        let res = fixed();
        let back: Results = serde_json::from_str(&serde_json::to_string(&res).unwrap()).unwrap();
        assert_eq!(back, res);
        let md = markdown(&res);
        let want = "\
| 64 B, 100 conns, depth 16 | **echo_server** | 1,900,000 | 500 µs | 2.0 ms | 0.500 | 99 % | 90 % | 0 | – | – | – |
| 64 B, 100 conns, depth 16 | tokio-echo-tuned | 1,100,000 | 500 µs | 3.0 ms | 0.900 | 99 % | 90 % | 0 | 1.75× (2.00, 1.50) | 0.56× (0.50, 0.62) | 0.75× (0.50, 1.00) |
";
        assert!(md.contains(want), "{md}");
        assert!(md.contains("| 2 | AMD EPYC | Linux 6.1 | 24.0 GiB |"), "{md}");
        assert!(md.contains("> nats-server skipped"), "{md}");
        assert!(
            md.contains(
                "| 64 B, 100 conns, depth 16: throughput vs tokio-echo-tuned | 1.75 | ≥ 1.15 | yes |"
            ),
            "{md}"
        );
        assert!(md.contains("### Echo"), "{md}");
        assert!(!md.contains("### HTTP"), "no HTTP runs, no HTTP table");
    }

    #[test]
    fn formats() {
        assert_eq!(time(840.0), "840 µs");
        assert_eq!(time(4300.0), "4.3 ms");
        assert_eq!(time(41_000.0), "41 ms");
        assert_eq!(ratios(&[]), "–");
        assert_eq!(ratios(&[1.5]), "1.50×");
        assert_eq!(ratios(&[1.0, 3.0, 2.0]), "2.00× (1.00, 3.00, 2.00)");
    }

    #[test]
    fn chat_targets_count_a_baseline_that_sustained_nothing_as_beaten() {
        let fan = |server: &str, p99_ms: f64| RunRecord {
            group: "chat-room".into(),
            case: "100 msgs/s".into(),
            server: server.into(),
            ours: server == "chat-server",
            rate: Some(100),
            figures: Some(Figures { p99_us: p99_ms * 1000.0, ..Figures::default() }),
            ..RunRecord::default()
        };
        let runs = vec![fan("chat-server", 10.0), fan("tokio-chat", 900.0), fan("nats-server", 20.0)];
        let t = targets(&runs);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].measured, t[0].met()), (Some(1.0), Some(true)), "{t:?}");
        assert_eq!(t[1].met(), Some(true), "{t:?}");
    }
}
