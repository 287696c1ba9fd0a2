//! A small HTTP/1.1 client over TCP or TLS (tokio-rustls, the workspace's ring provider), with
//! ws-http writing the request and parsing the response: enough to fetch a JWKS and to talk to
//! a token endpoint, bounded in size and time.

use std::{sync::Arc, time::Duration};

use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use ws_http::{BodyDecoder, BodyEvent, Limits, Parsed, WsUrl};

/// What [`request`] returns: status, reason, header fields, body.
pub(crate) type Answer = (u16, String, Vec<(String, String)>, Vec<u8>);

fn loopback_http(url: &str, parsed: &WsUrl) -> bool {
    let loopback = parsed
        .host()
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
        || parsed.host() == "localhost";
    loopback && url.to_ascii_lowercase().starts_with("http://")
}

/// Checks that `url` is `https://`, or a loopback `http://` URL when `allow_loopback_http`.
pub(crate) fn parse_url(url: &str, allow_loopback_http: bool) -> Result<WsUrl, String> {
    let parsed = WsUrl::parse(url).map_err(|e| format!("bad URL: {e}"))?;
    let https = url.to_ascii_lowercase().starts_with("https://");
    if !(https || (allow_loopback_http && loopback_http(url, &parsed))) {
        return Err("only https:// URLs are fetched".into());
    }
    Ok(parsed)
}

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
    let parsed = parse_url(url, allow_loopback_http)?;
    let accept = [("Accept", "application/jwk-set+json, application/json")];
    let (status, reason, _, body) =
        request(&parsed, "GET", &accept, b"", tls, max_bytes, timeout).await?;
    if status != 200 {
        return Err(format!("answered {status} {reason}"));
    }
    Ok(body)
}

/// One HTTP/1.1 exchange (`Connection: close`) with any method, extra header fields and body.
///
/// # Errors
/// A sentence saying what failed.
pub(crate) async fn request(
    url: &WsUrl,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    tls: &Arc<rustls::ClientConfig>,
    max: usize,
    timeout: Duration,
) -> Result<Answer, String> {
    tokio::time::timeout(timeout, connect(url, method, headers, body, tls, max))
        .await
        .map_err(|_| format!("no complete answer within {timeout:?}"))?
}

async fn connect(
    url: &WsUrl,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    tls: &Arc<rustls::ClientConfig>,
    max: usize,
) -> Result<Answer, String> {
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
        exchange(stream, url, method, headers, body, max).await
    } else {
        exchange(tcp, url, method, headers, body, max).await
    }
}

async fn read_more<S: AsyncRead + Unpin>(io: &mut S, rx: &mut BytesMut) -> Result<usize, String> {
    io.read_buf(rx).await.map_err(|e| format!("read: {e}"))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    url: &WsUrl,
    method: &str,
    headers: &[(&str, &str)],
    request_body: &[u8],
    max: usize,
) -> Result<Answer, String> {
    let mut out = BytesMut::new();
    let host = url.host_header();
    let length = request_body.len().to_string();
    let mut fields: Vec<(&str, &str)> = vec![
        ("Host", host.as_str()),
        ("User-Agent", "wskit-auth"),
        ("Connection", "close"),
    ];
    fields.extend_from_slice(headers);
    if method != "GET" && method != "HEAD" {
        fields.push(("Content-Length", length.as_str()));
    }
    ws_http::write_request_head(&mut out, method, url.target(), &fields)
        .map_err(|e| e.to_string())?;
    out.extend_from_slice(request_body);
    io.write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let limits = Limits::default();
    let mut rx = BytesMut::with_capacity(8 * 1024);
    let head = loop {
        if read_more(&mut io, &mut rx).await? == 0 {
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
    let status = head.status();
    let reason = head.reason().to_owned();
    let response_headers: Vec<(String, String)> = head
        .headers()
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let kind = head.body_kind(method).map_err(|e| e.to_string())?;
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
            Some(_) => return Ok((status, reason, response_headers, body)),
            None => {
                if read_more(&mut io, &mut rx).await? == 0 {
                    decoder.finish().map_err(|e| format!("body: {e}"))?;
                    return Ok((status, reason, response_headers, body));
                }
            }
        }
    }
}
