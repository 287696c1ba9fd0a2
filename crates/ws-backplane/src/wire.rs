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
//!
//! A node's heartbeat (every [`crate::Config::heartbeat`], on the subject every node hears):
//!
//! ```text
//!  0      1        2            10          12      ..      then `patterns` times:
//!  'N'    version  connections  node len    node    u32be   u16be len, pattern,
//!  (1)    1        u64be        u16be       bytes   count   u64be subscribers
//! ```
//! At most [`MAX_HEARTBEAT_PATTERNS`] patterns and about [`MAX_HEARTBEAT_BYTES`] bytes: past
//! either, a node reports the patterns with the most subscribers and leaves out the rest.
//! The first layout, `H`, connections (u64be), node id (the rest), is still understood; it
//! carries no patterns.

use std::collections::{BTreeMap, HashMap};

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

/// Most channel patterns one heartbeat carries (a decoder refuses more).
pub const MAX_HEARTBEAT_PATTERNS: usize = 10_000;

/// About the largest heartbeat a node sends: patterns past it are left out (below the 1 MiB
/// message limit NATS applies by default).
pub const MAX_HEARTBEAT_BYTES: usize = 512 * 1024;

const HEARTBEAT: u8 = b'N';
const HEARTBEAT_VERSION: u8 = 1;
const LEGACY_HEARTBEAT: u8 = b'H';

/// What a node reports about itself in a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    pub(crate) node: String,
    pub(crate) connections: u64,
    /// Local subscribers per exact pattern.
    pub(crate) channels: BTreeMap<String, usize>,
}

/// Whether `bytes` are a heartbeat (of either layout) rather than an envelope.
pub(crate) fn is_heartbeat(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&(HEARTBEAT | LEGACY_HEARTBEAT)))
}

/// Encodes a heartbeat of `node` with `connections` connections and `channels` (patterns
/// with their subscribers; those with none, or longer than 65,535 bytes, are left out).
/// Past [`MAX_HEARTBEAT_PATTERNS`] or [`MAX_HEARTBEAT_BYTES`], the patterns with the most
/// subscribers are kept.
pub(crate) fn encode_heartbeat(
    node: &str,
    connections: usize,
    channels: &HashMap<String, usize>,
) -> Bytes {
    let node = &node.as_bytes()[..node.len().min(usize::from(u16::MAX))];
    let mut entries: Vec<(&str, usize)> = channels
        .iter()
        .filter(|(p, n)| **n > 0 && p.len() <= usize::from(u16::MAX))
        .map(|(p, n)| (p.as_str(), *n))
        .collect();
    let head = 16 + node.len();
    let size = |e: &[(&str, usize)]| head + e.iter().map(|(p, _)| 10 + p.len()).sum::<usize>();
    if entries.len() > MAX_HEARTBEAT_PATTERNS || size(&entries) > MAX_HEARTBEAT_BYTES {
        entries.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        entries.truncate(MAX_HEARTBEAT_PATTERNS);
        let mut total = head;
        let keep = entries
            .iter()
            .take_while(|(p, _)| {
                total += 10 + p.len();
                total <= MAX_HEARTBEAT_BYTES
            })
            .count();
        entries.truncate(keep);
    }
    let mut out = BytesMut::with_capacity(size(&entries));
    out.put_u8(HEARTBEAT);
    out.put_u8(HEARTBEAT_VERSION);
    out.put_u64(connections as u64);
    #[allow(clippy::cast_possible_truncation)] // cut to u16::MAX above
    out.put_u16(node.len() as u16);
    out.put_slice(node);
    #[allow(clippy::cast_possible_truncation)] // at most MAX_HEARTBEAT_PATTERNS
    out.put_u32(entries.len() as u32);
    for (pattern, count) in entries {
        #[allow(clippy::cast_possible_truncation)] // filtered above
        out.put_u16(pattern.len() as u16);
        out.put_slice(pattern.as_bytes());
        out.put_u64(count as u64);
    }
    out.freeze()
}

/// Decodes a heartbeat ([`encode_heartbeat`]'s, or the first layout's).
///
/// # Errors
/// [`Error::Malformed`] when it is truncated, has trailing bytes, an unknown version, text
/// that is not UTF-8, too many or repeated patterns.
pub(crate) fn decode_heartbeat(bytes: &[u8]) -> Result<Heartbeat, Error> {
    let bad = |what: &'static str| Error::Malformed(what);
    let mut r = Reader { bytes, at: 0 };
    match r.take(1).map(|b| b[0]) {
        Some(LEGACY_HEARTBEAT) => {
            let connections = r.u64().ok_or(bad("truncated heartbeat"))?;
            let node = std::str::from_utf8(&bytes[r.at..]).map_err(|_| bad("node not UTF-8"))?;
            return Ok(Heartbeat {
                node: node.to_owned(),
                connections,
                channels: BTreeMap::new(),
            });
        }
        Some(HEARTBEAT) => {}
        _ => return Err(bad("not a heartbeat")),
    }
    if r.take(1) != Some(&[HEARTBEAT_VERSION][..]) {
        return Err(bad("unknown heartbeat version"));
    }
    let truncated = || bad("truncated heartbeat");
    let connections = r.u64().ok_or_else(truncated)?;
    let node = r.string().ok_or_else(truncated)??.to_owned();
    let n = r.u32().ok_or_else(truncated)?;
    if usize::try_from(n).map_or(true, |n| n > MAX_HEARTBEAT_PATTERNS) {
        return Err(bad("too many patterns in a heartbeat"));
    }
    let mut channels = BTreeMap::new();
    for _ in 0..n {
        let pattern = r.string().ok_or_else(truncated)??;
        let count = r.u64().ok_or_else(truncated)?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if channels.insert(pattern.to_owned(), count).is_some() {
            return Err(bad("pattern repeated in a heartbeat"));
        }
    }
    if r.at != bytes.len() {
        return Err(bad("trailing bytes after a heartbeat"));
    }
    Ok(Heartbeat {
        node,
        connections,
        channels,
    })
}

