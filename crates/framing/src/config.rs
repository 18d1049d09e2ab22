//! Frame layout options: [`FrameConfig`], its builder and the errors a build can report.

use std::fmt;

/// Byte order of the length field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Most significant byte first (network order). The default.
    #[default]
    Big,
    /// Least significant byte first.
    Little,
    /// The order of the machine the code is built for. [`FrameConfigBuilder::build`] resolves it
    /// to [`Endian::Big`] or [`Endian::Little`], so a built [`FrameConfig`] never holds it.
    Native,
}

impl Endian {
    /// `Native` replaced by the build target's order; `Big` and `Little` unchanged.
    pub const fn resolve(self) -> Endian {
        match self {
            Endian::Native if cfg!(target_endian = "big") => Endian::Big,
            Endian::Native => Endian::Little,
            other => other,
        }
    }
}

/// The layout of a length-prefixed frame and the limits applied to it.
///
/// A frame on the wire, as the decoder reads it (Netty's model):
///
/// ```text
/// | offset bytes | length field | body: field value + length_adjustment bytes |
/// |<---------- length_field_end --------->|
/// |<------------------ frame: length_field_end + body ------------------------>|
/// |<- strip ->|<------------------ frame handed to the caller ---------------->|
/// ```
///
/// `max_frame_length` bounds the **body**: the bytes after the length field
/// (field value + `length_adjustment`). The encoder checks the same quantity: the payload it is
/// given. So the default 1 MiB accepts a 1 MiB payload under the default 4-byte header, in both
/// directions. This is tokio-util's quantity for the encoder and for its clipping rule; Netty
/// bounds the whole frame instead (header included) and tokio's decoder the raw field value; the
/// three agree whenever offset and adjustment are 0, up to Netty counting the header.
///
/// Small and `Copy`: a service keeps one and each connection copies it into its
/// [`FrameDecoder`](crate::FrameDecoder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameConfig {
    pub(crate) max_frame_length: usize,
    pub(crate) length_field_offset: usize,
    pub(crate) strip: usize,
    pub(crate) length_adjustment: isize,
    pub(crate) length_field_length: u8,
    pub(crate) endian: Endian,
    pub(crate) fail_fast: bool,
}

impl FrameConfig {
    /// Default `max_frame_length`: 1 MiB of body (payload).
    pub const DEFAULT_MAX_FRAME_LENGTH: usize = 1 << 20;

    /// A builder starting from the [`Default`] layout.
    pub fn builder() -> FrameConfigBuilder {
        FrameConfigBuilder::default()
    }

    /// Largest body (bytes after the length field) the decoder accepts and the largest payload
    /// the encoder writes. Already clipped to what the length field can express.
    #[inline]
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    /// Width of the length field in bytes: 1, 2, 3, 4 or 8.
    #[inline]
    pub fn length_field_length(&self) -> usize {
        usize::from(self.length_field_length)
    }

    /// Bytes before the length field (the encoder takes them from the front of each message).
    #[inline]
    pub fn length_field_offset(&self) -> usize {
        self.length_field_offset
    }

    /// Added to the length field's value to get the body length (subtracted by the encoder).
    #[inline]
    pub fn length_adjustment(&self) -> isize {
        self.length_adjustment
    }

    /// Bytes removed from the front of each decoded frame (Netty's `initialBytesToStrip`).
    #[inline]
    pub fn strip(&self) -> usize {
        self.strip
    }

    /// Byte order of the length field; never [`Endian::Native`].
    #[inline]
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Whether a too-long frame is reported as soon as its head is read (`true`) or after its
    /// bytes were discarded (`false`); see [`FrameConfigBuilder::fail_fast`].
    pub fn fail_fast(&self) -> bool {
        self.fail_fast
    }

    /// Bytes the encoder adds to each message: the length field (the bytes before it are part of
    /// the message; see [`encode`](FrameConfig::encode)).
    #[inline]
    pub fn header_len(&self) -> usize {
        self.length_field_length()
    }

    /// `length_field_offset + length_field_length`: bytes the decoder needs before it knows a
    /// frame's length.
    #[inline]
    pub fn length_field_end(&self) -> usize {
        // Cannot overflow: build() rejects offsets for which it would.
        self.length_field_offset + self.length_field_length()
    }

    /// The same layout with another maximum, clipped to what the length field can express
    /// (see [`FrameConfigBuilder::max_frame_length`]). Lets a caller tighten or relax the limit
    /// per connection or at run time; the decoder's
    /// [`set_max_frame_length`](crate::FrameDecoder::set_max_frame_length) uses it.
    #[must_use]
    pub fn with_max_frame_length(mut self, max: usize) -> FrameConfig {
        self.max_frame_length = clip_max(max, self.length_field_length, self.length_adjustment);
        self
    }
}

