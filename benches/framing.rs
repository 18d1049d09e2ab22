//! Throughput of the framing crate: decode, peek and batched encode of 64 B, 1 KiB and 64 KiB
//! payloads under the default layout (4-byte big-endian length).
//!
//! Each iteration works through about 1 MiB of stream, so per-call overheads and per-byte costs
//! both show; throughput is counted in stream bytes (headers included), reported as GB/s.
//!
//! Run with `cargo bench --bench framing`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use framing::{FrameConfig, FrameDecoder};

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB")];

/// Frames per iteration: about 1 MiB of payload, and never fewer than 16 frames.
fn frame_count(size: usize) -> usize {
    ((1 << 20) / size).max(16)
}

/// `count` frames of `size` bytes each, encoded back to back.
fn stream(config: &FrameConfig, size: usize, count: usize) -> BytesMut {
    let payload = vec![0x5A; size];
    let mut wire = BytesMut::new();
    config
        .encode_batch(std::iter::repeat_n(&payload[..], count), &mut wire)
        .expect("payload within the default maximum");
    wire
}

fn decode(c: &mut Criterion) {
    let config = FrameConfig::default();
    let mut group = c.benchmark_group("decode");
    for (size, name) in SIZES {
        let count = frame_count(size);
        let wire = stream(&config, size, count);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            // The copy of the prepared stream is made outside the timed part.
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    let mut decoder = FrameDecoder::new(config);
                    let mut frames = 0;
                    while let Some(frame) = decoder.decode(&mut buf).expect("valid stream") {
                        black_box(&frame);
                        frames += 1;
                    }
                    assert_eq!(frames, count);
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn peek(c: &mut Criterion) {
    let config = FrameConfig::default();
    let mut group = c.benchmark_group("peek");
    for (size, name) in SIZES {
        let count = frame_count(size);
        let wire = stream(&config, size, count).freeze();
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            // Borrowing: nothing is split or copied, so the same stream serves every iteration.
            b.iter(|| {
                let mut decoder = FrameDecoder::new(config);
                let mut pos = 0;
                let mut frames = 0;
                while let Some(span) = decoder.peek(&wire[pos..]).expect("valid stream") {
                    black_box(&wire[pos..][span.payload]);
                    pos += span.frame_len;
                    frames += 1;
                }
                assert_eq!(frames, count);
            });
        });
    }
    group.finish();
}

fn encode_batch(c: &mut Criterion) {
    let config = FrameConfig::default();
    let mut group = c.benchmark_group("encode_batch");
    for (size, name) in SIZES {
        let count = frame_count(size);
        let payload = vec![0x5A; size];
        let stream_len = count * (size + config.header_len());
        let mut out = BytesMut::with_capacity(stream_len);
        group.throughput(Throughput::Bytes(stream_len as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            // The output buffer is reused: after the first iteration no allocation happens.
            b.iter(|| {
                out.clear();
                let written = config
                    .encode_batch(std::iter::repeat_n(&payload[..], count), &mut out)
                    .expect("payload within the default maximum");
                black_box(written)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode, peek, encode_batch);
criterion_main!(benches);
