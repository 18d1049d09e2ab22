//! Login attempts per client address: a token bucket per address (IPv6
//! by /64, since one host usually has a whole prefix), in a table of bounded
//! size. I/O-free; times are unix milliseconds.
//!
//! When the table is full, buckets that refilled completely are dropped
//! first (they hold nothing worth remembering), then the least recently
//! used one: an attacker cycling through addresses evicts its own entries
//! and gains nothing over one address.

use std::collections::HashMap;
use std::net::IpAddr;

/// Addresses remembered at most.
pub const MAX_ADDRESSES: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// The per-address login limit.
pub struct LoginLimit {
    per_minute: u32,
    buckets: HashMap<IpAddr, Bucket>,
    max: usize,
}

/// The key of an address: IPv4 as is, IPv6 by its /64 prefix.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl LoginLimit {
    /// `per_minute` attempts per address a minute (also the burst); 0: no limit.
    pub fn new(per_minute: u32) -> LoginLimit {
        LoginLimit::with_capacity(per_minute, MAX_ADDRESSES)
    }

    /// Like [`LoginLimit::new`], remembering at most `max` addresses.
    pub fn with_capacity(per_minute: u32, max: usize) -> LoginLimit {
        LoginLimit { per_minute, buckets: HashMap::new(), max: max.max(1) }
    }

    /// Changes the rate (a reload).
    pub fn set_rate(&mut self, per_minute: u32) {
        self.per_minute = per_minute;
    }

    fn refill(&self, b: &mut Bucket, now_ms: u64) {
        let rate = f64::from(self.per_minute) / 60_000.0;
        b.tokens = (b.tokens + now_ms.saturating_sub(b.at_ms) as f64 * rate).min(f64::from(self.per_minute));
        b.at_ms = now_ms;
    }

    /// Whether `ip` may make an attempt now, without taking it: `Err(ms)`
    /// until the next one is allowed.
    pub fn check(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let Some(mut b) = self.buckets.get(&key(ip)).copied() else { return Ok(()) };
        self.refill(&mut b, now_ms);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - b.tokens) * 60_000.0 / f64::from(self.per_minute)).ceil() as u64)
        }
    }

    /// Takes one attempt for `ip`: `Err(ms)` if over the limit, with the
    /// time until the next one is allowed.
    pub fn take(&mut self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let k = key(ip);
        if !self.buckets.contains_key(&k) && self.buckets.len() >= self.max {
            self.evict(now_ms);
        }
        let full = f64::from(self.per_minute);
        let mut b = self.buckets.get(&k).copied().unwrap_or(Bucket { tokens: full, at_ms: now_ms });
        self.refill(&mut b, now_ms);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) * 60_000.0 / full).ceil() as u64)
        };
        self.buckets.insert(k, b);
        result
    }

    fn evict(&mut self, now_ms: u64) {
        let full = f64::from(self.per_minute);
        let rate = full / 60_000.0;
        self.buckets.retain(|_, b| b.tokens + now_ms.saturating_sub(b.at_ms) as f64 * rate < full);
        if self.buckets.len() >= self.max {
            if let Some(oldest) = self.buckets.iter().min_by_key(|(_, b)| b.at_ms).map(|(k, _)| *k) {
                self.buckets.remove(&oldest);
            }
        }
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True if no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut l = LoginLimit::new(6); // one every 10 s
        for _ in 0..6 {
            l.take(ip("10.0.0.1"), 0).unwrap();
        }
        assert_eq!(l.take(ip("10.0.0.1"), 0), Err(10_000));
        assert_eq!(l.check(ip("10.0.0.1"), 0), Err(10_000));
        assert!(l.check(ip("10.9.9.9"), 0).is_ok());
        assert!(l.take(ip("10.0.0.2"), 0).is_ok(), "another address has its own bucket");
        assert_eq!(l.take(ip("10.0.0.1"), 4_000), Err(6_000));
        assert!(l.take(ip("10.0.0.1"), 10_000).is_ok());
        assert!(LoginLimit::new(0).take(ip("10.0.0.1"), 0).is_ok(), "0: no limit");
    }

    #[test]
    fn ipv6_by_prefix_and_a_bounded_table() {
        let mut l = LoginLimit::with_capacity(1, 3);
        l.take(ip("2001:db8::1"), 0).unwrap();
        assert!(l.take(ip("2001:db8::2"), 0).is_err(), "same /64");
        for i in 0..100 {
            let _ = l.take(ip(&format!("10.0.{}.{}", i / 250, i % 250)), i);
            assert!(l.len() <= 3);
        }
        // A spent bucket is kept over the refilled ones.
        let mut l = LoginLimit::with_capacity(1, 2);
        l.take(ip("10.0.0.1"), 0).unwrap();
        l.take(ip("10.0.0.2"), 120_000).unwrap();
        l.take(ip("10.0.0.3"), 120_000).unwrap(); // 10.0.0.1 refilled: it goes
        assert!(l.take(ip("10.0.0.2"), 120_000).is_err());
    }
}
