//! The drive loop on tokio's paused clock over in-memory pipes: the connection's timers fire
//! through `Driver::next` without real time passing, and the write queue stays bounded.

use std::{future::Pending, time::Duration};

use tokio::{io::DuplexStream, time::Instant};
use ws_frame::{CloseCode, Config, Connection, Error, Heartbeat, Message, Role};
use ws_io::{Driver, Gates, Step, Stream};

const NOTHING: Option<Pending<()>> = None;

fn driver(io: DuplexStream, role: Role, config: Config) -> Driver<Stream<DuplexStream>> {
    Driver::new(
        Stream::new(io),
        Box::new(Connection::new(role, config).unwrap()),
        64 * 1024,
    )
}

/// Runs a peer that answers by itself until its transport ends.
fn spawn_peer(mut peer: Driver<Stream<DuplexStream>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !matches!(peer.next(Gates::default(), NOTHING).await, Step::End(_)) {}
    })
}

/// Drives `d` until its transport is done; returns the steps that are not byte counts.
async fn run(d: &mut Driver<Stream<DuplexStream>>) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match d.next(Gates::default(), NOTHING).await {
            Step::Read(_) | Step::Wrote(_) => {}
            Step::End(end) => {
                seen.push(format!("end {end:?}"));
                return seen;
            }
            other => seen.push(format!("{other:?}")),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_closes_the_connection() {
    let (a, b) = tokio::io::duplex(4096);
    let mut config = Config::default();
    config.idle_timeout = Some(Duration::from_secs(40));
    let mut server = driver(a, Role::Server, config);
    let peer = spawn_peer(driver(b, Role::Client, Config::default()));
    let started = Instant::now();
    let seen = run(&mut server).await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(40) && after <= Duration::from_secs(50),
        "{after:?}"
    );
    assert!(seen[0].contains("idle timeout"), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("end Closed"));
    peer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_answer_pings_is_given_up() {
    let (a, b) = tokio::io::duplex(4096);
    let mut config = Config::default();
    config.heartbeat = Some(Heartbeat::new(
        Duration::from_secs(10),
        Duration::from_secs(5),
    ));
    let mut server = driver(a, Role::Server, config);
    let mut quiet = Config::default();
    quiet.auto_pong = false;
    let peer = spawn_peer(driver(b, Role::Client, quiet));
    let started = Instant::now();
    let step = loop {
        match server.next(Gates::default(), NOTHING).await {
            Step::Error(e) => break e,
            Step::HeartbeatDue(_) | Step::Read(_) | Step::Wrote(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(
        matches!(step, Error::PongTimeout { after } if after == Duration::from_secs(5)),
        "{step:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(15));
    drop(server);
    peer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_close_handshake_times_out_when_the_peer_never_answers() {
    let (a, _silent) = tokio::io::duplex(4096);
    let mut server = driver(a, Role::Server, Config::default());
    server
        .ws
        .close(CloseCode::NORMAL, "bye", ws_io::now())
        .unwrap();
    let started = Instant::now();
    let seen = run(&mut server).await;
    assert_eq!(started.elapsed(), Config::DEFAULT_CLOSE_TIMEOUT);
    assert_eq!(
        seen,
        vec![
            format!("{:?}", Step::<()>::Error(Error::CloseTimeout)),
            "end Closed".to_owned()
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_write_queue_stays_bounded_when_the_peer_does_not_read() {
    let (a, _stalled) = tokio::io::duplex(4096);
    let mut server = driver(a, Role::Server, Config::default());
    let chunk = vec![7u8; 10_000];
    let mut sent = 0;
    // An application that sends only while the driver is below its limit.
    for _ in 0..50 {
        while server.below_limit() {
            server.ws.send(Message::binary(chunk.clone())).unwrap();
            sent += 1;
        }
        let gates = Gates {
            read: server.below_limit(),
            ..Gates::default()
        };
        let step = tokio::time::timeout(Duration::from_secs(1), server.next(gates, NOTHING)).await;
        if step.is_err() {
            break; // blocked on the full pipe: nothing else to do
        }
    }
    assert!(!server.below_limit());
    assert!(
        server.backlog() < server.write_limit() + chunk.len() + 16,
        "{} queued",
        server.backlog()
    );
    assert_eq!(sent, 7, "64 KiB in 10 kB messages");
    // Nothing was lost: an event-free connection still runs.
    assert!(matches!(server.ws.poll_event(), Ok(None)));
}

#[tokio::test(start_paused = true)]
async fn with_nothing_left_to_wait_for_the_loop_ends_instead_of_panicking() {
    let (a, _peer) = tokio::io::duplex(4096);
    let mut server = driver(a, Role::Server, Config::default());
    let gates = Gates {
        read: false,
        ..Gates::default()
    };
    assert!(matches!(
        server.next(gates, NOTHING).await,
        Step::End(ws_io::End::Closed)
    ));
}
