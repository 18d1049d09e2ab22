//! Encoder behaviour: the variants agree with `encode`, refusals leave the buffer alone.

use bytes::BytesMut;
use framing::{FrameConfig, FrameDecoder, FrameError};

#[test]
fn encode_header_then_payload_equals_encode() {
    let config =
        FrameConfig::builder().length_field_length(3).little_endian().length_adjustment(-3).build().unwrap();
    let mut whole = BytesMut::new();
    config.encode(b"payload", &mut whole).unwrap();
    let mut parts = BytesMut::new();
    config.encode_header(7, &mut parts).unwrap();
    assert_eq!(parts.len(), config.header_len());
    parts.extend_from_slice(b"payload");
    assert_eq!(whole, parts);
    assert_eq!(&whole[..3], &[10, 0, 0]);
}

#[test]
fn encode_to_bytes_is_exactly_one_frame() {
    let config = FrameConfig::default();
    let frame = config.encode_to_bytes(b"shared").unwrap();
    let mut expected = BytesMut::new();
    config.encode(b"shared", &mut expected).unwrap();
    assert_eq!(frame, expected.freeze());
    // Clones for many recipients share the allocation.
    assert_eq!(frame.clone().as_ptr(), frame.as_ptr());
    assert_eq!(
        FrameConfig::builder().max_frame_length(3).build().unwrap().encode_to_bytes(b"four"),
        Err(FrameError::TooLong { len: 4, max: 3 })
    );
}

#[test]
fn encode_header_refuses_over_max() {
    let config = FrameConfig::builder().max_frame_length(3).build().unwrap();
    let mut dst = BytesMut::new();
    assert_eq!(config.encode_header(4, &mut dst), Err(FrameError::TooLong { len: 4, max: 3 }));
    assert!(dst.is_empty());
}

#[test]
fn payload_shorter_than_positive_adjustment_is_refused() {
    // Netty's example 5: 2 bytes after the length field are not counted by it.
    let config = FrameConfig::builder().length_field_length(3).length_adjustment(2).build().unwrap();
    let mut dst = BytesMut::from(&b"kept"[..]);
    assert!(matches!(config.encode(b"x", &mut dst), Err(FrameError::Corrupt { .. })));
    assert!(matches!(config.encode_batch([&b"xyz"[..], b"x"], &mut dst), Err(FrameError::Corrupt { .. })));
    assert_eq!(&dst[..], b"kept");
    config.encode(b"\xCA\xFEHELLO", &mut dst).unwrap();
    assert_eq!(&dst[4..], b"\x00\x00\x05\xCA\xFEHELLO");
}

#[test]
fn encode_batch_returns_bytes_appended() {
    let config = FrameConfig::builder().length_field_length(2).build().unwrap();
    let mut dst = BytesMut::from(&b"xx"[..]);
    let written = config.encode_batch([&b"a"[..], b"", b"bcd"], &mut dst).unwrap();
    assert_eq!(written, 2 * 3 + 4);
    assert_eq!(&dst[..], b"xx\x00\x01a\x00\x00\x00\x03bcd");
}

#[test]
fn encode_batch_is_all_or_nothing_across_chunks() {
    // The bad payload comes after the first reservation chunk was written.
    let config = FrameConfig::builder().max_frame_length(8).build().unwrap();
    let mut payloads = vec![&b"ok"[..]; 100];
    payloads.push(b"too long!");
    let mut dst = BytesMut::from(&b"before"[..]);
    assert_eq!(
        config.encode_batch(payloads.iter().copied(), &mut dst),
        Err(FrameError::TooLong { len: 9, max: 8 })
    );
    assert_eq!(&dst[..], b"before");
}

#[test]
fn encode_batch_over_many_chunks_decodes_back() {
    let config = FrameConfig::default();
    let payloads: Vec<Vec<u8>> = (0..200u8).map(|i| vec![i; usize::from(i)]).collect();
    let mut dst = BytesMut::new();
    config.encode_batch(payloads.iter().map(Vec::as_slice), &mut dst).unwrap();
    let mut dec = FrameDecoder::new(config);
    for payload in &payloads {
        assert_eq!(&dec.decode(&mut dst).unwrap().unwrap()[..], &payload[..]);
    }
    assert_eq!(dec.decode_eof(&mut dst), Ok(None));
}
