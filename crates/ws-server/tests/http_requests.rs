//! The HTTP side of the port over real TCP with raw requests: routes, keep-alive, pipelining,
//! chunked bodies both ways, limits, request smuggling, HTTP/1.0, the before hook.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{closes, connect, local_config, read_response, request};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use ws_frame::Message;
use ws_server::{Before, Body, Handler, Request, Response, Server, ServerHandle};

struct App;

impl Handler for App {
    async fn on_before_request(&self, request: &mut Request) -> Before {
        // Basic auth everywhere except /public (and the other test routes).
        if request.path().starts_with("/private") {
            if request.header("authorization") == Some("Basic dTpw") {
                request.set_user(Some("u".into()));
            } else {
                return Before::Respond(
                    Response::new(401).with_header("WWW-Authenticate", "Basic realm=\"t\""),
                );
            }
        }
        Before::Continue
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        match (request.method(), request.path()) {
            ("POST" | "PUT", "/echo") => match body.bytes().await {
                Ok(b) => Response::new(200)
                    .with_header("X-Method", request.method())
                    .with_body(b),
                Err(_) => Response::new(500),
            },
            (_, "/hello") => {
                Response::text(200, format!("hello {}", request.query().unwrap_or("")))
            }
            (_, "/private/data") => Response::text(200, format!("secret for {:?}", request.user())),
            (_, "/public") => Response::text(200, "public"),
            (_, "/stream") => {
                let (resp, tx) = Response::channel(4);
                tokio::spawn(async move {
                    for part in ["one,", "two,", "three"] {
                        let _ = tx.send(Bytes::from_static(part.as_bytes())).await;
                    }
                });
                resp.with_header("Content-Type", "text/plain")
            }
            (_, "/reader") => Response::stream(&b"from a reader"[..]).with_content_length(13),
            (_, "/bad-header") => Response::new(200).with_header("X", "a\r\nInjected: 1"),
            _ => Response::new(404),
        }
    }
}

async fn start() -> ServerHandle {
    let mut config = local_config();
    config.http.max_body = 1024;
    config.http.max_head_bytes = 4096;
    config.http.max_header_line = 2048;
    config.http.max_request_line = 2048;
    Server::start(config, App).await.unwrap()
}

