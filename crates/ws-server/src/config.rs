//! Server configuration: bindings, protocol limits, admission, timeouts, heartbeat, throttle.

use std::{fmt, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use ws_frame::deflate::DeflateConfig;

use crate::{auth::AuthConfig, error::Error};

/// One listening address, plain or TLS.
#[derive(Clone)]
#[non_exhaustive]
pub struct Binding {
    /// Address to listen on (IPv4 or IPv6; port 0 picks a free port).
    pub addr: SocketAddr,
    /// TLS configuration (from `ws_tls`); `None` for plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Chooses the ALPN protocol of each TLS connection (`OnSSLALPNSelect`) from the ones the
    /// client offers, in its order; `None` from the callback negotiates no ALPN. When set,
    /// it replaces the fixed preference list of the TLS configuration. Default: none.
    pub alpn_select: Option<AlpnSelect>,
}

/// The callback of [`Binding::alpn_select`]: the client's ALPN offers in, the chosen one out.
pub type AlpnSelect = Arc<dyn Fn(&[&[u8]]) -> Option<Vec<u8>> + Send + Sync>;

impl Binding {
    /// A plain (non-TLS) binding.
    #[must_use]
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            alpn_select: None,
        }
    }

    /// A TLS binding.
    #[must_use]
    pub fn tls(addr: SocketAddr, tls: Arc<rustls::ServerConfig>) -> Self {
        Self {
            addr,
            tls: Some(tls),
            alpn_select: None,
        }
    }

    /// This binding with an ALPN selection callback ([`Binding::alpn_select`]).
    #[must_use]
    pub fn with_alpn_select(
        mut self,
        select: impl Fn(&[&[u8]]) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        self.alpn_select = Some(Arc::new(select));
        self
    }
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("alpn_select", &self.alpn_select.is_some())
            .finish()
    }
}

/// Limits of HTTP requests (head size, header count, line lengths, body size): the `ws-http`
/// limits, used as they are. [`HttpLimits::max_body`] bounds request bodies (413).
pub use ws_http::Limits as HttpLimits;

/// Server-sent events on the HTTP side of the port.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SseConfig {
    /// Accept `GET` requests with `Accept: text/event-stream` as SSE connections. Default: false.
    pub enabled: bool,
    /// Paths that accept SSE (exact match, or a prefix when the entry ends with `/*`); empty
    /// means every path. Default: empty.
    pub paths: Vec<String>,
    /// Reconnection delay sent to the client as `retry:` when it connects; `None` sends none.
    /// Default: [`SseConfig::DEFAULT_RETRY`] (3000 ms).
    pub retry: Option<Duration>,
    /// Interval of `:` comment lines that keep idle streams (and proxies) alive and detect dead
    /// peers; `None` disables them. Default: [`SseConfig::DEFAULT_HEARTBEAT`] (15 s).
    pub heartbeat: Option<Duration>,
}

impl SseConfig {
    /// Default of [`SseConfig::retry`].
    pub const DEFAULT_RETRY: Duration = Duration::from_millis(3000);
    /// Default of [`SseConfig::heartbeat`].
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

    /// Whether `path` accepts SSE.
    #[must_use]
    pub fn allows(&self, path: &str) -> bool {
        self.enabled
            && (self.paths.is_empty()
                || self.paths.iter().any(|p| match p.strip_suffix("/*") {
                    Some(prefix) => {
                        path == prefix
                            || path
                                .strip_prefix(prefix)
                                .is_some_and(|rest| rest.starts_with('/'))
                    }
                    None => p == path,
                }))
    }
}

impl Default for SseConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            paths: Vec::new(),
            retry: Some(Self::DEFAULT_RETRY),
            heartbeat: Some(Self::DEFAULT_HEARTBEAT),
        }
    }
}

/// What happens when a connection's command queue (messages from [`crate::ServerHandle`] and
/// [`crate::ConnHandle`]) is full because its peer reads too slowly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SlowReaderPolicy {
    /// Drop the message and close the connection with 1013 (try again later); the sender gets
    /// [`Error::QueueFull`]. A slow reader never slows anyone else down.
    #[default]
    Disconnect,
    /// The sender waits until the queue has room: a slow reader slows its writers (and
    /// `broadcast` walks at the pace of the slowest subscriber).
    Backpressure,
}

