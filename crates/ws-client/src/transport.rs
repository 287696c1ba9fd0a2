//! Getting a byte stream to the server: DNS, TCP (with socket options), proxies (HTTP CONNECT,
//! SOCKS4, SOCKS4a, SOCKS5) and TLS.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpSocket, TcpStream},
};
use ws_http::WsUrl as Url;

use crate::{
    config::{ClientConfig, Proxy, ProxyKind},
    error::Error,
};

/// Any byte stream the connection can run on.
pub(crate) trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncStream for T {}

/// A boxed byte stream.
pub(crate) type BoxStream = Box<dyn AsyncStream>;

/// A connected transport.
pub(crate) struct Transport {
    pub(crate) stream: BoxStream,
    pub(crate) peer: SocketAddr,
    pub(crate) alpn: Option<Vec<u8>>,
}

/// Resolves `host:port` (IP literals skip DNS).
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| Error::Dns {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Dns {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        });
    }
    Ok(addrs)
}

/// A socket for `addr` with the options that must be set before connecting: linger and the
/// local address or port range (the first free port of the range is bound).
fn socket_for(addr: SocketAddr, config: &ClientConfig) -> io::Result<TcpSocket> {
    let local_ip = config.local_addr.unwrap_or(if addr.is_ipv4() {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    });
    let (min, max) = config.local_ports.unwrap_or((0, 0));
    let mut last = None;
    for port in min..=max {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(linger) = config.linger {
            socket2::SockRef::from(&socket).set_linger(Some(linger))?;
        }
        if config.local_addr.is_none() && config.local_ports.is_none() {
            return Ok(socket);
        }
        match socket.bind(SocketAddr::new(local_ip, port)) {
            Ok(()) => return Ok(socket),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("empty local port range")))
}

/// Applies the options of `config` that a connected socket takes: `TCP_NODELAY` and TCP
/// keep-alive (idle time, probe interval, probe count). [`crate::connect`] does this itself;
/// it is public for streams opened by the application.
///
/// # Errors
/// The operating system's, when it refuses an option.
pub fn configure_tcp(s: &TcpStream, config: &ClientConfig) -> io::Result<()> {
    s.set_nodelay(config.nodelay)?;
    if let Some(idle) = config.tcp_keepalive {
        let mut ka = socket2::TcpKeepalive::new().with_time(idle);
        if let Some(interval) = config.tcp_keepalive_interval {
            ka = ka.with_interval(interval);
        }
        #[cfg(not(windows))]
        if let Some(retries) = config.tcp_keepalive_retries {
            ka = ka.with_retries(retries);
        }
        socket2::SockRef::from(s).set_tcp_keepalive(&ka)?;
    }
    Ok(())
}

