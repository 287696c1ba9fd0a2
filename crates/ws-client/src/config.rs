//! [`ClientConfig`] and its parts.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use ws_frame::deflate::DeflateConfig;

use ws_http::WsUrl as Url;

use crate::{error::Error, handshake::HandshakeRequest};

/// A boxed future, as returned by callbacks.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Edits the upgrade request just before it is sent (the seeds' `OnHandshake`).
pub type RequestHook = Arc<dyn Fn(&mut HandshakeRequest) + Send + Sync>;

/// Supplies a bearer token before each connection attempt. `refresh` is true when the previous
/// token was answered with 401: return a fresh one (the client retries once).
pub trait TokenSource: Send + Sync + 'static {
    /// The token to send.
    fn token(&self, refresh: bool) -> BoxFuture<'_, Result<String, String>>;
}

impl<F, Fut> TokenSource for F
where
    F: Fn(bool) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    fn token(&self, refresh: bool) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self(refresh))
    }
}

/// Credentials for the upgrade request.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Basic base64(user:password)` (RFC 7617).
    Basic {
        /// User name (no `:`).
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer(String),
    /// `Authorization: Bearer <token>` with the token from a callback, asked before every
    /// attempt (reconnects included) and once more with `refresh = true` after a 401.
    BearerFn(Arc<dyn TokenSource>),
    /// The token in a query parameter (`/ws?access_token=...`), for servers and browsers that
    /// cannot use headers.
    QueryToken {
        /// Parameter name.
        param: String,
        /// The token (percent-encoded when sent).
        token: String,
    },
}

impl Auth {
    /// Basic credentials.
    #[must_use]
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// A static bearer token.
    #[must_use]
    pub fn bearer(token: impl Into<String>) -> Self {
        Self::Bearer(token.into())
    }

    /// A bearer token from `source`.
    #[must_use]
    pub fn bearer_fn(source: impl TokenSource) -> Self {
        Self::BearerFn(Arc::new(source))
    }

    /// A token in the query parameter `param`.
    #[must_use]
    pub fn query_token(param: impl Into<String>, token: impl Into<String>) -> Self {
        Self::QueryToken {
            param: param.into(),
            token: token.into(),
        }
    }
}

impl fmt::Debug for Auth {
    /// Secrets are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            Self::Bearer(_) => f.write_str("Bearer(..)"),
            Self::BearerFn(_) => f.write_str("BearerFn(..)"),
            Self::QueryToken { param, .. } => f
                .debug_struct("QueryToken")
                .field("param", param)
                .finish_non_exhaustive(),
        }
    }
}

/// The kind of a [`Proxy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// HTTP `CONNECT` tunnel (RFC 9110 section 9.3.6), with Basic credentials if given.
    Http,
    /// SOCKS4: the client resolves the host (IPv4 only), the user name goes in USERID.
    Socks4,
    /// SOCKS4a: the proxy resolves the host name.
    Socks4a,
    /// SOCKS5 (RFC 1928), user/password authentication (RFC 1929) if given; the proxy resolves
    /// host names.
    Socks5,
}

/// A proxy to reach the server through.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Proxy {
    /// Protocol spoken to the proxy.
    pub kind: ProxyKind,
    /// Proxy host name or IP address.
    pub host: String,
    /// Proxy port.
    pub port: u16,
    /// `(user, password)`; `None` for anonymous access.
    pub credentials: Option<(String, String)>,
}

