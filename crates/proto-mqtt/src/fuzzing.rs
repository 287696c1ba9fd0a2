//! Entry points for the fuzz targets (`fuzz/fuzz_targets/mqtt_session.rs`); not a stable API.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::{
    QoS, ReasonCode, Version,
    config::Config,
    packet::{Codec, ConnAck, Packet, publish, subscribe_filter},
    session::{Session, SessionState},
};

/// The session core fed hostile broker bytes. The first byte picks the version, whether a
/// valid CONNACK comes first, and the chunk size; the rest arrives in chunks with timers and
/// commands in between. Checks: no panic, and the receive buffer never holds more than one
/// packet's limit plus one chunk.
pub fn session(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let version = if head & 1 == 0 {
        Version::V5
    } else {
        Version::V311
    };
    let mut config = Config::default();
    config.version = version;
    config.max_incoming_packet = 4096;
    config.topic_alias_maximum = 4;
    config.receive_maximum = 8;
    config.max_queued = 64;
    let limit = config.max_incoming_packet;
    let Ok(mut s) = Session::new(config, "fuzz".into()) else {
        return;
    };
    let mut now = Instant::now();
    if s.start(now).is_err() {
        return;
    }
    if head & 2 == 0 {
        let mut b = BytesMut::new();
        let _ = Codec::new(version, 1 << 20).encode(
            &Packet::ConnAck(ConnAck {
                session_present: head & 4 != 0,
                code: ReasonCode::SUCCESS,
                properties: None,
            }),
            &mut b,
        );
        s.feed(now, &b);
    }
    let chunk = usize::from(head >> 3).max(1);
    let mut out = BytesMut::new();
    for (i, piece) in rest.chunks(chunk).enumerate() {
        s.feed(now, piece);
        assert!(
            s.buffered() <= limit + chunk,
            "receive buffer over its limit"
        );
        match i % 7 {
            1 => {
                let _ = s.publish(publish(
                    "f/t",
                    QoS::from_u8((i % 3) as u8).unwrap_or_default(),
                    "x",
                ));
            }
            3 => {
                let _ = s.subscribe(vec![subscribe_filter("f/#", QoS::ExactlyOnce)], None);
            }
            5 => {
                now += Duration::from_secs(u64::from(piece[0] % 90));
                s.handle_timeout(now);
            }
            _ => {}
        }
        while s.poll_event().is_some() {}
        while s.poll_store().is_some() {}
        out.clear();
        let _ = s.poll_transmit(&mut out);
        if s.state() == SessionState::Disconnected {
            s.handle_transport_closed(now);
            if s.start(now).is_err() {
                return;
            }
        }
    }
}

/// The codec alone on arbitrary bytes, both versions: decode until an error or the end; what
/// decodes must encode again.
pub fn codec(data: &[u8]) {
    for version in [Version::V311, Version::V5] {
        let codec = Codec::new(version, 1 << 16);
        let mut b = BytesMut::from(data);
        while let Ok(Some(p)) = codec.decode(&mut b) {
            let mut out = BytesMut::new();
            let _ = codec.encode(&p, &mut out);
        }
    }
}

#[cfg(test)]
mod tests {
    /// A short deterministic run of the fuzz entry points, so that every `cargo test` covers
    /// them.
    #[test]
    fn fuzz_entry_points_survive_pseudo_random_input() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for len in 0..400usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            super::session(&data);
            super::codec(&data);
        }
    }
}
