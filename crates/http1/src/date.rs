//! The `Date` header value (RFC 9110 section 5.6.7, IMF-fixdate), formatted
//! once per second per event loop rather than per response.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const DATE_LEN: usize = 29;

/// One loop's formatted date, refreshed when its second is over.
pub(crate) struct DateCache {
    text: [u8; DATE_LEN],
    /// When `text` goes stale; `None` before the first use.
    stale_at: Option<Instant>,
}

impl DateCache {
    pub(crate) fn new() -> DateCache {
        DateCache { text: [b' '; DATE_LEN], stale_at: None }
    }

    /// The date at `now` (the loop's clock for this turn).
    pub(crate) fn get(&mut self, now: Instant) -> &[u8; DATE_LEN] {
        if self.stale_at.is_none_or(|t| now >= t) {
            let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            self.text = imf_fixdate(since_epoch.as_secs());
            // Stale at the next wall-clock second.
            let left = Duration::from_secs(1)
                .saturating_sub(Duration::from_nanos(since_epoch.subsec_nanos().into()));
            self.stale_at = Some(now + left);
        }
        &self.text
    }
}

/// Formats seconds since the Unix epoch as an IMF-fixdate.
pub(crate) fn imf_fixdate(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = [0u8; DATE_LEN];
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]); // 1970-01-01 was a Thursday
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(day));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(rem / 3600));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(rem / 60 % 60));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(rem % 60));
    out[25..].copy_from_slice(b" GMT");
    out
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01, by Howard
/// Hinnant's `civil_from_days` for the proleptic Gregorian calendar.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&imf_fixdate(1_709_251_199), b"Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(&imf_fixdate(4_102_444_800), b"Fri, 01 Jan 2100 00:00:00 GMT");
    }

    #[test]
    fn cache_refreshes_after_a_second() {
        let mut cache = DateCache::new();
        let t0 = Instant::now();
        let first = *cache.get(t0);
        assert!(first.ends_with(b" GMT"));
        assert_eq!(cache.get(t0), &first, "same turn, same text");
        assert!(cache.stale_at.is_some_and(|t| t <= t0 + Duration::from_secs(1)));
    }
}
