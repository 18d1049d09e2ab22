//! tokio-util's `tests/length_delimited.rs` cases (tokio-util 0.7), one test each, named alike.
//!
//! Adaptations: there is no async reader or writer here. A "packet" is a chunk appended to the
//! buffer, "pending" is `decode` returning `Ok(None)`, the end of the stream is `decode_eof`.
//! Write cases become encode cases; a flush is taking bytes off the front of the output buffer.
//! `write_zero` (a writer that accepts 0 bytes) has no equivalent without a writer and is left out.
//! Where tokio counts the length from the end of the skipped bytes and we count it from the end
//! of the length field (Netty's rule), the adjustment is translated; see those tests.

use bytes::{BufMut, BytesMut};
use framing::{FrameConfig, FrameDecoder, FrameError};

fn decoder(config: FrameConfig) -> (FrameDecoder, BytesMut) {
    (FrameDecoder::new(config), BytesMut::new())
}

fn default_decoder() -> (FrameDecoder, BytesMut) {
    decoder(FrameConfig::default())
}

/// The next frame; fails the test on an error or on `None`.
fn next(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<u8> {
    match decoder.decode(buf) {
        Ok(Some(frame)) => frame.to_vec(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn assert_pending(decoder: &mut FrameDecoder, buf: &mut BytesMut) {
    assert_eq!(decoder.decode(buf), Ok(None));
}

fn assert_done(decoder: &mut FrameDecoder, buf: &mut BytesMut) {
    assert_eq!(decoder.decode_eof(buf), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn read_empty_io_yields_nothing() {
    let (mut dec, mut buf) = default_decoder();
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_single_frame_one_packet() {
    let (mut dec, mut buf) = default_decoder();
    buf.extend_from_slice(b"\x00\x00\x00\x09abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_single_frame_one_packet_little_endian() {
    let (mut dec, mut buf) = decoder(FrameConfig::builder().little_endian().build().unwrap());
    buf.extend_from_slice(b"\x09\x00\x00\x00abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_single_frame_one_packet_native_endian() {
    let d: &[u8] =
        if cfg!(target_endian = "big") { b"\x00\x00\x00\x09abcdefghi" } else { b"\x09\x00\x00\x00abcdefghi" };
    let (mut dec, mut buf) = decoder(FrameConfig::builder().native_endian().build().unwrap());
    buf.extend_from_slice(d);
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_single_multi_frame_one_packet() {
    let (mut dec, mut buf) = default_decoder();
    buf.extend_from_slice(b"\x00\x00\x00\x09abcdefghi");
    buf.extend_from_slice(b"\x00\x00\x00\x03123");
    buf.extend_from_slice(b"\x00\x00\x00\x0bhello world");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"123");
    assert_eq!(next(&mut dec, &mut buf), b"hello world");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_single_frame_multi_packet() {
    let (mut dec, mut buf) = default_decoder();
    for chunk in [&b"\x00\x00"[..], b"\x00\x09abc", b"defghi"] {
        buf.extend_from_slice(chunk);
    }
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_multi_frame_multi_packet() {
    let (mut dec, mut buf) = default_decoder();
    let chunks =
        [&b"\x00\x00"[..], b"\x00\x09abc", b"defghi", b"\x00\x00\x00\x0312", b"3\x00\x00\x00\x0bhello world"];
    for chunk in chunks {
        buf.extend_from_slice(chunk);
    }
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"123");
    assert_eq!(next(&mut dec, &mut buf), b"hello world");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_single_frame_multi_packet_wait() {
    let (mut dec, mut buf) = default_decoder();
    buf.extend_from_slice(b"\x00\x00");
    assert_pending(&mut dec, &mut buf);
    buf.extend_from_slice(b"\x00\x09abc");
    assert_pending(&mut dec, &mut buf);
    buf.extend_from_slice(b"defghi");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_pending(&mut dec, &mut buf);
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_multi_frame_multi_packet_wait() {
    let (mut dec, mut buf) = default_decoder();
    buf.extend_from_slice(b"\x00\x00");
    assert_pending(&mut dec, &mut buf);
    buf.extend_from_slice(b"\x00\x09abc");
    assert_pending(&mut dec, &mut buf);
    buf.extend_from_slice(b"defghi");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_pending(&mut dec, &mut buf);
    buf.extend_from_slice(b"\x00\x00\x00\x0312");
    assert_pending(&mut dec, &mut buf);
    buf.extend_from_slice(b"3\x00\x00\x00\x0bhello world");
    assert_eq!(next(&mut dec, &mut buf), b"123");
    assert_eq!(next(&mut dec, &mut buf), b"hello world");
    assert_pending(&mut dec, &mut buf);
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_incomplete_head() {
    let (mut dec, mut buf) = default_decoder();
    buf.extend_from_slice(b"\x00\x00");
    assert_eq!(dec.decode_eof(&mut buf), Err(FrameError::Incomplete { buffered: 2 }));
}

#[test]
fn read_incomplete_head_multi() {
    let (mut dec, mut buf) = default_decoder();
    assert_pending(&mut dec, &mut buf);
    buf.extend_from_slice(b"\x00");
    assert_pending(&mut dec, &mut buf);
    assert_eq!(dec.decode_eof(&mut buf), Err(FrameError::Incomplete { buffered: 1 }));
}

#[test]
fn read_incomplete_payload() {
    let (mut dec, mut buf) = default_decoder();
    buf.extend_from_slice(b"\x00\x00\x00\x09ab");
    assert_pending(&mut dec, &mut buf);
    buf.extend_from_slice(b"cd");
    assert_pending(&mut dec, &mut buf);
    assert_eq!(dec.decode_eof(&mut buf), Err(FrameError::Incomplete { buffered: 8 }));
}

#[test]
fn read_max_frame_len() {
    let (mut dec, mut buf) = decoder(FrameConfig::builder().max_frame_length(5).build().unwrap());
    buf.extend_from_slice(b"\x00\x00\x00\x09abcdefghi");
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 9, max: 5 }));
}

#[test]
fn read_update_max_frame_len_at_rest() {
    let (mut dec, mut buf) = default_decoder();
    buf.extend_from_slice(b"\x00\x00\x00\x09abcdefghi");
    buf.extend_from_slice(b"\x00\x00\x00\x09abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    dec.set_max_frame_length(5);
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 9, max: 5 }));
}

#[test]
fn read_update_max_frame_len_in_flight() {
    let (mut dec, mut buf) = default_decoder();
    buf.extend_from_slice(b"\x00\x00\x00\x09abcd");
    assert_pending(&mut dec, &mut buf);
    dec.set_max_frame_length(5);
    buf.extend_from_slice(b"efghi");
    buf.extend_from_slice(b"\x00\x00\x00\x09abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLong { len: 9, max: 5 }));
}

#[test]
fn read_one_byte_length_field() {
    let config = FrameConfig::builder().length_field_length(1).build().unwrap();
    let (mut dec, mut buf) = decoder(config);
    buf.extend_from_slice(b"\x09abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_header_offset() {
    let config = FrameConfig::builder().length_field_length(2).length_field_offset(4).build().unwrap();
    let (mut dec, mut buf) = decoder(config);
    buf.extend_from_slice(b"zzzz\x00\x09abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_done(&mut dec, &mut buf);
}

/// tokio: offset 2, num_skip 0, adjustment +4, because tokio counts the body from the skip point
/// (here the frame's start). We count it from the end of the length field, so the same frames
/// need adjustment 0.
#[test]
fn read_single_multi_frame_one_packet_skip_none_adjusted() {
    let config = FrameConfig::builder()
        .length_field_length(2)
        .length_field_offset(2)
        .strip(0)
        .length_adjustment(0)
        .build()
        .unwrap();
    let (mut dec, mut buf) = decoder(config);
    buf.extend_from_slice(b"xx\x00\x09abcdefghi");
    buf.extend_from_slice(b"yy\x00\x03123");
    buf.extend_from_slice(b"zz\x00\x0bhello world");
    assert_eq!(next(&mut dec, &mut buf), b"xx\x00\x09abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"yy\x00\x03123");
    assert_eq!(next(&mut dec, &mut buf), b"zz\x00\x0bhello world");
    assert_done(&mut dec, &mut buf);
}

/// tokio: 3-byte length 11, then one unused byte, num_skip 4, adjustment 0 (counted after the
/// skip). Counted from the end of the length field, the unused byte needs adjustment +1.
#[test]
fn read_single_frame_length_adjusted() {
    let config = FrameConfig::builder()
        .length_field_offset(0)
        .length_field_length(3)
        .length_adjustment(1)
        .strip(4)
        .build()
        .unwrap();
    let (mut dec, mut buf) = decoder(config);
    buf.extend_from_slice(b"\x00\x00\x0b\x0cHello world");
    assert_eq!(next(&mut dec, &mut buf), b"Hello world");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn read_single_multi_frame_one_packet_length_includes_head() {
    let config = FrameConfig::builder().length_field_length(2).length_adjustment(-2).build().unwrap();
    let (mut dec, mut buf) = decoder(config);
    buf.extend_from_slice(b"\x00\x0babcdefghi");
    buf.extend_from_slice(b"\x00\x05123");
    buf.extend_from_slice(b"\x00\x0dhello world");
    assert_eq!(next(&mut dec, &mut buf), b"abcdefghi");
    assert_eq!(next(&mut dec, &mut buf), b"123");
    assert_eq!(next(&mut dec, &mut buf), b"hello world");
    assert_done(&mut dec, &mut buf);
}

#[test]
fn write_single_frame_length_adjusted() {
    let config = FrameConfig::builder().length_adjustment(-2).build().unwrap();
    let mut dst = BytesMut::new();
    config.encode(b"abcdefghi", &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x00\x00\x00\x0babcdefghi");
}

#[test]
fn write_nothing_yields_nothing() {
    let mut dst = BytesMut::new();
    let written = FrameConfig::default().encode_batch(std::iter::empty(), &mut dst).unwrap();
    assert_eq!(written, 0);
    assert!(dst.is_empty());
}

#[test]
fn write_single_frame_one_packet() {
    let mut dst = BytesMut::new();
    FrameConfig::default().encode(b"abcdefghi", &mut dst).unwrap();
    assert_eq!(&dst[..4], b"\x00\x00\x00\x09");
    assert_eq!(&dst[4..], b"abcdefghi");
}

#[test]
fn write_single_frame_from_slice() {
    let data = b"__abcdefghi__";
    let mut dst = BytesMut::new();
    FrameConfig::default().encode(&data[2..11], &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x00\x00\x00\x09abcdefghi");
}

#[test]
fn write_single_multi_frame_one_packet() {
    let config = FrameConfig::default();
    let mut dst = BytesMut::new();
    config.encode(b"abcdefghi", &mut dst).unwrap();
    config.encode(b"123", &mut dst).unwrap();
    config.encode(b"hello world", &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x00\x00\x00\x09abcdefghi\x00\x00\x00\x03123\x00\x00\x00\x0bhello world");
}

#[test]
fn write_single_multi_frame_multi_packet() {
    let config = FrameConfig::default();
    let mut dst = BytesMut::new();
    let expected: [(&[u8], &[u8]); 3] = [
        (b"abcdefghi", b"\x00\x00\x00\x09abcdefghi"),
        (b"123", b"\x00\x00\x00\x03123"),
        (b"hello world", b"\x00\x00\x00\x0bhello world"),
    ];
    for (payload, wire) in expected {
        config.encode(payload, &mut dst).unwrap();
        // "flush": the writer takes everything queued so far.
        let flushed = dst.split();
        assert_eq!(&flushed[..], wire);
    }
    assert!(dst.is_empty());
}

#[test]
fn write_single_frame_would_block() {
    let mut dst = BytesMut::new();
    FrameConfig::default().encode(b"abcdefghi", &mut dst).unwrap();
    // The writer takes 2 bytes, blocks, takes 2 more, then the rest: the output stays intact.
    let mut written = Vec::new();
    for take in [2, 2] {
        written.extend_from_slice(&dst.split_to(take));
    }
    written.extend_from_slice(&dst.split());
    assert_eq!(written, b"\x00\x00\x00\x09abcdefghi");
}

#[test]
fn write_single_frame_little_endian() {
    let config = FrameConfig::builder().little_endian().build().unwrap();
    let mut dst = BytesMut::new();
    config.encode(b"abcdefghi", &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x09\x00\x00\x00abcdefghi");
}

#[test]
fn write_single_frame_with_short_length_field() {
    let config = FrameConfig::builder().length_field_length(1).build().unwrap();
    let mut dst = BytesMut::new();
    config.encode(b"abcdefghi", &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x09abcdefghi");
}

#[test]
fn write_max_frame_len() {
    let config = FrameConfig::builder().max_frame_length(5).build().unwrap();
    let mut dst = BytesMut::new();
    assert_eq!(config.encode(b"abcdef", &mut dst), Err(FrameError::TooLong { len: 6, max: 5 }));
    assert!(dst.is_empty());
}

#[test]
fn write_update_max_frame_len_at_rest() {
    let config = FrameConfig::default();
    let mut dst = BytesMut::new();
    config.encode(b"abcdef", &mut dst).unwrap();
    assert_eq!(&dst.split()[..], b"\x00\x00\x00\x06abcdef");

    let config = config.with_max_frame_length(5);
    assert_eq!(config.encode(b"abcdef", &mut dst), Err(FrameError::TooLong { len: 6, max: 5 }));
    assert!(dst.is_empty());
}

#[test]
fn write_update_max_frame_len_in_flight() {
    let config = FrameConfig::default();
    let mut dst = BytesMut::new();
    config.encode(b"abcdef", &mut dst).unwrap();
    let mut written = dst.split_to(6).to_vec(); // a partial flush

    let config = config.with_max_frame_length(5);
    written.extend_from_slice(&dst.split()); // the frame already queued finishes
    assert_eq!(written, b"\x00\x00\x00\x06abcdef");
    assert_eq!(config.encode(b"abcdef", &mut dst), Err(FrameError::TooLong { len: 6, max: 5 }));
    assert!(dst.is_empty());
}

#[test]
fn encode_overflow() {
    // tokio-rs/tokio#681: encoding into a full buffer must grow it.
    let mut buf = BytesMut::with_capacity(1024);
    buf.put_slice(&[b'a'; 1024]);
    FrameConfig::default().encode(b"hello", &mut buf).unwrap();
    assert_eq!(&buf[1024..], b"\x00\x00\x00\x05hello");
}

#[test]
fn frame_does_not_fit() {
    let config = FrameConfig::builder().length_field_length(1).max_frame_length(256).build().unwrap();
    assert_eq!(config.max_frame_length(), 255);
}

#[test]
fn runtime_max_frame_len_respects_length_field() {
    for (adjustment, max) in [(-1, 254), (0, 255), (1, 256)] {
        let config = FrameConfig::builder()
            .length_field_length(1)
            .length_adjustment(adjustment)
            .build()
            .unwrap()
            .with_max_frame_length(usize::MAX);
        assert_eq!(config.max_frame_length(), max, "adjustment {adjustment}");

        let mut dec = FrameDecoder::new(config);
        dec.set_max_frame_length(usize::MAX);
        assert_eq!(dec.config().max_frame_length(), max);

        let mut dst = BytesMut::from(&b"kept"[..]);
        let over = vec![0u8; max + 1];
        assert_eq!(config.encode(&over, &mut dst), Err(FrameError::TooLong { len: max as u64 + 1, max }));
        assert_eq!(&dst[..], b"kept");
        config.encode(&over[..max], &mut dst).unwrap();
    }
}

#[test]
fn neg_adjusted_frame_does_not_fit() {
    let config = FrameConfig::builder().length_field_length(1).length_adjustment(-1).build().unwrap();
    assert_eq!(config.max_frame_length(), 254);
}

#[test]
fn pos_adjusted_frame_does_not_fit() {
    let config = FrameConfig::builder().length_field_length(1).length_adjustment(1).build().unwrap();
    assert_eq!(config.max_frame_length(), 256);
}

#[test]
fn max_allowed_frame_fits() {
    let config = FrameConfig::builder()
        .length_field_length(std::mem::size_of::<usize>())
        .max_frame_length(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(config.max_frame_length(), usize::MAX);
}

#[test]
fn smaller_frame_len_not_adjusted() {
    let config = FrameConfig::builder()
        .max_frame_length(10)
        .length_field_length(std::mem::size_of::<usize>())
        .build()
        .unwrap();
    assert_eq!(config.max_frame_length(), 10);
}

#[test]
fn max_allowed_length_field() {
    let config = FrameConfig::builder().length_field_length(8).max_frame_length(usize::MAX).build().unwrap();
    assert_eq!(config.max_frame_length(), usize::MAX);
}
