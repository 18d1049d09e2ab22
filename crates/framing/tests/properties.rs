//! Property tests: round trips through arbitrary read boundaries, arbitrary input never panics
//! or yields an over-long frame, `peek` agrees with `decode`, `encode_batch` agrees with `encode`.

use bytes::BytesMut;
use framing::{Endian, FrameConfig, FrameDecoder, FrameError};
use proptest::prelude::*;
use proptest::sample::{select, Index};

/// Configurations where encode then decode gives back the payloads: offset 0, default strip.
fn round_trip_config() -> impl Strategy<Value = FrameConfig> {
    (select(vec![1usize, 2, 3, 4, 8]), any::<bool>(), -8isize..=8, 8usize..=4096, any::<bool>()).prop_map(
        |(len, little, adjustment, max, fail_fast)| {
            let builder = FrameConfig::builder()
                .length_field_length(len)
                .length_adjustment(adjustment)
                .max_frame_length(max)
                .fail_fast(fail_fast);
            let builder = if little { builder.little_endian() } else { builder };
            builder.build().expect("valid round-trip config")
        },
    )
}

/// Any configuration the builder accepts, with small maxima so that limits are hit often.
fn any_config() -> impl Strategy<Value = FrameConfig> {
    (
        select(vec![1usize, 2, 3, 4, 8]),
        any::<bool>(),
        0usize..6,
        -20isize..=20,
        proptest::option::of(0usize..16),
        prop_oneof![0usize..600, Just(usize::MAX)],
        any::<bool>(),
    )
        .prop_filter_map(
            "the builder refuses it",
            |(len, little, offset, adjustment, strip, max, fail_fast)| {
                let mut builder = FrameConfig::builder()
                    .length_field_length(len)
                    .length_field_offset(offset)
                    .length_adjustment(adjustment)
                    .max_frame_length(max)
                    .fail_fast(fail_fast);
                if little {
                    builder = builder.little_endian();
                }
                if let Some(strip) = strip {
                    builder = builder.strip(strip);
                }
                builder.build().ok()
            },
        )
}

/// `wire` cut at the given points into consecutive chunks (some may be empty).
fn chunks(wire: &[u8], cuts: &[Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    points.windows(2).map(|w| wire[w[0]..w[1]].to_vec()).collect()
}

/// One thing a stream yields, with `Corrupt` reasons left out so a model can predict it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Frame(Vec<u8>),
    TooLong { len: u64, max: usize },
    Corrupt,
    Incomplete(usize),
}

impl From<FrameError> for Event {
    fn from(err: FrameError) -> Self {
        match err {
            FrameError::TooLong { len, max } => Event::TooLong { len, max },
            FrameError::Corrupt { .. } => Event::Corrupt,
            FrameError::Incomplete { buffered } => Event::Incomplete(buffered),
            FrameError::Prefix { .. } => unreachable!("decoding never reports an encoder error"),
        }
    }
}

/// Feeds chunks one by one to `decode`, then calls `decode_eof`, carrying on after `TooLong`
/// (the stream stays usable) and stopping at any other error. Checks on the way that no frame
/// body exceeds the maximum and that the decoder never grows the buffer.
fn run_decode(config: FrameConfig, chunks: &[Vec<u8>]) -> Vec<Event> {
    let mut dec = FrameDecoder::new(config);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    // A frame handed over is header + body - strip, and body <= max.
    let largest =
        config.length_field_end() as u128 + config.max_frame_length() as u128 - config.strip() as u128;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let capacity = buf.capacity();
            let result = dec.decode(&mut buf);
            assert!(buf.capacity() <= capacity, "the decoder reserved");
            let _ = dec.bytes_needed(&buf);
            match result {
                Ok(Some(frame)) => {
                    assert!(frame.len() as u128 <= largest, "frame over the maximum");
                    events.push(Event::Frame(frame.to_vec()));
                }
                Ok(None) => break,
                Err(err @ FrameError::TooLong { .. }) => events.push(err.into()),
                Err(err) => {
                    events.push(err.into());
                    return events;
                }
            }
        }
    }
    loop {
        match dec.decode_eof(&mut buf) {
            Ok(Some(frame)) => events.push(Event::Frame(frame.to_vec())),
            Ok(None) => return events,
            Err(err) => {
                events.push(err.into());
                return events;
            }
        }
    }
}

/// The same with `peek` over a plain buffer the test advances itself. `peek` cannot discard, so
/// this stops at the first error of any kind.
fn run_peek(config: FrameConfig, chunks: &[Vec<u8>]) -> Vec<Event> {
    let mut dec = FrameDecoder::new(config);
    let mut pending: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            let rest = &pending[pos..];
            match dec.peek(rest) {
                Ok(Some(span)) => {
                    assert!(span.frame_len <= rest.len());
                    events.push(Event::Frame(rest[span.payload].to_vec()));
                    pos += span.frame_len;
                }
                Ok(None) => break,
                Err(err) => {
                    events.push(err.into());
                    return events;
                }
            }
        }
        pending.drain(..pos);
    }
    if !pending.is_empty() {
        events.push(Event::Incomplete(pending.len()));
    }
    events
}

