//! Drive a client and a server `ws_frame::Connection` by hand over an in-memory pipe.
//!
//! `ws-frame` does no IO: you feed it bytes, it hands you events and bytes to write, and it
//! tells you when to call it back (`poll_timeout`). This example writes that loop once, in
//! [`drive`], and runs it for both ends of a `tokio::io::duplex` pipe (any byte stream works
//! the same way: TCP, TLS, a serial line). The server echoes; the client sends two messages
//! and a ping, then closes.
//!
//! ```text
//! cargo run -p ws-frame --example duplex
//! ```

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use ws_frame::{CloseCode, Config, Connection, Event, Message, Role};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One connection's loop: write what the core queued, hand its events to `on_event`, then wait
/// for bytes or for the core's next deadline. Returns when the close handshake is over.
async fn drive(
    name: &str,
    mut conn: Connection,
    mut io: DuplexStream,
    mut on_event: impl FnMut(&mut Connection, Event) -> Result<()>,
) -> Result<()> {
    let mut out = BytesMut::new();
    loop {
        // 1. Frames the core wants written (our messages, auto-pongs, the Close echo).
        while conn.poll_transmit(&mut out) {}
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
        // 2. Events decoded from what was read so far.
        let mut handled = false;
        while let Some(event) = conn.poll_event()? {
            handled = true;
            println!("{name}: {event:?}");
            let closed = matches!(event, Event::Closed { .. });
            on_event(&mut conn, event)?;
            if closed {
                // Flush the Close echo (if we were the one answering), then hang up.
                while conn.poll_transmit(&mut out) {}
                io.write_all(&out).await?;
                io.shutdown().await?;
                return Ok(());
            }
        }
        if conn.wants_now() {
            // A fragmented message started: its deadline counts from now.
            conn.handle_timeout(Instant::now());
        }
        if handled {
            continue; // on_event may have queued frames: write them before waiting
        }
        // 3. Wait for input or for the next deadline (close handshake, unfinished message).
        let deadline = conn.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = io.read_buf(conn.read_buf()) => {
                if read? == 0 {
                    conn.handle_eof(); // poll_event reports an unexpected end, if it was one
                }
            }
            () = sleep => conn.handle_timeout(Instant::now()),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    // The pipe: 64 KiB of buffer each way, like a socket's.
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);

    // Server: echo every message back.
    let server = Connection::new(Role::Server, Config::default())?;
    let server = tokio::spawn(drive("server", server, server_io, |conn, event| {
        if let Event::Message(msg) = event {
            conn.send(msg)?;
        }
        Ok(())
    }));

    // Client: queue two messages and a ping; close once both echoes are back.
    let mut client = Connection::new(Role::Client, Config::default())?;
    client.send(Message::text("hello"))?;
    client.send(Message::binary(Bytes::from_static(&[1, 2, 3])))?;
    client.ping(Bytes::from_static(b"are you there?"))?;
    let mut echoes = 0;
    drive("client", client, client_io, |conn, event| {
        if let Event::Message(_) = event {
            echoes += 1;
            if echoes == 2 {
                conn.close(CloseCode::NORMAL, "done", Instant::now())?;
            }
        }
        Ok(())
    })
    .await?;
    server.await??;
    assert_eq!(echoes, 2, "both messages came back");
    println!("both ends closed cleanly");
    Ok(())
}
