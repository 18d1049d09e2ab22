//! The seven worked examples of Netty's `LengthFieldBasedFrameDecoder` javadoc.
//!
//! Each is decoded twice: from one buffer, and fed one byte at a time (the frame must appear only
//! once its last byte is in). `max_frame_length` is the default, far above these frames.

use bytes::BytesMut;
use framing::{FrameConfig, FrameConfigBuilder, FrameDecoder};

const CONTENT: &[u8] = b"HELLO, WORLD";

fn wire(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes `input` both ways and checks the result is `output` and every byte was consumed.
fn check(builder: FrameConfigBuilder, input: &[u8], output: &[u8]) {
    let config = builder.build().unwrap();

    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::from(input);
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(output));
    assert!(buf.is_empty());

    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::new();
    let (last, head) = input.split_last().unwrap();
    for byte in head {
        buf.extend_from_slice(&[*byte]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }
    buf.extend_from_slice(&[*last]);
    assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(output));
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
}

#[test]
fn netty_1_two_byte_length_no_strip() {
    let input = wire(&[&[0x00, 0x0C], CONTENT]);
    assert_eq!(input.len(), 14);
    let builder =
        FrameConfig::builder().length_field_offset(0).length_field_length(2).length_adjustment(0).strip(0);
    check(builder, &input, &input);
}

#[test]
fn netty_2_two_byte_length_strip_header() {
    let input = wire(&[&[0x00, 0x0C], CONTENT]);
    let builder =
        FrameConfig::builder().length_field_offset(0).length_field_length(2).length_adjustment(0).strip(2);
    check(builder, &input, CONTENT);
}

#[test]
fn netty_3_length_counts_itself() {
    let input = wire(&[&[0x00, 0x0E], CONTENT]);
    assert_eq!(input.len(), 14);
    let builder =
        FrameConfig::builder().length_field_offset(0).length_field_length(2).length_adjustment(-2).strip(0);
    check(builder, &input, &input);
}

#[test]
fn netty_4_header_before_three_byte_length() {
    let input = wire(&[&[0xCA, 0xFE], &[0x00, 0x00, 0x0C], CONTENT]);
    assert_eq!(input.len(), 17);
    let builder =
        FrameConfig::builder().length_field_offset(2).length_field_length(3).length_adjustment(0).strip(0);
    check(builder, &input, &input);
}

#[test]
fn netty_5_header_after_three_byte_length() {
    let input = wire(&[&[0x00, 0x00, 0x0C], &[0xCA, 0xFE], CONTENT]);
    assert_eq!(input.len(), 17);
    let builder =
        FrameConfig::builder().length_field_offset(0).length_field_length(3).length_adjustment(2).strip(0);
    check(builder, &input, &input);
}

#[test]
fn netty_6_length_between_two_headers_strip_first_two() {
    let input = wire(&[&[0xCA], &[0x00, 0x0C], &[0xFE], CONTENT]);
    assert_eq!(input.len(), 16);
    let output = wire(&[&[0xFE], CONTENT]);
    assert_eq!(output.len(), 13);
    let builder =
        FrameConfig::builder().length_field_offset(1).length_field_length(2).length_adjustment(1).strip(3);
    check(builder, &input, &output);
}

#[test]
fn netty_7_length_counts_whole_message_strip_first_two() {
    let input = wire(&[&[0xCA], &[0x00, 0x10], &[0xFE], CONTENT]);
    assert_eq!(input.len(), 16);
    let output = wire(&[&[0xFE], CONTENT]);
    let builder =
        FrameConfig::builder().length_field_offset(1).length_field_length(2).length_adjustment(-3).strip(3);
    check(builder, &input, &output);
}
