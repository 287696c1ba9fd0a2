//! `Driver::join_reads`: a read answered at once comes with the write's step, and nothing of
//! what the application sees changes otherwise.

use std::{
    future::Pending,
    io,
    task::{Context, Poll},
};

use bytes::BytesMut;
use ws_frame::{Config, Connection, Event, Message, Role};
use ws_io::{Driver, Gates, Step, Transport, TxQueue};
use ws_testkit::RawFrame;

const NOTHING: Option<Pending<()>> = None;

/// A transport that hands out `input` in one read (then end of stream) and takes every write
/// whole, without waiting (like a socket with room).
struct Memory {
    input: BytesMut,
    out: Vec<u8>,
}

impl Memory {
    fn write_all(&mut self, tx: &mut TxQueue) -> usize {
        let mut n = 0;
        for s in tx.slices() {
            self.out.extend_from_slice(&s);
            n += s.len();
        }
        tx.advance(n);
        n
    }
}

impl Transport for Memory {
    fn poll_read_ws(
        &mut self,
        _: &mut Context<'_>,
        ws: &mut Connection,
        _: bool,
    ) -> Poll<io::Result<usize>> {
        let n = self.input.len();
        ws.read_buf().extend_from_slice(&self.input.split());
        Poll::Ready(Ok(n))
    }

    fn poll_write_queue(
        &mut self,
        _: &mut Context<'_>,
        tx: &mut TxQueue,
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.write_all(tx)))
    }

    fn wants_flush(&self) -> bool {
        false
    }

    fn try_write_now(&mut self, tx: &mut TxQueue) -> io::Result<usize> {
        Ok(self.write_all(tx))
    }

    fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Echoes one message; returns the steps seen up to end of stream, byte counts included
/// (`take_read` as `joined N`), and what was written.
async fn echo_once(join: bool) -> (Vec<String>, Vec<u8>) {
    let wire = RawFrame::new(0x2, b"hello".to_vec()).client().encode();
    let io = Memory {
        input: BytesMut::from(&wire[..]),
        out: Vec::new(),
    };
    let ws = Connection::new(Role::Server, Config::default()).unwrap();
    let mut d = Driver::new(io, Box::new(ws), 64 * 1024);
    d.join_reads(join);
    let mut seen = Vec::new();
    for _ in 0..6 {
        let step = d.next(Gates::default(), NOTHING).await;
        if let Some(n) = d.take_read() {
            seen.push(format!("joined {n}"));
        }
        match step {
            Step::Event(Event::Message(m)) => {
                seen.push("message".to_owned());
                d.ws.send(m).unwrap();
            }
            Step::Read(n) => seen.push(format!("read {n}")),
            Step::Wrote(n) => seen.push(format!("wrote {n}")),
            Step::Error(e) => seen.push(format!("error {e}")),
            Step::End(_) => break,
            other => seen.push(format!("{other:?}")),
        }
    }
    let (io, _) = d.into_parts();
    (seen, io.out)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_read_answered_at_once_comes_with_the_write() {
    let (seen, out) = echo_once(true).await;
    assert_eq!(seen[..3], ["message", "joined 11", "wrote 7"], "{seen:?}");
    // The echo: an unmasked binary frame with the same payload.
    assert_eq!(out[..7], [0x82, 5, b'h', b'e', b'l', b'l', b'o']);
    // End of stream (an error here: no close handshake) still comes as a read of its own.
    assert_eq!(seen[4], "read 0", "{seen:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn without_joining_the_read_has_a_step_of_its_own() {
    let (seen, out) = echo_once(false).await;
    assert_eq!(seen[..3], ["message", "read 11", "wrote 7"], "{seen:?}");
    assert_eq!(out[..7], [0x82, 5, b'h', b'e', b'l', b'l', b'o']);
    assert_eq!(seen[4], "read 0", "{seen:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_read_without_a_write_comes_as_a_read() {
    let wire = RawFrame::new(0x2, b"hello".to_vec()).client().encode();
    let io = Memory {
        input: BytesMut::from(&wire[..]),
        out: Vec::new(),
    };
    let ws = Connection::new(Role::Server, Config::default()).unwrap();
    let mut d = Driver::new(io, Box::new(ws), 64 * 1024);
    d.join_reads(true);
    assert!(matches!(
        d.next(Gates::default(), NOTHING).await,
        Step::Event(Event::Message(Message::Binary(_)))
    ));
    // Nothing is sent back: the read is reported by itself.
    assert!(matches!(
        d.next(Gates::default(), NOTHING).await,
        Step::Read(11)
    ));
    assert_eq!(d.take_read(), None);
}
