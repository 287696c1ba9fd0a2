//! STUN and TURN.
#![forbid(unsafe_code)]

pub mod attr;
pub mod channel;
pub mod client;
mod error;
pub mod integrity;
pub mod message;
#[cfg(feature = "runtime")]
pub mod net;
pub mod policy;
pub mod server;
pub mod transaction;

pub use attr::{AddressFamily, AttrType, ErrorCode, PasswordAlgorithm, RelayProtocol};
pub use channel::{ChannelData, FrameKind, frame_kind, frame_len};
pub use client::{Client, ClientConfig, ClientEvent, Failure, Request};
pub use error::{ConfigError, DecodeError, EncodeError, Error};
pub use integrity::Key;
pub use message::{
    Attribute, Class, DecodeLimits, Message, MessageEncoder, MessageType, Method, TransactionId,
};
pub use server::{Action, FiveTuple, Server, ServerConfig, ServerEvent, ServerStats, Transport};
pub use transaction::{RetransmitConfig, TimerAction, TransactionTimer};

#[doc(hidden)]
pub mod fuzzing {
    //! Entry points for the fuzz targets: total functions over arbitrary bytes.

    use crate::{ChannelData, DecodeLimits, Key, Message, MessageEncoder, frame_len};

    /// Decodes `data` as a STUN message and exercises every accessor, integrity and fingerprint
    /// checks; re-encodes the attributes it decoded and checks the round trip.
    pub fn message(data: &[u8]) {
        let limits = DecodeLimits::default();
        let Ok(m) = Message::decode(data, &limits) else {
            return;
        };
        let _ = m.xor_mapped_address();
        let _ = m.mapped_address();
        let _ = m.xor_peer_addresses();
        let _ = m.xor_relayed_address();
        let _ = m.username();
        let _ = m.realm();
        let _ = m.nonce();
        let _ = m.error_code();
        let _ = m.lifetime();
        let _ = m.channel_number();
        let _ = m.even_port();
        let _ = m.password_algorithms();
        let _ = m.verify_fingerprint();
        let _ = m.verify_any_integrity(&Key::short_term("fuzz"));
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(&mut out, m.message_type(), m.transaction_id());
        for t in m.attribute_types().collect::<Vec<_>>() {
            if let Some(v) = m.get(t) {
                e.attr(t, v);
            }
        }
        if e.finish().is_ok() {
            let again = Message::decode(&out, &limits).expect("re-encoded message decodes");
            assert_eq!(again.message_type(), m.message_type());
            assert_eq!(again.attribute_types().count(), m.attribute_types().count());
        }
    }

    /// Decodes `data` as ChannelData and as a TCP stream of frames; re-encodes and compares.
    pub fn channel_data(data: &[u8]) {
        if let Ok(cd) = ChannelData::decode(data) {
            let mut out = Vec::new();
            ChannelData::encode(cd.channel, cd.data, true, &mut out)
                .expect("decoded channel is valid");
            assert_eq!(ChannelData::decode(&out), Ok(cd));
        }
        let limits = DecodeLimits::default();
        let mut rest = data;
        while let Ok(Some((_, n))) = frame_len(rest, &limits) {
            rest = &rest[n..];
        }
    }
}
