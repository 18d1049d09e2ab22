//! Statistics: latency histograms (HdrHistogram, recorded in nanoseconds,
//! reported in microseconds), the generator's own CPU use and the
//! server's, and the spread of per-client rates.

use crate::report::ServerCpu;
use crate::sys;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Largest latency recorded as itself (larger ones count as this).
const MAX_NS: u64 = 3_600 * 1_000_000_000;

/// Latencies of one thread or of the whole run, in nanoseconds.
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Latency {
        // Three significant digits: 0.1% precision from 1 ns to an hour.
        let hist = Histogram::new_with_bounds(1, MAX_NS, 3).expect("constant histogram bounds are valid");
        Latency { hist }
    }
}

impl Latency {
    /// Records one latency.
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
    }

    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Percentiles in microseconds.
    pub fn summary(&self) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1000.0;
        let n = self.hist.len();
        let q = |p: f64| if n == 0 { 0.0 } else { us(self.hist.value_at_quantile(p)) };
        LatencySummary {
            samples: n,
            mean_us: if n == 0 { 0.0 } else { self.hist.mean() / 1000.0 },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if n == 0 { 0.0 } else { us(self.hist.max()) },
        }
    }
}

/// Latency percentiles of a run, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Replies measured.
    pub samples: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// User plus system CPU time of this process, all threads.
pub fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes into the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU time over wall time, as a percentage of one core (200% is two full cores).
pub fn cpu_percent(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
}

/// Measures this process's CPU use from a starting point.
#[derive(Clone, Copy)]
pub struct CpuMeter {
    wall: Instant,
    cpu: Duration,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start() -> CpuMeter {
        CpuMeter { wall: Instant::now(), cpu: process_cpu() }
    }

    /// CPU use since the start, as a percentage of one core.
    pub fn percent(&self) -> f64 {
        cpu_percent(process_cpu().saturating_sub(self.cpu), self.wall.elapsed())
    }
}

/// Measures another process's (the server's) CPU time from a starting point.
pub struct ServerMeter {
    pids: Vec<u32>,
    wall: Instant,
    cpu: Duration,
}

/// The CPU time of every process in `pids`, summed.
fn cpu_of(pids: &[u32]) -> Result<Duration, String> {
    pids.iter().map(|&pid| sys::cpu_time(pid).map_err(|e| format!("server pid {pid}: {e}"))).sum()
}

impl ServerMeter {
    /// Starts measuring processes `pids` (a server; or the nodes of a
    /// cluster and their Redis, summed) now.
    pub fn start(pids: &[u32]) -> Result<ServerMeter, String> {
        let cpu = cpu_of(pids)?;
        Ok(ServerMeter { pids: pids.to_vec(), wall: Instant::now(), cpu })
    }

    /// The servers' CPU time since the start.
    pub fn finish(&self) -> Result<ServerCpu, String> {
        let cpu = cpu_of(&self.pids)?;
        let spent = cpu.saturating_sub(self.cpu);
        Ok(ServerCpu {
            pid: self.pids.first().copied().unwrap_or(0),
            also: self.pids.get(1..).unwrap_or_default().to_vec(),
            cpu_s: spent.as_secs_f64(),
            cpu_percent: cpu_percent(spent, self.wall.elapsed()),
            us_per: Default::default(),
        })
    }
}

/// Min, mean, max and standard deviation of per-client rates (the shape of
/// `nats bench`'s aggregate line).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Clients counted.
    pub clients: usize,
    /// Slowest.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Fastest.
    pub max: f64,
    /// Population standard deviation.
    pub stddev: f64,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Spread::default();
        }
        let n = v.len() as f64;
        let avg = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - avg) * (x - avg)).sum::<f64>() / n;
        Spread {
            clients: v.len(),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            avg,
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            stddev: var.sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 0.001 + 1e-9
    }

    #[test]
    fn percentiles_of_known_samples() {
        let mut l = Latency::default();
        for us in 1..=1000u64 {
            l.record(us * 1000);
        }
        let s = l.summary();
        assert_eq!(s.samples, 1000);
        assert!(close(s.p50_us, 500.0), "{s:?}");
        assert!(close(s.p90_us, 900.0), "{s:?}");
        assert!(close(s.p99_us, 990.0), "{s:?}");
        assert!(close(s.p999_us, 999.0), "{s:?}");
        assert!(close(s.max_us, 1000.0), "{s:?}");
        assert!(close(s.mean_us, 500.5), "{s:?}");
    }

    #[test]
    fn merged_histograms_sum_their_samples() {
        let (mut a, mut b) = (Latency::default(), Latency::default());
        for _ in 0..99 {
            a.record(10_000);
        }
        b.record(5_000_000);
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.samples, 100);
        assert!(close(s.p50_us, 10.0) && close(s.p99_us, 10.0), "{s:?}");
        assert!(close(s.max_us, 5000.0), "{s:?}");
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(Latency::default().summary(), LatencySummary::default());
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut l = Latency::default();
        l.record(0);
        l.record(u64::MAX);
        assert_eq!(l.summary().samples, 2);
    }

    #[test]
    fn spread_of_rates() {
        let s = Spread::of([1.0, 2.0, 3.0, 4.0]);
        assert_eq!((s.clients, s.min, s.avg, s.max), (4, 1.0, 2.5, 4.0));
        assert!((s.stddev - 1.118_034).abs() < 1e-5, "{s:?}");
        assert_eq!(Spread::of([]), Spread::default());
    }

    #[test]
    fn server_meter_reads_this_process() {
        let me = std::process::id();
        let m = ServerMeter::start(&[me]).unwrap();
        let s = m.finish().unwrap();
        assert!(s.cpu_s >= 0.0 && s.pid == me && s.also.is_empty());
        assert!(ServerMeter::start(&[u32::MAX]).is_err());
        // Several processes (a cluster's nodes and Redis): summed.
        let two = ServerMeter::start(&[me, me]).unwrap().finish().unwrap();
        assert_eq!(two.also, vec![me]);
    }

    #[test]
    fn cpu_percent_of_one_core() {
        assert_eq!(cpu_percent(Duration::from_millis(500), Duration::from_secs(1)), 50.0);
        assert_eq!(cpu_percent(Duration::from_secs(3), Duration::from_secs(2)), 150.0);
        assert_eq!(cpu_percent(Duration::from_secs(1), Duration::ZERO), 0.0);
    }

    #[test]
    fn cpu_meter_sees_a_busy_loop() {
        let meter = CpuMeter::start();
        let end = Instant::now() + Duration::from_millis(100);
        let mut x = 0u64;
        while Instant::now() < end {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        // Some of a core even on a loaded machine (other test threads of
        // this process may add theirs, so no upper bound).
        let p = meter.percent();
        assert!(p > 5.0, "{p}");
    }
}
