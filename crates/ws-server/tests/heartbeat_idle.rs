//! `Heartbeat::only_if_idle` on the server (the seed's `hbtOnlyIfNoMsgRcvInterval`): a peer
//! that keeps sending gets no pings, a quiet one does; without the flag both get them.
//!
//! Clock: tokio's paused clock, moved only by `tokio::time::advance`. A task that keeps
//! yielding holds the runtime busy, so tokio never jumps the clock on its own while bytes
//! are still on their way through the (real, loopback) sockets: the IO driver is polled at
//! every yield, and the only time that passes is the time the test advances.

mod common;

use std::time::Duration;

use common::{Client, connect, local_config};
use ws_frame::{Event, Message};
use ws_server::{EchoHandler, Heartbeat, Server};

/// Gives up after this many scheduler turns without the event (no clock involved).
const TURNS: usize = 20_000;

async fn turns(n: usize) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

/// The next event, or `None` when none came within `TURNS` scheduler turns.
async fn next_event(c: &mut Client) -> Option<Event> {
    tokio::select! {
        ev = c.event() => ev.and_then(Result::ok),
        () = turns(TURNS) => None,
    }
}

/// Pings seen while the peer sends a message every 4 s for 24 s, then whether a ping comes
/// within 25 s of silence.
async fn run(only_if_idle: bool) -> (usize, bool) {
    let mut config = local_config();
    let mut hb = Heartbeat::new(Duration::from_secs(10), None);
    hb.only_if_idle = only_if_idle;
    config.heartbeat = Some(hb);
    let server = Server::start(config, EchoHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    let mut busy_pings = 0;
    for i in 0..6 {
        tokio::time::advance(Duration::from_secs(4)).await;
        c.send(Message::text(format!("m{i}"))).await;
        loop {
            match next_event(&mut c).await.expect("the echo comes back") {
                Event::Ping(_) => busy_pings += 1,
                Event::Message(m) => {
                    assert_eq!(m, Message::text(format!("m{i}")));
                    break;
                }
                _ => {}
            }
        }
    }
    let mut idle_ping = false;
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(5)).await;
        while let Some(ev) = next_event(&mut c).await {
            if matches!(ev, Event::Ping(_)) {
                idle_ping = true;
            }
        }
        if idle_ping {
            break;
        }
    }
    // Gone before stop(): with the clock held, stop() must not wait for a close reply.
    drop(c);
    let stop = server.stop();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::advance(Duration::from_secs(1)) => {}
        }
    }
    (busy_pings, idle_ping)
}

#[tokio::test(start_paused = true)]
async fn only_if_idle_pings_a_quiet_peer_but_not_a_busy_one() {
    let spinner = tokio::spawn(async {
        loop {
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(run(true).await, (0, true), "only_if_idle");
    // The control: every 10 s regardless, so the busy peer got pings at 10 s and 20 s.
    assert_eq!(run(false).await, (2, true), "always");
    spinner.abort();
}
