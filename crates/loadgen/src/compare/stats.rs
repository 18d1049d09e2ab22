//! The comparison's data: one [`RunRecord`] per server per rep, the figures
//! taken from its [`Report`], medians per server, per-rep ratios of ours to
//! each baseline, and the targets checked against them.

use crate::report::Report;
use serde::{Deserialize, Serialize};

/// p99 under which a fan-out rate counts as sustained, in microseconds.
pub const SUSTAINED_P99_US: f64 = 50_000.0;
/// Share of the owed deliveries that must arrive for a rate to count.
pub const SUSTAINED_DELIVERED: f64 = 0.99;

/// The figures of one run that the tables and charts use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Units of work per second (frames, requests, deliveries).
    pub throughput: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Errors of every kind.
    pub errors: u64,
    /// Server CPU per unit of work, µs.
    pub cpu_us_per: Option<f64>,
    /// Server CPU over the window, % of one core.
    pub server_cpu_percent: Option<f64>,
    /// Generator CPU over the window, % of one core.
    pub generator_cpu_percent: f64,
    /// Server RSS per held connection, bytes (idle).
    pub rss_per_conn: Option<f64>,
    /// Share of owed deliveries that arrived (fan-out).
    pub delivered_share: Option<f64>,
    /// Publications acknowledged per second in the window (chat `Sent`).
    #[serde(default)]
    pub acked_per_s: Option<f64>,
    /// The room log's counters over the run (`/metrics` before and after),
    /// per second of load (warm-up and window).
    #[serde(default)]
    pub log: Option<LogRates>,
}

/// What the room log did during a run, from its `/metrics` counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRates {
    /// Messages stored per second.
    pub appends_per_s: f64,
    /// fsyncs per second.
    pub fsyncs_per_s: f64,
    /// Messages per fsync (group commit); `None` without an fsync.
    pub appends_per_fsync: Option<f64>,
}

impl LogRates {
    /// The rates of `appends` and `fsyncs` counted over `secs` of load.
    pub fn new(appends: u64, fsyncs: u64, secs: f64) -> LogRates {
        let secs = secs.max(1e-9);
        LogRates {
            appends_per_s: appends as f64 / secs,
            fsyncs_per_s: fsyncs as f64 / secs,
            appends_per_fsync: (fsyncs > 0).then(|| appends as f64 / fsyncs as f64),
        }
    }
}

impl Figures {
    /// The figures of `report`, whose work is counted in `unit`s.
    pub fn of(report: &Report, unit: &str) -> Figures {
        let throughput = match &report.fanout {
            Some(f) => f.deliveries_per_s,
            None => report.frames_per_s,
        };
        Figures {
            throughput,
            p50_us: report.latency.p50_us,
            p99_us: report.latency.p99_us,
            errors: report.errors.total,
            cpu_us_per: report.server.as_ref().and_then(|s| s.us_per.get(unit).copied()),
            server_cpu_percent: report.server.as_ref().map(|s| s.cpu_percent),
            generator_cpu_percent: report.cpu_percent,
            rss_per_conn: report.idle.as_ref().and_then(|i| i.bytes_per_connection),
            delivered_share: report
                .fanout
                .as_ref()
                .filter(|f| f.expected > 0)
                .map(|f| f.delivered as f64 / f.expected as f64),
            acked_per_s: report.fanout.as_ref().filter(|f| f.acked > 0).map(|f| f.acked_per_s),
            log: None,
        }
    }

    /// One figure by name, for ratios and charts.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Throughput => Some(self.throughput),
            Metric::P99 => Some(self.p99_us),
            Metric::CpuPer => self.cpu_us_per,
            Metric::Rss => self.rss_per_conn,
            Metric::Acked => self.acked_per_s,
        }
    }
}

/// A figure that ratios are taken of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Units of work per second.
    Throughput,
    /// p99 latency.
    P99,
    /// Server CPU per unit of work.
    CpuPer,
    /// Server RSS per idle connection.
    Rss,
    /// Publications acknowledged per second.
    Acked,
}

/// One server (or variant) driven once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The table it belongs to (`echo`, `idle`, `chat-room`, ...).
    pub group: String,
    /// The row: the load's parameters.
    pub case: String,
    /// The column: which server (ours first in each case).
    pub server: String,
    /// Whether this is the project's own server.
    pub ours: bool,
    /// Repetition, from 0.
    pub rep: usize,
    /// Fan-out: messages per second asked for.
    pub rate: Option<u64>,
    /// What the unit of work is (`frame`, `request`, `delivery`, `connection`).
    pub unit: String,
    /// The figures, if the run completed.
    pub figures: Option<Figures>,
    /// Why it did not, or what to know about it.
    pub note: Option<String>,
    /// The whole report of the run.
    pub report: Option<Report>,
}

