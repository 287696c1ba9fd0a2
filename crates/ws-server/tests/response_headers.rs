//! K-12: the header fields of the 101 response the server sent are kept on the connection
//! (`ConnInfo::response_headers`, the seed's `HeadersResponse`).

mod common;

use common::{connect, local_config};
use ws_server::{NoopHandler, Server};

#[tokio::test]
async fn the_101_response_headers_are_kept_on_the_connection() {
    let mut config = local_config();
    config.server_name = "k12-test/1.0".into();
    let server = Server::start(config, NoopHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let c = connect(addr, "/").await;
    let conns = server.connections();
    assert_eq!(conns.len(), 1);
    let sent = conns[0].response_headers();
    // Exactly what the client read, field for field.
    let accept = c.header("sec-websocket-accept").expect("an accept key");
    assert_eq!(sent.get("Sec-WebSocket-Accept"), Some(accept.as_str()));
    assert_eq!(sent.get("server"), Some("k12-test/1.0"));
    assert!(sent.has_token("upgrade", "websocket"), "{sent:?}");
    let read: Vec<&str> = c
        .response
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(sent.len(), read.len(), "{sent:?} vs {read:?}");
    // The request's headers stay apart.
    assert!(conns[0].headers().contains("sec-websocket-key"));
    assert!(!sent.contains("sec-websocket-key"));
}

#[tokio::test]
async fn no_response_headers_are_kept_when_request_headers_are_not() {
    let mut config = local_config();
    config.keep_request_headers = false;
    let server = Server::start(config, NoopHandler).await.unwrap();
    let _c = connect(server.local_addrs()[0], "/").await;
    let conns = server.connections();
    assert!(conns[0].response_headers().is_empty());
}