/// Reads big-endian fields; `None` past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_be_bytes(a))
    }

    /// A u16-length-prefixed UTF-8 string: `None` when truncated, `Some(Err)` when not UTF-8.
    fn string(&mut self) -> Option<Result<&'a str, Error>> {
        let len = self.u16()?;
        let raw = self.take(usize::from(len))?;
        Some(std::str::from_utf8(raw).map_err(|_| Error::Malformed("heartbeat text not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, usize)]) -> HashMap<String, usize> {
        pairs.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect()
    }

    #[test]
    fn heartbeat_round_trip_keeps_node_count_and_patterns() {
        let channels = counts(&[("room/a", 3), ("room/#", 1), ("empty", 0), ("é/+", 7)]);
        let bytes = encode_heartbeat("node-1", 42, &channels);
        assert!(is_heartbeat(&bytes));
        let hb = decode_heartbeat(&bytes).unwrap();
        assert_eq!((hb.node.as_str(), hb.connections), ("node-1", 42));
        let expected: BTreeMap<String, usize> = counts(&[("room/a", 3), ("room/#", 1), ("é/+", 7)])
            .into_iter()
            .collect();
        assert_eq!(hb.channels, expected);
        // No patterns at all.
        let hb = decode_heartbeat(&encode_heartbeat("", 0, &HashMap::new())).unwrap();
        assert_eq!(hb, Heartbeat::default());
        // The first layout.
        let hb = decode_heartbeat(b"H\0\0\0\0\0\0\0\x05old").unwrap();
        assert_eq!((hb.node.as_str(), hb.connections), ("old", 5));
        assert!(hb.channels.is_empty());
    }

    #[test]
    fn heartbeat_keeps_the_largest_patterns_past_the_cap() {
        let channels: HashMap<String, usize> = (0..MAX_HEARTBEAT_PATTERNS + 5)
            .map(|i| (format!("c/{i}"), i + 1))
            .collect();
        let hb = decode_heartbeat(&encode_heartbeat("n", 1, &channels)).unwrap();
        assert_eq!(hb.channels.len(), MAX_HEARTBEAT_PATTERNS);
        assert!(!hb.channels.contains_key("c/0"));
        assert_eq!(hb.channels["c/10004"], 10_005);
        // Long patterns: the byte budget binds first.
        let long: HashMap<String, usize> = (0..100)
            .map(|i| (format!("{i:05}{}", "x".repeat(10_000)), 100 - i))
            .collect();
        let bytes = encode_heartbeat("n", 1, &long);
        assert!(bytes.len() <= MAX_HEARTBEAT_BYTES);
        let hb = decode_heartbeat(&bytes).unwrap();
        assert!(
            hb.channels.len() < 100 && hb.channels.len() > 40,
            "{}",
            hb.channels.len()
        );
        assert!(hb.channels.keys().next().unwrap().starts_with("00000"));
    }

    #[test]
    fn malformed_heartbeats_are_refused() {
        let good = encode_heartbeat("n", 2, &counts(&[("a", 1), ("b", 2)]));
        for cut in 0..good.len() {
            assert!(
                decode_heartbeat(&good[..cut]).is_err(),
                "prefix {cut} accepted"
            );
        }
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert!(decode_heartbeat(&trailing).is_err());
        let mut version = good.to_vec();
        version[1] = 9;
        assert!(decode_heartbeat(&version).is_err());
        // Pattern count past the cap, and a lying pattern count.
        let mut many = good[..13].to_vec();
        many.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_heartbeat(&many).is_err());
        let mut lying = good.to_vec();
        lying[16] = 3;
        assert!(decode_heartbeat(&lying).is_err());
        // Repeated pattern.
        let mut repeated = good[..13].to_vec();
        repeated.extend_from_slice(&2u32.to_be_bytes());
        for _ in 0..2 {
            repeated.extend_from_slice(&[0, 1, b'a']);
            repeated.extend_from_slice(&1u64.to_be_bytes());
        }
        assert!(decode_heartbeat(&repeated).is_err());
        // Not UTF-8.
        let mut latin = good.to_vec();
        latin[19] = 0xff;
        assert!(decode_heartbeat(&latin).is_err());
        assert!(decode_heartbeat(b"H\0\0").is_err());
        assert!(decode_heartbeat(b"").is_err());
        assert!(decode_heartbeat(b"W junk").is_err());
    }

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
