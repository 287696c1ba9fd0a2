//! Chunked trailer sections over real TCP with raw requests: a request's trailers reach the
//! handler through `Body::trailers`; a streamed response's trailers
//! (`Response::with_trailers`) are written after the last chunk when the response goes out
//! chunked, and dropped when it does not (HTTP/1.0, a known length, HEAD).

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{closes, local_config, read_response};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};
use ws_http::{BodyDecoder, BodyEvent, BodyKind, Headers, Limits};
use ws_server::{Body, Handler, Request, Response, Server, ServerHandle};

struct App;

/// The trailers as one line: `name=value;...` (`none` before the end of the body).
fn describe(t: Option<&Headers>) -> String {
    t.map_or_else(
        || "none".to_owned(),
        |t| {
            t.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(";")
        },
    )
}

/// A streamed body `one,two,three` with `trailers`, sent from a task after the body; with
/// `len`, the body has a known length.
fn streamed(trailers: Vec<(String, String)>, len: Option<u64>) -> Response {
    let (resp, tx) = Response::channel(4);
    let (ttx, trx) = oneshot::channel();
    tokio::spawn(async move {
        for part in ["one,", "two,", "three"] {
            let _ = tx.send(Bytes::from_static(part.as_bytes())).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(tx);
        // After the body ended: the server waits for the trailers.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = ttx.send(trailers);
    });
    let resp = resp
        .with_header("Trailer", "X-Checksum, X-Count")
        .with_trailers(trx);
    match len {
        Some(n) => resp.with_content_length(n),
        None => resp,
    }
}

fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

impl Handler for App {
    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        match request.path() {
            "/body" => {
                let before = describe(body.trailers());
                match body.bytes().await {
                    Ok(b) => Response::text(
                        200,
                        format!(
                            "{} before={before} after={}",
                            b.len(),
                            describe(body.trailers())
                        ),
                    ),
                    Err(e) => Response::text(500, e.to_string()),
                }
            }
            "/stream" => streamed(
                fields(&[
                    ("X-Checksum", "sha-256=abc"),
                    ("Content-Length", "999"),
                    ("X-Count", "3"),
                ]),
                None,
            ),
            "/sized" => streamed(fields(&[("X-Checksum", "sha-256=abc")]), Some(13)),
            "/bad" => streamed(fields(&[("X-Bad", "a\r\nInjected: 1")]), None),
            "/dropped" => {
                // The sender goes away without sending: no trailers, a clean end.
                let (resp, tx) = Response::channel(1);
                let (ttx, trx) = oneshot::channel::<Vec<(String, String)>>();
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from_static(b"x")).await;
                    drop(ttx);
                });
                resp.with_trailers(trx)
            }
            _ => Response::new(404),
        }
    }
}

async fn start() -> ServerHandle {
    Server::start(local_config(), App).await.unwrap()
}

/// Sends `raw` and reads everything until the server closes the connection.
async fn raw_exchange(server: &ServerHandle, raw: &[u8]) -> String {
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("the server closes in time")
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn request_trailers_reach_the_handler_after_the_body() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    // The trailer section arrives in a separate write, after a pause.
    tcp.write_all(
        b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
          5\r\nhello\r\n0\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(
        b"X-Checksum: sha-256=abc\r\nX-Other:  two words \r\n\r\n\
          POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    assert_eq!(
        (r.status, r.text()),
        (
            200,
            "5 before=none after=X-Checksum=sha-256=abc;X-Other=two words".into()
        )
    );
    // No trailers: an empty section once the body ended, for both framings.
    let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    assert_eq!((r.status, r.text()), (200, "3 before=none after=".into()));
    let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    assert_eq!((r.status, r.text()), (200, "3 before=none after=".into()));
}

#[tokio::test]
async fn a_bad_request_trailer_section_is_400() {
    let server = start().await;
    let raw = raw_exchange(
        &server,
        b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          1\r\na\r\n0\r\nBad Name: 1\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
}

#[tokio::test]
async fn response_trailers_follow_the_last_chunk_on_the_wire() {
    let server = start().await;
    let raw = raw_exchange(
        &server,
        b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n")
            && head.contains("\r\nTrailer: X-Checksum, X-Count\r\n"),
        "{head}"
    );
    // The last chunk, then the trailer fields (the framing field among them skipped).
    assert!(
        body.ends_with("\r\n0\r\nX-Checksum: sha-256=abc\r\nX-Count: 3\r\n\r\n"),
        "{body:?}"
    );
    assert!(!body.contains("Content-Length"), "{body:?}");

    // Decoded by ws-http: the body and the trailers.
    let mut rx = BytesMut::from(body.as_bytes());
    let mut d = BodyDecoder::new(BodyKind::Chunked, &Limits::default()).unwrap();
    let mut data = Vec::new();
    let trailers = loop {
        match d.decode(&mut rx).unwrap() {
            Some(BodyEvent::Data(b)) => data.extend_from_slice(&b),
            Some(BodyEvent::End { trailers }) => break trailers,
            None => panic!("incomplete body: {body:?}"),
        }
    };
    assert_eq!(data, b"one,two,three");
    assert_eq!(trailers.get("x-checksum"), Some("sha-256=abc"));
    assert!(rx.is_empty());

    // A dropped sender: a clean end without trailers, and the connection is reused.
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(
        b"GET /dropped HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!((r.status, r.text()), (200, "x".into()));
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(r.text(), "one,two,three");
}

#[tokio::test]
async fn response_trailers_are_dropped_when_the_body_is_not_chunked() {
    let server = start().await;
    // HTTP/1.0: the body ends with the connection, no chunked framing, no trailers.
    let raw = raw_exchange(&server, b"GET /stream HTTP/1.0\r\n\r\n").await;
    assert!(raw.ends_with("\r\n\r\none,two,three"), "{raw:?}");
    assert!(!raw.contains("Transfer-Encoding"), "{raw:?}");
    // A known length: Content-Length framing, no trailers.
    let raw = raw_exchange(
        &server,
        b"GET /sized HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.contains("\r\nContent-Length: 13\r\n"), "{raw:?}");
    assert!(raw.ends_with("\r\n\r\none,two,three"), "{raw:?}");
    // HEAD: the head only.
    let raw = raw_exchange(
        &server,
        b"HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        raw.ends_with("\r\n\r\n") && !raw.contains("X-Checksum:"),
        "{raw:?}"
    );
}

#[tokio::test]
async fn an_invalid_response_trailer_closes_without_the_last_chunk() {
    let server = start().await;
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    assert!(
        read_response(&mut tcp, &mut buf, "GET").await.is_none(),
        "an incomplete body, not a clean end"
    );
    let raw = String::from_utf8_lossy(&buf).into_owned();
    assert!(!raw.contains("Injected"), "{raw:?}");
    assert!(closes(&mut tcp).await);
}