/// Heartbeat: ping every `interval`, drop connections from which nothing arrives within
/// `timeout` of a ping. ws-frame's [`ws_frame::Heartbeat`], a timer of each connection.
pub use ws_frame::Heartbeat;

/// How plain-TCP connections (clients that do not speak HTTP) split their byte stream into
/// messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DelimiterScan {
    /// Every read is delivered as it arrives (`eofScanNone`).
    #[default]
    None,
    /// Buffer until the data read so far ends with the delimiter (`eofScanLatestBytes`).
    Latest,
    /// Deliver one message per delimiter found anywhere in the data (`eofScanAllBytes`).
    All,
}

/// How one plain-TCP connection splits its byte stream into messages: one or several
/// delimiter sequences and a scan mode (the seeds' `AddTCPEndOfFrame` and
/// `TCPEndOfFrameScanBuffer`). A connection starts with the server's ([`RawTcp::delimiter`],
/// [`RawTcp::scan`]) and can change its own with [`crate::Ctx::set_delimiter`].
///
/// With several sequences, [`DelimiterScan::All`] cuts at the first place any of them ends
/// (the delimiter stays with its message), and [`DelimiterScan::Latest`] delivers what is
/// buffered when it ends with any of them.
///
/// ```
/// use ws_server::{Delimiter, DelimiterScan};
/// let lines = Delimiter::new(DelimiterScan::All, [&b"\r\n"[..], b"\n"]);
/// assert_eq!(lines.sequences.len(), 2);
/// assert_eq!(Delimiter::none().scan, DelimiterScan::None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Delimiter {
    /// The delimiter sequences (empty ones are ignored).
    pub sequences: Vec<Vec<u8>>,
    /// How they are searched.
    pub scan: DelimiterScan,
}

impl Delimiter {
    /// `scan` with these sequences (empty ones are dropped).
    #[must_use]
    pub fn new<S: Into<Vec<u8>>>(
        scan: DelimiterScan,
        sequences: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            sequences: sequences
                .into_iter()
                .map(Into::into)
                .filter(|s: &Vec<u8>| !s.is_empty())
                .collect(),
            scan,
        }
    }

    /// No delimiter: every read is delivered as it arrives.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// The server-wide setting of `raw`: [`RawTcp::delimiter`] with [`RawTcp::scan`].
    #[must_use]
    pub fn of(raw: &RawTcp) -> Self {
        Self::new(raw.scan, [raw.delimiter.clone()])
    }
}

/// What to do with an upgrade whose offered subprotocols are all unknown to the server
/// ([`ServerConfig::protocol_mismatch`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolMismatch {
    /// Refuse the upgrade with 400, naming the subprotocols the server speaks. The default.
    #[default]
    Refuse,
    /// Accept without a subprotocol (the client then decides whether to close).
    Proceed,
}

/// TCP keep-alive on accepted sockets (the seeds' `TCPKeepAlive`): the kernel probes a
/// connection that has been silent for `idle`, every `interval`, and drops it after `count`
/// unanswered probes. It finds dead peers on connections without a WebSocket heartbeat
/// (plain HTTP keep-alive, SSE, raw TCP) at no cost to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpKeepAlive {
    /// Silence before the first probe (`TCP_KEEPIDLE`). Not zero. Default: 60 s.
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`). Not zero. Default: 10 s.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`). At least 1.
    /// Default: 6.
    pub count: u32,
}

impl TcpKeepAlive {
    /// Keep-alive with the given idle time, probe interval and probe count.
    #[must_use]
    pub fn new(idle: Duration, interval: Duration, count: u32) -> Self {
        Self {
            idle,
            interval,
            count,
        }
    }
}

impl Default for TcpKeepAlive {
    fn default() -> Self {
        Self::new(Duration::from_secs(60), Duration::from_secs(10), 6)
    }
}

/// Plain-TCP mode on the same listener (the seeds' `OnUnknownProtocol`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawTcp {
    /// Offer connections whose first bytes are not HTTP to
    /// [`crate::Handler::on_unknown_protocol`] instead of closing them. Default: false.
    pub enabled: bool,
    /// End-of-message delimiter bytes, for every plain-TCP connection until it sets its own
    /// ([`crate::Ctx::set_delimiter`], which also takes several sequences). Default: empty
    /// (no delimiter).
    pub delimiter: Vec<u8>,
    /// How the delimiter is searched. Default: [`DelimiterScan::None`].
    pub scan: DelimiterScan,
    /// Largest message buffered while waiting for a delimiter; beyond it the connection is
    /// dropped. Default: [`RawTcp::DEFAULT_MAX_BUFFER`] (1 MiB).
    pub max_buffer: usize,
}