/// Connects to the first address that accepts.
async fn tcp(addrs: &[SocketAddr], config: &ClientConfig) -> Result<TcpStream, Error> {
    let mut last = None;
    for &addr in addrs {
        let socket = socket_for(addr, config).map_err(|source| Error::LocalBind {
            addr: config.local_addr,
            ports: config.local_ports,
            source,
        })?;
        match socket.connect(addr).await {
            Ok(s) => {
                configure_tcp(&s, config)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = Some(Error::Refused { addr });
            }
            Err(source) => last = Some(Error::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| Error::NoAddress {
        host: addrs.first().map(ToString::to_string).unwrap_or_default(),
    }))
}

/// TCP to the server or through the proxy, then TLS for `wss://`.
pub(crate) async fn open(
    url: &Url,
    config: &ClientConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Transport, Error> {
    let (tcp, peer) = match &config.proxy {
        None => {
            let addrs = resolve(url.host(), url.port()).await?;
            let s = tcp(&addrs, config).await?;
            let peer = s.peer_addr()?;
            (s, peer)
        }
        Some(proxy) => {
            let addrs = resolve(&proxy.host, proxy.port).await?;
            let mut s = tcp(&addrs, config).await?;
            let peer = s.peer_addr()?;
            tunnel(&mut s, proxy, url).await?;
            (s, peer)
        }
    };
    match tls {
        None => Ok(Transport {
            stream: Box::new(tcp),
            peer,
            alpn: None,
        }),
        Some(tls) => {
            let name = match &config.tls_server_name {
                Some(n) => n.clone(),
                None => url.host().to_owned(),
            };
            let name = ServerName::try_from(name.clone())
                .map_err(|_| Error::InvalidServerName { name })?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
                .connect(name, Sniff::new(tcp))
                .into_fallible()
                .await
                .map_err(|(e, io)| not_tls(io.first(), &e).unwrap_or(Error::Tls(e)))?;
            let conn = stream.get_ref().1;
            if let Some(verify) = &config.verify_peer {
                let chain = conn.peer_certificates().unwrap_or_default();
                let name = match &config.tls_server_name {
                    Some(n) => n.clone(),
                    None => url.host().to_owned(),
                };
                if !verify(&name, chain) {
                    return Err(Error::PeerRejected { name });
                }
            }
            let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
            Ok(Transport {
                stream: Box::new(stream),
                peer,
                alpn,
            })
        }
    }
}

/// A stream that keeps the first bytes the server sent, so that a failed TLS handshake can tell
/// a server that does not speak TLS (plain HTTP, or a close without a reply) from a TLS error.
pub(crate) struct Sniff<S> {
    inner: S,
    first: [u8; 8],
    len: usize,
}

impl<S> Sniff<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            first: [0; 8],
            len: 0,
        }
    }

    /// Up to the first 8 bytes read.
    fn first(&self) -> &[u8] {
        &self.first[..self.len]
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniff<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.len < this.first.len() {
            let new = &buf.filled()[before..];
            let n = new.len().min(this.first.len() - this.len);
            this.first[this.len..this.len + n].copy_from_slice(&new[..n]);
            this.len += n;
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniff<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// [`Error::NotTls`] when the first bytes of a failed TLS handshake show a server that does not
/// speak TLS: nothing at all before it closed the connection, or bytes that cannot start a TLS
/// record.
pub(crate) fn not_tls(first: &[u8], e: &io::Error) -> Option<Error> {
    use io::ErrorKind as K;
    let what = match first {
        [] if matches!(
            e.kind(),
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
        ) =>
        {
            "it closed the connection without a TLS reply".to_owned()
        }
        [] => return None,
        // A TLS record: change_cipher_spec, alert, handshake, application_data, heartbeat.
        [0x14..=0x18, ..] => return None,
        b if b.starts_with(b"HTTP/") => "it answered in plain HTTP".to_owned(),
        b => format!(
            "its first bytes {:?} are not a TLS record",
            String::from_utf8_lossy(b)
        ),
    };
    Some(Error::NotTls(what))
}

/// Opens the tunnel through `proxy` to the URL's host and port.
pub(crate) async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    proxy: &Proxy,
    url: &Url,
) -> Result<(), Error> {
    let host = url.host();
    let ip: Option<IpAddr> = host.parse().ok();
    let port = url.port();
    let creds = proxy.credentials.as_ref();
    match proxy.kind {
        ProxyKind::Http => {
            let authority = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            http_connect(s, &authority, port, creds).await
        }
        ProxyKind::Socks4 | ProxyKind::Socks4a => {
            let ip = match ip {
                Some(IpAddr::V4(ip)) => Some(ip),
                Some(IpAddr::V6(_)) => {
                    return Err(Error::Proxy("SOCKS4 cannot reach IPv6 addresses".into()));
                }
                None if proxy.kind == ProxyKind::Socks4 => {
                    let addrs = resolve(host, port).await?;
                    let v4 = addrs.iter().find_map(|a| match a.ip() {
                        IpAddr::V4(ip) => Some(ip),
                        IpAddr::V6(_) => None,
                    });
                    Some(v4.ok_or_else(|| {
                        Error::Proxy(format!("SOCKS4: {host} has no IPv4 address"))
                    })?)
                }
                None => None,
            };
            socks4(s, ip, host, port, creds.map(|(u, _)| u.as_str())).await
        }
        ProxyKind::Socks5 => socks5(s, host, ip, port, creds).await,
    }
}

fn proxy_io(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::Proxy("proxy closed the connection".into())
    } else {
        Error::Io(e)
    }
}