impl Proxy {
    /// A proxy of `kind` at `host:port`, without credentials.
    #[must_use]
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Self {
        Self {
            kind,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// The same proxy with credentials.
    #[must_use]
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// Ping / pong keep-alive (the seeds' `HeartBeat`): ws-frame's [`ws_frame::Heartbeat`], a
/// timer of the connection. When nothing arrives within its timeout of a ping, the transport
/// is dropped and the reader gets [`Error::PeerDead`].
pub use ws_frame::Heartbeat;

/// What [`ClientConfig::before_heartbeat`] decides when a keep-alive ping is due (the seeds'
/// `OnBeforeHeartBeat`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeartbeatAction {
    /// Send the ping as configured.
    Ping,
    /// Send nothing this interval (the interval counts as kept alive).
    Skip,
    /// Send this message instead of the ping (an application-level keep-alive).
    Send(ws_frame::Message),
}

/// Called before every connection attempt, reconnects included, with the URL and a copy of
/// the configuration to change for this attempt (the seeds' `OnBeforeConnect`); the copy is
/// validated again afterwards.
pub type BeforeConnect = Arc<dyn Fn(&mut Url, &mut ClientConfig) + Send + Sync>;

/// Called each time a heartbeat ping is due ([`ClientConfig::before_heartbeat`]).
pub type HeartbeatHook = Arc<dyn Fn() -> HeartbeatAction + Send + Sync>;

pub use ws_io::Priority;

/// The level of each kind of send ([`ClientConfig::priorities`]); a send may also name its
/// own ([`crate::WsWriter::send_with_priority`]). Default: all [`Priority::Normal`] (one
/// queue in order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendPriorities {
    /// Text messages.
    pub text: Priority,
    /// Binary messages.
    pub binary: Priority,
    /// Pings sent with [`crate::WsWriter::ping`].
    pub ping: Priority,
}

/// Checks the server's certificate chain after rustls verified it (the seeds'
/// `OnSSLVerifyPeer`): gets the server name and the chain (end entity first, DER) and returns
/// whether to go on. With [`ws_tls::ClientTlsConfig::danger_accept_invalid_certs`] it is
/// the only check. The chain length is the seeds' `VerifyDepth`.
pub type VerifyPeer =
    Arc<dyn Fn(&str, &[rustls_pki_types::CertificateDer<'_>]) -> bool + Send + Sync>;

/// The seeds' own authentication paths (`/sgc/...`), off by default. Both put credentials in
/// the request URL, which proxies and servers write to their logs: weaker than
/// [`Auth::Basic`] or a bearer header; use them only for servers that need them.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SgcAuth {
    /// Session mode: `GET /sgc/req/auth/session/USER/PASS` returns a token in its body, then
    /// the WebSocket connects to `/sgc/auth/session/TOKEN`.
    Session {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// URL mode: the WebSocket connects to `/sgc/auth/url/USER/PASS`.
    Url {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

impl fmt::Debug for SgcAuth {
    /// The password is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, user) = match self {
            Self::Session { user, .. } => ("Session", user),
            Self::Url { user, .. } => ("Url", user),
        };
        f.debug_struct(kind)
            .field("user", user)
            .finish_non_exhaustive()
    }
}

/// What a [`ReconnectHook`] decides before an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectDecision {
    /// Try the current URL.
    Proceed,
    /// Try this URL instead (fail over); later attempts keep it.
    ChangeUrl(Url),
    /// Stop reconnecting (the seeds' `OnBeforeWatchDog` with `Handled = true`).
    Cancel,
}

/// Called before each reconnect attempt with the attempt number (1 for the first retry), the
/// current URL and the error that ended the last connection or attempt (`None` after a clean
/// close by the server).
pub type ReconnectHook = Arc<dyn Fn(u32, &Url, Option<&Error>) -> ReconnectDecision + Send + Sync>;

/// The reconnect watchdog (the seeds' `WatchDog`), used by [`crate::ReconnectingWebSocket`].
/// The delay before attempt *n* is `min(interval * multiplier^(n-1), max_interval)`, then
/// multiplied by a random factor in `1 - jitter ..= 1 + jitter`.
#[derive(Clone)]
#[non_exhaustive]
pub struct Reconnect {
    /// Delay before the first attempt. Default: [`Reconnect::DEFAULT_INTERVAL`] (1 s).
    pub interval: Duration,
    /// Growth factor of the delay per attempt (1.0: constant). Default:
    /// [`Reconnect::DEFAULT_MULTIPLIER`] (2.0).
    pub multiplier: f64,
    /// Largest delay. Default: [`Reconnect::DEFAULT_MAX_INTERVAL`] (60 s).
    pub max_interval: Duration,
    /// Random spread of each delay, 0.0 ..= 1.0. Default: [`Reconnect::DEFAULT_JITTER`] (0.2).
    pub jitter: f64,
    /// Most consecutive failed attempts before giving up; 0 retries forever. Default:
    /// [`Reconnect::DEFAULT_MAX_ATTEMPTS`] (0).
    pub max_attempts: u32,
    /// Also retry when the very first connection fails. Default: false (the first
    /// [`crate::ReconnectingWebSocket::connect`] returns that error).
    pub retry_initial: bool,
    /// Called before every attempt. Default: `None`.
    pub hook: Option<ReconnectHook>,
    /// More servers of the same service (the seeds' client `LoadBalancer`): each reconnect
    /// attempt moves on to the next URL, round robin over the URL given to `connect` and
    /// these. Default: empty (always the same URL).
    pub urls: Vec<Url>,
}

impl Reconnect {
    /// Default of [`Reconnect::interval`].
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// Default of [`Reconnect::multiplier`].
    pub const DEFAULT_MULTIPLIER: f64 = 2.0;
    /// Default of [`Reconnect::max_interval`].
    pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(60);
    /// Default of [`Reconnect::jitter`].
    pub const DEFAULT_JITTER: f64 = 0.2;
    /// Default of [`Reconnect::max_attempts`].
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 0;

    /// The delay before attempt `attempt` (1-based), before jitter.
    #[must_use]
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.interval.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let max = self.max_interval.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
    }

    /// The delay before attempt `attempt`, jittered with `random` in `0.0..1.0`.
    #[must_use]
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let j = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - j + 2.0 * j * random.clamp(0.0, 1.0);
        Duration::from_secs_f64((base * factor).max(0.0))
    }
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            interval: Self::DEFAULT_INTERVAL,
            multiplier: Self::DEFAULT_MULTIPLIER,
            max_interval: Self::DEFAULT_MAX_INTERVAL,
            jitter: Self::DEFAULT_JITTER,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            retry_initial: false,
            hook: None,
            urls: Vec::new(),
        }
    }
}

