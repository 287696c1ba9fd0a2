//! The message log (the seed's LogFile): one `trace` line per STUN message or ChannelData frame
//! the runtime sends or receives, under the tracing target `stun_turn::wire`. Off unless that
//! target is enabled (`wskit turn --log stun_turn::wire=trace`, or `RUST_LOG`), and then cheap to
//! skip: nothing is decoded when the target is off.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::channel::{ChannelData, FrameKind, frame_kind};
use crate::message::{DecodeLimits, Message};

/// Which way a message went.
#[derive(Clone, Copy)]
pub(crate) enum Dir {
    /// Received.
    In,
    /// Sent.
    Out,
}

/// Whether the message log is on.
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: "stun_turn::wire", tracing::Level::TRACE)
}

/// Logs `bytes` exchanged between `local` and `remote` over `transport` ("udp", "tcp").
pub(crate) fn log(dir: Dir, transport: &str, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) {
    if !enabled() {
        return;
    }
    let summary = summary(bytes);
    let (dir, from, to) = match dir {
        Dir::In => ("in", remote, local),
        Dir::Out => ("out", local, remote),
    };
    tracing::trace!(target: "stun_turn::wire", dir, transport, %from, %to, len = bytes.len(), "{summary}");
}

/// `Allocate Request tid=... [USERNAME, REALM, ...]`, `ChannelData 0x4000 (12 bytes)`, or
/// `undecodable`.
pub(crate) fn summary(bytes: &[u8]) -> String {
    match frame_kind(bytes) {
        Ok(FrameKind::ChannelData) => match ChannelData::decode(bytes) {
            Ok(cd) => format!("ChannelData {:#06x} ({} bytes)", cd.channel, cd.data.len()),
            Err(_) => "undecodable ChannelData".into(),
        },
        Ok(FrameKind::Stun) => match Message::decode(bytes, &DecodeLimits::default()) {
            Ok(m) => {
                let mut s = format!(
                    "{:?} {:?} {:?} [",
                    m.method(),
                    m.class(),
                    m.transaction_id()
                );
                for (i, t) in m.attribute_types().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    let _ = write!(s, "{t:?}");
                }
                if let Ok(Some((code, reason))) = m.error_code() {
                    let _ = write!(s, "] {} {reason}", code.0);
                } else {
                    s.push(']');
                }
                s
            }
            Err(e) => format!("undecodable STUN: {e}"),
        },
        Err(_) => "neither STUN nor ChannelData".into(),
    }
}