impl Default for FrameConfig {
    /// 4-byte big-endian payload length, offset 0, adjustment 0, strip 4 (payload only),
    /// max 1 MiB of payload, fail fast.
    fn default() -> Self {
        FrameConfig {
            max_frame_length: Self::DEFAULT_MAX_FRAME_LENGTH,
            length_field_offset: 0,
            strip: 4,
            length_adjustment: 0,
            length_field_length: 4,
            endian: Endian::Big,
            fail_fast: true,
        }
    }
}

/// Largest value a `len`-byte unsigned field holds.
fn field_max(len: u8) -> u64 {
    match 1u64.checked_shl(8 * u32::from(len)) {
        Some(pow) => pow - 1,
        None => u64::MAX,
    }
}

/// Largest body a field can announce: its largest value plus the adjustment (may be negative).
fn largest_body(len: u8, adjustment: isize) -> i128 {
    i128::from(field_max(len)) + adjustment as i128
}

/// `max` lowered to the largest body the field can announce, as tokio-util does, so that every
/// payload the encoder accepts has a length field that fits.
fn clip_max(max: usize, len: u8, adjustment: isize) -> usize {
    let largest = largest_body(len, adjustment).max(0);
    if max as i128 > largest {
        // largest < max <= usize::MAX, so the conversion succeeds.
        usize::try_from(largest).unwrap_or(max)
    } else {
        max
    }
}

/// Builds a [`FrameConfig`]; every option has the [`FrameConfig::default`] value until set.
///
/// ```
/// use framing::FrameConfig;
/// // Netty's example 3: a 2-byte length that counts its own 2 bytes.
/// let config = FrameConfig::builder()
///     .length_field_length(2)
///     .length_adjustment(-2)
///     .max_frame_length(64 * 1024)
///     .build()?;
/// assert_eq!(config.strip(), 2); // strip defaults to offset + field length
/// assert_eq!(config.max_frame_length(), 65533); // clipped: 0xFFFF - 2
/// # Ok::<(), framing::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameConfigBuilder {
    length_field_length: usize,
    length_field_offset: usize,
    length_adjustment: isize,
    strip: Option<usize>,
    max_frame_length: usize,
    endian: Endian,
    fail_fast: bool,
}

impl Default for FrameConfigBuilder {
    fn default() -> Self {
        FrameConfigBuilder {
            length_field_length: 4,
            length_field_offset: 0,
            length_adjustment: 0,
            strip: None,
            max_frame_length: FrameConfig::DEFAULT_MAX_FRAME_LENGTH,
            endian: Endian::Big,
            fail_fast: true,
        }
    }
}

impl FrameConfigBuilder {
    /// Width of the length field in bytes: 1, 2, 3, 4 or 8 (default 4). Fields are unsigned.
    #[must_use]
    pub fn length_field_length(mut self, len: usize) -> Self {
        self.length_field_length = len;
        self
    }

    /// Bytes before the length field (default 0). The encoder takes them from the front of each
    /// message and refuses a message too short to hold them.
    #[must_use]
    pub fn length_field_offset(mut self, offset: usize) -> Self {
        self.length_field_offset = offset;
        self
    }

    /// Added to the field value to get the body length, the bytes after the length field
    /// (default 0). Negative when the field counts the header too (e.g. -2 for a 2-byte field that
    /// counts itself), positive when bytes between the field and the payload are not counted.
    /// The encoder writes `payload length - adjustment`.
    #[must_use]
    pub fn length_adjustment(mut self, adjustment: isize) -> Self {
        self.length_adjustment = adjustment;
        self
    }

    /// Bytes removed from the front of each decoded frame (Netty's `initialBytesToStrip`).
    /// Default: `length_field_offset + length_field_length`, so the caller gets what follows the
    /// length field. 0 hands over whole frames, header included.
    #[must_use]
    pub fn strip(mut self, strip: usize) -> Self {
        self.strip = Some(strip);
        self
    }

