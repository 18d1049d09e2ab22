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

/// A layout with a header before the length (LOCO-style: a 22-byte header, the 4-byte
/// little-endian body length at offset 18): the encoder writes the whole header from the
/// message, refuses a message that cannot hold it, and the decoder reads back what was written.
#[test]
fn header_before_the_length_is_written_whole_or_refused() {
    let config = FrameConfig::builder()
        .length_field_offset(18)
        .length_field_length(4)
        .little_endian()
        .strip(0)
        .build()
        .unwrap();
    let prefix: Vec<u8> = (1..=18).collect();
    let mut message = prefix.clone();
    message.extend_from_slice(b"body");
    let mut wire = BytesMut::new();
    config.encode(&message, &mut wire).unwrap();
    assert_eq!(&wire[..18], &prefix[..]);
    assert_eq!(&wire[18..22], &4u32.to_le_bytes());
    assert_eq!(&wire[22..], b"body");

    let mut parts = BytesMut::new();
    config.encode_parts(&prefix, b"body", &mut parts).unwrap();
    assert_eq!(parts, wire);
    let mut filled = BytesMut::from(&b"xx"[..]);
    config.encode_with(&mut filled, |b| b.extend_from_slice(&message)).unwrap();
    assert_eq!(&filled[2..], &wire[..]);

    let mut decoder = FrameDecoder::new(config);
    let frame = decoder.decode(&mut wire).unwrap().unwrap();
    assert_eq!(&frame[..18], &prefix[..]);
    assert_eq!(&frame[22..], b"body");

    let mut untouched = BytesMut::from(&b"keep"[..]);
    assert_eq!(config.encode(&[0u8; 17], &mut untouched), Err(FrameError::Prefix { expected: 18, len: 17 }));
    assert_eq!(
        config.encode_parts(&[0u8; 3], b"body", &mut untouched),
        Err(FrameError::Prefix { expected: 18, len: 3 })
    );
    assert_eq!(
        config.encode_with(&mut untouched, |b| b.extend_from_slice(&[1; 5])),
        Err(FrameError::Prefix { expected: 18, len: 5 })
    );
    assert_eq!(config.encode_header(4, &mut untouched), Err(FrameError::Prefix { expected: 18, len: 0 }));
    assert_eq!(&untouched[..], b"keep", "nothing written on a refusal");
}

#[test]
fn encode_with_writes_the_field_in_place() {
    let config = FrameConfig::builder().length_field_length(2).build().unwrap();
    let mut dst = BytesMut::new();
    config.encode_with(&mut dst, |b| b.extend_from_slice(b"abc")).unwrap();
    assert_eq!(&dst[..], &[0, 3, b'a', b'b', b'c']);
    let small = FrameConfig::builder().length_field_length(1).build().unwrap();
    assert!(matches!(
        small.encode_with(&mut dst, |b| b.extend_from_slice(&[0; 300])),
        Err(FrameError::TooLong { .. })
    ));
    assert_eq!(dst.len(), 5, "cut back on error");
}