impl RawTcp {
    /// Default of [`RawTcp::max_buffer`].
    pub const DEFAULT_MAX_BUFFER: usize = 1 << 20;
}

/// Compressed HTTP responses (`Content-Encoding: gzip` or `deflate`) for static files, the
/// built-in assets and [`crate::Handler::on_http`] answers, when the request's
/// `Accept-Encoding` allows it (q-values honoured; gzip preferred on a tie).
///
/// A response is compressed only when it has a body and a status other than 206, carries no
/// `Content-Encoding` or `Content-Range` of its own, has a compressible `Content-Type`
/// (`text/*`, JSON, XML, JavaScript, SVG, WebAssembly, uncompressed fonts) and a body of at
/// least [`HttpCompression::min_size`] bytes (a stream of unknown length counts as large).
/// When the client refuses `identity` (`identity;q=0`, or `*;q=0`), any body is compressed.
/// A compressed answer carries `Vary: Accept-Encoding` and, when it has one, an `ETag` with
/// the coding appended (`"abc"` becomes `"abc-gzip"`); static files recognise both tags in
/// `If-None-Match`. Bytes bodies are compressed whole (with `Content-Length`); files above
/// 64 KiB and streams are compressed piece by piece and sent chunked (flat memory), stream
/// pieces flushed as they come so that nothing waits for the next one. Range requests are
/// answered from the plain file, never compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpCompression {
    /// Compress responses. Default: false.
    pub enabled: bool,
    /// Smallest body compressed, in bytes. Default: [`HttpCompression::DEFAULT_MIN_SIZE`].
    pub min_size: u64,
    /// Compression level, 0 (store) to 9 (smallest). Default: 6.
    pub level: u32,
}

impl HttpCompression {
    /// Default of [`HttpCompression::min_size`] (1 KiB: smaller bodies gain little).
    pub const DEFAULT_MIN_SIZE: u64 = 1024;

    /// Compression on, with the default size threshold and level.
    #[must_use]
    pub fn on() -> Self {
        Self {
            enabled: true,
            ..Self::default()
        }
    }
}

impl Default for HttpCompression {
    fn default() -> Self {
        Self {
            enabled: false,
            min_size: Self::DEFAULT_MIN_SIZE,
            level: 6,
        }
    }
}

