//! The proxy's configuration: upstream targets, routing, buffers, timeouts, PROXY protocol.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use ws_server::{Request, ServerConfig, SlowReaderPolicy};

use crate::{balance::BalancerConfig, error::Error, target::Target, upstream::HttpUpstream};

/// Version of the PROXY protocol header sent to TCP and TLS backends before any data
/// (HAProxy's specification), so the backend sees the browser's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyProtocol {
    /// The text form: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary form (12-byte signature, `PROXY` command, TCP over IPv4 or IPv6).
    V2,
}

impl ProxyProtocol {
    /// Parses `v1`, `1`, `v2` or `2`.
    ///
    /// # Errors
    /// [`Error::InvalidProxyProtocol`] for anything else.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(Self::V1),
            "v2" | "2" => Ok(Self::V2),
            _ => Err(Error::InvalidProxyProtocol {
                input: s.to_owned(),
            }),
        }
    }
}

/// A routing callback: picks the target of an upgrade request, `None` refuses it with 404.
pub type Resolver = Arc<dyn Fn(&Request) -> Option<Target> + Send + Sync>;

/// Everything the proxy needs. Build it with [`ProxyConfig::default`] (or
/// [`ProxyConfig::to`]) and adjust the fields; [`crate::ProxyServer::start`] validates it.
///
/// Routing, first match wins: [`ProxyConfig::resolver`] (when set, it alone decides); else
/// [`ProxyConfig::token_file`] (when set, the request needs a known
/// [`ProxyConfig::token_param`]); else [`ProxyConfig::paths`] (exact path); else
/// [`ProxyConfig::target`]. A request nothing routes gets 404 before the upgrade.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The WebSocket side: bindings, TLS termination, authentication, allowed origins, max
    /// connections, heartbeat, throttle, limits. [`ServerConfig::slow_reader`] is always
    /// [`SlowReaderPolicy::Backpressure`] (a slow browser slows its backend instead of being
    /// dropped). Default: `ServerConfig::default()` (127.0.0.1:8080) with
    /// [`ServerConfig::send_queue`] = [`ProxyConfig::DEFAULT_SEND_QUEUE`] (16 messages) and
    /// backpressure.
    pub server: ServerConfig,
    /// The fixed target (the seeds' `Proxy.Host` / `Proxy.Port`). Default: `None`.
    pub target: Option<Target>,
    /// Targets by exact request path (`/vnc1` -> `tcp://10.0.0.5:5901`). Default: empty.
    pub paths: Vec<(String, Target)>,
    /// A websockify token file: one `token: host:port` (or `token: tls://host:port`, ...) per
    /// line, `#` comments and blank lines ignored. It is read again when its modification
    /// time or size changes (checked on each lookup). Default: `None`.
    pub token_file: Option<PathBuf>,
    /// Query parameter carrying the token (`/?token=X`). Default: `token`.
    pub token_param: String,
    /// Routing callback; when set it alone decides. Default: `None`.
    pub resolver: Option<Resolver>,
    /// Time allowed to connect to a backend (DNS, TCP, PROXY header, TLS, WebSocket
    /// handshake). Default: [`ProxyConfig::DEFAULT_CONNECT_TIMEOUT`] (10 s).
    pub connect_timeout: Duration,
    /// Connect to a TCP/TLS backend before answering the upgrade, so a backend that cannot be
    /// reached gets HTTP 502 instead of a 101 followed by Close 1011. WebSocket backends are
    /// always connected first (their subprotocol choice is passed on). Default: false.
    pub connect_before_upgrade: bool,
    /// Largest read from a TCP backend, hence the largest message sent to the browser.
    /// Default: [`ProxyConfig::DEFAULT_READ_CHUNK`] (64 KiB).
    pub read_chunk: usize,
    /// Bytes of browser messages waiting for the backend above which the proxy stops reading
    /// the browser (it reads again once half of it has been written to the backend).
    /// Default: [`ProxyConfig::DEFAULT_UP_BUFFER`] (256 KiB).
    pub up_buffer: usize,
    /// After the WebSocket closed: how long the backend may take to read what is left and
    /// close its side (the proxy has sent FIN) before the TCP connection is dropped.
    /// Default: [`ProxyConfig::DEFAULT_DRAIN_TIMEOUT`] (5 s).
    pub drain_timeout: Duration,
    /// Send a PROXY protocol header to TCP and TLS backends (WebSocket backends get
    /// `X-Forwarded-For` and `Forwarded` headers instead). Default: `None`.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// TLS settings for `tls://` backends (trust roots or a CA file, client certificate,
    /// ALPN, SNI). Default: `ws_tls::ClientTlsConfig::default()` (Mozilla roots, SNI on).
    pub backend_tls: ws_tls::ClientTlsConfig,
    /// Name to verify the backend certificate against and send in SNI, instead of the
    /// target's host (`tls://` backends). Default: `None`.
    pub backend_tls_server_name: Option<String>,
    /// Client settings for `ws://` and `wss://` backends (TLS, limits, extra headers,
    /// deflate). Its `protocols` are replaced by what the browser offered. Default:
    /// `ws_client::ClientConfig::default()`.
    pub upstream_ws: ws_client::ClientConfig,
    /// Add `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded` to the upgrade request sent
    /// to WebSocket backends. Default: true.
    pub forwarded_headers: bool,
    /// Set `TCP_NODELAY` on backend connections. Default: true.
    pub nodelay: bool,
    /// Where plain HTTP requests (not WebSocket upgrades) on the listeners go: forwarded to
    /// this upstream as a reverse proxy would (see the crate docs, "HTTP forwarding"). With
    /// `None` they get 404. Default: `None`.
    pub http_upstream: Option<HttpUpstream>,
    /// Spread connections over several backends (see [`crate::balance`]): WebSocket
    /// upgrades that the resolver, the token file and [`ProxyConfig::paths`] do not route,
    /// and plain HTTP requests (to `ws://` / `wss://` backends over `http://` / `https://`;
    /// before [`ProxyConfig::http_upstream`]). Default: `None`.
    pub balance: Option<BalancerConfig>,
}

