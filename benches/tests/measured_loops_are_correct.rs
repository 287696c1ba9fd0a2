//! The loops the benchmarks time do what their names say: both decoders read the same
//! messages, compressed streams inflate back to their input, and the engines' small windows
//! hold.

use wskit_benches::{decode, deflate, engines, frames, human_size, payload};

#[test]
fn json_payload_has_the_exact_length_and_is_ascii_json_array() {
    for len in [0, 1, 2, 3, 20, 100, 1000, 1024, 16 << 10, 1 << 20] {
        let text = payload::json(len);
        assert_eq!(text.len(), len, "len {len}");
        assert!(text.is_ascii());
        if len >= 2 {
            assert!(text.starts_with('[') && text.ends_with(']'), "len {len}");
        }
    }
    assert!(payload::json(4096).contains("\"event\":"));
    assert_eq!(payload::json(300), payload::json(300), "deterministic");
    assert_eq!(payload::json_with_seed(300, 0), payload::json(300));
    let other = payload::json_with_seed(300, 1);
    assert_eq!(other.len(), 300);
    assert_ne!(other, payload::json(300));
}

#[test]
fn binary_payload_is_deterministic_and_varied() {
    let a = payload::binary(4096);
    assert_eq!(a, payload::binary(4096));
    let distinct = a.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert!(distinct > 200, "only {distinct} distinct byte values");
}

#[test]
fn ws_frame_and_tungstenite_decode_the_same_messages_from_one_stream() {
    for text in [false, true] {
        for size in [0, 1, 20, 125, 126, 1024, 65_535, 65_536, 100_000] {
            let message = if text {
                payload::json(size).into_bytes()
            } else {
                payload::binary(size)
            };
            let count = 5;
            let wire = frames::masked_stream(&message, count, text);
            let expected = (count, count * size);
            for chunk in [1, 7, 4096, decode::READ_CHUNK] {
                assert_eq!(
                    decode::ws_frame(&wire, chunk),
                    expected,
                    "size {size} chunk {chunk}"
                );
            }
            assert_eq!(decode::tungstenite(&wire, count), expected, "size {size}");
        }
    }
}

#[test]
fn benchmark_inputs_hold_about_one_mebibyte_and_at_least_four_messages() {
    assert_eq!(frames::count_for(1 << 20), 4);
    assert_eq!(frames::count_for(16 << 10), 64);
    assert_eq!(frames::count_for(20), (1 << 20) / 20);
    assert_eq!(frames::count_for(0), 1 << 20);
}

#[test]
fn permessage_deflate_stream_inflates_to_the_input_for_windows_8_to_15() {
    let text = payload::json(20_000);
    for bits in 8..=15 {
        let params = deflate::params(1, bits);
        assert_eq!(params.server_max_window_bits(), bits);
        let texts = [text.clone(), payload::json_with_seed(20_000, 1)];
        let wire = deflate::compressed_stream(&texts, 4, params.clone());
        // Small windows cost ratio (about 1.4:1 at 8 bits); from 10 bits on JSON halves.
        let factor = if bits >= 10 { 2 } else { 1 };
        assert!(
            wire.len() * factor < text.len() * 4,
            "window {bits}: got {} wire bytes for {}",
            wire.len(),
            text.len() * 4
        );
        assert_eq!(
            deflate::ws_inflate(&wire, params),
            (4, 4 * text.len()),
            "window {bits}"
        );
    }
}

#[test]
fn ws_compressor_sets_rsv1_and_later_messages_use_the_context() {
    let text = payload::json(4096);
    let mut c = deflate::WsCompressor::new(deflate::params(1, 15));
    let first = c.send(&text).to_vec();
    let second = c.send(&text).to_vec();
    assert_eq!(first[0], 0xC1, "FIN + RSV1 + text");
    assert!(
        second.len() < first.len() / 4,
        "{} vs {}",
        second.len(),
        first.len()
    );
}

#[test]
fn both_engines_round_trip_and_read_each_other() {
    let mut z = Vec::new();
    let mut back = Vec::new();
    for size in [0, 1, 1000, 70_000] {
        let text = payload::json(size);
        for level in [0, 1, 6, 9] {
            for bits in [10, 15] {
                let mut miniz = engines::Miniz::new(level, bits);
                let mut zlib = engines::ZlibRs::new(level, bits);
                miniz.compress(text.as_bytes(), &mut z);
                zlib.inflate(&z, &mut back, size);
                assert_eq!(
                    back,
                    text.as_bytes(),
                    "miniz -> zlib-rs, {size} B, level {level}"
                );
                zlib.compress(text.as_bytes(), &mut z);
                miniz.inflate(&z, &mut back, size);
                assert_eq!(
                    back,
                    text.as_bytes(),
                    "zlib-rs -> miniz, {size} B, level {level}"
                );
                // The engines are reusable: a second message from the reset state.
                miniz.compress(text.as_bytes(), &mut z);
                miniz.inflate(&z, &mut back, size);
                assert_eq!(back, text.as_bytes());
            }
        }
    }
}