/// Everything the server needs besides the handler. Build it with [`ServerConfig::default`]
/// (or [`ServerConfig::new`]) and adjust the fields; [`crate::Server::start`] validates it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Listening addresses. Default: one plain binding on [`ServerConfig::DEFAULT_LISTEN`].
    pub bindings: Vec<Binding>,
    /// WebSocket limits and behaviour per connection (max frame/message, fragments per message,
    /// the deadline of an unfinished fragmented message, UTF-8 validation, fragment mode, close
    /// timeout). `deflate` in it is ignored: negotiation fills it in. The server drives the
    /// message deadline ([`ws_frame::Config::message_timeout`]); while reading is paused it
    /// does not run, and it counts afresh when reading resumes.
    /// Default: `ws_frame::Config::default()`.
    pub ws: ws_frame::Config,
    /// Server-wide budget, in bytes, for data held in partly received WebSocket messages
    /// across all connections (reassembly buffers of unfinished fragmented messages and the
    /// part of a data frame received so far; see
    /// [`ws_frame::Connection::partial_message_bytes`]). A connection whose partly received
    /// message grows while the total is past the budget (a new message, or more of one under
    /// way) is failed with 1013 (try again later) and its bytes are released; a warning is
    /// logged at most once per 10 s with the number refused. The total thus exceeds the budget
    /// by at most one read per connection. `ws.max_message` bounds one connection; this bounds
    /// the sum, which `max_message` times `max_connections` (64 MiB x 100,000) does not.
    /// [`crate::ServerHandle::partial_bytes`] reads the total. 0 means no budget.
    /// Default: [`ServerConfig::DEFAULT_MAX_PARTIAL_BYTES`] (1 GiB).
    pub max_partial_bytes: usize,
    /// permessage-deflate preferences; `None` disables the extension. Default: `None`.
    pub deflate: Option<DeflateConfig>,
    /// Limits of HTTP requests: head (upgrade or plain request) and body. Default:
    /// `HttpLimits::default()` (16 KiB head, 100 fields, 16 MiB body).
    pub http: HttpLimits,
    /// Directory served as static files for `GET` and `HEAD` requests that are not WebSocket
    /// upgrades or SSE (content types by extension, `ETag`/`Last-Modified`, conditional
    /// requests, single ranges, `index.html` for directories). Nothing outside it is ever
    /// served: `..`, encoded separators and symlinks leading out are refused. Default: `None`.
    pub document_root: Option<PathBuf>,
    /// How long a small static file (up to 64 KiB) may be answered from memory before the
    /// file is looked at again: a change on disk shows within this time. At most 1,024 files
    /// and 16 MiB are kept. `Duration::ZERO` looks every request's file up (a trip to the
    /// blocking pool each). Default: [`ServerConfig::DEFAULT_FILE_CACHE`] (1 s).
    pub file_cache: Duration,
    /// Compressed HTTP responses. Default: off ([`HttpCompression`]).
    pub compression: HttpCompression,
    /// Serve the built-in test page ([`ServerConfig::test_page`]) at `/` and
    /// `/sgcWebSockets.html` for `GET`/`HEAD` (other methods: 405); the seed's
    /// `Options.HTMLFiles`. Files of [`ServerConfig::document_root`] win over it, and it wins
    /// over [`crate::Handler::on_http`] on those paths. Default: false in the library (unlike
    /// the seed, whose default is on), so a handler that answers `/` itself keeps doing so;
    /// the `wskit serve` binary turns it on.
    pub html_files: bool,
    /// Serve the JavaScript client ([`crate::assets::WSKIT_JS`]) at `/wskit.js` and
    /// `/sgcWebSockets.js` for `GET`/`HEAD`; the seed's `Options.JavascriptFiles`. The test
    /// page loads it, so turn both on together. Same precedence and default as
    /// [`ServerConfig::html_files`].
    pub javascript_files: bool,
    /// The HTML served by [`ServerConfig::html_files`]. Default:
    /// [`crate::assets::TEST_PAGE_HTML`]; a program may serve an edited copy (`wskit serve`
    /// hides the upload form when uploads are off).
    pub test_page: Bytes,
    /// Keep HTTP connections open for further requests (HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 with `Connection: keep-alive`). Default: true.
    pub keep_alive: bool,
    /// How long an HTTP connection may wait for its next request. Default:
    /// [`ServerConfig::DEFAULT_KEEP_ALIVE_TIMEOUT`] (5 s).
    pub keep_alive_timeout: Duration,
    /// Most requests served on one connection before it is closed. Default:
    /// [`ServerConfig::DEFAULT_MAX_REQUESTS_PER_CONNECTION`] (1000).
    pub max_requests_per_connection: usize,
    /// Longest wait for the next bytes of a request body (and for a response write to make
    /// progress); exceeded, the request gets 408 and the connection closes. Default:
    /// [`ServerConfig::DEFAULT_BODY_TIMEOUT`] (30 s).
    pub body_timeout: Duration,
    /// Server-sent events. Default: disabled.
    pub sse: SseConfig,
    /// Supported subprotocols, most preferred first. The default handshake decision picks
    /// the client's first offer that is in this list; when the client offers some and none
    /// is here, [`ServerConfig::protocol_mismatch`] decides. Empty: subprotocols are not
    /// negotiated (offers are ignored). Default: empty.
    pub protocols: Vec<String>,
    /// What the default handshake decision does when the client offers subprotocols and
    /// none is in [`ServerConfig::protocols`] (a handler's own choice in
    /// [`crate::Handler::on_handshake`] is not affected). Default:
    /// [`ProtocolMismatch::Refuse`], as the seed closes such connections.
    pub protocol_mismatch: ProtocolMismatch,
    /// Most simultaneous connections (handshaking ones included); beyond it requests get 503.
    /// 0 means unlimited. Default: [`ServerConfig::DEFAULT_MAX_CONNECTIONS`] (100 000).
    pub max_connections: usize,
    /// Allowed `Origin` values; `*` as port matches any port (`http://localhost:*`); a
    /// request without `Origin` (non-browser) is allowed. Empty allows every origin.
    /// Default: empty.
    pub allowed_origins: Vec<String>,
    /// Time allowed for the TLS handshake plus the complete first HTTP request head, and for
    /// each later request head once its first byte arrived (slowloris defence; a partial head
    /// then gets 408). Default: [`ServerConfig::DEFAULT_HANDSHAKE_TIMEOUT`] (10 s).
    pub handshake_timeout: Duration,
    /// Close connections (1000, "idle timeout") that received nothing for this long (it
    /// fires between 1 and 1.25 times the setting). When set, replaces
    /// [`ws_frame::Config::idle_timeout`] of [`ServerConfig::ws`]. Default: `None`.
    pub idle_timeout: Option<Duration>,
    /// Ping / pong keep-alive. When set, replaces [`ws_frame::Config::heartbeat`] of
    /// [`ServerConfig::ws`]. Default: `None`.
    pub heartbeat: Option<Heartbeat>,
    /// Per-connection throughput limit in bytes per second, applied to reads and writes
    /// separately (token bucket, burst of one second). Default: `None` (unlimited).
    pub throttle: Option<u64>,
    /// Capacity of each connection's command queue (messages sent through the server handle or a
    /// connection handle). Default: [`ServerConfig::DEFAULT_SEND_QUEUE`] (256).
    pub send_queue: usize,
    /// What happens when that queue is full. Default: [`SlowReaderPolicy::Disconnect`].
    pub slow_reader: SlowReaderPolicy,
    /// With [`ws_frame::FragmentMode::Both`] in [`ServerConfig::ws`] (the seeds' `frgAll`), each
    /// [`crate::Fragment`] also carries all data of the message so far
    /// ([`crate::Fragment::so_far`]). It copies the message so far once per fragment. Default:
    /// false.
    pub fragments_so_far: bool,
    /// Bytes waiting to be written above which a connection stops reading and stops taking
    /// commands until the peer catches up. Default: [`ServerConfig::DEFAULT_WRITE_BUFFER_LIMIT`]
    /// (1 MiB).
    pub write_buffer_limit: usize,
    /// Most time a WebSocket connection may have unwritten data without the peer taking any
    /// of it (`WriteTimeOut`); past it the connection is dropped (no Close frame: it could not
    /// be written either) and `on_disconnect` gets 1006 "write timeout". `None`: no limit
    /// (a slow reader is still bounded by `write_buffer_limit` and `send_queue`). Not zero.
    /// Default: `None`.
    pub write_timeout: Option<Duration>,
    /// Authentication of every request (upgrades, SSE, static files, HTTP routes) except
    /// [`AuthConfig::public_paths`]. Default: `None` (everyone is let in).
    pub auth: Option<AuthConfig>,
    /// Plain-TCP mode for non-HTTP clients. Default: disabled.
    pub raw_tcp: RawTcp,
    /// Set `TCP_NODELAY` on accepted sockets. Default: true.
    pub nodelay: bool,
    /// TCP keep-alive on accepted sockets (idle time, probe interval, probe count); `None`
    /// leaves the system's setting (usually off). Default: `None`.
    pub tcp_keepalive: Option<TcpKeepAlive>,
    /// How long [`crate::ServerHandle::stop`] waits for connections to finish their close
    /// handshake. Default: [`ServerConfig::DEFAULT_STOP_TIMEOUT`] (5 s).
    pub stop_timeout: Duration,
    /// Keep the request headers of every connection in [`crate::ConnInfo`] (costs memory per
    /// connection). Default: true.
    pub keep_request_headers: bool,
    /// Value of the `Server` header. Default: `wskit/<version>`.
    pub server_name: String,
    /// Cookie sessions run by the server (the seed's `SessionState` with `AutoStartSession`):
    /// for every plain HTTP request (not WebSocket upgrades) that passed the guards, the
    /// server finds the session its cookie names or starts one, attaches it to the
    /// [`crate::Request`] (read it with [`crate::Request::session`] in
    /// [`crate::Handler::on_http`]), and adds the new session's `Set-Cookie` to the response,
    /// whoever wrote it (handler, static file, built-in page). Share the same store with the
    /// handler to end sessions ([`crate::Sessions::end`]). Default: `None` (no sessions).
    pub sessions: Option<Arc<crate::session::Sessions>>,
}