impl ProxyConfig {
    /// Default of [`ProxyConfig::connect_timeout`].
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`ProxyConfig::read_chunk`].
    pub const DEFAULT_READ_CHUNK: usize = 64 * 1024;
    /// Default of [`ProxyConfig::up_buffer`].
    pub const DEFAULT_UP_BUFFER: usize = 256 * 1024;
    /// Default of [`ProxyConfig::drain_timeout`].
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default [`ServerConfig::send_queue`] of the proxy's server (messages from the backend
    /// queued for one browser).
    pub const DEFAULT_SEND_QUEUE: usize = 16;
    /// Largest accepted [`ProxyConfig::read_chunk`].
    pub const MAX_READ_CHUNK: usize = 16 << 20;

    /// The default configuration with a fixed target.
    #[must_use]
    pub fn to(target: Target) -> Self {
        Self {
            target: Some(target),
            ..Self::default()
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] or [`Error::ConfigValue`] naming the first problem: nothing to route
    /// to, an empty token parameter, a path not starting with `/`, an invalid
    /// [`ProxyConfig::http_upstream`], zero timeouts or buffers, a read chunk above
    /// [`ProxyConfig::MAX_READ_CHUNK`]; [`Error::Server`] for an invalid server
    /// configuration; [`Error::Client`] for invalid upstream client settings.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, rule| Err(Error::Config { field, rule });
        self.server.validate()?;
        self.upstream_ws.validate()?;
        if self.target.is_none()
            && self.paths.is_empty()
            && self.token_file.is_none()
            && self.resolver.is_none()
            && self.http_upstream.is_none()
            && self.balance.is_none()
        {
            return bad(
                "upstream",
                "is missing: set a target, paths, a token file, a resolver, an HTTP upstream or balanced backends",
            );
        }
        if let Some(b) = &self.balance {
            b.validate()?;
        }
        if let Some(up) = &self.http_upstream {
            up.validate()?;
        }
        if self.token_param.is_empty() {
            return bad("token_param", "must not be empty");
        }
        for (path, _) in &self.paths {
            if !path.starts_with('/') {
                return Err(Error::ConfigValue {
                    field: "path",
                    value: path.clone(),
                    rule: "must start with '/'",
                });
            }
        }
        if self.connect_timeout.is_zero() || self.drain_timeout.is_zero() {
            return bad("connect_timeout and drain_timeout", "must not be zero");
        }
        if self.read_chunk == 0 || self.read_chunk > Self::MAX_READ_CHUNK {
            return bad("read_chunk", "must be between 1 byte and 16 MiB");
        }
        if self.up_buffer == 0 {
            return bad("up_buffer", "must be at least 1");
        }
        Ok(())
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        let mut server = ServerConfig::default();
        server.send_queue = Self::DEFAULT_SEND_QUEUE;
        server.slow_reader = SlowReaderPolicy::Backpressure;
        Self {
            server,
            target: None,
            paths: Vec::new(),
            token_file: None,
            token_param: "token".to_owned(),
            resolver: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            connect_before_upgrade: false,
            read_chunk: Self::DEFAULT_READ_CHUNK,
            up_buffer: Self::DEFAULT_UP_BUFFER,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
            proxy_protocol: None,
            backend_tls: ws_tls::ClientTlsConfig::default(),
            backend_tls_server_name: None,
            upstream_ws: ws_client::ClientConfig::default(),
            forwarded_headers: true,
            nodelay: true,
            http_upstream: None,
            balance: None,
        }
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("server", &self.server)
            .field("target", &self.target)
            .field("paths", &self.paths)
            .field("token_file", &self.token_file)
            .field("token_param", &self.token_param)
            .field("resolver", &self.resolver.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("connect_before_upgrade", &self.connect_before_upgrade)
            .field("read_chunk", &self.read_chunk)
            .field("up_buffer", &self.up_buffer)
            .field("drain_timeout", &self.drain_timeout)
            .field("proxy_protocol", &self.proxy_protocol)
            .field("backend_tls", &self.backend_tls)
            .field("backend_tls_server_name", &self.backend_tls_server_name)
            .field("forwarded_headers", &self.forwarded_headers)
            .field("nodelay", &self.nodelay)
            .field("http_upstream", &self.http_upstream)
            .field("balance", &self.balance)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print() {
        let t = Target::parse("tcp://127.0.0.1:5900").unwrap();
        assert_eq!(
            t,
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 5900
            }
        );
        assert_eq!(t.to_string(), "tcp://127.0.0.1:5900");
        assert_eq!(
            Target::parse("localhost:23").unwrap().to_string(),
            "tcp://localhost:23"
        );
        let t = Target::parse("TLS://[::1]:993").unwrap();
        assert_eq!(
            t,
            Target::Tls {
                host: "::1".into(),
                port: 993
            }
        );
        assert_eq!(t.to_string(), "tls://[::1]:993");
        assert!(
            Target::parse("ws://127.0.0.1:9000/echo")
                .unwrap()
                .is_websocket()
        );
        assert!(Target::parse("wss://example.com/x").unwrap().is_websocket());
        for bad in [
            "http://x:1",
            "tcp://x",
            "tcp://x:0",
            "tcp://x:70000",
            "tcp://:80",
            "tcp://x:80/path",
            "[::1:80",
            "",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_protocol_versions_parse() {
        assert_eq!(ProxyProtocol::parse("v1").unwrap(), ProxyProtocol::V1);
        assert_eq!(ProxyProtocol::parse("2").unwrap(), ProxyProtocol::V2);
        assert!(ProxyProtocol::parse("v3").is_err());
    }

    #[test]
    fn validation() {
        assert!(ProxyConfig::default().validate().is_err(), "no upstream");
        let mut http_only = ProxyConfig {
            http_upstream: Some(HttpUpstream::parse("http://127.0.0.1:8000").unwrap()),
            ..ProxyConfig::default()
        };
        http_only.validate().unwrap();
        http_only.http_upstream.as_mut().unwrap().port = 0;
        assert!(http_only.validate().is_err(), "invalid HTTP upstream");
        let ok = ProxyConfig::to(Target::parse("127.0.0.1:1").unwrap());
        ok.validate().unwrap();
        assert_eq!(ok.server.slow_reader, SlowReaderPolicy::Backpressure);
        assert_eq!(ok.server.send_queue, ProxyConfig::DEFAULT_SEND_QUEUE);
        let mut c = ok.clone();
        c.read_chunk = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.up_buffer = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.drain_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.paths.push(("vnc".into(), Target::parse("x:1").unwrap()));
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.token_param.clear();
        assert!(c.validate().is_err());
        let mut c = ok;
        c.server.bindings.clear();
        assert!(matches!(c.validate(), Err(Error::Server(_))));
    }
}
