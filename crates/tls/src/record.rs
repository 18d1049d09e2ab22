//! Where the peer's byte stream stands in TLS record framing: between
//! records, or inside one. rustls does not say whether its buffer holds
//! part of a record when the peer closes; this does, from the 5-byte record
//! headers alone (type, version, 16-bit length), so that a peer stopping
//! mid-record is told apart from one that closes cleanly. I/O-free.

/// The record layer's position, fed every byte the peer sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordCursor {
    /// Header bytes of the next record seen so far (0 to 4).
    head_seen: u8,
    /// The high byte of that record's length, once seen.
    len_hi: u8,
    /// Body bytes of the current record still to come.
    body_left: u16,
}

/// Bytes in a TLS record header.
const HEADER: u8 = 5;

impl RecordCursor {
    /// Moves past `bytes`, the next bytes of the stream.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let take = bytes.len().min(usize::from(self.body_left));
                self.body_left -= take as u16;
                bytes = &bytes[take..];
                continue;
            }
            let b = bytes[0];
            bytes = &bytes[1..];
            match self.head_seen {
                3 => {
                    self.len_hi = b;
                    self.head_seen += 1;
                }
                4 => {
                    self.body_left = u16::from_be_bytes([self.len_hi, b]);
                    self.head_seen = 0;
                }
                _ => self.head_seen += 1,
            }
            debug_assert!(self.head_seen < HEADER);
        }
    }

    /// True if the stream stopped inside a record (its header or its body).
    pub(crate) fn mid_record(&self) -> bool {
        self.head_seen > 0 || self.body_left > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: u16) -> Vec<u8> {
        let mut r = vec![0x17, 0x03, 0x03];
        r.extend_from_slice(&len.to_be_bytes());
        r.extend(std::iter::repeat_n(0xAB, usize::from(len)));
        r
    }

    #[test]
    fn whole_records_leave_it_between_records() {
        let mut c = RecordCursor::default();
        assert!(!c.mid_record());
        let stream: Vec<u8> = [record(10), record(0), record(16_401)].concat();
        c.feed(&stream);
        assert!(!c.mid_record());
    }

    #[test]
    fn any_split_point_is_tracked() {
        let stream: Vec<u8> = [record(3), record(300), record(1)].concat();
        let ends = [8, 8 + 305, stream.len()];
        for cut in 0..=stream.len() {
            let mut c = RecordCursor::default();
            c.feed(&stream[..cut]);
            let at_boundary = cut == 0 || ends.contains(&cut);
            assert_eq!(c.mid_record(), !at_boundary, "cut at {cut}");
            // Byte by byte, the rest brings it back to a boundary.
            for b in &stream[cut..] {
                c.feed(std::slice::from_ref(b));
            }
            assert!(!c.mid_record(), "cut at {cut}, then the rest");
        }
    }

    #[test]
    fn a_header_alone_is_mid_record() {
        let mut c = RecordCursor::default();
        c.feed(&[0x16, 0x03, 0x01, 0x00, 0x05]);
        assert!(c.mid_record());
        c.feed(&[1, 2, 3, 4, 5]);
        assert!(!c.mid_record());
    }

    #[test]
    fn it_is_small() {
        assert!(std::mem::size_of::<RecordCursor>() <= 4);
    }
}
