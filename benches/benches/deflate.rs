//! Compression micro-benchmarks.
//!
//! - `permessage_deflate/<engine>/...`: ws-frame's permessage-deflate both ways through
//!   `Connection`, on text, JSON and binary corpora, 1 KiB and 64 KiB messages, with and without
//!   context takeover, at level 1 (the default). `<engine>` is the one ws-frame was built with:
//!   miniz_oxide by default, zlib-rs with `--features deflate-zlib-rs`; run both for the
//!   side-by-side table (ratios are printed before the measurements).
//! - `engines/...`: the raw deflate engines miniz_oxide and zlib-rs (through flate2) side by side
//!   in one run, one finished stream per message, at the same level and window.
//!
//! ```text
//! cargo bench -p wskit-benches --bench deflate [-- FILTER]
//! cargo bench -p wskit-benches --bench deflate --features deflate-zlib-rs -- permessage
//! ```

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ws_frame::deflate::BACKEND;
use wskit_benches::{
    deflate::{self, WsCompressor},
    engines::{Miniz, ZlibRs},
    human_size,
    payload::{self, Corpus},
};

const SIZES: [usize; 2] = [1 << 10, 64 << 10];

/// Distinct messages cycled through: at least 16, and at least 128 KiB of them, so that with
/// context takeover a message never finds its own copy inside the 32 KiB window and sees only
/// realistic repetition (same vocabulary and structure, other values).
fn messages(corpus: Corpus, size: usize) -> Vec<Vec<u8>> {
    let distinct = ((128 << 10) / size).max(16) as u64;
    (0..distinct)
        .map(|seed| corpus.message(size, seed))
        .collect()
}

fn mode_name(no_context: bool) -> &'static str {
    if no_context {
        "no_takeover"
    } else {
        "takeover"
    }
}

fn permessage_deflate(c: &mut Criterion) {
    for corpus in Corpus::ALL {
        let mut g = c.benchmark_group(format!(
            "permessage_deflate/{BACKEND}/compress/{}",
            corpus.name()
        ));
        for size in SIZES {
            let inputs = messages(corpus, size);
            for no_context in [false, true] {
                let params = deflate::params_with(1, 15, no_context);
                let mut compressor = WsCompressor::new(params);
                // Ratio over 64 messages in order (payload bytes / wire bytes, headers included).
                let wire: usize = inputs
                    .iter()
                    .cycle()
                    .take(64)
                    .map(|m| compressor.send_bytes(m, corpus.is_text()).len())
                    .sum();
                eprintln!(
                    "ratio {BACKEND} {} {} {}: {:.3}",
                    corpus.name(),
                    human_size(size),
                    mode_name(no_context),
                    (64 * size) as f64 / wire as f64
                );
                g.throughput(Throughput::Bytes(size as u64));
                let mut next = inputs.iter().cycle();
                g.bench_function(
                    BenchmarkId::new(mode_name(no_context), human_size(size)),
                    |b| {
                        b.iter(|| {
                            let m = next.next().expect("cycle");
                            compressor.send_bytes(black_box(m), corpus.is_text()).len()
                        });
                    },
                );
            }
        }
        g.finish();

        let mut g = c.benchmark_group(format!(
            "permessage_deflate/{BACKEND}/inflate/{}",
            corpus.name()
        ));
        for size in SIZES {
            let inputs = messages(corpus, size);
            // About 1 MiB of payload per iteration (at least 16 messages), inflated by one new
            // client connection in order.
            let count = ((1 << 20) / size).max(16);
            for no_context in [false, true] {
                let params = deflate::params_with(1, 15, no_context);
                let wire =
                    deflate::compressed_messages(&inputs, corpus.is_text(), count, params.clone());
                assert_eq!(
                    deflate::ws_inflate(&wire, params.clone()),
                    (count, count * size)
                );
                g.throughput(Throughput::Bytes((count * size) as u64));
                g.bench_function(
                    BenchmarkId::new(mode_name(no_context), human_size(size)),
                    |b| b.iter(|| deflate::ws_inflate(black_box(&wire), params.clone())),
                );
            }
        }
        g.finish();
    }
}

fn engines(c: &mut Criterion) {
    let mut out = Vec::new();
    for corpus in Corpus::ALL {
        let inputs: Vec<(usize, Vec<u8>)> = SIZES
            .into_iter()
            .map(|size| (size, corpus.message(size, 0)))
            .collect();
        for (level, bits) in [(1, 15), (6, 15)] {
            let mut g = c.benchmark_group(format!(
                "engines/compress/{}/level{level}_window{bits}",
                corpus.name()
            ));
            let mut miniz = Miniz::new(level, bits);
            let mut zlib = ZlibRs::new(level, bits);
            for (size, input) in &inputs {
                miniz.compress(input, &mut out);
                let miniz_len = out.len();
                zlib.compress(input, &mut out);
                let zlib_len = out.len();
                eprintln!(
                    "engines level {level}, window {bits}, {} {}: miniz_oxide {miniz_len} B \
                     (ratio {:.2}), zlib-rs {zlib_len} B (ratio {:.2})",
                    human_size(*size),
                    corpus.name(),
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
        let mut g = c.benchmark_group(format!("engines/inflate/{}", corpus.name()));
        let mut miniz = Miniz::new(1, 15);
        let mut zlib = ZlibRs::new(1, 15);
        for (size, input) in &inputs {
            let mut z = Vec::new();
            miniz.compress(input, &mut z);
            miniz.inflate(&z, &mut out, *size);
            assert_eq!(&out, input);
            zlib.inflate(&z, &mut out, *size);
            assert_eq!(&out, input);
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
    // Kept from the first comparison: the smallest window zlib-rs keeps natively against
    // miniz_oxide's emulation of it, on JSON.
    let mut g = c.benchmark_group("engines/compress/json/level1_window10");
    let mut miniz = Miniz::new(1, 10);
    let mut zlib = ZlibRs::new(1, 10);
    for size in SIZES {
        let input = payload::json(size).into_bytes();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("miniz_oxide", human_size(size)), |b| {
            b.iter(|| miniz.compress(black_box(&input), &mut out));
        });
        g.bench_function(BenchmarkId::new("zlib-rs", human_size(size)), |b| {
            b.iter(|| zlib.compress(black_box(&input), &mut out));
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
