//! The bytes one envelope takes on the engine: built once per message by the publishing node.
//!
//! ```text
//!  0      1      2      10     18     26        28      ..   then three optional strings,
//!  'W'    kind   epoch  seq    to     origin    origin       each u16 length (0xFFFF: absent)
//!  (1)    0|1|2  u64be  u64be  u64be  len u16   bytes        + bytes: channel, protocol,
//!                                                            path; the payload is the rest
//! ```
//! `kind` 0 is a text message, 1 a binary one, 2 the order to drop connection `to`; `to` is
//! the connection a direct envelope is for (0: none, a broadcast). `epoch` is a random number a node picks when it
//! starts (so a restarted node's sequence numbers are not taken for duplicates) and `seq`
//! counts the node's messages per engine subject, from 1.

use bytes::{BufMut, Bytes, BytesMut};
use ws_server::{Envelope, ws_frame::Message};

use crate::error::Error;

const MAGIC: u8 = b'W';
const ABSENT: u16 = u16::MAX;

/// Sequence information that travels with an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
}

/// Encodes `env` with `stamp`.
///
/// # Errors
/// [`Error::TooLong`] when the origin, channel, protocol or path exceeds 65,534 bytes.
pub(crate) fn encode(env: &Envelope, stamp: Stamp) -> Result<Bytes, Error> {
    let (kind, payload): (u8, &[u8]) = match &env.message {
        _ if env.disconnect => (2, &[]),
        Message::Text(t) => (0, t.as_bytes()),
        Message::Binary(b) => (1, b),
    };
    let strings = [
        Some(env.origin.as_str()),
        env.channel.as_deref(),
        env.protocol.as_deref(),
        env.path.as_deref(),
    ];
    let head: usize = strings.iter().map(|s| 2 + s.map_or(0, str::len)).sum();
    let mut out = BytesMut::with_capacity(26 + head + payload.len());
    out.put_u8(MAGIC);
    out.put_u8(kind);
    out.put_u64(stamp.epoch);
    out.put_u64(stamp.seq);
    out.put_u64(env.to.map_or(0, |id| id.0));
    for s in strings {
        match s {
            None => out.put_u16(ABSENT),
            Some(s) => {
                let len = u16::try_from(s.len())
                    .ok()
                    .filter(|&l| l != ABSENT)
                    .ok_or(Error::TooLong { len: s.len() })?;
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
        }
    }
    out.put_slice(payload);
    Ok(out.freeze())
}

/// Decodes what [`encode`] built. The message shares `bytes`' allocation.
///
/// # Errors
/// [`Error::Malformed`] for anything else (a foreign publisher on our subjects).
pub(crate) fn decode(bytes: Bytes) -> Result<(Envelope, Stamp), Error> {
    let bad = |what: &'static str| Error::Malformed(what);
    if bytes.len() < 26 || bytes[0] != MAGIC {
        return Err(bad("not a wskit envelope"));
    }
    let kind = bytes[1];
    let u64_at = |i: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&bytes[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let stamp = Stamp {
        epoch: u64_at(2),
        seq: u64_at(10),
    };
    let to = match u64_at(18) {
        0 => None,
        id => Some(ws_server::ConnId(id)),
    };
    let mut at = 26;
    let mut strings: [Option<String>; 4] = Default::default();
    for s in &mut strings {
        let len = bytes
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(bad("truncated header"))?;
        at += 2;
        if len != ABSENT {
            let raw = bytes
                .get(at..at + usize::from(len))
                .ok_or(bad("truncated string"))?;
            *s = Some(
                std::str::from_utf8(raw)
                    .map_err(|_| bad("string not UTF-8"))?
                    .to_owned(),
            );
            at += usize::from(len);
        }
    }
    let payload = bytes.slice(at..);
    let message = match kind {
        0 => Message::Text(payload.try_into().map_err(|_| bad("text not UTF-8"))?),
        1 | 2 => Message::Binary(payload),
        _ => return Err(bad("unknown message kind")),
    };
    let [origin, channel, protocol, path] = strings;
    let origin = origin.ok_or(bad("no origin"))?;
    let env = match to {
        Some(id) => Envelope::direct(origin, id, message, kind == 2),
        None => Envelope::new(origin, channel, message)
            .with_protocol(protocol)
            .with_path(path),
    };
    Ok((env, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let stamp = Stamp {
            epoch: 0x0102_0304_0506_0708,
            seq: 42,
        };
        for env in [
            Envelope::new("node-a", Some("room/1".into()), Message::text("héllo")),
            Envelope::new("b", None, Message::binary(vec![0u8, 255, 7]))
                .with_protocol(Some("chat".into()))
                .with_path(Some("/chat".into())),
            Envelope::new("", Some(String::new()), Message::text("")),
            Envelope::direct("c", ws_server::ConnId(7), Message::text("just you"), false),
            Envelope::direct(
                "c",
                ws_server::ConnId(u64::MAX),
                Message::binary(vec![]),
                true,
            ),
        ] {
            let bytes = encode(&env, stamp).unwrap();
            assert_eq!(decode(bytes).unwrap(), (env, stamp));
        }
    }

    #[test]
    fn foreign_or_truncated_bytes_are_refused() {
        let env = Envelope::new("a", Some("c".into()), Message::text("x"));
        let good = encode(&env, Stamp { epoch: 1, seq: 1 }).unwrap();
        // origin "a", channel "c", no protocol, no path: a 36-byte header.
        let header = 26 + (2 + 1) + (2 + 1) + 2 + 2;
        for cut in 0..header {
            assert!(decode(good.slice(..cut)).is_err(), "prefix {cut} accepted");
        }
        assert!(decode(good.slice(..header)).is_ok());
        assert!(decode(Bytes::from_static(b"hello there, not an envelope")).is_err());
        let mut bad_text = good.to_vec();
        *bad_text.last_mut().unwrap() = 0xff;
        assert!(decode(bad_text.into()).is_err());
        let long = "x".repeat(70_000);
        assert!(matches!(
            encode(
                &Envelope::new(long, None, Message::text("")),
                Stamp { epoch: 0, seq: 0 }
            ),
            Err(Error::TooLong { len: 70_000 })
        ));
    }
}
