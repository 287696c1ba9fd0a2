//! The byte pipes under the client: `mqtt://` (TCP; through ws-client's raw `tcp://` mode
//! when a proxy is configured), `mqtts://` (TLS), `ws://` and `wss://` (WebSocket through
//! ws-client, subprotocol `mqtt`, binary messages).

use std::{fmt, sync::Arc};

use bytes::{Bytes, BytesMut};
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::{config::Config, error::Error};

/// The kind of transport a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `mqtt://` or `tcp://` (default port 1883).
    Mqtt,
    /// `mqtts://`, `ssl://` or `tls://` (default port 8883).
    Mqtts,
    /// `ws://` (default port 80).
    Ws,
    /// `wss://` (default port 443).
    Wss,
}

/// A broker URL: `scheme://[user[:password]@]host[:port][/path]`.
///
/// ```
/// use proto_mqtt::{BrokerUrl, Scheme};
/// let u = BrokerUrl::parse("mqtts://alice:pw@broker.example:8884")?;
/// assert_eq!(u.scheme, Scheme::Mqtts);
/// assert_eq!((u.host.as_str(), u.port), ("broker.example", 8884));
/// assert_eq!(u.credentials, Some(("alice".into(), "pw".into())));
/// assert_eq!(BrokerUrl::parse("mqtt://[::1]")?.port, 1883);
/// # Ok::<(), proto_mqtt::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerUrl {
    /// Transport.
    pub scheme: Scheme,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name and password given in the URL.
    pub credentials: Option<(String, String)>,
    /// The URL as given (handed to ws-client for `ws://` and `wss://`).
    pub raw: String,
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerUrl")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl BrokerUrl {
    /// Parses a broker URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an unknown scheme, a missing host or a bad port.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidUrl(format!("{url:?}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => Scheme::Mqtt,
            "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            _ => return Err(bad("scheme must be mqtt, mqtts, ws or wss")),
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = userinfo.map(|u| match u.split_once(':') {
            Some((a, b)) => (a.to_owned(), b.to_owned()),
            None => (u.to_owned(), String::new()),
        });
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
            None => match scheme {
                Scheme::Mqtt => 1883,
                Scheme::Mqtts => 8883,
                Scheme::Ws => 80,
                Scheme::Wss => 443,
            },
        };
        // ws-client takes credentials from the URL as HTTP Basic; MQTT sends them in
        // CONNECT, so they are removed from what ws-client sees.
        let raw = match (scheme, userinfo) {
            (Scheme::Ws | Scheme::Wss, Some(u)) => url.replacen(&format!("{u}@"), "", 1),
            _ => url.to_owned(),
        };
        Ok(Self {
            scheme,
            host,
            port,
            credentials,
            raw,
        })
    }
}

/// An open transport.
pub(crate) enum Transport {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Ws(Box<ws_client::WebSocket>),
}

impl Transport {
    pub(crate) async fn connect(url: &BrokerUrl, config: &Config) -> Result<Self, Error> {
        match url.scheme {
            Scheme::Mqtt if config.transport.proxy.is_some() => {
                // Through ws-client's raw `tcp://` mode, which speaks HTTP CONNECT and SOCKS.
                let host = if url.host.contains(':') {
                    format!("[{}]", url.host)
                } else {
                    url.host.clone()
                };
                let target = format!("tcp://{host}:{}", url.port);
                let ws = ws_client::connect(target.as_str(), config.transport.clone()).await?;
                Ok(Self::Ws(Box::new(ws)))
            }
            Scheme::Mqtt => {
                let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
                tcp.set_nodelay(config.transport.nodelay)?;
                Ok(Self::Tcp(tcp))
            }
            Scheme::Mqtts => {
                let tls = match &config.transport.rustls {
                    Some(c) => Arc::clone(c),
                    None => ws_tls::client_config(&config.transport.tls)?,
                };
                let name = config
                    .transport
                    .tls_server_name
                    .clone()
                    .unwrap_or_else(|| url.host.clone());
                let name = ServerName::try_from(name)
                    .map_err(|e| Error::InvalidUrl(format!("TLS server name: {e}")))?;
                let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
                tcp.set_nodelay(config.transport.nodelay)?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await?;
                Ok(Self::Tls(Box::new(stream)))
            }
            Scheme::Ws | Scheme::Wss => {
                let mut c = config.transport.clone();
                if !c.protocols.iter().any(|p| p == "mqtt") {
                    c.protocols.insert(0, "mqtt".into());
                }
                let ws = ws_client::connect(url.raw.as_str(), c).await?;
                Ok(Self::Ws(Box::new(ws)))
            }
        }
    }

    /// Reads what is available into `buf` (cleared first); `Ok(false)` at the end of the
    /// stream. Cancel-safe.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> Result<bool, Error> {
        buf.clear();
        match self {
            Self::Tcp(s) => {
                buf.reserve(16 * 1024);
                Ok(s.read_buf(buf).await? > 0)
            }
            Self::Tls(s) => {
                buf.reserve(16 * 1024);
                Ok(s.read_buf(buf).await? > 0)
            }
            Self::Ws(ws) => match ws.recv().await {
                None => Ok(false),
                Some(Err(e)) => Err(e.into()),
                Some(Ok(m)) => {
                    if m.as_text().is_some() {
                        return Err(Error::Malformed(
                            "a text WebSocket message (MQTT needs binary)".into(),
                        ));
                    }
                    buf.extend_from_slice(m.as_bytes());
                    Ok(true)
                }
            },
        }
    }

    /// Writes `data` whole (one binary message on WebSocket).
    pub(crate) async fn write(&mut self, data: Bytes) -> Result<(), Error> {
        match self {
            Self::Tcp(s) => s.write_all(&data).await?,
            Self::Tls(s) => {
                s.write_all(&data).await?;
                s.flush().await?;
            }
            Self::Ws(ws) => ws.send_binary(data).await?,
        }
        Ok(())
    }

    /// Closes gracefully (TCP FIN, TLS close_notify, WebSocket close handshake).
    pub(crate) async fn close(self) {
        match self {
            Self::Tcp(mut s) => {
                let _ = s.shutdown().await;
            }
            Self::Tls(mut s) => {
                let _ = s.shutdown().await;
            }
            Self::Ws(ws) => {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    ws.close(ws_client::CloseCode::NORMAL, ""),
                )
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = BrokerUrl::parse("ws://u:p@127.0.0.1:9001/mqtt").unwrap();
        assert_eq!(u.scheme, Scheme::Ws);
        assert_eq!(u.port, 9001);
        assert_eq!(u.raw, "ws://127.0.0.1:9001/mqtt");
        assert_eq!(u.credentials, Some(("u".into(), "p".into())));
        assert_eq!(BrokerUrl::parse("wss://h").unwrap().port, 443);
        assert_eq!(BrokerUrl::parse("ssl://h").unwrap().scheme, Scheme::Mqtts);
        assert_eq!(BrokerUrl::parse("mqtt://[::1]:1").unwrap().host, "::1");
        assert!(BrokerUrl::parse("http://h").is_err());
        assert!(BrokerUrl::parse("mqtt://").is_err());
        assert!(BrokerUrl::parse("mqtt://h:99999").is_err());
        assert!(BrokerUrl::parse("h:1883").is_err());
    }
}
