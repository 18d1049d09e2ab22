//! The payload of a fan-out message: who sent it, its place in the
//! sender's sequence and when it was scheduled, so that every member can
//! check order and time the delivery without shared state.
//!
//! Layout, all ASCII so that it is valid UTF-8 (the chat protocol carries
//! text): `run` (8 hex digits), `sender` (8), `seq` (16), `sched_ns` (16),
//! then a fill of letters derived from `seq` up to the size asked for.

use std::fmt;

/// Bytes the stamp takes before the fill: the smallest payload.
pub const STAMP_LEN: usize = 48;
/// The largest payload.
pub const MAX_PAYLOAD: usize = 60 << 10;

/// `a` to `z` over and over: every fill is a slice of it, so that writing
/// and checking one is a copy and a comparison.
static ALPHABET: [u8; MAX_PAYLOAD + 26] = {
    let mut a = [0; MAX_PAYLOAD + 26];
    let mut i = 0;
    while i < a.len() {
        a[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    a
};

/// What a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The run that sent it (another run's messages are ignored).
    pub run: u32,
    /// The sender's index.
    pub sender: u32,
    /// The sender's sequence number, from 0.
    pub seq: u64,
    /// Scheduled send time, ns from the run's start.
    pub sched_ns: u64,
}

/// Why a payload is not a stamp of this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StampError {
    /// Not a stamp, or another run's: not ours to check.
    Foreign,
    /// Ours, but damaged.
    Corrupt(String),
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StampError::Foreign => f.write_str("not a message of this run"),
            StampError::Corrupt(why) => write!(f, "corrupt message: {why}"),
        }
    }
}

/// The fill of a payload of sequence number `seq` from byte `STAMP_LEN`
/// on, `len` bytes: the alphabet in turn, from a letter `seq` picks.
fn fill(seq: u64, len: usize) -> &'static [u8] {
    let first = ((seq % 26) as usize + STAMP_LEN % 26) % 26;
    &ALPHABET[first..first + len.min(MAX_PAYLOAD)]
}

fn put_hex(out: &mut Vec<u8>, v: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend((0..digits).rev().map(|d| HEX[((v >> (4 * d)) & 0xf) as usize]));
}

/// The value of lowercase hex digits; `None` if one is not.
fn hex(digits: &[u8]) -> Option<u64> {
    // A table, and one test at the end: this runs for every delivery.
    const VALUE: [u8; 256] = {
        let mut t = [0xff; 256];
        let mut i = 0;
        while i < 16 {
            t[b"0123456789abcdef"[i] as usize] = i as u8;
            i += 1;
        }
        t
    };
    let mut acc = 0u64;
    let mut bad = 0u8;
    for &c in digits {
        let v = VALUE[usize::from(c)];
        bad |= v;
        acc = acc << 4 | u64::from(v & 0xf);
    }
    (bad & 0xf0 == 0).then_some(acc)
}

impl Stamp {
    /// Replaces `out` with this stamp's payload of `size` bytes (at least
    /// [`STAMP_LEN`]).
    pub fn encode(&self, out: &mut Vec<u8>, size: usize) {
        out.clear();
        put_hex(out, u64::from(self.run), 8);
        put_hex(out, u64::from(self.sender), 8);
        put_hex(out, self.seq, 16);
        put_hex(out, self.sched_ns, 16);
        out.extend_from_slice(fill(self.seq, size.saturating_sub(STAMP_LEN)));
    }

    /// Reads a payload that should be run `run`'s, of `size` bytes.
    pub fn decode(payload: &[u8], run: u32, size: usize) -> Result<Stamp, StampError> {
        let field = |from: usize, to: usize| payload.get(from..to).and_then(hex);
        match field(0, 8) {
            Some(r) if r == u64::from(run) => {}
            _ => return Err(StampError::Foreign),
        }
        let corrupt = |why: &str| StampError::Corrupt(why.to_string());
        if payload.len() != size {
            return Err(StampError::Corrupt(format!("{} bytes where {size} were sent", payload.len())));
        }
        let sender = field(8, 16).ok_or_else(|| corrupt("sender"))?;
        let seq = field(16, 32).ok_or_else(|| corrupt("sequence number"))?;
        let sched_ns = field(32, 48).ok_or_else(|| corrupt("time stamp"))?;
        let (rest, want) = (&payload[STAMP_LEN..], fill(seq, size - STAMP_LEN));
        if rest != want {
            let at = STAMP_LEN + rest.iter().zip(want).position(|(a, b)| a != b).unwrap_or(want.len());
            return Err(StampError::Corrupt(format!("content differs at byte {at}")));
        }
        Ok(Stamp { run, sender: sender as u32, seq, sched_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_as_text() {
        let s = Stamp { run: 0xdead_beef, sender: 7, seq: u64::MAX - 1, sched_ns: 123_456_789_012 };
        let mut buf = Vec::new();
        for size in [STAMP_LEN, 64, 1000] {
            s.encode(&mut buf, size);
            assert_eq!(buf.len(), size);
            assert!(std::str::from_utf8(&buf).is_ok(), "chat texts must be UTF-8");
            assert_eq!(Stamp::decode(&buf, 0xdead_beef, size), Ok(s));
        }
        assert_eq!(&buf[..16], b"deadbeef00000007");
        // The fill runs through the alphabet from a letter the sequence picks.
        assert_eq!(&buf[48..52], b"klmn", "(u64::MAX - 1 + 48) mod 26 = 10: k");
    }

    #[test]
    fn other_runs_and_chatter_are_foreign() {
        let mut buf = Vec::new();
        Stamp { run: 1, sender: 0, seq: 0, sched_ns: 0 }.encode(&mut buf, 64);
        assert_eq!(Stamp::decode(&buf, 2, 64), Err(StampError::Foreign));
        assert_eq!(Stamp::decode(b"hello everyone", 1, 64), Err(StampError::Foreign));
        assert_eq!(Stamp::decode(b"", 1, 64), Err(StampError::Foreign));
    }

    #[test]
    fn damage_is_found() {
        let mut buf = Vec::new();
        Stamp { run: 9, sender: 3, seq: 41, sched_ns: 5 }.encode(&mut buf, 64);
        assert!(matches!(Stamp::decode(&buf[..63], 9, 64), Err(StampError::Corrupt(_))));
        let mut bad = buf.clone();
        bad[60] = b'#';
        assert_eq!(Stamp::decode(&bad, 9, 64), Err(StampError::Corrupt("content differs at byte 60".into())));
        let mut bad = buf.clone();
        bad[20] = b'G';
        assert!(matches!(Stamp::decode(&bad, 9, 64), Err(StampError::Corrupt(_))));
    }
}