impl ServerConfig {
    /// Default listening address.
    pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
    /// Default of [`ServerConfig::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
    /// Default of [`ServerConfig::handshake_timeout`].
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`ServerConfig::max_partial_bytes`]: 1 GiB, sixteen messages of the default
    /// 64 MiB maximum under way at once, or 16 KiB for each of 65,536 connections. Messages
    /// complete as fast as their bytes arrive, so a working server holds far less; past it
    /// some peers are keeping memory for nothing.
    pub const DEFAULT_MAX_PARTIAL_BYTES: usize = 1 << 30;
    /// Default of [`ServerConfig::send_queue`].
    pub const DEFAULT_SEND_QUEUE: usize = 256;
    /// Default of [`ServerConfig::write_buffer_limit`].
    pub const DEFAULT_WRITE_BUFFER_LIMIT: usize = 1 << 20;
    /// Default of [`ServerConfig::stop_timeout`].
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default of [`ServerConfig::file_cache`].
    pub const DEFAULT_FILE_CACHE: Duration = Duration::from_secs(1);
    /// Default of [`ServerConfig::keep_alive_timeout`].
    pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default of [`ServerConfig::max_requests_per_connection`].
    pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: usize = 1000;
    /// Default of [`ServerConfig::body_timeout`].
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

    /// The default configuration with these bindings.
    #[must_use]
    pub fn new(bindings: Vec<Binding>) -> Self {
        Self {
            bindings,
            ..Self::default()
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Setting`], [`Error::WsLimits`], [`Error::HttpLimits`] or
    /// [`Error::DocumentRoot`] naming the first problem found; [`Error::Setting`] or
    /// [`Error::SettingValue`] from the auth settings.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, rule| Err(Error::Setting { field, rule });
        if self.bindings.is_empty() {
            return bad("bindings", "must hold at least one binding");
        }
        self.ws.validate().map_err(Error::WsLimits)?;
        if self.send_queue == 0 {
            return bad("send_queue", "must be at least 1");
        }
        if let Some(k) = self.tcp_keepalive {
            if k.idle.is_zero() || k.interval.is_zero() || k.count == 0 {
                return bad(
                    "tcp_keepalive",
                    "needs a non-zero idle time and interval and a count of at least 1",
                );
            }
        }
        self.http.validate().map_err(Error::HttpLimits)?;
        if self.keep_alive_timeout.is_zero() || self.body_timeout.is_zero() {
            return bad("keep_alive_timeout and body_timeout", "must not be zero");
        }
        if self.max_requests_per_connection == 0 {
            return bad("max_requests_per_connection", "must be at least 1");
        }
        if let Some(root) = &self.document_root {
            if !root.is_dir() {
                return Err(Error::DocumentRoot { path: root.clone() });
            }
        }
        if self.compression.level > 9 {
            return bad("compression.level", "must be 0 to 9");
        }
        if self.sse.heartbeat.is_some_and(|d| d.is_zero()) {
            return bad("sse.heartbeat", "must not be zero");
        }
        if self.write_buffer_limit == 0 {
            return bad("write_buffer_limit", "must be at least 1");
        }
        if self.write_timeout.is_some_and(|t| t.is_zero()) {
            return bad("write_timeout", "must not be zero (None: no limit)");
        }
        if self.handshake_timeout.is_zero() {
            return bad("handshake_timeout", "must not be zero");
        }
        if let Some(hb) = &self.heartbeat {
            if hb.validate().is_err() {
                return bad("heartbeat interval and timeout", "must not be zero");
            }
        }
        if self.idle_timeout.is_some_and(|d| d.is_zero()) {
            return bad("idle_timeout", "must not be zero");
        }
        if self.throttle == Some(0) {
            return bad("throttle", "must be at least 1 byte per second");
        }
        if self.raw_tcp.scan != DelimiterScan::None && self.raw_tcp.delimiter.is_empty() {
            return bad(
                "raw_tcp.delimiter",
                "must not be empty with a delimiter scan",
            );
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        for origin in &self.allowed_origins {
            if origin.is_empty() {
                return bad("allowed_origins", "must not hold an empty origin");
            }
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bindings: vec![Binding::plain(
                Self::DEFAULT_LISTEN
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080))),
            )],
            ws: ws_frame::Config::default(),
            max_partial_bytes: Self::DEFAULT_MAX_PARTIAL_BYTES,
            deflate: None,
            http: HttpLimits::default(),
            document_root: None,
            file_cache: Self::DEFAULT_FILE_CACHE,
            compression: HttpCompression::default(),
            html_files: false,
            javascript_files: false,
            test_page: Bytes::from_static(crate::assets::TEST_PAGE_HTML.as_bytes()),
            keep_alive: true,
            keep_alive_timeout: Self::DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_requests_per_connection: Self::DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            sse: SseConfig::default(),
            protocols: Vec::new(),
            protocol_mismatch: ProtocolMismatch::Refuse,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            allowed_origins: Vec::new(),
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: None,
            heartbeat: None,
            throttle: None,
            send_queue: Self::DEFAULT_SEND_QUEUE,
            slow_reader: SlowReaderPolicy::Disconnect,
            fragments_so_far: false,
            write_buffer_limit: Self::DEFAULT_WRITE_BUFFER_LIMIT,
            write_timeout: None,
            auth: None,
            raw_tcp: RawTcp {
                max_buffer: RawTcp::DEFAULT_MAX_BUFFER,
                ..RawTcp::default()
            },
            nodelay: true,
            tcp_keepalive: None,
            stop_timeout: Self::DEFAULT_STOP_TIMEOUT,
            keep_request_headers: true,
            server_name: concat!("wskit/", env!("CARGO_PKG_VERSION")).to_owned(),
            sessions: None,
        }
    }
}

/// Whether `origin` is allowed by `allowed` (exact match, ASCII case-insensitive, where a
/// pattern ending in `:*` matches any port of that scheme and host).
pub(crate) fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    allowed.iter().any(|pattern| {
        if let Some(prefix) = pattern.strip_suffix(":*") {
            let Some(rest) = origin
                .get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .map(|_| &origin[prefix.len()..])
            else {
                return false;
            };
            rest.is_empty()
                || rest.strip_prefix(':').is_some_and(|port| {
                    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                })
        } else {
            pattern.eq_ignore_ascii_case(origin)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        let c = ServerConfig::default();
        c.validate().unwrap();
        assert_eq!(c.bindings[0].addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.send_queue, ServerConfig::DEFAULT_SEND_QUEUE);
        assert_eq!(c.max_partial_bytes, 1 << 30);
        assert_eq!(c.ws.max_fragments, 65_537);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let c = ServerConfig {
            send_queue: 0,
            ..ServerConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(
            matches!(
                e,
                Error::Setting {
                    field: "send_queue",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "invalid server configuration: send_queue must be at least 1"
        );
        let mut c = ServerConfig::default();
        c.ws.max_frame = 0;
        assert!(matches!(c.validate(), Err(Error::WsLimits(_))));
        let c = ServerConfig {
            document_root: Some("/nonexistent/wskit-root".into()),
            ..ServerConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::DocumentRoot { .. })));
        let mut c = ServerConfig::default();
        c.bindings.clear();
        assert!(c.validate().is_err());
        let c = ServerConfig {
            heartbeat: Some(Heartbeat::new(Duration::ZERO, Duration::from_secs(1))),
            ..ServerConfig::default()
        };
        assert!(c.validate().is_err());
        let mut c = ServerConfig::default();
        c.raw_tcp.scan = DelimiterScan::All;
        assert!(c.validate().is_err());
    }

    #[test]
    fn origin_port_wildcard() {
        let allowed = vec![
            "http://127.0.0.1:*".to_owned(),
            "https://example.com".to_owned(),
        ];
        assert!(origin_allowed(&allowed, "http://127.0.0.1:8080"));
        assert!(origin_allowed(&allowed, "http://127.0.0.1"));
        assert!(origin_allowed(&allowed, "HTTPS://EXAMPLE.COM"));
        assert!(!origin_allowed(&allowed, "http://127.0.0.1.evil:80"));
        assert!(!origin_allowed(&allowed, "http://127.0.0.1:80x"));
        assert!(!origin_allowed(&allowed, "https://example.com:444"));
        assert!(!origin_allowed(&allowed, "http://127.0.0.2:80"));
    }
}
