//! Batched sends of the UDP relay. The datagrams one received batch makes are queued here and
//! sent together at the end of it: those that leave from the same socket for the same
//! destination with the same length go out in one `sendmsg` with UDP generic segmentation
//! offload (`UDP_SEGMENT`, Linux 4.18 and later), which the kernel cuts into the same datagrams
//! the single sends would have been. Elsewhere, or when the kernel refuses it, each datagram
//! is sent on its own as before.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// The socket a queued datagram leaves from, looked up when the batch is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Source {
    /// A client-facing listening socket, by its address.
    Listener(SocketAddr),
    /// An allocation's UDP relay socket, by its address.
    Relay(SocketAddr),
}

/// One queued datagram: `data[start..start + len]` of its [`SendBatch`].
#[derive(Clone, Copy, Debug)]
struct Queued {
    source: Source,
    to: SocketAddr,
    start: usize,
    len: usize,
}

/// Largest datagram sent segmented: the kernel refuses (`EINVAL`) segments that do not fit the
/// route's MTU, and 1232 bytes fit every IPv6 path (1280 minus the IPv6 and UDP headers), and
/// so practically every IPv4 path. Longer datagrams are sent one by one (and may be fragmented,
/// as before).
const MAX_SEGMENT: usize = 1232;
/// Largest segmented send: a UDP datagram's length field bounds the whole send.
const MAX_SEND: usize = 60_000;
/// Queue memory a batch keeps between batches; more is given back after a batch of large
/// datagrams.
const KEEP: usize = 256 << 10;

/// The datagrams of one received batch, waiting to be sent.
#[derive(Debug, Default)]
pub(super) struct SendBatch {
    data: Vec<u8>,
    queued: Vec<Queued>,
    /// The segments of one segmented send, laid end to end.
    joined: Vec<u8>,
}

impl SendBatch {
    /// Queues `bytes` for `to`, to leave from `source`.
    pub(super) fn push(&mut self, source: Source, to: SocketAddr, bytes: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.queued.push(Queued {
            source,
            to,
            start,
            len: bytes.len(),
        });
    }

    /// Sends every queued datagram and empties the batch. `socket` finds the socket of a
    /// source (`None`: it is gone, its datagrams are dropped). Datagrams for one destination
    /// from one socket keep their order; a full socket buffer drops datagrams, as the network
    /// would.
    pub(super) fn flush<'s>(
        &mut self,
        io: &quinn_udp::UdpSocketState,
        mut socket: impl FnMut(Source) -> Option<&'s UdpSocket>,
    ) {
        if self.queued.is_empty() {
            return;
        }
        let max_segments = io.max_gso_segments();
        // Stable: the datagrams of each (source, destination) stay in the order they came.
        self.queued.sort_by_key(|q| (q.source, q.to));
        let queued = &self.queued;
        let mut i = 0;
        while i < queued.len() {
            let first = queued[i];
            let mut end = i + 1;
            if max_segments > 1 && (1..=MAX_SEGMENT).contains(&first.len) {
                // Equal lengths; one shorter datagram may end the send.
                while end < queued.len()
                    && end - i < max_segments
                    && (end - i + 1) * first.len <= MAX_SEND
                {
                    let q = queued[end];
                    if q.source != first.source || q.to != first.to || q.len > first.len {
                        break;
                    }
                    end += 1;
                    if q.len < first.len {
                        break;
                    }
                }
            }
            let run = &queued[i..end];
            i = end;
            let Some(sock) = socket(first.source) else {
                continue;
            };
            let bytes = |q: &Queued| &self.data[q.start..q.start + q.len];
            if run.len() == 1 {
                let _ = sock.try_send_to(bytes(&first), first.to);
                continue;
            }
            self.joined.clear();
            for q in run {
                self.joined.extend_from_slice(bytes(q));
            }
            let transmit = quinn_udp::Transmit {
                destination: first.to,
                ecn: None,
                contents: &self.joined,
                segment_size: Some(first.len),
                src_ip: None,
            };
            match sock.try_io(tokio::io::Interest::WRITABLE, || {
                io.try_send(sock.into(), &transmit)
            }) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The kernel or the device refused segmentation (quinn-udp then stops offering
                // it): the datagrams go one by one.
                Err(_) => {
                    for q in run {
                        let _ = sock.try_send_to(bytes(q), q.to);
                    }
                }
            }
        }
        self.queued.clear();
        self.data.clear();
        self.data.shrink_to(KEEP);
        self.joined.clear();
        self.joined.shrink_to(KEEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every datagram arrives whole and, per source, in order, whatever the mix of lengths,
    /// destinations and sources in the batch.
    #[tokio::test]
    async fn segmented_sends_arrive_as_the_datagrams_queued() {
        let io = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            quinn_udp::UdpSocketState::new((&probe).into()).unwrap()
        };
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // Sends never wait: the first needs the reactor to have seen the socket writable.
        a.writable().await.unwrap();
        b.writable().await.unwrap();
        // Loopback delivers within the send: the receivers are read without waiting.
        let r1 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r2 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (sa, sb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let (to1, to2) = (r1.local_addr().unwrap(), r2.local_addr().unwrap());
        let mut batch = SendBatch::default();
        let mut expect1 = Vec::new();
        let mut expect2 = Vec::new();
        for i in 0u8..40 {
            // Mostly 200 bytes, some shorter and longer ones, a few too long to segment.
            let len = match i % 7 {
                3 => 50,
                5 => 1500,
                _ => 200,
            };
            let d = vec![i; len];
            if i % 3 == 0 {
                batch.push(Source::Relay(sb), to2, &d);
                expect2.push(d);
            } else {
                batch.push(Source::Relay(sa), to1, &d);
                expect1.push(d);
            }
        }
        batch.flush(&io, |s| match s {
            Source::Relay(x) if x == sa => Some(&a),
            Source::Relay(x) if x == sb => Some(&b),
            _ => None,
        });
        for (r, expect) in [(&r1, expect1), (&r2, expect2)] {
            r.set_nonblocking(true).unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 2048];
            while let Ok(n) = r.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            assert_eq!(got, expect);
        }
        assert!(batch.queued.is_empty() && batch.data.is_empty());
    }
}
