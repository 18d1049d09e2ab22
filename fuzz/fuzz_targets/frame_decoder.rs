//! `framing::FrameDecoder` on arbitrary bytes, cut into arbitrary reads, under an arbitrary layout.
//!
//! Input: an 8-byte header chooses the layout and how the stream is driven; the rest is the
//! byte stream (see `Setup::from_header`). The decoder's output is checked against an
//! independent, non-incremental model of the layout documented on `FrameConfig` and `FrameDecoder`:
//!
//! - it never panics;
//! - the events (frames and errors) are exactly the model's, whatever the read boundaries, and the
//!   end of stream (`decode_eof`) is reported as the model says (clean, incomplete, too long);
//! - no frame has a body (bytes after the length field) over `max_frame_length`;
//! - `peek` agrees with `decode`: mixed on one decoder, the spans it returns are the model's
//!   frames, and its errors are the frame's error (a too-long frame at once, whatever `fail_fast`);
//! - `bytes_needed` is consistent with what `decode` does next;
//! - `Corrupt` is sticky: every later call reports it again;
//! - the decoder never grows the buffer (its capacity never increases across a `decode` or
//!   `peek`), so the buffer stays within what was fed (2x for the caller's own growth + slack);
//! - the builder accepts exactly the documented layouts, and with offset 0 and the default strip
//!   the encoder's frames decode back to their payloads.
#![no_main]

use bytes::{Buf, BytesMut};
use framing::{Endian, FrameConfig, FrameDecoder, FrameError};
use libfuzzer_sys::fuzz_target;

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

const HEADER: usize = 8;
const WIDTHS: [usize; 5] = [1, 2, 3, 4, 8];
/// Slack allowed over 2x the bytes fed, for the harness's own buffer growth.
const CAPACITY_SLACK: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((header, stream)) = data.split_first_chunk::<HEADER>() else {
        return;
    };
    let Some(setup) = Setup::from_header(header) else {
        return;
    };
    run_decoder(&setup, stream);
    encoder_round_trip(&setup, stream);
});

/// How one input drives the decoder.
struct Setup {
    config: FrameConfig,
    /// 0: decode only; 1: peek whenever allowed; 2, 3: a random mix of both.
    peek_mode: u8,
    /// 0: the whole stream in one read; otherwise seeds the read sizes.
    chunk_seed: u8,
}

impl Setup {
    /// Header bytes:
    /// - `h[0]`: bits 0-2 field width index into {1,2,3,4,8} (mod 5), bit 3 little-endian,
    ///   bit 4 fail_fast, bits 5-7 max mode (0-3: u16 `h[4..6]` LE; 4: `h[4]`; 5: default 1 MiB;
    ///   6: usize::MAX; 7: u16 `h[4..6]` << 8);
    /// - `h[1]`: offset `h[1] & 7`, or `usize::MAX - width` when 0xFF;
    /// - `h[2] % 8`: adjustment mode (0-4: `h[3]` as i8; 5: -field max (isize::MIN for 8 bytes);
    ///   6: isize::MIN; 7: isize::MAX);
    /// - `h[6]`: bits 0-1 peek mode, bits 2-7 strip (0: default, s: s - 1);
    /// - `h[7]`: chunk seed.
    fn from_header(h: &[u8; HEADER]) -> Option<Setup> {
        let width = WIDTHS[usize::from(h[0] & 7) % WIDTHS.len()];
        let endian = if h[0] & 0x08 != 0 { Endian::Little } else { Endian::Big };
        let fail_fast = h[0] & 0x10 != 0;
        let wide = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let max = match h[0] >> 5 {
            0..=3 => wide,
            4 => usize::from(h[4]),
            5 => FrameConfig::DEFAULT_MAX_FRAME_LENGTH,
            6 => usize::MAX,
            _ => wide << 8,
        };
        let offset = if h[1] == 0xFF { usize::MAX - width } else { usize::from(h[1] & 7) };
        let adjustment = match h[2] % 8 {
            0..=4 => isize::from(h[3] as i8),
            5 if width < 8 => -(field_max(width) as isize),
            5 | 6 => isize::MIN,
            _ => isize::MAX,
        };
        let strip = match h[6] >> 2 {
            0 => None,
            s => Some(usize::from(s - 1)),
        };
        let mut builder = FrameConfig::builder()
            .length_field_length(width)
            .length_field_offset(offset)
            .length_adjustment(adjustment)
            .max_frame_length(max)
            .endian(endian)
            .fail_fast(fail_fast);
        if let Some(strip) = strip {
            builder = builder.strip(strip);
        }
        let built = builder.build();

        // The builder's documented rules: the largest body a field can announce is its largest
        // value plus the adjustment (an error if negative); max is clipped to it; strip defaults
        // to offset + width and may not exceed header + max.
        let largest = i128::from(field_max(width)) + adjustment as i128;
        let end = offset + width; // offset <= usize::MAX - width
        let clipped = if largest < 0 { 0 } else { (max as i128).min(largest) as usize };
        let strip_value = strip.unwrap_or(end);
        let valid = largest >= 0 && strip_value as u128 <= end as u128 + clipped as u128;
        assert_eq!(built.is_ok(), valid, "builder verdict for {built:?}");
        let config = built.ok()?;
        assert_eq!(config.max_frame_length(), clipped);
        assert_eq!(config.strip(), strip_value);
        assert_eq!(config.length_field_end(), end);
        assert_eq!(config.length_field_length(), width);
        assert_eq!(config.endian(), endian);
        assert_eq!(config.fail_fast(), fail_fast);
        Some(Setup { config, peek_mode: h[6] & 3, chunk_seed: h[7] })
    }
}

