//! Decoder behaviour beyond the reference suites: field widths and byte orders, corrupt heads,
//! the maximum and discard mode, `decode_eof`, `peek` and `bytes_needed`.

use bytes::BytesMut;
use framing::{Endian, FrameConfig, FrameDecoder, FrameError, FrameSpan};

fn config(len: usize, endian: Endian) -> FrameConfig {
    FrameConfig::builder().length_field_length(len).endian(endian).build().unwrap()
}

/// `value` as a `len`-byte field, written by hand rather than by the encoder under test.
fn field(value: u64, len: usize, endian: Endian) -> Vec<u8> {
    match endian {
        Endian::Big => value.to_be_bytes()[8 - len..].to_vec(),
        _ => value.to_le_bytes()[..len].to_vec(),
    }
}

#[test]
fn every_field_width_in_both_byte_orders() {
    let payload = b"twelve bytes";
    for len in [1, 2, 3, 4, 8] {
        for endian in [Endian::Big, Endian::Little] {
            let config = config(len, endian);
            let mut wire = field(payload.len() as u64, len, endian);
            wire.extend_from_slice(payload);

            let mut encoded = BytesMut::new();
            config.encode(payload, &mut encoded).unwrap();
            assert_eq!(&encoded[..], &wire[..], "{len} bytes {endian:?}");

            let mut dec = FrameDecoder::new(config);
            let mut buf = BytesMut::from(&wire[..]);
            let frame = dec.decode(&mut buf).unwrap().unwrap();
            assert_eq!(&frame[..], payload, "{len} bytes {endian:?}");
        }
    }
}

#[test]
fn field_byte_order_is_not_symmetric() {
    // 0x0100 little-endian reads as 1 byte of payload, big-endian as 256.
    let mut dec = FrameDecoder::new(config(2, Endian::Little));
    let mut buf = BytesMut::from(&b"\x01\x00x"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b"x"[..]));

    let mut dec = FrameDecoder::new(config(2, Endian::Big));
    let mut buf = BytesMut::from(&b"\x01\x00x"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.bytes_needed(&buf), Some(255));
}

#[test]
fn empty_frames() {
    let mut dec = FrameDecoder::new(FrameConfig::default());
    let mut buf = BytesMut::from(&[0u8; 12][..]);
    for _ in 0..3 {
        assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b""[..]));
    }
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
}

#[test]
fn default_max_accepts_one_mib_payload() {
    let payload = vec![7u8; 1 << 20];
    let config = FrameConfig::default();
    let mut buf = BytesMut::new();
    config.encode(&payload, &mut buf).unwrap();
    buf.extend_from_slice(&[0x00, 0x10, 0x00, 0x01]); // 1 MiB + 1: refused
    let mut dec = FrameDecoder::new(config);
    assert_eq!(dec.decode(&mut buf).unwrap().unwrap().len(), 1 << 20);
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: (1 << 20) + 1, max: 1 << 20 }));
}

#[test]
fn max_bounds_the_body_not_the_header() {
    // Offset 2, 2-byte field counting itself (adjustment -2): the body is field - 2 bytes.
    let config = FrameConfig::builder()
        .length_field_offset(2)
        .length_field_length(2)
        .length_adjustment(-2)
        .max_frame_length(3)
        .build()
        .unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"hh\x00\x05abchh\x00\x06abcd"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b"abc"[..]));
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 4, max: 3 }));
}

#[test]
fn negative_adjusted_length_is_corrupt() {
    let config = FrameConfig::builder().length_field_length(2).length_adjustment(-2).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"\x00\x01x"[..]);
    let err = dec.decode(&mut buf).unwrap_err();
    assert!(matches!(err, FrameError::Corrupt { .. }), "{err}");
    // No boundary is known after this: the error stays.
    assert_eq!(dec.decode(&mut buf), Err(err));
    assert_eq!(dec.peek(&buf), Err(err));
    assert_eq!(dec.bytes_needed(&buf), None);
}

#[test]
fn strip_longer_than_frame_is_corrupt() {
    let config = FrameConfig::builder().length_field_length(1).strip(4).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"\x04abcd\x02ab"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b"d"[..]));
    let err = dec.decode(&mut buf).unwrap_err();
    assert_eq!(err, FrameError::Corrupt { reason: "strip is longer than the frame" });
}

