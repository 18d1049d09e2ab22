//! SVG charts with plotters: per scenario, grouped bars of throughput and
//! of p99 (one bar per server per case, medians over reps); for the
//! rising-rate chat room, p99 and deliveries/s against the rate, one line
//! per server.

use super::render::GROUPS;
use super::stats::{median, median_of, of_case, servers_of, Metric, RunRecord};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const PALETTE: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// Writes every chart the runs allow into `dir`; the files written.
pub fn write_all(runs: &[RunRecord], dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for (group, title) in GROUPS {
        if !runs.iter().any(|r| r.group == group && r.figures.is_some()) {
            continue;
        }
        if group == "chat-room" || group == super::room_log::ROOM {
            for (metric, name, label) in [
                (Metric::P99, "p99", "p99 delivery latency, ms"),
                (Metric::Throughput, "throughput", "deliveries/s"),
            ] {
                let path = dir.join(format!("{group}-{name}.svg"));
                rate_lines(runs, group, metric, title, label, &path)?;
                written.push(path);
            }
            continue;
        }
        let metrics: &[(Metric, &str, &str)] = match group {
            "idle" => &[(Metric::Rss, "rss", "server RSS per connection, bytes")],
            "echo" => &[(Metric::Throughput, "throughput", "frames/s"), (Metric::P99, "p99", "p99, ms")],
            "http" => &[(Metric::Throughput, "throughput", "requests/s"), (Metric::P99, "p99", "p99, ms")],
            _ => &[
                (Metric::Throughput, "throughput", "deliveries/s"),
                (Metric::P99, "p99", "p99, ms"),
                (Metric::CpuPer, "cpu", "server µs per delivery"),
            ],
        };
        for &(metric, name, label) in metrics {
            let path = dir.join(format!("{group}-{name}.svg"));
            grouped_bars(runs, group, metric, title, label, &path)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Figures as charted: latency in ms, the rest as is.
fn scaled(metric: Metric, v: f64) -> f64 {
    if metric == Metric::P99 {
        v / 1000.0
    } else {
        v
    }
}

/// An axis value in few characters: 1.5M, 250k, 12, 0.5.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if x.fract().abs() < 1e-9 || x.abs() >= 100.0 { 0 } else { 1 };
    format!("{x:.digits$}{suffix}")
}

/// Shorter case labels for the x axis.
fn short(case: &str) -> String {
    case.replace(" conns", "c")
        .replace(", depth ", " d")
        .replace(", pipeline ", " p")
        .replace(" msgs/s", "/s")
}

fn grouped_bars(
    runs: &[RunRecord],
    group: &str,
    metric: Metric,
    title: &str,
    label: &str,
    path: &Path,
) -> Result<(), String> {
    let in_group: Vec<&RunRecord> = runs.iter().filter(|r| r.group == group).collect();
    let servers = servers_of(&in_group);
    let mut cases: Vec<String> = Vec::new();
    for r in &in_group {
        if !cases.contains(&r.case) {
            cases.push(r.case.clone());
        }
    }
    // One slot per server and a gap after each case.
    let slots = servers.len() + 1;
    let total = cases.len() * slots;
    let values: Vec<Vec<Option<f64>>> = cases
        .iter()
        .map(|c| {
            let rs = of_case(runs, group, c);
            servers.iter().map(|s| median_of(&rs, s, metric).map(|v| scaled(metric, v))).collect()
        })
        .collect();
    let top = values.iter().flatten().flatten().copied().fold(0.0, f64::max).max(1e-9) * 1.15;
    let width = (180 + total * 34).max(720) as u32;
    let root = SVGBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((0..total).into_segmented(), 0.0..top)
        .map_err(err)?;
    let middle = servers.len().saturating_sub(1) / 2;
    let labels = cases.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(total + 1)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % slots == middle => {
                labels.get(i / slots).map_or(String::new(), |c| short(c))
            }
            _ => String::new(),
        })
        .y_desc(label)
        .y_label_formatter(&|v| compact(*v))
        .draw()
        .map_err(err)?;
    for (k, server) in servers.iter().enumerate() {
        let c = color(k);
        let data: Vec<(usize, f64)> =
            values.iter().enumerate().filter_map(|(i, row)| row[k].map(|v| (i * slots + k, v))).collect();
        chart
            .draw_series(Histogram::vertical(&chart).style(c.filled()).margin(2).data(data))
            .map_err(err)?
            .label(server.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

fn rate_lines(
    runs: &[RunRecord],
    group: &str,
    metric: Metric,
    title: &str,
    label: &str,
    path: &Path,
) -> Result<(), String> {
    let in_group: Vec<&RunRecord> = runs.iter().filter(|r| r.group == group).collect();
    let servers = servers_of(&in_group);
    let series: Vec<Vec<(f64, f64)>> = servers
        .iter()
        .map(|s| {
            let mut rates: Vec<u64> =
                in_group.iter().filter(|r| &r.server == s).filter_map(|r| r.rate).collect();
            rates.sort_unstable();
            rates.dedup();
            rates
                .into_iter()
                .filter_map(|rate| {
                    let v: Vec<f64> = in_group
                        .iter()
                        .filter(|r| &r.server == s && r.rate == Some(rate))
                        .filter_map(|r| r.figures.as_ref()?.get(metric))
                        .collect();
                    Some((rate as f64, scaled(metric, median(&v)?).max(1e-3)))
                })
                .collect()
        })
        .collect();
    let points = series.iter().flatten();
    let max_x = points.clone().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let max_y = points.clone().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let min_y = points.map(|p| p.1).fold(f64::INFINITY, f64::min).min(max_y / 10.0) * 0.7;
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..max_x, (min_y..max_y).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("messages/s (1 sender, 999 deliveries each)")
        .y_desc(label)
        .draw()
        .map_err(err)?;
    if metric == Metric::P99 {
        // The 50 ms line that "sustained" is judged by.
        chart
            .draw_series(LineSeries::new([(0.0, 50.0), (max_x, 50.0)], BLACK.mix(0.4).stroke_width(1)))
            .map_err(err)?
            .label("50 ms")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
    }
    for (k, (server, points)) in servers.iter().zip(series).enumerate() {
        let c = color(k);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(server.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::stats::Figures;

    #[test]
    fn axis_values_are_compact() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(2_500_000.0), "2.5M");
        assert_eq!(compact(500_000.0), "500k");
        assert_eq!(compact(0.5), "0.5");
    }

    #[test]
    fn charts_are_svg_files() {
        let dir = std::env::temp_dir().join(format!("loadgen-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |group: &str, case: &str, server: &str, rate| RunRecord {
            group: group.into(),
            case: case.into(),
            server: server.into(),
            ours: server == "ours",
            rate,
            figures: Some(Figures { throughput: 1000.0, p99_us: 2000.0, ..Figures::default() }),
            ..RunRecord::default()
        };
        let runs = vec![
            run("echo", "64 B, 100 conns, depth 1", "ours", None),
            run("echo", "64 B, 100 conns, depth 1", "base", None),
            run("chat-room", "100 msgs/s", "ours", Some(100)),
            run("chat-room", "200 msgs/s", "ours", Some(200)),
        ];
        let files = write_all(&runs, &dir).unwrap();
        assert_eq!(files.len(), 4, "{files:?}");
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.starts_with("<svg") && text.contains("ours"), "{}", f.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