/// The median of `values` (mean of the middle two for an even count);
/// `None` for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
}

/// The runs of one case, in the order they were recorded.
pub fn of_case<'a>(runs: &'a [RunRecord], group: &str, case: &str) -> Vec<&'a RunRecord> {
    runs.iter().filter(|r| r.group == group && r.case == case).collect()
}

/// Servers of a set of runs, in first-seen order (ours first, as run).
pub fn servers_of(runs: &[&RunRecord]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in runs {
        if !names.contains(&r.server) {
            names.push(r.server.clone());
        }
    }
    names
}

/// The median of `metric` over `server`'s runs.
pub fn median_of(runs: &[&RunRecord], server: &str, metric: Metric) -> Option<f64> {
    let v: Vec<f64> =
        runs.iter().filter(|r| r.server == server).filter_map(|r| r.figures.as_ref()?.get(metric)).collect();
    median(&v)
}

/// Per-rep ratios `ours / baseline` of `metric`, over the reps where both
/// have the figure.
pub fn rep_ratios(runs: &[&RunRecord], ours: &str, baseline: &str, metric: Metric) -> Vec<f64> {
    let value = |server: &str, rep: usize| {
        runs.iter().find(|r| r.server == server && r.rep == rep)?.figures.as_ref()?.get(metric)
    };
    let reps = runs.iter().map(|r| r.rep).max().map_or(0, |m| m + 1);
    (0..reps)
        .filter_map(|rep| match (value(ours, rep), value(baseline, rep)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        })
        .collect()
}

/// Whether a fan-out run sustained its rate: p99 under 50 ms, nearly every
/// delivery made.
pub fn sustained(f: &Figures) -> bool {
    f.p99_us > 0.0
        && f.p99_us < SUSTAINED_P99_US
        && f.delivered_share.is_none_or(|s| s >= SUSTAINED_DELIVERED)
}

/// The highest rate `server` sustained in the median over reps (p99
/// median under 50 ms and every rep delivering), among `runs` of rising
/// rates; `None` if no rate was.
pub fn best_rate(runs: &[RunRecord], group: &str, server: &str) -> Option<u64> {
    let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.group == group && r.server == server).collect();
    let mut rates: Vec<u64> = mine.iter().filter_map(|r| r.rate).collect();
    rates.sort_unstable();
    rates.dedup();
    rates
        .into_iter()
        .filter(|rate| {
            let at: Vec<&Figures> =
                mine.iter().filter(|r| r.rate == Some(*rate)).filter_map(|r| r.figures.as_ref()).collect();
            let p99s: Vec<f64> = at.iter().map(|f| f.p99_us).collect();
            let delivered = at.iter().all(|f| f.delivered_share.is_none_or(|s| s >= SUSTAINED_DELIVERED));
            !at.is_empty() && delivered && median(&p99s).is_some_and(|p| p > 0.0 && p < SUSTAINED_P99_US)
        })
        .max()
}

/// How a target compares its figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bound {
    /// The figure must be at least the threshold.
    AtLeast,
    /// The figure must be at most the threshold.
    AtMost,
}

/// One of the targets, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What is asked, in words.
    pub what: String,
    /// The figure measured (a median ratio, or an absolute figure).
    pub measured: Option<f64>,
    /// The bound.
    pub bound: Bound,
    /// The threshold.
    pub threshold: f64,
}

impl TargetCheck {
    /// A check of `measured` against `bound threshold`.
    pub fn new(what: impl Into<String>, measured: Option<f64>, bound: Bound, threshold: f64) -> TargetCheck {
        TargetCheck { what: what.into(), measured, bound, threshold }
    }

    /// Met, missed, or not measured (`None`).
    pub fn met(&self) -> Option<bool> {
        let m = self.measured?;
        Some(match self.bound {
            Bound::AtLeast => m >= self.threshold,
            Bound::AtMost => m <= self.threshold,
        })
    }
}

