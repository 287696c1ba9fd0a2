//! Entry points for the fuzz target (`fuzz/fuzz_targets/files_decode.rs`); not a stable API.

use std::time::{Duration, Instant};

use crate::{
    config::Config,
    receiver::{DataAction, Receiver, ReceiverAction},
    sender::{OfferInfo, Sender},
    wire::{self, FileId, Msg, QoS},
};

/// The decoder on arbitrary bytes: what decodes must encode to the same bytes (the format has
/// one encoding per message, so a decoded message re-encodes byte for byte).
pub fn decode(data: &[u8]) {
    if let Ok(f) = wire::decode(data) {
        let again = wire::to_vec(f.id, &f.msg);
        assert_eq!(again, data, "re-encoding differs");
    }
}

/// A receiver and a sender fed hostile messages (split on 0xFF bytes): no panic, the
/// receiver's stored length never passes the offered size.
pub fn state_machines(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let config = Config {
        window: u32::from(head % 4) + 1,
        max_chunk: 64,
        ..Config::default()
    };
    let mut now = Instant::now();
    let id = FileId([1; 16]);
    let qos = QoS::from_u8(head % 3).unwrap_or_default();
    let offer = wire::Offer {
        size: u64::from(head),
        chunk: 16,
        qos,
        name: "f",
        channel: "",
        data: "",
    };
    let Ok(mut r) = Receiver::new(&config, id, &offer, None, now) else {
        return;
    };
    r.accept(now);
    let mut s = Sender::new(&config, id, OfferInfo::new("f", u64::from(head), qos), now).ok();
    for piece in rest.split(|&b| b == 0xff) {
        now += Duration::from_millis(u64::from(piece.first().copied().unwrap_or(0)) * 50);
        if let Ok(f) = wire::decode(piece) {
            if let Ok(ReceiverAction::Data(DataAction::Write { offset, skip })) =
                r.handle(now, &f.msg)
                && let Msg::Data { chunk, packet, .. } = f.msg
            {
                let _ = r.written(now, packet, offset, &chunk[skip..]);
            }
            if let Some(s) = s.as_mut() {
                s.handle(now, &f.msg);
                while let Some((off, len)) = s.next_chunk() {
                    let buf = vec![0u8; len];
                    if s.push_chunk(now, off, &buf).is_err() {
                        break;
                    }
                }
                if let Some((from, to)) = s.needs_prefix() {
                    s.absorb_prefix(&vec![0u8; (to - from).min(1 << 16) as usize]);
                }
                while s.poll_transmit().is_some() {}
                while s.poll_event().is_some() {}
                s.handle_timeout(now);
            }
        }
        let _ = r.handle_timeout(now);
        while r.poll_transmit().is_some() {}
        assert!(r.stored() <= u64::from(head), "stored past the size");
    }
}

#[cfg(test)]
mod tests {
    /// A short deterministic run of the fuzz entry points, so that every `cargo test` covers
    /// them.
    #[test]
    fn fuzz_entry_points_survive_pseudo_random_input() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..600usize {
            let mut data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            super::decode(&data);
            super::state_machines(&data);
            // Mostly well-formed headers too.
            if data.len() > 2 {
                data[0] = 1;
                data[1] = (data[1] % 10) + 1;
            }
            super::decode(&data);
            super::state_machines(&data);
        }
    }
}
