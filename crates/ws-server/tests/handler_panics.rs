//! A handler that panics costs only its own connection: closed with 1011, reported through
//! `on_error` and `on_disconnect`, out of the registry; the server and its other connections
//! go on, and `stop` does not wait for the dead connection.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{connect, local_config};
use tokio::{sync::mpsc, time::timeout};
use ws_frame::{CloseCode, Event, Message};
use ws_server::{
    Body, ConnInfo, Ctx, Disconnect, Error, Handler, Request, Response, Server, ServerHandle,
};

/// Echoes, except that "boom" panics in `on_message` and path `/connect-panics` panics in
/// `on_connect`; reports errors and disconnects.
struct Fragile(mpsc::UnboundedSender<String>);

impl Handler for Fragile {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        if ctx.info().path() == "/connect-panics" {
            panic!("refusing to start");
        }
    }

    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        if request.path() == "/http-panics" {
            panic!("bad route");
        }
        Response::new(204)
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        if msg.as_text() == Some("boom") {
            panic!("handler bug on {}", ctx.id());
        }
        let _ = ctx.send(msg);
    }

    async fn on_error(&self, _peer: std::net::SocketAddr, _c: Option<&Arc<ConnInfo>>, e: &Error) {
        if let Error::HandlerPanicked { method, message } = e {
            let _ = self.0.send(format!("panic in {method}: {message}"));
        }
    }

    async fn on_disconnect(&self, info: &Arc<ConnInfo>, d: Disconnect) {
        let _ = self.0.send(format!(
            "disconnect {} {} {:?}",
            info.id(),
            d.code.as_u16(),
            d.by
        ));
    }
}

async fn wait_for(server: &ServerHandle, what: impl Fn(&ServerHandle) -> bool) {
    timeout(Duration::from_secs(5), async {
        while !what(server) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition within 5 s");
}

#[tokio::test]
async fn a_panicking_handler_closes_only_its_connection_with_1011() {
    let mut config = local_config();
    // Long enough that a connection left in the registry would show as a slow stop.
    config.stop_timeout = Duration::from_secs(30);
    let (tx, mut reports) = mpsc::unbounded_channel();
    let server = Server::start(config, Fragile(tx)).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut good = connect(addr, "/").await;
    let mut bad = connect(addr, "/").await;
    wait_for(&server, |s| s.count() == 2).await;
    good.send(Message::text("before")).await;
    assert_eq!(good.message().await, Some(Message::text("before")));

    bad.send(Message::text("boom")).await;
    let code = loop {
        match timeout(Duration::from_secs(5), bad.event()).await.unwrap() {
            Some(Ok(Event::Closed { code, reason, .. })) => {
                assert_eq!(reason.as_str(), "internal error");
                break code;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a Close frame, got {other:?}"),
        }
    };
    assert_eq!(code, CloseCode::INTERNAL);
    drop(bad);
    let report = reports.recv().await.unwrap();
    assert!(
        report.starts_with("panic in on_message: handler bug on"),
        "{report}"
    );
    let report = reports.recv().await.unwrap();
    assert!(report.ends_with(" 1011 Local"), "{report}");
    wait_for(&server, |s| s.count() == 1).await;

    // The other connection and the server go on.
    good.send(Message::text("after")).await;
    assert_eq!(good.message().await, Some(Message::text("after")));
    let mut again = connect(addr, "/").await;
    again.send(Message::text("new")).await;
    assert_eq!(again.message().await, Some(Message::text("new")));
    drop(again);
    wait_for(&server, |s| s.count() == 1).await;

    // stop closes the live connection and returns without waiting for the dead one.
    let stopping = tokio::spawn({
        let server = server.clone();
        async move {
            let started = Instant::now();
            server.stop().await;
            started.elapsed()
        }
    });
    assert_eq!(good.closed().await, CloseCode::AWAY);
    let took = timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stop returns")
        .unwrap();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn a_panic_in_on_connect_closes_that_connection_with_1011() {
    let (tx, mut reports) = mpsc::unbounded_channel();
    let server = Server::start(local_config(), Fragile(tx)).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut c = connect(addr, "/connect-panics").await;
    assert_eq!(
        timeout(Duration::from_secs(5), c.closed()).await.unwrap(),
        CloseCode::INTERNAL
    );
    drop(c);
    assert_eq!(
        reports.recv().await.unwrap(),
        "panic in on_connect: refusing to start"
    );
    assert!(reports.recv().await.unwrap().ends_with(" 1011 Local"));
    wait_for(&server, |s| s.count() == 0).await;
    let mut ok = connect(addr, "/").await;
    ok.send(Message::text("fine")).await;
    assert_eq!(ok.message().await, Some(Message::text("fine")));
    drop(ok);
    server.stop().await;
}

#[tokio::test]
async fn a_panic_in_on_http_ends_only_that_connection() {
    let (tx, _reports) = mpsc::unbounded_channel();
    let server = Server::start(local_config(), Fragile(tx)).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /http-panics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .expect("the connection ends")
        .unwrap_or(0);
    assert_eq!(n, 0, "no response from a panicked route");
    let ok = common::request(addr, "GET /fine HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(ok.status, 204);
    server.stop().await;
}