#[test]
fn small_windows_are_honoured_by_both_engines() {
    // A 5000-byte random block repeated 8 times: its only matches lie 5000 bytes back. A
    // compressor limited to 4 KiB or less cannot use them, so the output stays about the input's
    // size; with a 32 KiB window it shrinks about 8-fold. (Inflating through a small window
    // cannot check this: zlib-rs and miniz_oxide both keep a 32 KiB history whatever the
    // window bits.)
    let block = payload::binary(5000);
    let repeated: Vec<u8> = block.iter().copied().cycle().take(40_000).collect();
    let mut z = Vec::new();
    let mut back = Vec::new();
    for bits in [9, 10, 12] {
        let mut miniz = engines::Miniz::new(1, bits);
        miniz.compress(&repeated, &mut z);
        assert!(
            z.len() > repeated.len() * 9 / 10,
            "miniz window {bits}: {} B",
            z.len()
        );
        miniz.inflate(&z, &mut back, repeated.len());
        assert_eq!(back, repeated);
        let mut zlib = engines::ZlibRs::new(1, bits);
        zlib.compress(&repeated, &mut z);
        assert!(
            z.len() > repeated.len() * 9 / 10,
            "zlib-rs window {bits}: {} B",
            z.len()
        );
        zlib.inflate(&z, &mut back, repeated.len());
        assert_eq!(back, repeated);
    }
    // A native 8 KiB window (zlib-rs) finds the repeats; the emulation (empty the dictionary
    // every 8 KiB) finds only those inside one 8 KiB piece. At 32 KiB both find them.
    engines::ZlibRs::new(1, 13).compress(&repeated, &mut z);
    assert!(
        z.len() < repeated.len() / 4,
        "zlib-rs window 13: {} B",
        z.len()
    );
    engines::Miniz::new(1, 15).compress(&repeated, &mut z);
    assert!(
        z.len() < repeated.len() / 4,
        "miniz window 15: {} B",
        z.len()
    );
}

#[test]
fn sizes_print_as_benchmark_labels() {
    assert_eq!(human_size(20), "20B");
    assert_eq!(human_size(1024), "1KiB");
    assert_eq!(human_size(16 << 10), "16KiB");
    assert_eq!(human_size(1 << 20), "1MiB");
    assert_eq!(human_size(1500), "1500B");
}

#[test]
fn corpora_are_deterministic_exact_and_of_their_kind() {
    for corpus in payload::Corpus::ALL {
        for len in [0, 1, 31, 1024, 64 << 10] {
            let m = corpus.message(len, 3);
            assert_eq!(m.len(), len, "{} {len}", corpus.name());
            assert_eq!(m, corpus.message(len, 3), "deterministic");
            if corpus.is_text() {
                assert!(m.is_ascii(), "{}", corpus.name());
            }
        }
        assert_ne!(corpus.message(4096, 0), corpus.message(4096, 1));
    }
    let prose = payload::prose_with_seed(4096, 0);
    assert!(prose.contains(". ") && prose.contains(" the "));
    let records = payload::records_with_seed(4096, 0);
    assert_eq!(&records[..4], b"\xA5REC");
    assert_eq!(&records[32..36], b"\xA5REC");
}

#[test]
fn every_corpus_round_trips_through_permessage_deflate_in_both_context_modes() {
    for corpus in payload::Corpus::ALL {
        let messages: Vec<Vec<u8>> = (0..4).map(|seed| corpus.message(3000, seed)).collect();
        for no_context in [false, true] {
            let params = deflate::params_with(1, 15, no_context);
            assert_eq!(params.server_no_context_takeover(), no_context);
            let wire = deflate::compressed_messages(&messages, corpus.is_text(), 8, params.clone());
            assert!(wire.len() < 8 * 3000, "{}: {}", corpus.name(), wire.len());
            assert_eq!(deflate::ws_inflate(&wire, params), (8, 8 * 3000));
        }
    }
}