impl fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field("interval", &self.interval)
            .field("multiplier", &self.multiplier)
            .field("max_interval", &self.max_interval)
            .field("jitter", &self.jitter)
            .field("max_attempts", &self.max_attempts)
            .field("retry_initial", &self.retry_initial)
            .field("hook", &self.hook.is_some())
            .field("urls", &self.urls)
            .finish()
    }
}

/// Everything a connection can be configured with. Start from `ClientConfig::default()` and
/// change the fields you need; [`crate::connect`] calls [`ClientConfig::validate`].
///
/// ```
/// use std::time::Duration;
/// use ws_client::{Auth, ClientConfig, Heartbeat};
///
/// let mut config = ClientConfig::default();
/// config.connect_timeout = Duration::from_secs(5);
/// config.protocols = vec!["chat".into()];
/// config.auth = Some(Auth::bearer("t0ken"));
/// config.heartbeat = Some(Heartbeat::new(Duration::from_secs(20), Some(Duration::from_secs(5))));
/// config.deflate = Some(Default::default());
/// config.validate()?;
/// # Ok::<(), ws_client::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// WebSocket limits and behaviour (max frame and message, UTF-8 validation, fragment
    /// mode, close-handshake timeout, default fragment size). Its `deflate` field is ignored:
    /// negotiation fills it in. Default: `ws_frame::Config::default()` (16 MiB frames, 64 MiB
    /// messages, 5 s close timeout).
    pub ws: ws_frame::Config,
    /// Time allowed for everything up to a usable connection: DNS, TCP, proxy, TLS, the
    /// upgrade and each redirect. Default: [`ClientConfig::DEFAULT_CONNECT_TIMEOUT`] (10 s).
    pub connect_timeout: Duration,
    /// TLS settings for `wss://`: trust roots (Mozilla's by default, or a CA file), client
    /// certificate, ALPN, SNI, and the explicitly named `danger_accept_invalid_certs`.
    /// Default: `ws_tls::ClientTlsConfig::default()` (webpki roots, SNI on, no ALPN).
    pub tls: ws_tls::ClientTlsConfig,
    /// A ready rustls configuration that replaces [`ClientConfig::tls`]. Default: `None`.
    pub rustls: Option<Arc<rustls::ClientConfig>>,
    /// Name to verify the certificate against and send in SNI, instead of the URL's host.
    /// Default: `None` (the URL's host).
    pub tls_server_name: Option<String>,
    /// Extra request headers, sent in order after the standard ones; the handshake's own
    /// (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-*`) are refused. Default: empty.
    pub headers: Vec<(String, String)>,
    /// `Origin` header value (the seeds' `Options.Origin`). Default: `None` (not sent).
    pub origin: Option<String>,
    /// Subprotocols to offer in `Sec-WebSocket-Protocol`, most preferred first. A response
    /// choosing anything else fails with [`crate::HandshakeError::UnexpectedProtocol`].
    /// Default: empty.
    pub protocols: Vec<String>,
    /// Fail with [`crate::HandshakeError::NoProtocol`] when protocols were offered and the
    /// server selected none (the seeds close the connection then). Default: false.
    pub require_protocol: bool,
    /// permessage-deflate offer and its parameters; `None`: not offered. Default: `None`.
    pub deflate: Option<DeflateConfig>,
    /// Called with the request just before it is sent; may change the target and headers.
    /// Default: `None`.
    pub request_hook: Option<RequestHook>,
    /// Credentials. Without it, `user:password@` in the URL is sent as Basic. Default: `None`.
    pub auth: Option<Auth>,
    /// Most redirects (301, 302, 303, 307, 308) followed; 0 fails on the first.
    /// Default: [`ClientConfig::DEFAULT_MAX_REDIRECTS`] (5).
    pub max_redirects: usize,
    /// Reach the server through this proxy. Default: `None`.
    pub proxy: Option<Proxy>,
    /// Ping / pong keep-alive. When set, replaces [`ws_frame::Config::heartbeat`] of
    /// [`ClientConfig::ws`]. Default: `None`.
    pub heartbeat: Option<Heartbeat>,
    /// Reconnect watchdog for [`crate::ReconnectingWebSocket`] (ignored by
    /// [`crate::connect`]). Default: `None` (`Reconnect::default()` is used there).
    pub reconnect: Option<Reconnect>,
    /// Set `TCP_NODELAY`. Default: true.
    pub nodelay: bool,
    /// TCP keep-alive idle time before the first probe (the seeds' `TCPKeepAlive`).
    /// Default: `None` (off).
    pub tcp_keepalive: Option<Duration>,
    /// Time between TCP keep-alive probes (with [`ClientConfig::tcp_keepalive`]).
    /// Default: `None` (the system's).
    pub tcp_keepalive_interval: Option<Duration>,
    /// Unanswered TCP keep-alive probes before the connection is dropped (with
    /// [`ClientConfig::tcp_keepalive`]). Default: `None` (the system's).
    pub tcp_keepalive_retries: Option<u32>,
    /// Local address to bind before connecting. Default: `None` (the system picks).
    pub local_addr: Option<std::net::IpAddr>,
    /// Local ports to bind before connecting, tried in order (the seeds'
    /// `BoundPortMin`/`BoundPortMax`). Default: `None` (any port).
    pub local_ports: Option<(u16, u16)>,
    /// `SO_LINGER` (the seeds' `LingerState`): `Some(0)` resets the connection on close
    /// instead of a FIN. Default: `None` (the system's).
    pub linger: Option<Duration>,
    /// Fail the connection when nothing at all arrives for this long (the seeds'
    /// `ReadTimeout`). Default: `None`.
    pub read_timeout: Option<Duration>,
    /// Fail the connection when queued bytes cannot be written for this long (the seeds'
    /// `WriteTimeout`). Default: `None`.
    pub write_timeout: Option<Duration>,
    /// Decides, each time a heartbeat ping is due, whether to ping, skip, or send a message
    /// instead. Default: `None` (ping).
    pub before_heartbeat: Option<HeartbeatHook>,
    /// Send-queue levels by kind of send. Default: all [`Priority::Normal`].
    pub priorities: SendPriorities,
    /// Most bits per second written (the seeds' `Throttle`); 0 or `None`: no limit.
    /// Default: `None`.
    pub throttle_bps: Option<u64>,
    /// With [`ws_frame::FragmentMode::Both`] (`frgAll`), each [`crate::Incoming::Fragment`]
    /// also carries all data of the message so far. Default: false.
    pub fragments_so_far: bool,
    /// Extra check of the server's certificate chain. Default: `None`.
    pub verify_peer: Option<VerifyPeer>,
    /// The seeds' session or URL authentication (see [`SgcAuth`]). Default: `None`.
    pub sgc_auth: Option<SgcAuth>,
    /// Changes the URL and settings before each attempt (see [`BeforeConnect`]).
    /// Default: `None`.
    pub before_connect: Option<BeforeConnect>,
    /// Largest response head accepted (status line and headers). Default:
    /// [`ClientConfig::DEFAULT_MAX_RESPONSE_HEAD`] (16 KiB).
    pub max_response_head: usize,
    /// Most response headers. Default: [`ClientConfig::DEFAULT_MAX_RESPONSE_HEADERS`] (64).
    pub max_response_headers: usize,
    /// Most body bytes kept from a non-101 response. Default:
    /// [`ClientConfig::DEFAULT_MAX_REJECTION_BODY`] (64 KiB).
    pub max_rejection_body: usize,
    /// Messages received but not yet taken by the reader; when full the connection stops
    /// reading (backpressure on the server). Default: [`ClientConfig::DEFAULT_RECV_QUEUE`] (64).
    pub recv_queue: usize,
    /// Commands (sends, pings) queued for the connection task; senders wait when full. The
    /// task takes as many again into its [`ClientConfig::priorities`] queues while the write
    /// backlog is full, so a later high-priority send can overtake them.
    /// Default: [`ClientConfig::DEFAULT_SEND_QUEUE`] (64).
    pub send_queue: usize,
    /// Unwritten bytes above which the connection stops taking commands (sends wait) until the
    /// socket catches up (the last message taken may overshoot it). Reading goes on, so that a
    /// peer which stops reading while its own writes are blocked cannot deadlock with us; only
    /// when control replies such as pongs pile up beyond this limit on top of what the sends
    /// left (at least twice the limit in all) does reading stop too.
    /// Default: [`ClientConfig::DEFAULT_WRITE_BUFFER_LIMIT`] (1 MiB).
    pub write_buffer_limit: usize,
    /// `User-Agent` header; empty: not sent. Default: `wskit/<version>`.
    pub user_agent: String,
}

