//! Command-line values with units: durations (`10s`, `500ms`, `2m`), sizes
//! (`64`, `4k`, `1MiB`) and counts (`19000`, `100k`).

use std::time::Duration;

/// Splits `"12.5ms"` into `(12.5, "ms")`.
fn split_number(s: &str) -> Result<(f64, &str), String> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if num.is_empty() {
        return Err(format!("'{s}': expected a number first"));
    }
    let value: f64 = num.parse().map_err(|_| format!("'{s}': bad number '{num}'"))?;
    Ok((value, unit.trim()))
}

/// A duration: a number with `ns`, `us`, `ms`, `s`, `m` or `h`; a bare number
/// is seconds. Fractions are allowed (`1.5s`).
pub fn duration(s: &str) -> Result<Duration, String> {
    let (value, unit) = split_number(s)?;
    let seconds = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("'{s}': unknown time unit '{other}' (use ns, us, ms, s, m, h)")),
    };
    let total = value * seconds;
    if !total.is_finite() || total > 1e9 {
        return Err(format!("'{s}': duration too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// A size in bytes: a number with `k`/`K`/`KiB` (1024) or `m`/`M`/`MiB`
/// (1024²), or a bare number of bytes. `B` may follow (`4kB`).
pub fn size(s: &str) -> Result<usize, String> {
    let (value, unit) = split_number(s)?;
    let scale = match unit.trim_end_matches(['B', 'b']).to_ascii_lowercase().trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("'{s}': unknown size unit '{unit}' (use k, m, g)")),
    };
    whole(value * scale, s)
}

/// A count: a number with `k` (1000) or `m` (10⁶), or a bare number
/// (`100k` frames/s, `19000` connections).
pub fn count(s: &str) -> Result<u64, String> {
    let (value, unit) = split_number(s)?;
    let scale = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "m" | "M" => 1e6,
        other => return Err(format!("'{s}': unknown count suffix '{other}' (use k or m)")),
    };
    whole(value * scale, s).map(|n| n as u64)
}

/// [`count`] as a `usize`.
pub fn count_usize(s: &str) -> Result<usize, String> {
    count(s).and_then(|n| usize::try_from(n).map_err(|_| format!("'{s}': too large")))
}

fn whole(v: f64, original: &str) -> Result<usize, String> {
    if v.fract() != 0.0 {
        return Err(format!("'{original}': not a whole number"));
    }
    if !(0.0..=(u32::MAX as f64) * 1024.0).contains(&v) {
        return Err(format!("'{original}': out of range"));
    }
    Ok(v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert!(duration("s").is_err());
        assert!(duration("10x").is_err());
        assert!(duration("-1s").is_err());
        assert!(duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("64"), Ok(64));
        assert_eq!(size("64B"), Ok(64));
        assert_eq!(size("4k"), Ok(4096));
        assert_eq!(size("4KiB"), Ok(4096));
        assert_eq!(size("4kB"), Ok(4096));
        assert_eq!(size("1m"), Ok(1 << 20));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("0.5k"), Ok(512));
        assert!(size("1.3").is_err());
        assert!(size("12q").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(count("19000"), Ok(19_000));
        assert_eq!(count("100k"), Ok(100_000));
        assert_eq!(count("1.5m"), Ok(1_500_000));
        assert_eq!(count_usize("10k"), Ok(10_000));
        assert!(count("1.5").is_err());
        assert!(count("7z").is_err());
    }
}
