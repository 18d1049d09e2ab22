//! Builder defaults, validation and error messages.

use framing::{ConfigError, Endian, FrameConfig, FrameError};

#[test]
fn defaults() {
    let config = FrameConfig::default();
    assert_eq!(FrameConfig::builder().build(), Ok(config));
    assert_eq!(config.length_field_length(), 4);
    assert_eq!(config.length_field_offset(), 0);
    assert_eq!(config.length_adjustment(), 0);
    assert_eq!(config.strip(), 4);
    assert_eq!(config.max_frame_length(), 1 << 20);
    assert_eq!(config.endian(), Endian::Big);
    assert!(config.fail_fast());
    assert_eq!(config.header_len(), 4);
    assert_eq!(config.length_field_end(), 4);
}

#[test]
fn strip_defaults_to_the_end_of_the_length_field() {
    let config = FrameConfig::builder().length_field_offset(3).length_field_length(2).build().unwrap();
    assert_eq!(config.strip(), 5);
    assert_eq!(config.length_field_end(), 5);
    assert_eq!(config.header_len(), 2, "the encoder writes the field only");
}

#[test]
fn native_endian_resolves() {
    let config = FrameConfig::builder().native_endian().build().unwrap();
    let native = if cfg!(target_endian = "big") { Endian::Big } else { Endian::Little };
    assert_eq!(config.endian(), native);
    assert_eq!(Endian::Native.resolve(), native);
    let little = FrameConfig::builder().little_endian().build().unwrap();
    assert_eq!(little.endian(), Endian::Little);
    let big = FrameConfig::builder().little_endian().big_endian().build();
    assert_eq!(big.unwrap().endian(), Endian::Big);
}

#[test]
fn field_lengths_other_than_1_2_3_4_8_are_refused() {
    for len in [0, 5, 6, 7, 9, 16] {
        let err = FrameConfig::builder().length_field_length(len).build().unwrap_err();
        assert_eq!(err, ConfigError::LengthFieldLength { len });
        assert_eq!(err.option(), "length_field_length");
        assert_eq!(err.to_string(), format!("length_field_length: {len} is not one of 1, 2, 3, 4, 8"));
    }
}

#[test]
fn offset_overflowing_the_header_end_is_refused() {
    let err = FrameConfig::builder().length_field_offset(usize::MAX - 1).build().unwrap_err();
    assert_eq!(err, ConfigError::LengthFieldOffset { offset: usize::MAX - 1 });
    assert!(err.to_string().starts_with("length_field_offset: "));
}

#[test]
fn adjustment_leaving_no_length_is_refused() {
    let err = FrameConfig::builder().length_field_length(1).length_adjustment(-256).build().unwrap_err();
    assert_eq!(err.option(), "length_adjustment");
    assert!(err.to_string().contains("-256"), "{err}");
    // -255 still allows an empty body (field value 255).
    let config = FrameConfig::builder().length_field_length(1).length_adjustment(-255).build().unwrap();
    assert_eq!(config.max_frame_length(), 0);
}

#[test]
fn strip_longer_than_any_frame_is_refused() {
    let err =
        FrameConfig::builder().length_field_length(1).max_frame_length(10).strip(12).build().unwrap_err();
    assert_eq!(err, ConfigError::Strip { strip: 12, largest_frame: 11 });
    assert!(err.to_string().starts_with("strip: 12 bytes"), "{err}");
    assert!(FrameConfig::builder().length_field_length(1).max_frame_length(10).strip(11).build().is_ok());
}

#[test]
fn with_max_frame_length_clips() {
    let config = FrameConfig::builder().length_field_length(2).build().unwrap();
    assert_eq!(config.max_frame_length(), 0xFFFF);
    assert_eq!(config.with_max_frame_length(10).max_frame_length(), 10);
    assert_eq!(config.with_max_frame_length(1 << 30).max_frame_length(), 0xFFFF);
}

#[test]
fn errors_read_well_in_a_log() {
    let too_long = FrameError::TooLong { len: 5_000_000, max: 1 << 20 };
    assert_eq!(too_long.to_string(), "frame too long: body of 5000000 bytes, max_frame_length is 1048576");
    let corrupt = FrameError::Corrupt { reason: "strip is longer than the frame" };
    assert_eq!(corrupt.to_string(), "corrupt frame: strip is longer than the frame");
    let incomplete = FrameError::Incomplete { buffered: 7 };
    assert_eq!(incomplete.to_string(), "stream ended inside a frame with 7 bytes of it buffered");
    let boxed: Box<dyn std::error::Error> = Box::new(too_long);
    assert!(boxed.source().is_none());
}

#[test]
fn config_is_small_and_copy() {
    fn copy<T: Copy>(_: T) {}
    copy(FrameConfig::default());
    assert!(std::mem::size_of::<FrameConfig>() <= 48);
}