/// What a stream should yield, worked out on the whole input at once, with wide integers and no
/// state: an independent statement of the framing rules for `run_decode` to match.
fn model(config: &FrameConfig, wire: &[u8]) -> Vec<Event> {
    let end = config.length_field_end();
    let mut events = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        if rest.len() < end {
            events.push(Event::Incomplete(rest.len()));
            break;
        }
        let field = &rest[config.length_field_offset()..end];
        let raw = match config.endian() {
            Endian::Little => field.iter().rev().fold(0i128, |v, &b| v << 8 | i128::from(b)),
            _ => field.iter().fold(0i128, |v, &b| v << 8 | i128::from(b)),
        };
        let body = raw + config.length_adjustment() as i128;
        if body < 0 || body > i128::from(u64::MAX) {
            events.push(Event::Corrupt);
            break;
        }
        let frame_len = end as i128 + body;
        if body > config.max_frame_length() as i128 {
            events.push(Event::TooLong { len: body as u64, max: config.max_frame_length() });
            rest = &rest[(frame_len.min(rest.len() as i128)) as usize..];
            continue;
        }
        if frame_len > usize::MAX as i128 || config.strip() as i128 > frame_len {
            events.push(Event::Corrupt);
            break;
        }
        let frame_len = frame_len as usize;
        if rest.len() < frame_len {
            events.push(Event::Incomplete(rest.len()));
            break;
        }
        events.push(Event::Frame(rest[config.strip()..frame_len].to_vec()));
        rest = &rest[frame_len..];
    }
    events
}

/// Fits `payload` to what `config` can encode: within the maximum, not shorter than a positive
/// adjustment.
fn fit(mut payload: Vec<u8>, config: &FrameConfig) -> Vec<u8> {
    let shortest = config.length_adjustment().max(0) as usize;
    payload.truncate(config.max_frame_length());
    if payload.len() < shortest {
        payload.resize(shortest, 0xAB);
    }
    payload
}

proptest! {
    #[test]
    fn frames_survive_any_read_boundaries(
        config in round_trip_config(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 0..50),
        cuts in prop::collection::vec(any::<Index>(), 0..40),
    ) {
        let payloads: Vec<Vec<u8>> = payloads.into_iter().map(|p| fit(p, &config)).collect();
        let mut wire = BytesMut::new();
        for payload in &payloads {
            config.encode(payload, &mut wire).unwrap();
        }
        let chunks = chunks(&wire, &cuts);
        let frames: Vec<Event> = payloads.into_iter().map(Event::Frame).collect();
        prop_assert_eq!(run_decode(config, &chunks), frames.clone());
        prop_assert_eq!(run_peek(config, &chunks), frames);
    }

    #[test]
    fn arbitrary_input_matches_the_model(
        config in any_config(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        flips in prop::collection::vec((any::<Index>(), any::<u8>()), 0..5),
        garbage in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<Index>(), 0..40),
    ) {
        // Mostly well-formed frames with a few bytes changed, then noise.
        let mut wire = BytesMut::new();
        for payload in &payloads {
            let _ = config.encode(payload, &mut wire);
        }
        if !wire.is_empty() {
            for (at, xor) in &flips {
                let at = at.index(wire.len());
                wire[at] ^= xor;
            }
        }
        wire.extend_from_slice(&garbage);
        let chunks = chunks(&wire, &cuts);
        let expected = model(&config, &wire);
        prop_assert_eq!(run_decode(config, &chunks), expected.clone());
        // peek stops at the first error, discarding nothing.
        let first_error = expected.iter().position(|e| !matches!(e, Event::Frame(_)));
        let until_error = first_error.map_or(expected.len(), |at| at + 1);
        prop_assert_eq!(run_peek(config, &chunks), &expected[..until_error]);
    }

    #[test]
    fn encode_batch_equals_repeated_encode(
        config in round_trip_config(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..150),
        prefix in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut one_by_one = BytesMut::from(&prefix[..]);
        let expected = payloads
            .iter()
            .try_for_each(|p| config.encode(p, &mut one_by_one));

        let mut batched = BytesMut::from(&prefix[..]);
        let result = config.encode_batch(payloads.iter().map(Vec::as_slice), &mut batched);
        match expected {
            Ok(()) => {
                prop_assert_eq!(result, Ok(one_by_one.len() - prefix.len()));
                prop_assert_eq!(batched, one_by_one);
            }
            Err(err) => {
                prop_assert_eq!(result, Err(err));
                prop_assert_eq!(&batched[..], &prefix[..]);
            }
        }
    }
}
