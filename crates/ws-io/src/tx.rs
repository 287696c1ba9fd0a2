//! The write side: queued frames batched into as few writes as possible.
//!
//! Small frames are copied into one buffer; a payload of at least [`VECTORED_MIN`] bytes is
//! kept as its own `Bytes` and written with the buffer in one vectored write, so a header is
//! never written alone (Nagle would hold it) and large payloads are never copied. A client's
//! frames are masked, so copied anyway: they are masked straight into the buffer.

use std::{collections::VecDeque, io::IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use ws_frame::{Connection, Role};

/// Payloads at least this large are written from their own buffer (no copy).
pub const VECTORED_MIN: usize = 4 * 1024;
/// Most buffers handed to one vectored write.
const MAX_SLICES: usize = 64;
/// Above this capacity an empty batch buffer is released instead of kept.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Bytes waiting to be written, in order: `segs` first, then `buf`. The drive loop's write
/// queue; its length is what backpressure looks at.
#[derive(Debug, Default)]
pub struct TxQueue {
    segs: VecDeque<Bytes>,
    buf: BytesMut,
    len: usize,
    /// The connection id of the frame log ([`crate::frames`]).
    pub(crate) log_id: u64,
}

impl TxQueue {
    /// Whether nothing waits to be written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes waiting to be written.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Moves every frame the connection has queued into this queue.
    pub fn collect(&mut self, ws: &mut Connection) {
        let log = crate::frames::enabled();
        if ws.role() == Role::Client {
            // A client's payloads are masked, hence copied anyway: mask them straight into the
            // batch buffer (no buffer per frame), one write per batch.
            let before = self.buf.len();
            while ws.poll_transmit(&mut self.buf) {}
            self.len += self.buf.len() - before;
            if log {
                crate::frames::log_out_wire(self.log_id, &self.buf[before..]);
            }
            return;
        }
        while let Some(frame) = ws.poll_frame() {
            self.len += frame.len();
            if log {
                crate::frames::log_out_frame(self.log_id, frame.head(), &frame.payload);
            }
            self.buf.extend_from_slice(frame.head());
            if frame.payload.len() >= VECTORED_MIN {
                self.segs.push_back(self.buf.split().freeze());
                self.segs.push_back(frame.payload);
            } else {
                self.buf.extend_from_slice(&frame.payload);
            }
        }
    }

    /// Appends raw bytes (plain TCP connections).
    pub fn push_bytes(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if bytes.len() >= VECTORED_MIN {
            if !self.buf.is_empty() {
                self.segs.push_back(self.buf.split().freeze());
            }
            self.segs.push_back(bytes);
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// The next buffers to write (for the vectored path).
    #[must_use]
    pub fn slices(&self) -> Vec<IoSlice<'_>> {
        let mut out: Vec<IoSlice<'_>> = self
            .segs
            .iter()
            .take(MAX_SLICES)
            .map(|s| IoSlice::new(s))
            .collect();
        if out.len() == self.segs.len() && out.len() < MAX_SLICES && !self.buf.is_empty() {
            out.push(IoSlice::new(&self.buf));
        }
        out
    }

    /// Whether everything fits one contiguous buffer (the common case: no vectored write).
    #[must_use]
    pub fn contiguous(&self) -> Option<&[u8]> {
        self.segs.is_empty().then_some(&self.buf[..])
    }

    /// Drops `n` written bytes from the front.
    pub fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            if let Some(front) = self.segs.front_mut() {
                if n >= front.len() {
                    n -= front.len();
                    self.segs.pop_front();
                } else {
                    front.advance(n);
                    return;
                }
            } else {
                self.buf.advance(n);
                break;
            }
        }
        if self.buf.is_empty() {
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = BytesMut::new();
            } else {
                self.buf.clear();
            }
        }
    }

    /// Releases the batch buffer when nothing is queued (idle connections keep no memory).
    pub fn shrink(&mut self) {
        if self.is_empty() {
            self.segs = VecDeque::new();
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_frame::{Config, Message, Role};

    fn drain(q: &mut TxQueue) -> Vec<u8> {
        let mut wire = Vec::new();
        while !q.is_empty() {
            let slices = q.slices();
            // Write at most 1000 bytes per call, like a short write.
            let mut budget = 1000;
            let mut n = 0;
            for s in &slices {
                let take = s.len().min(budget);
                wire.extend_from_slice(&s[..take]);
                n += take;
                budget -= take;
                if budget == 0 {
                    break;
                }
            }
            q.advance(n);
        }
        wire
    }

    #[test]
    fn batched_and_vectored_frames_keep_their_order() {
        let mut ws = Connection::new(Role::Server, Config::default()).unwrap();
        let big = vec![7u8; 10_000];
        ws.send(Message::text("a")).unwrap();
        ws.send(Message::binary(big.clone())).unwrap();
        ws.send(Message::text("b")).unwrap();
        let mut q = TxQueue::default();
        q.collect(&mut ws);
        assert_eq!(q.len(), 3 + 10_004 + 3);
        assert!(q.contiguous().is_none());
        let wire = drain(&mut q);
        let mut expect = vec![0x81, 1, b'a', 0x82, 126, 0x27, 0x10];
        expect.extend_from_slice(&big);
        expect.extend_from_slice(&[0x81, 1, b'b']);
        assert_eq!(wire, expect);
        assert!(q.is_empty());
    }

    #[test]
    fn client_frames_are_masked_into_one_buffer() {
        let mut n = 0u8;
        let keys = move || {
            n += 1;
            Some([n; 4])
        };
        let mut ws = Connection::with_mask_source(Role::Client, Config::default(), keys).unwrap();
        ws.send(Message::binary(vec![0u8; 10_000])).unwrap();
        ws.send(Message::text("b")).unwrap();
        let mut q = TxQueue::default();
        q.collect(&mut ws);
        let wire = q.contiguous().expect("one buffer").to_vec();
        assert_eq!(q.len(), wire.len());
        let mut expect = vec![0x82, 0xfe, 0x27, 0x10, 1, 1, 1, 1];
        expect.extend_from_slice(&[1u8; 10_000]);
        expect.extend_from_slice(&[0x81, 0x81, 2, 2, 2, 2, b'b' ^ 2]);
        assert_eq!(wire, expect);
    }

    #[test]
    fn small_frames_share_one_buffer() {
        let mut ws = Connection::new(Role::Server, Config::default()).unwrap();
        for _ in 0..10 {
            ws.send(Message::text("hi")).unwrap();
        }
        let mut q = TxQueue::default();
        q.collect(&mut ws);
        assert_eq!(q.contiguous().map(<[u8]>::len), Some(40));
        q.push_bytes(Bytes::from_static(b"raw"));
        assert_eq!(drain(&mut q).len(), 43);
        q.shrink();
        assert_eq!(q.buf.capacity(), 0);
    }
}