/// The median per-rep ratio of ours to `baseline` in a case, checked.
pub fn ratio_target(
    runs: &[RunRecord],
    (group, case): (&str, &str),
    baseline: &str,
    metric: Metric,
    bound: Bound,
    threshold: f64,
) -> Option<TargetCheck> {
    let rs = of_case(runs, group, case);
    let ours = rs.iter().find(|r| r.ours)?.server.clone();
    if !rs.iter().any(|r| r.server == baseline) {
        return None;
    }
    let what = match metric {
        Metric::Throughput => format!("{case}: throughput vs {baseline}"),
        Metric::CpuPer => format!("{case}: CPU per unit vs {baseline}"),
        Metric::P99 => format!("{case}: p99 vs {baseline}"),
        Metric::Rss => format!("{case}: RSS per connection vs {baseline}"),
        Metric::Acked => format!("{case}: acknowledged msgs/s vs {baseline}"),
    };
    let measured = median(&rep_ratios(&rs, &ours, baseline, metric));
    Some(TargetCheck::new(what, measured, bound, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(case: &str, server: &str, rep: usize, throughput: f64, p99_us: f64) -> RunRecord {
        RunRecord {
            group: "echo".into(),
            case: case.into(),
            server: server.into(),
            ours: server == "ours",
            rep,
            unit: "frame".into(),
            figures: Some(Figures {
                throughput,
                p99_us,
                cpu_us_per: Some(1e6 / throughput),
                ..Figures::default()
            }),
            ..RunRecord::default()
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
    }

    #[test]
    fn ratios_pair_runs_of_the_same_rep() {
        // Throughput drifts between reps; the ratio in each rep does not.
        let runs = vec![
            run("c", "ours", 0, 200.0, 10.0),
            run("c", "base", 0, 100.0, 20.0),
            run("c", "ours", 1, 300.0, 10.0),
            run("c", "base", 1, 200.0, 20.0),
            run("c", "ours", 2, 100.0, 10.0),
            run("c", "base", 2, 40.0, 20.0),
        ];
        let rs = of_case(&runs, "echo", "c");
        assert_eq!(servers_of(&rs), ["ours", "base"]);
        assert_eq!(rep_ratios(&rs, "ours", "base", Metric::Throughput), [2.0, 1.5, 2.5]);
        assert_eq!(median_of(&rs, "ours", Metric::Throughput), Some(200.0));
        assert_eq!(median_of(&rs, "base", Metric::Throughput), Some(100.0));
        let t = ratio_target(&runs, ("echo", "c"), "base", Metric::Throughput, Bound::AtLeast, 1.15).unwrap();
        assert_eq!((t.measured, t.met()), (Some(2.0), Some(true)));
        let cpu = ratio_target(&runs, ("echo", "c"), "base", Metric::CpuPer, Bound::AtMost, 0.4).unwrap();
        assert_eq!(cpu.met(), Some(false), "{cpu:?}");
        assert!(ratio_target(&runs, ("echo", "c"), "nobody", Metric::P99, Bound::AtMost, 1.0).is_none());
    }

    #[test]
    fn a_missing_figure_drops_only_its_rep() {
        let mut runs = vec![
            run("c", "ours", 0, 200.0, 10.0),
            run("c", "base", 0, 100.0, 20.0),
            run("c", "ours", 1, 300.0, 10.0),
            run("c", "base", 1, 0.0, 20.0),
        ];
        runs.push(RunRecord { rep: 2, figures: None, ..run("c", "ours", 2, 1.0, 1.0) });
        runs.push(run("c", "base", 2, 50.0, 20.0));
        let rs = of_case(&runs, "echo", "c");
        assert_eq!(rep_ratios(&rs, "ours", "base", Metric::Throughput), [2.0]);
        assert_eq!(TargetCheck::new("x", None, Bound::AtLeast, 1.0).met(), None);
    }

    #[test]
    fn best_sustained_rate() {
        let fan = |server: &str, rate: u64, rep: usize, p99_ms: f64, share: f64| RunRecord {
            group: "chat-room".into(),
            case: format!("{rate} msgs/s"),
            server: server.into(),
            rep,
            rate: Some(rate),
            figures: Some(Figures {
                p99_us: p99_ms * 1000.0,
                delivered_share: Some(share),
                ..Figures::default()
            }),
            ..RunRecord::default()
        };
        let runs = vec![
            fan("a", 1000, 0, 10.0, 1.0),
            fan("a", 2000, 0, 30.0, 1.0),
            fan("a", 2000, 1, 60.0, 1.0),
            fan("a", 2000, 2, 40.0, 1.0),
            fan("a", 3000, 0, 20.0, 0.5),
            fan("b", 1000, 0, 80.0, 1.0),
        ];
        assert_eq!(best_rate(&runs, "chat-room", "a"), Some(2000), "median p99 40 ms; 3000 lost half");
        assert_eq!(best_rate(&runs, "chat-room", "b"), None);
        assert!(sustained(runs[0].figures.as_ref().unwrap()));
        assert!(!sustained(runs[4].figures.as_ref().unwrap()));
    }
}