fn field_max(width: usize) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    }
}

fn read_field(field: &[u8], endian: Endian) -> u64 {
    let mut value = 0u64;
    match endian {
        Endian::Little => {
            for &b in field.iter().rev() {
                value = (value << 8) | u64::from(b);
            }
        }
        _ => {
            for &b in field {
                value = (value << 8) | u64::from(b);
            }
        }
    }
    value
}

#[derive(Clone, Debug)]
enum Event {
    Frame(Vec<u8>),
    Err(FrameError),
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        match (self, other) {
            (Event::Frame(a), Event::Frame(b)) => a == b,
            (Event::Err(a), Event::Err(b)) => same_error(a, b),
            _ => false,
        }
    }
}

/// Errors compared by value, except the reason text of `Corrupt`.
fn same_error(a: &FrameError, b: &FrameError) -> bool {
    match (a, b) {
        (FrameError::Corrupt { .. }, FrameError::Corrupt { .. }) => true,
        _ => a == b,
    }
}

/// What the whole stream should decode to: the events in order, then what `decode_eof` says
/// (`Ok(())` for `Ok(None)`), or `None` if the stream stops at a corrupt head.
struct Model {
    events: Vec<Event>,
    eof: Option<Result<(), FrameError>>,
}

/// The layout decoded from the complete stream in one pass, written from the documentation, not
/// from the decoder.
fn model(config: &FrameConfig, stream: &[u8]) -> Model {
    let offset = config.length_field_offset();
    let end = config.length_field_end();
    let max = config.max_frame_length();
    let strip = config.strip();
    let mut events = Vec::new();
    let mut rest = stream;
    let eof = loop {
        let Some(field) = rest.get(offset..end) else {
            break Some(if rest.is_empty() {
                Ok(())
            } else {
                Err(FrameError::Incomplete { buffered: rest.len() })
            });
        };
        let body = i128::from(read_field(field, config.endian())) + config.length_adjustment() as i128;
        let Ok(body) = u64::try_from(body) else {
            events.push(Event::Err(FrameError::Corrupt { reason: "negative or over 64 bits" }));
            break None;
        };
        if body > max as u64 {
            // Dropped as it arrives; reported at its head (fail_fast) or once dropped.
            let error = FrameError::TooLong { len: body, max };
            if config.fail_fast() {
                events.push(Event::Err(error));
            }
            let total = body.saturating_add(end as u64);
            if total > rest.len() as u64 {
                break Some(if config.fail_fast() { Ok(()) } else { Err(error) });
            }
            rest = &rest[total as usize..];
            if !config.fail_fast() {
                events.push(Event::Err(error));
            }
            continue;
        }
        let Some(frame_len) = end.checked_add(body as usize) else {
            events.push(Event::Err(FrameError::Corrupt { reason: "frame length overflows usize" }));
            break None;
        };
        if strip > frame_len {
            events.push(Event::Err(FrameError::Corrupt { reason: "strip longer than the frame" }));
            break None;
        }
        if rest.len() < frame_len {
            break Some(Err(FrameError::Incomplete { buffered: rest.len() }));
        }
        events.push(Event::Frame(rest[strip..frame_len].to_vec()));
        rest = &rest[frame_len..];
    };
    Model { events, eof }
}