#[test]
fn eight_byte_field_overflowing_after_adjustment_is_corrupt() {
    let config = FrameConfig::builder().length_field_length(8).length_adjustment(1).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&[0xFF; 8][..]);
    assert!(matches!(dec.decode(&mut buf), Err(FrameError::Corrupt { .. })));
}

#[test]
fn eight_byte_field_values_beyond_usize_are_too_long() {
    for value in [u64::MAX, 1 << 63, u64::from(u32::MAX) + 1] {
        let mut dec = FrameDecoder::new(config(8, Endian::Big));
        let mut buf = BytesMut::from(&value.to_be_bytes()[..]);
        assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: value, max: 1 << 20 }));
    }
}

#[cfg(target_pointer_width = "64")]
#[test]
fn frame_length_overflowing_usize_is_corrupt() {
    let config = FrameConfig::builder().length_field_length(8).max_frame_length(usize::MAX).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&(u64::MAX - 3).to_be_bytes()[..]);
    assert!(matches!(dec.decode(&mut buf), Err(FrameError::Corrupt { .. })));
}

#[test]
fn too_long_head_is_refused_without_allocating() {
    let config = FrameConfig::builder().max_frame_length(16).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&[0x40, 0, 0, 0]); // 1 GiB announced
    let capacity = buf.capacity();
    assert!(matches!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 0x4000_0000, max: 16 })));
    assert!(buf.capacity() <= capacity);
}

#[test]
fn accepted_head_does_not_reserve_the_announced_length() {
    let mut dec = FrameDecoder::new(FrameConfig::default());
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&[0x00, 0x10, 0, 0, 1, 2]); // 1 MiB announced, 2 bytes present
    let capacity = buf.capacity();
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(dec.bytes_needed(&buf), Some((1 << 20) - 2));
}

/// `fail_fast(false)`: the frame is dropped as it arrives, the error comes once it is all gone,
/// and the next frame decodes.
#[test]
fn discard_mode_reports_after_the_frame() {
    let config = FrameConfig::builder().max_frame_length(5).fail_fast(false).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x0aabc"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(buf.is_empty(), "discarded bytes leave the buffer");
    assert_eq!(dec.bytes_needed(&buf), Some(7));

    buf.extend_from_slice(b"defg");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
    assert_eq!(dec.bytes_needed(&buf), Some(3));

    buf.extend_from_slice(b"hij\x00\x00\x00\x02ok");
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 10, max: 5 }));
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b"ok"[..]));
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
}

#[test]
fn discard_mode_whole_frame_in_one_buffer() {
    let config = FrameConfig::builder().max_frame_length(5).fail_fast(false).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x06abcdef\x00\x00\x00\x01z"[..]);
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 6, max: 5 }));
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b"z"[..]));
}

/// `fail_fast(true)`: the error comes with the head; the rest of the frame is then dropped
/// silently and the stream carries on.
#[test]
fn fail_fast_reports_at_the_head_then_skips() {
    let config = FrameConfig::builder().max_frame_length(5).build().unwrap();
    assert!(config.fail_fast());
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x0aab"[..]);
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 10, max: 5 }));
    assert!(buf.is_empty());
    buf.extend_from_slice(b"cdefghij\x00\x00\x00\x02ok");
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b"ok"[..]));
}

#[test]
fn decode_eof_during_discard() {
    let builder = FrameConfig::builder().max_frame_length(5);
    // Error still owed: reported at the end of the stream.
    let mut dec = FrameDecoder::new(builder.fail_fast(false).build().unwrap());
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x0aab"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.decode_eof(&mut buf), Err(FrameError::TooLong { len: 10, max: 5 }));
    // Already reported: nothing more to say.
    let mut dec = FrameDecoder::new(builder.build().unwrap());
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x0aab"[..]);
    assert!(dec.decode(&mut buf).is_err());
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
}

#[test]
fn too_long_error_keeps_the_max_of_its_head() {
    let config = FrameConfig::builder().max_frame_length(5).fail_fast(false).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x0aab"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    dec.set_max_frame_length(100);
    buf.extend_from_slice(b"cdefghij");
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 10, max: 5 }));
}

