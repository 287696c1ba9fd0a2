//! The frame and message log (`ws_io::frames`): what a server and a client connection log,
//! each way, with and without payloads.

use std::{
    future::Pending,
    io::Write,
    sync::{Arc, Mutex},
};

use tokio::io::DuplexStream;
use ws_frame::{CloseCode, Config, Connection, Event, Message, Role};
use ws_io::{Driver, Gates, Step, Stream, frames};

const NOTHING: Option<Pending<()>> = None;

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

fn driver(io: DuplexStream, role: Role) -> Driver<Stream<DuplexStream>> {
    Driver::new(
        Stream::new(io),
        Box::new(Connection::new(role, Config::default()).unwrap()),
        64 * 1024,
    )
}

/// The client sends a text and a binary message; the server echoes them and closes.
async fn session() -> (u64, u64) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut server = driver(a, Role::Server);
    let mut client = driver(b, Role::Client);
    server.set_log_id(7);
    let client_id = client.log_id();
    client.ws.send(Message::text("hello world")).unwrap();
    client.ws.send(Message::binary(vec![0xab; 10])).unwrap();
    let peer = tokio::spawn(async move {
        while !matches!(client.next(Gates::default(), NOTHING).await, Step::End(_)) {}
    });
    let mut echoed = 0;
    loop {
        match server.next(Gates::default(), NOTHING).await {
            Step::Event(Event::Message(m)) => {
                server.ws.send(m).unwrap();
                echoed += 1;
                if echoed == 2 {
                    server
                        .ws
                        .close(CloseCode::NORMAL, "", ws_io::now())
                        .unwrap();
                }
            }
            Step::End(_) => break,
            _ => {}
        }
    }
    peer.await.unwrap();
    (7, client_id)
}

fn lines_of(log: &str, conn: u64) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(&format!("conn={conn} ")))
        .collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn frames_are_logged_each_way_with_payloads_only_when_asked() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Lengths only.
    frames::set_payload_limit(None);
    let (server, client) = session().await;
    let log = sink.take();
    let s = lines_of(&log, server);
    let c = lines_of(&log, client);
    let has =
        |lines: &[&str], parts: &[&str]| lines.iter().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        has(&s, &["dir=\"in\"", "op=\"text\"", "fin=true", "len=11"]),
        "{log}"
    );
    assert!(has(&s, &["dir=\"in\"", "op=\"binary\"", "len=10"]), "{log}");
    assert!(has(&s, &["dir=\"out\"", "op=\"text\"", "len=11"]), "{log}");
    assert!(has(&s, &["dir=\"out\"", "op=\"close\"", "len=2"]), "{log}");
    assert!(!log.contains("compressed"), "{log}");
    assert!(has(&c, &["dir=\"out\"", "op=\"text\"", "len=11"]), "{log}");
    assert!(has(&c, &["dir=\"in\"", "op=\"binary\"", "len=10"]), "{log}");
    assert!(has(&c, &["dir=\"out\"", "op=\"close\""]), "{log}");
    assert!(!log.contains("payload"), "{log}");

    // Payloads, unmasked and cut to 5 bytes.
    frames::set_payload_limit(Some(5));
    let (server, client) = session().await;
    frames::set_payload_limit(None);
    let log = sink.take();
    let s = lines_of(&log, server);
    let c = lines_of(&log, client);
    // The client's frames are masked on the wire: the log shows them unmasked.
    assert!(
        has(&c, &["dir=\"out\"", "op=\"text\"", "payload=hello...(+6)"]),
        "{log}"
    );
    assert!(
        has(
            &c,
            &["dir=\"out\"", "op=\"binary\"", "payload=ababababab...(+5)"]
        ),
        "{log}"
    );
    assert!(
        has(&s, &["dir=\"in\"", "op=\"text\"", "payload=hello...(+6)"]),
        "{log}"
    );
    assert!(
        has(&s, &["dir=\"out\"", "op=\"text\"", "payload=hello...(+6)"]),
        "{log}"
    );
    assert!(
        has(&c, &["dir=\"in\"", "op=\"text\"", "payload=hello...(+6)"]),
        "{log}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn nothing_is_logged_without_a_subscriber_for_the_target() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    session().await;
    assert_eq!(sink.take(), "");
}