/// Consumes the next model event, which must equal `got`.
fn expect(model: &Model, next: &mut usize, got: Event) {
    match model.events.get(*next) {
        Some(want) => assert_eq!(*want, got, "event #{next} differs from the model"),
        None => panic!("event #{next} is {got:?}; the model has only {} events", model.events.len()),
    }
    *next += 1;
}

/// The body of a returned frame (`strip` bytes were cut off `frame_len`) is within the max.
fn assert_body_within_max(config: &FrameConfig, frame_len_after_strip: usize) {
    let frame_len = frame_len_after_strip + config.strip();
    assert!(frame_len >= config.length_field_end(), "frame shorter than its head");
    let body = frame_len - config.length_field_end();
    assert!(body <= config.max_frame_length(), "frame body {body} over max {}", config.max_frame_length());
}

fn run_decoder(setup: &Setup, stream: &[u8]) {
    let config = setup.config;
    let model = model(&config, stream);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(setup.chunk_seed));
    let mut decoder = FrameDecoder::new(config);
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut next = 0usize;
    // After peek reports a too-long frame, decode must take over to drop it.
    let mut must_decode = false;

    loop {
        let use_peek = !must_decode
            && match setup.peek_mode {
                0 => false,
                1 => true,
                _ => rng.next() & 1 == 1,
            };
        let capacity = buf.capacity();
        let mut need_input = false;
        if use_peek {
            match decoder.peek(&buf) {
                Ok(Some(span)) => {
                    assert!(span.frame_len <= buf.len(), "span past the buffer");
                    assert_eq!(span.payload.start, config.strip());
                    assert_eq!(span.payload.end, span.frame_len);
                    assert_body_within_max(&config, span.payload.len());
                    expect(&model, &mut next, Event::Frame(buf[span.payload.clone()].to_vec()));
                    buf.advance(span.frame_len);
                }
                Ok(None) => need_input = true,
                Err(error @ FrameError::TooLong { .. }) => {
                    // The frame at the front: either its error is the next event (not reported
                    // yet), or decode already reported it (fail_fast) and is still dropping it.
                    let got = Event::Err(error);
                    // Not reported yet may also mean reported at the end of the stream
                    // (fail_fast(false) and the stream ends inside the frame).
                    let upcoming = match model.events.get(next) {
                        Some(event) => *event == got,
                        None => matches!(&model.eof, Some(Err(e)) if same_error(e, &error)),
                    };
                    let current = next > 0 && model.events[next - 1] == got;
                    assert!(upcoming || current, "peek reported {error:?}, model is at #{next}");
                    must_decode = true;
                }
                Err(error) => {
                    expect(&model, &mut next, Event::Err(error));
                    assert_corrupt_is_sticky(&mut decoder, &mut buf, &model, next);
                    return;
                }
            }
        } else {
            let needed = decoder.bytes_needed(&buf);
            let result = decoder.decode(&mut buf);
            must_decode = false;
            match result {
                Ok(Some(frame)) => {
                    assert_eq!(needed, Some(0), "bytes_needed said {needed:?} before a frame");
                    assert_body_within_max(&config, frame.len());
                    expect(&model, &mut next, Event::Frame(frame.to_vec()));
                }
                Ok(None) => need_input = true,
                Err(error) => {
                    expect(&model, &mut next, Event::Err(error));
                    if let FrameError::Corrupt { .. } = error {
                        assert_corrupt_is_sticky(&mut decoder, &mut buf, &model, next);
                        return;
                    }
                }
            }
            if let Some(n) = needed {
                if n > 0 {
                    assert!(need_input, "bytes_needed said {n} more but decode went on");
                }
            }
        }
        assert!(buf.capacity() <= capacity, "decoder grew the buffer: {capacity} -> {}", buf.capacity());
        assert!(
            buf.capacity() <= 2 * fed + CAPACITY_SLACK,
            "buffer capacity {} after feeding {fed} bytes",
            buf.capacity()
        );

        if need_input {
            if fed == stream.len() {
                break;
            }
            let size = if setup.chunk_seed == 0 {
                stream.len()
            } else if rng.next() % 4 == 0 {
                1 + (rng.next() % 64) as usize
            } else {
                1 + (rng.next() % 8) as usize
            };
            let size = size.min(stream.len() - fed);
            buf.extend_from_slice(&stream[fed..fed + size]);
            fed += size;
        }
    }

    let capacity = buf.capacity();
    let eof = match decoder.decode_eof(&mut buf) {
        Ok(Some(frame)) => panic!("decode_eof returned a frame ({} bytes) decode did not", frame.len()),
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    };
    assert!(buf.capacity() <= capacity, "decode_eof grew the buffer");
    assert_eq!(next, model.events.len(), "decoder produced fewer events than the model");
    let want = model.eof.expect("the model stopped at a corrupt head the decoder did not report");
    match (&want, &eof) {
        (Ok(()), Ok(())) => {}
        (Err(a), Err(b)) if same_error(a, b) => {}
        _ => panic!("end of stream: decoder says {eof:?}, model says {want:?}"),
    }
}

