//! Test peers: ws-server instances, raw mock HTTP servers, mock proxies and a TCP relay.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use sha1::{Digest as _, Sha1};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use ws_server::{Binding, Ctx, Decision, Handler, Request, Server, ServerConfig, ServerHandle};

pub fn local() -> ServerConfig {
    ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())])
}

pub async fn start<H: Handler>(config: ServerConfig, handler: H) -> (ServerHandle, SocketAddr) {
    let server = Server::start(config, handler).await.unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

pub async fn echo() -> (ServerHandle, SocketAddr) {
    start(local(), ws_server::EchoHandler).await
}

pub fn ws_url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// The request heads seen by [`Capture`].
#[derive(Clone, Debug, Default)]
pub struct Seen(pub Arc<Mutex<Vec<SeenRequest>>>);

/// Request target and headers.
pub type SeenRequest = (String, Vec<(String, String)>);

impl Seen {
    pub fn last(&self) -> SeenRequest {
        self.0.lock().unwrap().last().cloned().expect("a request")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.last()
            .1
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// Records every upgrade request, then echoes.
pub struct Capture(pub Seen);

impl Handler for Capture {
    async fn on_handshake(&self, request: &Request) -> Decision {
        self.0.0.lock().unwrap().push((
            request.url().to_owned(),
            request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect::<Vec<(String, String)>>(),
        ));
        Decision::accept()
    }
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: ws_frame::Message) {
        let _ = ctx.send(msg);
    }
}

pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    B64.encode(h.finalize())
}

pub fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

pub async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap_or(0) == 0 {
            break;
        }
        buf.push(b[0]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A raw HTTP server answering every connection with `respond(request_head)`, then holding
/// the socket open for a while.
pub async fn mock_http<F>(respond: F) -> SocketAddr
where
    F: Fn(&str) -> String + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                let _ = s.write_all(respond(&head).as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    addr
}

/// A 101 answer to `head` with extra header lines.
pub fn switching(head: &str, extra: &str) -> String {
    let key = header_of(head, "sec-websocket-key").unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
        accept_key(&key)
    )
}

/// A TCP relay to `target` whose forwarding stops (sockets stay open) once the flag is set:
/// a half-open path.
pub async fn relay(target: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(target).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut r, mut w) in [
                (
                    Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                ),
                (Box::new(sr) as _, Box::new(cw) as _),
            ] {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = r.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        if flag.load(Ordering::SeqCst) {
                            // Swallow everything, keep the sockets open.
                            continue;
                        }
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(w);
                });
            }
        }
    });
    (addr, stop)
}

/// What a mock proxy saw: the bytes of the tunnel request.
#[derive(Clone, Debug, Default)]
pub struct ProxyLog(pub Arc<Mutex<Vec<u8>>>);

/// A mock HTTP CONNECT proxy; answers 407 unless `creds` match (when given).
pub async fn http_proxy(creds: Option<(&'static str, &'static str)>) -> (SocketAddr, ProxyLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = ProxyLog::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log2.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                log.0.lock().unwrap().extend_from_slice(head.as_bytes());
                if let Some((u, p)) = creds {
                    let want = format!("Basic {}", B64.encode(format!("{u}:{p}")));
                    if header_of(&head, "proxy-authorization").as_deref() != Some(&want) {
                        let _ = s
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                }
                let target = head.split_whitespace().nth(1).unwrap().to_owned();
                let Ok(mut up) = TcpStream::connect(target.as_str()).await else {
                    let _ = s.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            });
        }
    });
    (addr, log)
}

/// A mock SOCKS4/4a/5 proxy (version picked from the first byte). SOCKS5 requires
/// user/password `creds` when given.
pub async fn socks_proxy(creds: Option<(&'static str, &'static str)>) -> (SocketAddr, ProxyLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = ProxyLog::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log2.clone();
            tokio::spawn(async move {
                let record = |b: &[u8]| log.0.lock().unwrap().extend_from_slice(b);
                let ver = s.read_u8().await.unwrap();
                record(&[ver]);
                let target: String = if ver == 4 {
                    let mut head = [0u8; 7];
                    s.read_exact(&mut head).await.unwrap();
                    record(&head);
                    let port = u16::from_be_bytes([head[1], head[2]]);
                    let ip = [head[3], head[4], head[5], head[6]];
                    let mut user = Vec::new();
                    loop {
                        let b = s.read_u8().await.unwrap();
                        record(&[b]);
                        if b == 0 {
                            break;
                        }
                        user.push(b);
                    }
                    let host = if ip[..3] == [0, 0, 0] && ip[3] != 0 {
                        let mut name = Vec::new();
                        loop {
                            let b = s.read_u8().await.unwrap();
                            record(&[b]);
                            if b == 0 {
                                break;
                            }
                            name.push(b);
                        }
                        String::from_utf8(name).unwrap()
                    } else {
                        format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
                    };
                    match TcpStream::connect((host.as_str(), port)).await {
                        Ok(mut up) => {
                            s.write_all(&[0, 0x5a, 0, 0, 0, 0, 0, 0]).await.unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
                        }
                        Err(_) => {
                            let _ = s.write_all(&[0, 0x5b, 0, 0, 0, 0, 0, 0]).await;
                        }
                    }
                    return;
                } else {
                    let n = s.read_u8().await.unwrap();
                    let mut methods = vec![0u8; usize::from(n)];
                    s.read_exact(&mut methods).await.unwrap();
                    record(&methods);
                    if let Some((u, p)) = creds {
                        if !methods.contains(&2) {
                            s.write_all(&[5, 0xff]).await.unwrap();
                            return;
                        }
                        s.write_all(&[5, 2]).await.unwrap();
                        let _v = s.read_u8().await.unwrap();
                        let ul = s.read_u8().await.unwrap();
                        let mut user = vec![0u8; usize::from(ul)];
                        s.read_exact(&mut user).await.unwrap();
                        let pl = s.read_u8().await.unwrap();
                        let mut pass = vec![0u8; usize::from(pl)];
                        s.read_exact(&mut pass).await.unwrap();
                        if user != u.as_bytes() || pass != p.as_bytes() {
                            s.write_all(&[1, 1]).await.unwrap();
                            return;
                        }
                        s.write_all(&[1, 0]).await.unwrap();
                    } else {
                        s.write_all(&[5, 0]).await.unwrap();
                    }
                    let mut req = [0u8; 4];
                    s.read_exact(&mut req).await.unwrap();
                    record(&req);
                    let host = match req[3] {
                        1 => {
                            let mut ip = [0u8; 4];
                            s.read_exact(&mut ip).await.unwrap();
                            format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
                        }
                        3 => {
                            let l = s.read_u8().await.unwrap();
                            let mut name = vec![0u8; usize::from(l)];
                            s.read_exact(&mut name).await.unwrap();
                            record(&name);
                            String::from_utf8(name).unwrap()
                        }
                        _ => {
                            let mut ip = [0u8; 16];
                            s.read_exact(&mut ip).await.unwrap();
                            std::net::Ipv6Addr::from(ip).to_string()
                        }
                    };
                    let port = s.read_u16().await.unwrap();
                    match TcpStream::connect((host.as_str(), port)).await {
                        Ok(mut up) => {
                            s.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
                                .await
                                .unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
                        }
                        Err(_) => {
                            let _ = s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await;
                        }
                    }
                    String::new()
                };
                let _ = target;
            });
        }
    });
    (addr, log)
}

/// A port nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}