impl ClientConfig {
    /// Default of [`ClientConfig::connect_timeout`].
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`ClientConfig::max_redirects`].
    pub const DEFAULT_MAX_REDIRECTS: usize = 5;
    /// Default of [`ClientConfig::max_response_head`].
    pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 16 * 1024;
    /// Default of [`ClientConfig::max_response_headers`].
    pub const DEFAULT_MAX_RESPONSE_HEADERS: usize = 64;
    /// Default of [`ClientConfig::max_rejection_body`].
    pub const DEFAULT_MAX_REJECTION_BODY: usize = 64 * 1024;
    /// Default of [`ClientConfig::recv_queue`].
    pub const DEFAULT_RECV_QUEUE: usize = 64;
    /// Default of [`ClientConfig::send_queue`].
    pub const DEFAULT_SEND_QUEUE: usize = 64;
    /// Default of [`ClientConfig::write_buffer_limit`].
    pub const DEFAULT_WRITE_BUFFER_LIMIT: usize = 1 << 20;

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Setting`] naming the first problem (a zero timeout or queue, CR/LF in Origin
    /// or User-Agent, a Basic user name with `:`, an empty query-token parameter, a heartbeat
    /// interval of 0, reconnect settings out of range); [`Error::WsLimits`] for invalid
    /// WebSocket limits; [`Error::InvalidHeader`], [`Error::ReservedHeader`],
    /// [`Error::InvalidProtocol`] and [`Error::InvalidServerName`] for the value at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, rule| Err(Error::Setting { field, rule });
        self.ws.validate().map_err(Error::WsLimits)?;
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be above 0");
        }
        if self.recv_queue == 0 || self.send_queue == 0 {
            return bad("recv_queue and send_queue", "must be at least 1");
        }
        if self.max_response_head < 64 || self.max_response_headers == 0 {
            return bad(
                "max_response_head and max_response_headers",
                "must be at least 64 and 1",
            );
        }
        for (name, value) in &self.headers {
            if !is_token(name) || has_crlf(value) {
                return Err(Error::InvalidHeader { name: name.clone() });
            }
            if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                return Err(Error::ReservedHeader { name: name.clone() });
            }
        }
        if self.origin.as_deref().is_some_and(has_crlf) || has_crlf(&self.user_agent) {
            return bad("origin and user_agent", "must not contain CR or LF");
        }
        for p in &self.protocols {
            if !is_token(p) {
                return Err(Error::InvalidProtocol {
                    protocol: p.clone(),
                });
            }
        }
        match &self.auth {
            Some(Auth::Basic { user, password }) if user.contains(':') || has_crlf(password) => {
                return bad(
                    "Basic auth",
                    "needs a user name without ':' and a password without CR or LF",
                );
            }
            Some(Auth::Bearer(t)) if has_crlf(t) || t.is_empty() => {
                return bad("bearer token", "must be non-empty, without CR or LF");
            }
            Some(Auth::QueryToken { param, .. }) if param.is_empty() => {
                return bad("query token parameter name", "must not be empty");
            }
            _ => {}
        }
        if let Some(p) = &self.proxy {
            if p.host.is_empty() || p.port == 0 {
                return bad("proxy", "needs a host and a port");
            }
        }
        if let Some(h) = &self.heartbeat {
            if h.validate().is_err() {
                return bad("heartbeat interval and timeout", "must be above 0");
            }
        }
        if let Some(r) = &self.reconnect {
            if !(0.0..=1.0).contains(&r.jitter) || r.multiplier.is_nan() || r.multiplier < 1.0 {
                return bad(
                    "reconnect jitter and multiplier",
                    "must be in 0..=1 and at least 1",
                );
            }
        }
        if let Some((min, max)) = self.local_ports
            && (min == 0 || min > max)
        {
            return bad(
                "local_ports",
                "must be a range MIN..=MAX with 1 <= MIN <= MAX",
            );
        }
        if self.read_timeout.is_some_and(|t| t.is_zero())
            || self.write_timeout.is_some_and(|t| t.is_zero())
        {
            return bad("read_timeout and write_timeout", "must be above 0 when set");
        }
        if let Some(SgcAuth::Session { user, password } | SgcAuth::Url { user, password }) =
            &self.sgc_auth
            && (user.is_empty() || user.contains('/') || password.contains('/'))
        {
            return bad(
                "sgc_auth",
                "needs a non-empty user name; neither it nor the password may contain '/'",
            );
        }
        if let Some(name) = &self.tls_server_name {
            if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(Error::InvalidServerName { name: name.clone() });
            }
        }
        Ok(())
    }
}

/// Header fields the handshake writes itself.
const RESERVED_HEADERS: [&str; 8] = [
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
];

fn has_crlf(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

/// RFC 9110 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ws: ws_frame::Config::default(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            tls: ws_tls::ClientTlsConfig::default(),
            rustls: None,
            tls_server_name: None,
            headers: Vec::new(),
            origin: None,
            protocols: Vec::new(),
            require_protocol: false,
            deflate: None,
            request_hook: None,
            auth: None,
            max_redirects: Self::DEFAULT_MAX_REDIRECTS,
            proxy: None,
            heartbeat: None,
            reconnect: None,
            nodelay: true,
            tcp_keepalive: None,
            tcp_keepalive_interval: None,
            tcp_keepalive_retries: None,
            local_addr: None,
            local_ports: None,
            linger: None,
            read_timeout: None,
            write_timeout: None,
            before_heartbeat: None,
            priorities: SendPriorities::default(),
            throttle_bps: None,
            fragments_so_far: false,
            verify_peer: None,
            sgc_auth: None,
            before_connect: None,
            max_response_head: Self::DEFAULT_MAX_RESPONSE_HEAD,
            max_response_headers: Self::DEFAULT_MAX_RESPONSE_HEADERS,
            max_rejection_body: Self::DEFAULT_MAX_REJECTION_BODY,
            recv_queue: Self::DEFAULT_RECV_QUEUE,
            send_queue: Self::DEFAULT_SEND_QUEUE,
            write_buffer_limit: Self::DEFAULT_WRITE_BUFFER_LIMIT,
            user_agent: concat!("wskit/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("ws", &self.ws)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .field("rustls", &self.rustls.is_some())
            .field("tls_server_name", &self.tls_server_name)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("origin", &self.origin)
            .field("protocols", &self.protocols)
            .field("require_protocol", &self.require_protocol)
            .field("deflate", &self.deflate)
            .field("request_hook", &self.request_hook.is_some())
            .field("auth", &self.auth)
            .field("max_redirects", &self.max_redirects)
            .field("proxy", &self.proxy)
            .field("heartbeat", &self.heartbeat)
            .field("reconnect", &self.reconnect)
            .field("nodelay", &self.nodelay)
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("tcp_keepalive_interval", &self.tcp_keepalive_interval)
            .field("tcp_keepalive_retries", &self.tcp_keepalive_retries)
            .field("local_addr", &self.local_addr)
            .field("local_ports", &self.local_ports)
            .field("linger", &self.linger)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("before_heartbeat", &self.before_heartbeat.is_some())
            .field("priorities", &self.priorities)
            .field("throttle_bps", &self.throttle_bps)
            .field("fragments_so_far", &self.fragments_so_far)
            .field("verify_peer", &self.verify_peer.is_some())
            .field("sgc_auth", &self.sgc_auth)
            .field("before_connect", &self.before_connect.is_some())
            .field("max_response_head", &self.max_response_head)
            .field("max_response_headers", &self.max_response_headers)
            .field("max_rejection_body", &self.max_rejection_body)
            .field("recv_queue", &self.recv_queue)
            .field("send_queue", &self.send_queue)
            .field("write_buffer_limit", &self.write_buffer_limit)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_constants() {
        let c = ClientConfig::default();
        c.validate().unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.max_redirects, 5);
        assert!(c.nodelay && c.tls.webpki_roots && !c.tls.danger_accept_invalid_certs);
        assert!(c.deflate.is_none() && c.heartbeat.is_none() && c.proxy.is_none());
        let h = Heartbeat::default();
        assert_eq!(
            (h.interval, h.timeout),
            (Duration::from_secs(30), Some(Duration::from_secs(10)))
        );
        assert_eq!(Reconnect::default().max_attempts, 0);
    }

    #[test]
    fn invalid_settings_are_rejected() {
        type Edit = Box<dyn Fn(&mut ClientConfig)>;
        let cases: Vec<Edit> = vec![
            Box::new(|c| c.connect_timeout = Duration::ZERO),
            Box::new(|c| c.headers.push(("X-A".into(), "a\r\nb".into()))),
            Box::new(|c| c.headers.push(("X A".into(), "v".into()))),
            Box::new(|c| c.headers.push(("sec-websocket-key".into(), "v".into()))),
            Box::new(|c| c.protocols.push("a b".into())),
            Box::new(|c| c.origin = Some("x\ny".into())),
            Box::new(|c| c.auth = Some(Auth::basic("a:b", "p"))),
            Box::new(|c| c.auth = Some(Auth::bearer(""))),
            Box::new(|c| c.auth = Some(Auth::query_token("", "t"))),
            Box::new(|c| c.heartbeat = Some(Heartbeat::new(Duration::ZERO, None))),
            Box::new(|c| c.recv_queue = 0),
            Box::new(|c| c.ws.max_frame = 10),
            Box::new(|c| c.tls_server_name = Some("bad name".into())),
            Box::new(|c| {
                c.reconnect = Some(Reconnect {
                    jitter: 2.0,
                    ..Reconnect::default()
                });
            }),
        ];
        for (i, edit) in cases.iter().enumerate() {
            let mut c = ClientConfig::default();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Setting { .. }
                        | Error::WsLimits(_)
                        | Error::InvalidHeader { .. }
                        | Error::ReservedHeader { .. }
                        | Error::InvalidProtocol { .. }
                        | Error::InvalidServerName { .. }
                ) && !e.is_transient(),
                "case {i}: {e:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let r = Reconnect {
            interval: Duration::from_millis(100),
            multiplier: 2.0,
            max_interval: Duration::from_millis(1000),
            jitter: 0.5,
            ..Reconnect::default()
        };
        assert_eq!(r.base_delay(1), Duration::from_millis(100));
        assert_eq!(r.base_delay(2), Duration::from_millis(200));
        assert_eq!(r.base_delay(4), Duration::from_millis(800));
        assert_eq!(r.base_delay(5), Duration::from_millis(1000));
        assert_eq!(r.base_delay(1000), Duration::from_millis(1000));
        assert_eq!(r.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(r.delay(1, 1.0), Duration::from_millis(150));
        assert_eq!(r.delay(1, 0.5), Duration::from_millis(100));
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let c = ClientConfig {
            auth: Some(Auth::basic("alice", "hunter2")),
            proxy: Some(Proxy::new(ProxyKind::Socks5, "p", 1080).with_credentials("bob", "s3cret")),
            headers: vec![("X-Api-Key".into(), "k3y".into())],
            ..ClientConfig::default()
        };
        let s = format!("{c:?}");
        assert!(s.contains("alice") && s.contains("bob"));
        assert!(!s.contains("hunter2") && !s.contains("s3cret") && !s.contains("k3y"));
    }
}