/// After `Corrupt`, every later call reports it again and the model has nothing more.
fn assert_corrupt_is_sticky(decoder: &mut FrameDecoder, buf: &mut BytesMut, model: &Model, next: usize) {
    assert_eq!(next, model.events.len(), "model goes on after Corrupt");
    assert!(model.eof.is_none());
    assert!(matches!(decoder.decode(buf), Err(FrameError::Corrupt { .. })), "Corrupt not sticky (decode)");
    assert!(matches!(decoder.peek(buf), Err(FrameError::Corrupt { .. })), "Corrupt not sticky (peek)");
}

/// With offset 0 and the default strip, encoding payloads cut from the stream and decoding the
/// result gives the payloads back; the encoder refuses exactly what it documents.
fn encoder_round_trip(setup: &Setup, stream: &[u8]) {
    let config = setup.config;
    if config.length_field_offset() != 0 || config.strip() != config.length_field_length() {
        return;
    }
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ u64::from(setup.chunk_seed));
    let mut wire = BytesMut::new();
    let mut payloads = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let size = ((rng.next() % 48) as usize).min(rest.len());
        let (payload, tail) = rest.split_at(size);
        rest = tail;
        let before = wire.len();
        let result = config.encode(payload, &mut wire);
        let too_long = payload.len() > config.max_frame_length();
        let negative = (payload.len() as i128) < config.length_adjustment() as i128;
        match result {
            Ok(()) => {
                assert!(!too_long && !negative, "encoder accepted a {}-byte payload", payload.len());
                assert_eq!(wire.len(), before + config.header_len() + payload.len());
                payloads.push(payload);
            }
            Err(FrameError::TooLong { len, max }) => {
                assert!(too_long);
                assert_eq!((len, max), (payload.len() as u64, config.max_frame_length()));
                assert_eq!(wire.len(), before, "encoder wrote on error");
            }
            Err(FrameError::Corrupt { .. }) => {
                assert!(!too_long && negative);
                assert_eq!(wire.len(), before, "encoder wrote on error");
            }
            Err(other) => panic!("encoder returned {other:?}"),
        }
    }
    let mut decoder = FrameDecoder::new(config);
    for payload in payloads {
        match decoder.decode(&mut wire) {
            Ok(Some(frame)) => assert_eq!(&frame[..], payload, "encoded payload decoded differently"),
            other => panic!("encoded payload of {} bytes decoded as {other:?}", payload.len()),
        }
    }
    assert_eq!(decoder.decode_eof(&mut wire), Ok(None), "bytes left after the encoded frames");
}