    /// Largest body, in bytes, that the decoder accepts and the encoder writes (default 1 MiB).
    ///
    /// The body is what follows the length field: field value + `length_adjustment`, which is the
    /// payload the encoder is given. Unlike Netty, the header does not count, so 1 MiB admits a
    /// 1 MiB payload. A value over what the field can announce (its largest value plus the
    /// adjustment) is clipped to that, as tokio-util does: a 1-byte field gives at most 255,
    /// 254 with adjustment -1, 256 with +1.
    #[must_use]
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.max_frame_length = max;
        self
    }

    /// Big-endian length field (the default).
    #[must_use]
    pub fn big_endian(self) -> Self {
        self.endian(Endian::Big)
    }

    /// Little-endian length field.
    #[must_use]
    pub fn little_endian(self) -> Self {
        self.endian(Endian::Little)
    }

    /// Length field in the build target's byte order.
    #[must_use]
    pub fn native_endian(self) -> Self {
        self.endian(Endian::Native)
    }

    /// Byte order of the length field.
    #[must_use]
    pub fn endian(mut self, endian: Endian) -> Self {
        self.endian = endian;
        self
    }

    /// What the decoder does with a frame whose body is over `max_frame_length` (default `true`).
    ///
    /// Either way it never buffers such a frame: it drops the frame's bytes from the buffer as
    /// they arrive, after which the stream is usable again (Netty's discard mode).
    /// `true` reports [`FrameError::TooLong`](crate::FrameError::TooLong) as soon as the head is
    /// read, and the caller normally closes the connection. `false` reports it once the whole
    /// frame was dropped, so a caller that wants to carry on sees the error at a frame boundary.
    #[must_use]
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// Checks the options and returns the configuration.
    ///
    /// Errors name the option at fault: a field length other than 1, 2, 3, 4 or 8; an offset so
    /// large that the header end overflows; an adjustment so negative that the field cannot
    /// announce any body; a strip longer than any frame can be.
    pub fn build(self) -> Result<FrameConfig, ConfigError> {
        let len = match self.length_field_length {
            1 | 2 | 3 | 4 | 8 => self.length_field_length as u8,
            other => return Err(ConfigError::LengthFieldLength { len: other }),
        };
        let Some(end) = self.length_field_offset.checked_add(usize::from(len)) else {
            return Err(ConfigError::LengthFieldOffset { offset: self.length_field_offset });
        };
        if largest_body(len, self.length_adjustment) < 0 {
            return Err(ConfigError::LengthAdjustment {
                adjustment: self.length_adjustment,
                length_field_length: usize::from(len),
            });
        }
        let max_frame_length = clip_max(self.max_frame_length, len, self.length_adjustment);
        let strip = self.strip.unwrap_or(end);
        let largest_frame = end as u128 + max_frame_length as u128;
        if strip as u128 > largest_frame {
            return Err(ConfigError::Strip {
                strip,
                largest_frame: usize::try_from(largest_frame).unwrap_or(usize::MAX),
            });
        }
        Ok(FrameConfig {
            max_frame_length,
            length_field_offset: self.length_field_offset,
            strip,
            length_adjustment: self.length_adjustment,
            length_field_length: len,
            endian: self.endian.resolve(),
            fail_fast: self.fail_fast,
        })
    }
}

/// An option given to [`FrameConfigBuilder`] that cannot work, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `length_field_length` is not 1, 2, 3, 4 or 8.
    LengthFieldLength {
        /// The rejected width.
        len: usize,
    },
    /// `length_field_offset + length_field_length` overflows `usize`.
    LengthFieldOffset {
        /// The rejected offset.
        offset: usize,
    },
    /// `length_adjustment` is so negative that no field value gives a body of 0 or more bytes.
    LengthAdjustment {
        /// The rejected adjustment.
        adjustment: isize,
        /// The field width it was combined with.
        length_field_length: usize,
    },
    /// `strip` is longer than the largest frame (header plus `max_frame_length`).
    Strip {
        /// The rejected strip.
        strip: usize,
        /// Header plus the (clipped) maximum body.
        largest_frame: usize,
    },
}

impl ConfigError {
    /// Name of the builder option at fault.
    pub fn option(&self) -> &'static str {
        match self {
            ConfigError::LengthFieldLength { .. } => "length_field_length",
            ConfigError::LengthFieldOffset { .. } => "length_field_offset",
            ConfigError::LengthAdjustment { .. } => "length_adjustment",
            ConfigError::Strip { .. } => "strip",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let option = self.option();
        match *self {
            ConfigError::LengthFieldLength { len } => {
                write!(f, "{option}: {len} is not one of 1, 2, 3, 4, 8")
            }
            ConfigError::LengthFieldOffset { offset } => {
                write!(f, "{option}: {offset} plus the length field's width overflows usize")
            }
            ConfigError::LengthAdjustment { adjustment, length_field_length } => write!(
                f,
                "{option}: {adjustment} leaves no valid body length for a \
                 {length_field_length}-byte length field"
            ),
            ConfigError::Strip { strip, largest_frame } => write!(
                f,
                "{option}: {strip} bytes is more than the largest frame ({largest_frame} bytes: \
                 header plus max_frame_length)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_max_covers_every_width() {
        assert_eq!(field_max(1), 0xFF);
        assert_eq!(field_max(2), 0xFFFF);
        assert_eq!(field_max(3), 0xFF_FFFF);
        assert_eq!(field_max(4), 0xFFFF_FFFF);
        assert_eq!(field_max(8), u64::MAX);
    }

    #[test]
    fn clip_never_raises_the_max() {
        assert_eq!(clip_max(10, 1, 100), 10);
        assert_eq!(clip_max(1000, 1, 0), 255);
        assert_eq!(clip_max(usize::MAX, 8, 0), usize::MAX);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn clip_with_eight_byte_field() {
        assert_eq!(clip_max(usize::MAX, 8, -8), usize::MAX - 8);
        assert_eq!(clip_max(usize::MAX, 8, isize::MIN), usize::MAX >> 1);
    }
}
