//! A small HTTP/1.1 GET over TCP or TLS (tokio-rustls, the workspace's ring provider), with
//! ws-http parsing the response: enough to fetch a JWKS, bounded in size and time.

use std::{sync::Arc, time::Duration};

use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use ws_http::{BodyDecoder, BodyEvent, Limits, Parsed, WsUrl};

/// Fetches `url` with GET and returns the body of a 200 answer, at most `max_bytes` long.
///
/// # Errors
/// A sentence saying what failed (connect, TLS, status, size, timeout).
pub(crate) async fn get(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    allow_loopback_http: bool,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let parsed = WsUrl::parse(url).map_err(|e| format!("bad URL: {e}"))?;
    if !url.to_ascii_lowercase().starts_with("https://") {
        let loopback = parsed
            .host()
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
            || parsed.host() == "localhost";
        if !(allow_loopback_http && loopback && url.to_ascii_lowercase().starts_with("http://")) {
            return Err("only https:// URLs are fetched".into());
        }
    }
    tokio::time::timeout(timeout, fetch(&parsed, tls, max_bytes))
        .await
        .map_err(|_| format!("no complete answer within {timeout:?}"))?
}

async fn fetch(
    url: &WsUrl,
    tls: &Arc<rustls::ClientConfig>,
    max: usize,
) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect((url.host(), url.port()))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if url.is_secure() {
        let name = rustls_pki_types::ServerName::try_from(url.host().to_owned())
            .map_err(|e| format!("server name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(stream, url, max).await
    } else {
        exchange(tcp, url, max).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    url: &WsUrl,
    max: usize,
) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    let host = url.host_header();
    ws_http::write_request_head(
        &mut out,
        "GET",
        url.target(),
        &[
            ("Host", host.as_str()),
            ("Accept", "application/jwk-set+json, application/json"),
            ("User-Agent", "wskit-auth"),
            ("Connection", "close"),
        ],
    )
    .map_err(|e| e.to_string())?;
    io.write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let limits = Limits::default();
    let mut rx = BytesMut::with_capacity(8 * 1024);
    let head = loop {
        if io
            .read_buf(&mut rx)
            .await
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("connection closed before the response head".into());
        }
        match ws_http::parse_response(&rx, &limits).map_err(|e| format!("bad response: {e}"))? {
            Parsed::Complete(head, len) => {
                let _ = rx.split_to(len);
                break head;
            }
            Parsed::Partial => {}
        }
    };
    if head.status() != 200 {
        return Err(format!("answered {} {}", head.status(), head.reason()));
    }
    let kind = head.body_kind("GET").map_err(|e| e.to_string())?;
    let mut body_limits = Limits::default();
    body_limits.max_body = max as u64;
    let mut decoder = BodyDecoder::new(kind, &body_limits).map_err(|e| format!("body: {e}"))?;
    let mut body = Vec::new();
    loop {
        match decoder.decode(&mut rx).map_err(|e| format!("body: {e}"))? {
            Some(BodyEvent::Data(d)) => {
                if body.len() + d.len() > max {
                    return Err(format!("document larger than {max} bytes"));
                }
                body.extend_from_slice(&d);
            }
            Some(_) => return Ok(body),
            None => {
                if io
                    .read_buf(&mut rx)
                    .await
                    .map_err(|e| format!("read: {e}"))?
                    == 0
                {
                    decoder.finish().map_err(|e| format!("body: {e}"))?;
                    return Ok(body);
                }
            }
        }
    }
}
