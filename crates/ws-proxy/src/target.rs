//! Where a bridged connection goes: [`Target`], a leaf type that the balancer and the
//! configuration both use.

use std::fmt;

use crate::error::Error;

/// Where a bridged connection goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// Plain TCP (`tcp://host:port`, or just `host:port` as in websockify token files).
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// TCP with TLS to the backend (`tls://host:port`), verified with
    /// [`crate::ProxyConfig::backend_tls`].
    Tls {
        /// Host name or IP address (IPv6 without brackets); also the SNI name unless
        /// [`crate::ProxyConfig::backend_tls_server_name`] is set.
        host: String,
        /// Port.
        port: u16,
    },
    /// A WebSocket server (`ws://` or `wss://` URL): relayed message by message through
    /// `ws-client` with [`crate::ProxyConfig::upstream_ws`].
    WebSocket(ws_client::WsUrl),
}

impl Target {
    /// Parses `tcp://host:port`, `tls://host:port`, `ws://...`, `wss://...` or a bare
    /// `host:port` (TCP). IPv6 hosts are written in brackets: `tcp://[::1]:5900`.
    ///
    /// # Errors
    /// [`Error::InvalidTarget`] for anything else (unknown scheme, missing or zero port, a
    /// path after `host:port` of a TCP target), [`Error::InvalidTargetUrl`] for a `ws://` or
    /// `wss://` URL that does not parse.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        let bad = |reason| Error::InvalidTarget {
            input: input.to_owned(),
            reason,
        };
        let lower = input.to_ascii_lowercase();
        if lower.starts_with("ws://") || lower.starts_with("wss://") {
            let url =
                ws_client::IntoUrl::into_url(input).map_err(|source| Error::InvalidTargetUrl {
                    input: input.to_owned(),
                    source,
                })?;
            return Ok(Self::WebSocket(url));
        }
        let (tls, rest) = if let Some(rest) = strip_prefix_ci(input, "tcp://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ci(input, "tls://") {
            (true, rest)
        } else if input.contains("://") {
            return Err(bad("expected tcp://, tls://, ws:// or wss://"));
        } else {
            (false, input)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = after.strip_prefix(':').ok_or_else(|| bad("missing port"))?;
            (host, port)
        } else {
            rest.rsplit_once(':').ok_or_else(|| bad("missing port"))?
        };
        if host.is_empty() || host.contains(['/', '?', '#', ' ', '@']) {
            return Err(bad("invalid host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        let host = host.to_owned();
        Ok(if tls {
            Self::Tls { host, port }
        } else {
            Self::Tcp { host, port }
        })
    }

    /// Whether this is a `ws://` or `wss://` target.
    #[must_use]
    pub fn is_websocket(&self) -> bool {
        matches!(self, Self::WebSocket(_))
    }

    /// Host, port and whether the connection uses TLS (`tls://`, `wss://`).
    #[must_use]
    pub fn address(&self) -> (String, u16, bool) {
        match self {
            Self::Tcp { host, port } => (host.clone(), *port, false),
            Self::Tls { host, port } => (host.clone(), *port, true),
            Self::WebSocket(url) => (url.host().to_owned(), url.port(), url.is_secure()),
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &s[prefix.len()..])
}

fn host_port(f: &mut fmt::Formatter<'_>, host: &str, port: u16) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]:{port}")
    } else {
        write!(f, "{host}:{port}")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } => {
                f.write_str("tcp://")?;
                host_port(f, host, *port)
            }
            Self::Tls { host, port } => {
                f.write_str("tls://")?;
                host_port(f, host, *port)
            }
            Self::WebSocket(url) => write!(f, "{url}"),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