#[test]
fn raising_the_max_at_rest() {
    let mut dec = FrameDecoder::new(FrameConfig::builder().max_frame_length(2).build().unwrap());
    dec.set_max_frame_length(3);
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x03abc"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b"abc"[..]));
}

#[test]
fn decode_eof_returns_complete_frames_before_the_leftover() {
    let mut dec = FrameDecoder::new(FrameConfig::default());
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x01a\x00\x00\x00\x05ab"[..]);
    assert_eq!(dec.decode_eof(&mut buf).unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(dec.decode_eof(&mut buf), Err(FrameError::Incomplete { buffered: 6 }));
}

#[test]
fn peek_locates_frames_in_place() {
    let config = FrameConfig::builder()
        .length_field_offset(1)
        .length_field_length(2)
        .length_adjustment(1)
        .strip(3)
        .build()
        .unwrap();
    let wire = b"\xCA\x00\x02\xFEhi\xCA\x00\x00\xFE";
    let mut dec = FrameDecoder::new(config);
    let first = dec.peek(wire).unwrap().unwrap();
    assert_eq!(first, FrameSpan { frame_len: 6, payload: 3..6 });
    assert_eq!(&wire[first.payload.clone()], b"\xFEhi");
    let rest = &wire[first.frame_len..];
    let second = dec.peek(rest).unwrap().unwrap();
    assert_eq!(&rest[second.payload], b"\xFE");
    assert_eq!(dec.peek(&rest[second.frame_len..]), Ok(None));
}

#[test]
fn peek_in_flight_keeps_the_accepted_head() {
    let mut dec = FrameDecoder::new(FrameConfig::default());
    let wire = b"\x00\x00\x00\x09abcdefghi\x00\x00\x00\x09abcdefghi";
    assert_eq!(dec.peek(&wire[..6]), Ok(None));
    assert_eq!(dec.bytes_needed(&wire[..6]), Some(7));
    dec.set_max_frame_length(5);
    let span = dec.peek(wire).unwrap().unwrap();
    assert_eq!(&wire[span.payload], b"abcdefghi");
    assert_eq!(dec.peek(&wire[span.frame_len..]), Err(FrameError::TooLong { len: 9, max: 5 }));
}

#[test]
fn peek_reports_too_long_at_once_and_decode_can_still_discard() {
    let config = FrameConfig::builder().max_frame_length(2).fail_fast(false).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x03abc\x00\x00\x00\x01z"[..]);
    let too_long = FrameError::TooLong { len: 3, max: 2 };
    assert_eq!(dec.peek(&buf), Err(too_long));
    assert_eq!(dec.peek(&buf), Err(too_long), "peek leaves the state alone");
    assert_eq!(dec.decode(&mut buf), Err(too_long));
    let span = dec.peek(&buf).unwrap().unwrap();
    assert_eq!(&buf[span.payload], b"z");
}

#[test]
fn peek_while_decode_discards_reports_the_frame() {
    let config = FrameConfig::builder().max_frame_length(2).fail_fast(false).build().unwrap();
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x03a"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.peek(b"bc"), Err(FrameError::TooLong { len: 3, max: 2 }));
}

#[test]
fn bytes_needed_follows_the_frame() {
    let dec = FrameDecoder::new(FrameConfig::default());
    assert_eq!(dec.bytes_needed(b""), None);
    assert_eq!(dec.bytes_needed(b"\x00\x00\x00"), None, "head incomplete");
    assert_eq!(dec.bytes_needed(b"\x00\x00\x00\x03"), Some(3));
    assert_eq!(dec.bytes_needed(b"\x00\x00\x00\x03ab"), Some(1));
    assert_eq!(dec.bytes_needed(b"\x00\x00\x00\x03abc"), Some(0));
    assert_eq!(dec.bytes_needed(b"\x00\x00\x00\x03abcdef"), Some(0));
    assert_eq!(dec.bytes_needed(b"\x7f\x00\x00\x00"), None, "over the max");
}

#[test]
fn frames_are_split_off_without_copying() {
    let mut dec = FrameDecoder::new(FrameConfig::default());
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x03abc\x00\x00\x00\x01d"[..]);
    let start = buf.as_ptr() as usize;
    let first = dec.decode(&mut buf).unwrap().unwrap();
    let second = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(first.as_ptr() as usize, start + 4);
    assert_eq!(second.as_ptr() as usize, start + 11);
}
