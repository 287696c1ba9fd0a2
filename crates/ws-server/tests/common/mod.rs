//! A minimal WebSocket test client over the sans-IO `ws_frame::Connection` (ws-client is a
//! separate crate; these tests must not depend on it).
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, sync::Arc, time::Instant};

use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use ws_frame::{
    CloseCode, Config, Connection, Event, Message, Role,
    deflate::{DeflateConfig, split_extension},
};
use ws_server::{Binding, ServerConfig};

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct Client {
    pub io: Box<dyn Stream>,
    pub ws: Connection,
    pub response: String,
}

pub fn local_config() -> ServerConfig {
    ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())])
}

/// Sends `extra` request headers; returns the raw response head on a non-101 answer.
pub async fn connect_with(
    addr: SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
    config: Config,
) -> Result<Client, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    handshake(Box::new(tcp), path, extra, config).await
}

pub async fn handshake(
    mut io: Box<dyn Stream>,
    path: &str,
    extra: &[(&str, &str)],
    mut config: Config,
) -> Result<Client, String> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    io.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(4096);
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = io.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(String::from_utf8_lossy(&buf).into_owned());
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        // Read the body too, for assertions on it.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), io.read_buf(&mut buf)).await;
        return Err(String::from_utf8_lossy(&buf).into_owned());
    }
    if let Some(line) = head.lines().find(|l| {
        l.to_ascii_lowercase()
            .starts_with("sec-websocket-extensions:")
    }) {
        let value = line.split_once(':').unwrap().1.trim();
        let (_, params) = split_extension(value);
        config.deflate = Some(DeflateConfig::default().accept_response(&params).unwrap());
    }
    let mut ws = Connection::new(Role::Client, config).unwrap();
    ws.feed(&buf[end..]);
    Ok(Client {
        io,
        ws,
        response: head,
    })
}

pub async fn connect(addr: SocketAddr, path: &str) -> Client {
    connect_with(addr, path, &[], Config::default())
        .await
        .unwrap()
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client")
    }
}

impl Client {
    pub fn header(&self, name: &str) -> Option<String> {
        self.response.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub async fn flush(&mut self) {
        let mut out = BytesMut::new();
        while self.ws.poll_transmit(&mut out) {}
        if !out.is_empty() {
            let _ = self.io.write_all(&out).await;
        }
    }

    pub async fn send(&mut self, msg: impl Into<Message>) {
        self.ws.send(msg.into()).unwrap();
        self.flush().await;
    }

    /// The next event (pongs and close replies are flushed); `None` at end of stream.
    pub async fn event(&mut self) -> Option<Result<Event, ws_frame::Error>> {
        loop {
            match self.ws.poll_event() {
                Ok(Some(ev)) => {
                    self.flush().await;
                    return Some(Ok(ev));
                }
                Ok(None) => {}
                Err(e) => {
                    self.flush().await;
                    return Some(Err(e));
                }
            }
            if self.ws.is_closed() {
                return None;
            }
            let n = self.io.read_buf(self.ws.read_buf()).await.unwrap_or(0);
            if n == 0 {
                self.ws.handle_eof();
            }
        }
    }

    /// The next data message, skipping control events.
    pub async fn message(&mut self) -> Option<Message> {
        loop {
            match self.event().await? {
                Ok(Event::Message(m)) => return Some(m),
                Ok(Event::Closed { .. }) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Waits for the close and returns its code (1006 when the stream just ended).
    pub async fn closed(&mut self) -> CloseCode {
        loop {
            match self.event().await {
                Some(Ok(Event::Closed { code, .. })) => return code,
                Some(Err(e)) => return e.close_code(),
                None => return CloseCode::ABNORMAL,
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn close(&mut self, code: CloseCode) -> CloseCode {
        self.ws.close(code, "", Instant::now()).unwrap();
        self.flush().await;
        self.closed().await
    }
}

/// A rustls client config trusting the test CA.
pub fn tls_connector(pki: &ws_tls::test_certs::TestPki) -> tokio_rustls::TlsConnector {
    let cfg = ws_tls::client_config(&pki.client_config()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::clone(&cfg))
}

/// One HTTP response read off a raw connection.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: ws_http::Headers,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads the next response to a `method` request from `io`; `None` when the connection closed
/// before a complete response. Bytes after it stay in `buf`.
pub async fn read_response<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    method: &str,
) -> Option<HttpResponse> {
    use ws_http::{BodyDecoder, BodyEvent, Limits, Parsed, parse_response};
    let mut limits = Limits::default();
    limits.max_body = u64::MAX;
    let (head, len) = loop {
        if let Ok(Parsed::Complete(h, n)) = parse_response(buf, &limits) {
            break (h, n);
        }
        if io.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    };
    let _ = buf.split_to(len);
    let mut decoder = BodyDecoder::new(head.body_kind(method).ok()?, &limits).ok()?;
    let mut body = Vec::new();
    loop {
        match decoder.decode(buf).ok()? {
            Some(BodyEvent::Data(d)) => body.extend_from_slice(&d),
            Some(BodyEvent::End { .. }) => break,
            None => {
                if io.read_buf(buf).await.ok()? == 0 {
                    match decoder.finish().ok()? {
                        Some(_) => break,
                        None => return None,
                    }
                }
            }
        }
    }
    Some(HttpResponse {
        status: head.status(),
        headers: head.headers().clone(),
        body,
    })
}

/// Sends `raw` on a new connection and reads one response.
pub async fn request(addr: SocketAddr, raw: &str) -> HttpResponse {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let method = raw.split(' ').next().unwrap_or("GET");
    let mut buf = BytesMut::new();
    read_response(&mut tcp, &mut buf, method).await.unwrap()
}

/// Whether the server closes the connection within two seconds (reads until EOF).
pub async fn closes<S: AsyncRead + Unpin>(io: &mut S) -> bool {
    let mut sink = vec![0u8; 4096];
    let wait = async {
        loop {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), wait)
        .await
        .unwrap_or(false)
}