async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    authority_host: &str,
    port: u16,
    creds: Option<&(String, String)>,
) -> Result<(), Error> {
    let authority = format!("{authority_host}:{port}");
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((u, p)) = creds {
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            B64.encode(format!("{u}:{p}"))
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    s.flush().await?;
    // Read byte by byte: nothing past the head may be consumed (it belongs to TLS or HTTP).
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(Error::Proxy("CONNECT response head too long".into()));
        }
        head.push(s.read_u8().await.map_err(proxy_io)?);
    }
    let Ok(ws_http::Parsed::Complete(resp, _)) =
        ws_http::parse_response(&head, &ws_http::Limits::default())
    else {
        return Err(Error::Proxy("malformed CONNECT response".into()));
    };
    match resp.status() {
        c if (200..300).contains(&c) => Ok(()),
        c => Err(Error::Proxy(format!(
            "CONNECT answered {c} {}",
            resp.reason()
        ))),
    }
}

async fn socks4<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ip: Option<std::net::Ipv4Addr>,
    host: &str,
    port: u16,
    user: Option<&str>,
) -> Result<(), Error> {
    let mut req = vec![4, 1];
    req.extend_from_slice(&port.to_be_bytes());
    // SOCKS4a: 0.0.0.x with x != 0 asks the proxy to resolve the name after USERID.
    req.extend_from_slice(&ip.map_or([0, 0, 0, 1], |ip| ip.octets()));
    req.extend_from_slice(user.unwrap_or("").as_bytes());
    req.push(0);
    if ip.is_none() {
        req.extend_from_slice(host.as_bytes());
        req.push(0);
    }
    s.write_all(&req).await?;
    s.flush().await?;
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).await.map_err(proxy_io)?;
    match reply[1] {
        0x5a => Ok(()),
        0x5b => Err(Error::Proxy("SOCKS4: request rejected or failed".into())),
        0x5c | 0x5d => Err(Error::Proxy("SOCKS4: identd check failed".into())),
        c => Err(Error::Proxy(format!("SOCKS4: unknown reply {c:#x}"))),
    }
}

async fn socks5<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    host: &str,
    ip: Option<IpAddr>,
    port: u16,
    creds: Option<&(String, String)>,
) -> Result<(), Error> {
    if creds.is_some() {
        s.write_all(&[5, 2, 0, 2]).await?;
    } else {
        s.write_all(&[5, 1, 0]).await?;
    }
    s.flush().await?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.map_err(proxy_io)?;
    if choice[0] != 5 {
        return Err(Error::Proxy("SOCKS5: not a SOCKS5 proxy".into()));
    }
    match (choice[1], creds) {
        (0, _) => {}
        (2, Some((u, p))) => {
            if u.len() > 255 || p.len() > 255 {
                return Err(Error::Proxy(
                    "SOCKS5: user or password over 255 bytes".into(),
                ));
            }
            let mut auth = vec![1, u.len() as u8];
            auth.extend_from_slice(u.as_bytes());
            auth.push(p.len() as u8);
            auth.extend_from_slice(p.as_bytes());
            s.write_all(&auth).await?;
            s.flush().await?;
            let mut status = [0u8; 2];
            s.read_exact(&mut status).await.map_err(proxy_io)?;
            if status[1] != 0 {
                return Err(Error::Proxy("SOCKS5: user name or password refused".into()));
            }
        }
        (0xff, _) => {
            return Err(Error::Proxy(
                "SOCKS5: no acceptable authentication method".into(),
            ));
        }
        (m, _) => return Err(Error::Proxy(format!("SOCKS5: unexpected method {m:#x}"))),
    }
    let mut req = vec![5, 1, 0];
    match ip {
        Some(IpAddr::V4(ip)) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Some(IpAddr::V6(ip)) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
        None => {
            let n = host;
            if n.len() > 255 {
                return Err(Error::Proxy("SOCKS5: host name over 255 bytes".into()));
            }
            req.push(3);
            req.push(n.len() as u8);
            req.extend_from_slice(n.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await?;
    s.flush().await?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(proxy_io)?;
    if head[1] != 0 {
        let why = match head[1] {
            1 => "general failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        return Err(Error::Proxy(format!("SOCKS5: {why}")));
    }
    let skip = match head[3] {
        1 => 4,
        4 => 16,
        3 => usize::from(s.read_u8().await.map_err(proxy_io)?),
        t => return Err(Error::Proxy(format!("SOCKS5: bad address type {t}"))),
    };
    let mut rest = vec![0u8; skip + 2];
    s.read_exact(&mut rest).await.map_err(proxy_io)?;
    Ok(())
}
