//! A data message framed once for many server connections (broadcast).
//!
//! ```text
//!  Prepared::new(msg)         header encoded once (server role: never masked, one frame)
//!      |  shared (Arc) by every subscriber's task
//!      v
//!  Connection::send_prepared  open? not mid-fragment? -> queue header + the same payload Bytes
//!                             permessage-deflate without context takeover: the frame
//!                             compressed once per (window bits, level), on first use
//!                             anything else (client role, fragmenting, context takeover):
//!                             Connection::send of the message, framed for this connection
//! ```

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

use crate::{
    deflate::Compressor,
    header::{Header, MAX_HEADER_LEN, OpCode},
    message::Message,
};

/// One encoded frame: header bytes plus a shared payload.
#[derive(Clone, Debug)]
pub(crate) struct SharedFrame {
    pub(crate) head: [u8; MAX_HEADER_LEN],
    pub(crate) head_len: u8,
    pub(crate) payload: Bytes,
}

impl SharedFrame {
    fn new(opcode: OpCode, rsv1: bool, payload: Bytes) -> Self {
        let mut header = Header::new(true, opcode, payload.len() as u64);
        header.rsv1 = rsv1;
        let mut head = [0; MAX_HEADER_LEN];
        let head_len = header.encode_into(&mut head) as u8;
        Self {
            head,
            head_len,
            payload,
        }
    }
}

/// The frame for one compression parameter set (permessage-deflate without context takeover).
#[derive(Debug)]
struct Deflated {
    window_bits: u8,
    level: u8,
    frame: SharedFrame,
}

/// A data message framed once, to be queued on many server connections with
/// [`crate::Connection::send_prepared`]: every connection queues the same header bytes and the
/// same payload `Bytes` (no copy, no framing work per connection). Connections with
/// permessage-deflate without server context takeover share one compressed frame per
/// parameter set (window bits, level), compressed by the first connection that needs it;
/// other connections frame the message themselves, as [`crate::Connection::send`] does.
///
/// ```
/// use bytes::BytesMut;
/// use ws_frame::{Config, Connection, Message, Prepared, Role};
///
/// let prepared = Prepared::new(Message::text("hi"));
/// let mut a = Connection::new(Role::Server, Config::default())?;
/// a.send_prepared(&prepared)?;
/// let mut out = BytesMut::new();
/// while a.poll_transmit(&mut out) {}
/// assert_eq!(&out[..], &[0x81, 0x02, b'h', b'i']);
/// # Ok::<(), ws_frame::Error>(())
/// ```
#[derive(Debug)]
pub struct Prepared {
    message: Message,
    plain: SharedFrame,
    deflated: Mutex<Vec<Deflated>>,
}

impl Prepared {
    /// Frames `msg` once: one final, unmasked, uncompressed frame.
    #[must_use]
    pub fn new(msg: Message) -> Self {
        let plain = SharedFrame::new(opcode_of(&msg), false, msg.clone().into_payload());
        Self {
            message: msg,
            plain,
            deflated: Mutex::new(Vec::new()),
        }
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The header bytes of the uncompressed frame.
    #[must_use]
    pub fn head(&self) -> &[u8] {
        &self.plain.head[..usize::from(self.plain.head_len)]
    }

    /// The payload of the uncompressed frame (shares the message's buffer).
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.plain.payload
    }

    pub(crate) fn plain(&self) -> &SharedFrame {
        &self.plain
    }

    /// The frame as a server without context takeover sends it with `window_bits` and
    /// `level`: compressed (RSV1) once and kept, or the plain frame when compressing did not
    /// make it smaller or failed (what [`crate::Connection::send_with`] does then).
    pub(crate) fn deflated(&self, window_bits: u8, level: u8) -> SharedFrame {
        let mut done = self
            .deflated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(d) = done
            .iter()
            .find(|d| d.window_bits == window_bits && d.level == level)
        {
            return d.frame.clone();
        }
        let payload = self.plain.payload.clone();
        let mut compressor = Compressor::new(level, window_bits, true);
        let mut out = BytesMut::with_capacity(payload.len() / 2 + 64);
        let frame = match compressor.compress(&payload, &mut out) {
            Ok(()) if out.len() < payload.len() => {
                SharedFrame::new(self.opcode(), true, out.freeze())
            }
            _ => self.plain.clone(),
        };
        done.push(Deflated {
            window_bits,
            level,
            frame: frame.clone(),
        });
        frame
    }

    fn opcode(&self) -> OpCode {
        opcode_of(&self.message)
    }
}

/// The data opcode a message is sent with.
fn opcode_of(msg: &Message) -> OpCode {
    if msg.is_text() {
        OpCode::Text
    } else {
        OpCode::Binary
    }
}