#[tokio::test]
async fn default_route_is_404_with_an_empty_body() {
    let server = start().await;
    let r = request(
        server.local_addrs()[0],
        "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.header("date").is_some());
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    // Three requests in one write, one with a body, then a second write on the same socket.
    tcp.write_all(
        b"GET /hello?1 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde\
          GET /hello?3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let a = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    let b = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    let c = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!((a.status, a.text()), (200, "hello 1".into()));
    assert_eq!((b.status, b.text()), (200, "abcde".into()));
    assert_eq!((c.status, c.text()), (200, "hello 3".into()));
    assert_eq!(a.header("connection"), None);
    tcp.write_all(b"GET /hello?4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let d = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(d.text(), "hello 4");
    assert_eq!(d.header("connection"), Some("close"));
    assert!(closes(&mut tcp).await, "Connection: close is honoured");
}

#[tokio::test]
async fn an_upgrade_can_follow_plain_requests_on_the_same_connection() {
    let server = Server::start(local_config(), ws_server::EchoHandler)
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let mut c = connect(addr, "/").await;
    c.send(Message::text("hi")).await;
    assert_eq!(c.message().await, Some(Message::text("hi")));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    assert_eq!(
        read_response(&mut tcp, &mut buf, "GET")
            .await
            .unwrap()
            .status,
        404
    );
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

#[tokio::test]
async fn chunked_request_body_is_decoded() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(
        b"6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    assert_eq!((r.status, r.text()), (200, "hello world".into()));
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(
        r.status, 200,
        "the connection stays usable after a chunked body"
    );
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let interim = read_response(&mut tcp, &mut buf, "PUT").await.unwrap();
    assert_eq!(interim.status, 100);
    tcp.write_all(b"abc").await.unwrap();
    let r = read_response(&mut tcp, &mut buf, "PUT").await.unwrap();
    assert_eq!((r.status, r.text()), (200, "abc".into()));
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_connection_closes() {
    let server = start().await;
    let addr = server.local_addrs()[0];
    // Declared too large: refused before any body byte is read.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    assert_eq!(r.status, 413);
    assert!(closes(&mut tcp).await);
    // Chunked: refused at the chunk that crosses the limit.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n")
        .await
        .unwrap();
    tcp.write_all(&[b'a'; 0x200]).await.unwrap();
    tcp.write_all(b"\r\n300\r\n").await.unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    assert_eq!(r.status, 413);
    assert!(closes(&mut tcp).await);
}

#[tokio::test]
async fn head_limits_give_431_and_malformed_requests_400() {
    let server = start().await;
    let addr = server.local_addrs()[0];
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(3000)
    );
    assert_eq!(request(addr, &big).await.status, 431);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(request(addr, &many).await.status, 431);
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(3000));
    assert_eq!(request(addr, &long).await.status, 414);
    assert_eq!(
        request(addr, "GET / HTTP/1.1\r\n\r\n").await.status,
        400,
        "no Host"
    );
    assert_eq!(
        request(addr, "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .status,
        400
    );
    assert_eq!(
        request(addr, "GET / HTTP/2.0\r\nHost: x\r\n\r\n")
            .await
            .status,
        505
    );
    let r = request(
        addr,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn request_smuggling_attempts_get_400_and_the_connection_is_closed() {
    let server = start().await;
    let addr = server.local_addrs()[0];
    for attack in [
        // CL.TE
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        // TE.CL
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        // Differing lengths
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        // Obfuscated coding: chunked not last
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        // Transfer-Encoding in HTTP/1.0
        "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(attack.as_bytes()).await.unwrap();
        tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
        assert_eq!(r.status, 400, "{attack:?}");
        assert_eq!(r.header("connection"), Some("close"));
        // Nothing after the 400: the smuggled request is never answered.
        assert!(
            read_response(&mut tcp, &mut buf, "GET").await.is_none(),
            "{attack:?}"
        );
    }
}

#[tokio::test]
async fn http_1_0_closes_unless_keep_alive_is_asked_for() {
    let server = start().await;
    let addr = server.local_addrs()[0];
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /hello HTTP/1.0\r\n\r\n").await.unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(closes(&mut tcp).await);

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    // A stream of unknown length cannot be chunked for HTTP/1.0: it ends with the connection.
    tcp.write_all(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(r.text(), "one,two,three");
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("connection"), Some("close"));
}

#[tokio::test]
async fn streamed_responses_are_chunked_and_head_has_no_body() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(
        b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /reader HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello?after HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "one,two,three");
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(
        (r.header("content-length"), r.text().as_str()),
        (Some("13"), "from a reader")
    );
    let r = read_response(&mut tcp, &mut buf, "HEAD").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("6"),
        "the length a GET would get"
    );
    assert!(r.body.is_empty());
    // If HEAD had carried a body, this response would be garbage.
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(r.text(), "hello after");
}

#[tokio::test]
async fn before_hook_short_circuits_and_authorizes() {
    let server = start().await;
    let addr = server.local_addrs()[0];
    let r = request(addr, "GET /private/data HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"t\""));
    let r = request(
        addr,
        "GET /private/data HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dTpw\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.text()), (200, "secret for Some(\"u\")".into()));
    let r = request(addr, "GET /public HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 200);
    // A short-circuited request with a body: the body is skipped and the connection reused.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"POST /private/data HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody\
          GET /public HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    assert_eq!(
        read_response(&mut tcp, &mut buf, "POST")
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        read_response(&mut tcp, &mut buf, "GET")
            .await
            .unwrap()
            .text(),
        "public"
    );
}

#[tokio::test]
async fn header_injection_from_the_handler_becomes_a_500() {
    let server = start().await;
    let r = request(
        server.local_addrs()[0],
        "GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("injected"), None);
}

#[tokio::test]
async fn idle_keep_alive_connections_time_out_and_stop_closes_them() {
    let mut config = local_config();
    config.keep_alive_timeout = Duration::from_millis(200);
    let server = Server::start(config, App).await.unwrap();
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(b"GET /public HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    assert_eq!(
        read_response(&mut tcp, &mut buf, "GET")
            .await
            .unwrap()
            .status,
        200
    );
    let t = std::time::Instant::now();
    assert!(closes(&mut tcp).await);
    assert!(t.elapsed() < Duration::from_secs(1));

    let server = start().await;
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(b"GET /public HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    assert_eq!(
        read_response(&mut tcp, &mut buf, "GET")
            .await
            .unwrap()
            .status,
        200
    );
    server.stop().await;
    assert!(
        closes(&mut tcp).await,
        "an idle keep-alive connection ends at stop"
    );
}
