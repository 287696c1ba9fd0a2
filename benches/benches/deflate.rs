//! Compression micro-benchmarks on JSON text: ws-frame's permessage-deflate both ways, and the
//! raw deflate engines miniz_oxide and flate2 + zlib-rs at the same level and window (speed
//! here, compression ratio printed before the measurements).
//!
//! `cargo bench -p wskit-benches --bench deflate [-- FILTER]`

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wskit_benches::{
    deflate::{self, WsCompressor},
    engines::{Miniz, ZlibRs},
    frames, human_size, payload,
};

const SIZES: [usize; 3] = [1 << 10, 16 << 10, 256 << 10];

/// Distinct messages cycled through, so that context takeover sees realistic repetition (same
/// keys and vocabulary, other values) rather than the very same message again.
const DISTINCT: u64 = 16;

fn messages(size: usize) -> Vec<String> {
    (0..DISTINCT)
        .map(|seed| payload::json_with_seed(size, seed))
        .collect()
}

fn permessage_deflate(c: &mut Criterion) {
    let params = deflate::params(1, 15);
    let mut g = c.benchmark_group("permessage_deflate/compress");
    for size in SIZES {
        let texts = messages(size);
        let mut compressor = WsCompressor::new(params.clone());
        let wire: usize = texts.iter().map(|t| compressor.send(t).len()).sum();
        eprintln!(
            "permessage_deflate level 1, {} JSON: {} wire bytes per message (ratio {:.2})",
            human_size(size),
            wire / texts.len(),
            (size * texts.len()) as f64 / wire as f64
        );
        g.throughput(Throughput::Bytes(size as u64));
        let mut next = texts.iter().cycle();
        g.bench_function(BenchmarkId::new("ws_frame", human_size(size)), |b| {
            b.iter(|| {
                let text = next.next().expect("cycle");
                compressor.send(black_box(text)).len()
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("permessage_deflate/inflate");
    for size in SIZES {
        let texts = messages(size);
        let count = frames::count_for(size).min(256);
        let wire = deflate::compressed_stream(&texts, count, params.clone());
        assert_eq!(
            deflate::ws_inflate(&wire, params.clone()),
            (count, count * size)
        );
        g.throughput(Throughput::Bytes((count * size) as u64));
        g.bench_function(
            BenchmarkId::new("ws_frame", format!("{}x{count}", human_size(size))),
            |b| b.iter(|| deflate::ws_inflate(black_box(&wire), params.clone())),
        );
    }
    g.finish();
}

fn engines(c: &mut Criterion) {
    let inputs: Vec<(usize, String)> = [1 << 10, 16 << 10, 256 << 10]
        .into_iter()
        .map(|size| (size, payload::json(size)))
        .collect();
    let mut out = Vec::new();
    for (level, bits) in [(1, 15), (6, 15), (1, 10)] {
        let mut g = c.benchmark_group(format!("engines/compress/level{level}_window{bits}"));
        let mut miniz = Miniz::new(level, bits);
        let mut zlib = ZlibRs::new(level, bits);
        for (size, text) in &inputs {
            let input = text.as_bytes();
            miniz.compress(input, &mut out);
            let miniz_len = out.len();
            zlib.compress(input, &mut out);
            let zlib_len = out.len();
            eprintln!(
                "level {level}, window {bits}, {} JSON: miniz_oxide {miniz_len} B (ratio {:.2}), \
                 zlib-rs {zlib_len} B (ratio {:.2})",
                human_size(*size),
                *size as f64 / miniz_len as f64,
                *size as f64 / zlib_len as f64,
            );
            g.throughput(Throughput::Bytes(*size as u64));
            g.bench_function(BenchmarkId::new("miniz_oxide", human_size(*size)), |b| {
                b.iter(|| miniz.compress(black_box(input), &mut out));
            });
            g.bench_function(BenchmarkId::new("zlib-rs", human_size(*size)), |b| {
                b.iter(|| zlib.compress(black_box(input), &mut out));
            });
        }
        g.finish();
    }

    // Both engines inflate the same stream (miniz_oxide level 1, window 15).
    let mut g = c.benchmark_group("engines/inflate");
    let mut miniz = Miniz::new(1, 15);
    let mut zlib = ZlibRs::new(1, 15);
    for (size, text) in &inputs {
        let mut z = Vec::new();
        miniz.compress(text.as_bytes(), &mut z);
        miniz.inflate(&z, &mut out, *size);
        assert_eq!(out, text.as_bytes());
        zlib.inflate(&z, &mut out, *size);
        assert_eq!(out, text.as_bytes());
        g.throughput(Throughput::Bytes(*size as u64));
        g.bench_function(BenchmarkId::new("miniz_oxide", human_size(*size)), |b| {
            b.iter(|| miniz.inflate(black_box(&z), &mut out, *size));
        });
        g.bench_function(BenchmarkId::new("zlib-rs", human_size(*size)), |b| {
            b.iter(|| zlib.inflate(black_box(&z), &mut out, *size));
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // Short by default (a shared 2-core machine); `-- --measurement-time 10` for steadier figures.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = permessage_deflate, engines
}
criterion_main!(benches);
