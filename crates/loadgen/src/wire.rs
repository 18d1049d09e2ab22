//! The framed echo wire format: a 4-byte big-endian length, then the
//! payload. Our payloads carry a sequence number, the send time, and a fill
//! pattern derived from the sequence number, so that every echo can be
//! checked (order, length, content) and timed without per-frame state.
//!
//! Payload layout: `seq: u64 BE | stamp_ns: u64 BE | fill`, fill byte `i`
//! (counted from the payload start) being `seq as u8 + i as u8`.

use std::fmt;

/// Length prefix size.
pub const HEADER: usize = 4;
/// Smallest payload that holds the sequence number and the time stamp.
pub const MIN_PAYLOAD: usize = 16;

#[cfg(test)]
fn fill(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_add(i as u8)
}

/// Every byte value twice in a row: any 256-byte run of the fill is one
/// slice of it, so fill is written and checked with `memcpy`/`memcmp`
/// rather than byte by byte (the generator checks every echoed byte, and
/// at 1 KiB frames a byte loop was a third of its CPU).
static PATTERN: [u8; 512] = {
    let mut t = [0u8; 512];
    let mut i = 0;
    while i < 512 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

/// The fill of bytes `from..to` of payload `seq`, in slices of at most 256
/// bytes, each with its start offset.
fn fill_runs(seq: u64, from: usize, to: usize) -> impl Iterator<Item = (usize, &'static [u8])> {
    (from..to).step_by(256).map(move |at| {
        let start = usize::from((seq as u8).wrapping_add(at as u8));
        (at, &PATTERN[start..start + (to - at).min(256)])
    })
}

/// Appends one frame of a `size`-byte payload.
pub fn encode(out: &mut Vec<u8>, size: usize, seq: u64, stamp_ns: u64) {
    out.reserve(HEADER + size);
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&stamp_ns.to_be_bytes());
    for (_, run) in fill_runs(seq, MIN_PAYLOAD, size) {
        out.extend_from_slice(run);
    }
}

/// The next whole frame at the start of `buf`: its payload and the bytes it
/// takes (header included); `None` if it has not all arrived yet.
pub fn next_frame(buf: &[u8], max_payload: usize) -> Result<Option<(&[u8], usize)>, String> {
    let Some(head) = buf.get(..HEADER) else { return Ok(None) };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > max_payload {
        return Err(format!("reply announces {len} bytes, over the {max_payload} expected"));
    }
    Ok(buf.get(HEADER..HEADER + len).map(|payload| (payload, HEADER + len)))
}

/// A checked reply: which frame it echoes, and when that was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Sequence number.
    pub seq: u64,
    /// Send (or, open loop, scheduled) time, ns from the run's start.
    pub stamp_ns: u64,
}

/// How a reply differs from what was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Wrong payload length.
    Length {
        /// Received.
        got: usize,
        /// Sent.
        want: usize,
    },
    /// Out of order (or not ours).
    Seq {
        /// Received.
        got: u64,
        /// Expected.
        want: u64,
    },
    /// Content changed at this payload offset.
    Fill {
        /// Offset of the first wrong byte.
        at: usize,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Mismatch::Length { got, want } => write!(f, "reply of {got} bytes to a {want}-byte frame"),
            Mismatch::Seq { got, want } => write!(f, "reply to frame {got} where {want} was expected"),
            Mismatch::Fill { at } => write!(f, "reply content differs at byte {at}"),
        }
    }
}

/// Checks an echoed payload against what frame `expect_seq` of `size` bytes
/// must have been.
pub fn verify(payload: &[u8], size: usize, expect_seq: u64) -> Result<Reply, Mismatch> {
    if payload.len() != size || size < MIN_PAYLOAD {
        return Err(Mismatch::Length { got: payload.len(), want: size });
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let (seq, stamp_ns) = (word(0), word(8));
    if seq != expect_seq {
        return Err(Mismatch::Seq { got: seq, want: expect_seq });
    }
    for (at, run) in fill_runs(seq, MIN_PAYLOAD, size) {
        let got = &payload[at..at + run.len()];
        if got != run {
            let off = got.iter().zip(run).position(|(a, b)| a != b).unwrap_or(0);
            return Err(Mismatch::Fill { at: at + off });
        }
    }
    Ok(Reply { seq, stamp_ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut wire = Vec::new();
        encode(&mut wire, 64, 7, 123_456);
        encode(&mut wire, 16, 8, 999);
        assert_eq!(wire.len(), 4 + 64 + 4 + 16);
        assert_eq!(&wire[..4], &[0, 0, 0, 64]);
        let (p, used) = next_frame(&wire, 1 << 20).unwrap().unwrap();
        assert_eq!(used, 68);
        assert_eq!(verify(p, 64, 7), Ok(Reply { seq: 7, stamp_ns: 123_456 }));
        let (p, used2) = next_frame(&wire[used..], 1 << 20).unwrap().unwrap();
        assert_eq!(used2, 20);
        assert_eq!(verify(p, 16, 8), Ok(Reply { seq: 8, stamp_ns: 999 }));
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut wire = Vec::new();
        encode(&mut wire, 32, 1, 2);
        for cut in 0..wire.len() {
            assert_eq!(next_frame(&wire[..cut], 64).unwrap(), None, "cut at {cut}");
        }
        assert!(next_frame(&wire, 64).unwrap().is_some());
    }

    #[test]
    fn oversized_length_is_an_error() {
        assert!(next_frame(&[0, 0, 1, 0, 0], 255).is_err());
    }

    #[test]
    fn mismatches_are_found() {
        let mut wire = Vec::new();
        encode(&mut wire, 40, 300, 5);
        let payload = &wire[4..];
        assert_eq!(verify(payload, 40, 301), Err(Mismatch::Seq { got: 300, want: 301 }));
        assert_eq!(verify(&payload[..39], 40, 300), Err(Mismatch::Length { got: 39, want: 40 }));
        let mut bad = payload.to_vec();
        bad[33] ^= 0x10;
        assert_eq!(verify(&bad, 40, 300), Err(Mismatch::Fill { at: 33 }));
    }

    #[test]
    fn fill_is_the_byte_rule_across_runs_of_the_table() {
        for seq in [0u64, 1, 255, 256, 300, u64::MAX] {
            for size in [16, 17, 271, 272, 273, 1024, 1500] {
                let mut wire = Vec::new();
                encode(&mut wire, size, seq, 9);
                let payload = &wire[HEADER..];
                assert_eq!(payload.len(), size);
                for (i, &b) in payload.iter().enumerate().skip(MIN_PAYLOAD) {
                    assert_eq!(b, fill(seq, i), "seq {seq} size {size} byte {i}");
                }
                assert!(verify(payload, size, seq).is_ok());
                for at in (MIN_PAYLOAD..size).step_by(97).chain([size - 1]).filter(|&at| at >= MIN_PAYLOAD) {
                    let mut bad = payload.to_vec();
                    bad[at] ^= 1;
                    assert_eq!(verify(&bad, size, seq), Err(Mismatch::Fill { at }), "seq {seq} size {size}");
                }
            }
        }
    }
}
