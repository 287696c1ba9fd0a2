//! Framing micro-benchmarks: masking next to a plain copy, header parsing and encoding, and
//! decoding streams of client frames with ws-frame and with tungstenite.
//!
//! `cargo bench -p wskit-benches --bench frame [-- FILTER]`

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ws_frame::{Header, MAX_HEADER_LEN, OpCode, mask, parse_header};
use wskit_benches::{decode, frames, human_size, payload};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn masking(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for size in [1 << 10, 64 << 10, 1 << 20] {
        let src = payload::binary(size);
        let mut buf = src.clone();
        let label = human_size(size);
        g.throughput(Throughput::Bytes(size as u64));
        // The limit: the same bytes copied once, no arithmetic.
        g.bench_function(BenchmarkId::new("memcpy", &label), |b| {
            b.iter(|| buf.copy_from_slice(black_box(&src)));
        });
        g.bench_function(BenchmarkId::new("ws_frame::mask::apply", &label), |b| {
            b.iter(|| mask::apply(black_box(&mut buf), black_box(KEY)));
        });
        g.bench_function(
            BenchmarkId::new("ws_frame::mask::apply_at+1", &label),
            |b| {
                b.iter(|| mask::apply_at(black_box(&mut buf[1..]), black_box(KEY), 1));
            },
        );
        g.bench_function(BenchmarkId::new("byte_loop", &label), |b| {
            b.iter(|| mask::apply_reference(black_box(&mut buf), black_box(KEY), 0));
        });
        g.bench_function(BenchmarkId::new("fastwebsockets::unmask", &label), |b| {
            b.iter(|| fastwebsockets::unmask(black_box(&mut buf), black_box(KEY)));
        });
    }
    g.finish();
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("header");
    let cases = [
        ("server_2B", false, 20u64),
        ("client_6B", true, 20),
        ("client_8B", true, 16 << 10),
        ("client_14B", true, 1 << 20),
    ];
    for (name, masked, len) in cases {
        let mut header = Header::new(true, OpCode::Binary, len);
        header.mask = masked.then_some(KEY);
        let mut bytes = [0; MAX_HEADER_LEN];
        let n = header.encode_into(&mut bytes);
        let wire = bytes[..n].to_vec();
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_function(BenchmarkId::new("parse_header", name), |b| {
            b.iter(|| parse_header(black_box(&wire)));
        });
        g.bench_function(BenchmarkId::new("encode_into", name), |b| {
            let mut out = [0; MAX_HEADER_LEN];
            b.iter(|| black_box(&header).encode_into(black_box(&mut out)));
        });
    }
    g.finish();
}

fn decoding(c: &mut Criterion) {
    for text in [false, true] {
        let mut g = c.benchmark_group(if text { "decode/text" } else { "decode/binary" });
        for size in [20, 1 << 10, 16 << 10, 1 << 20] {
            let message = if text {
                payload::json(size).into_bytes()
            } else {
                payload::binary(size)
            };
            let count = frames::count_for(size);
            let wire = frames::masked_stream(&message, count, text);
            let expected = (count, count * size);
            assert_eq!(decode::ws_frame(&wire, decode::READ_CHUNK), expected);
            assert_eq!(decode::tungstenite(&wire, count), expected);
            let label = format!("{}x{count}", human_size(size));
            g.throughput(Throughput::Bytes((count * size) as u64));
            g.bench_function(BenchmarkId::new("ws_frame", &label), |b| {
                b.iter(|| decode::ws_frame(black_box(&wire), decode::READ_CHUNK));
            });
            g.bench_function(BenchmarkId::new("tungstenite", &label), |b| {
                b.iter(|| decode::tungstenite(black_box(&wire), count));
            });
        }
        g.finish();
    }
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
    targets = masking, headers, decoding
}
criterion_main!(benches);
