//! The HTTP upstream of plain (non-upgrade) requests: its URL, host header policy and TLS.

use std::{fmt, time::Duration};

use ws_server::ws_http;

use crate::error::Error;

/// Which `Host` the upstream receives ([`HttpUpstream::host_header`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HostHeader {
    /// The client's `Host`, as it sent it (the upstream's authority when the client sent
    /// none, as an HTTP/1.0 client may); the same value also goes in `X-Forwarded-Host`.
    #[default]
    Client,
    /// The upstream's own authority (`host[:port]` of [`HttpUpstream`]), for upstreams that
    /// check it (virtual hosts); the client's `Host` is then only in `X-Forwarded-Host`.
    Upstream,
}

/// An HTTP upstream for plain (non-upgrade) requests: `http://host:port[/base]` or
/// `https://...`. Build it with [`HttpUpstream::parse`] and adjust the fields.
///
/// A request for `/x?y` goes to `base` + `/x?y` on the upstream. Connections over TLS
/// (`https`) are verified with [`crate::ProxyConfig::backend_tls`] against the upstream's host
/// (or [`HttpUpstream::server_name`]); the connect timeout is
/// [`crate::ProxyConfig::connect_timeout`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpUpstream {
    /// `https` (TLS to the upstream) rather than `http`.
    pub secure: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (default 80 for `http`, 443 for `https`).
    pub port: u16,
    /// Path prefix put before every request path: empty, or starting with `/` and not ending
    /// with one (`/app`). Default: empty.
    pub base: String,
    /// Which `Host` the upstream receives. Default: [`HostHeader::Client`].
    pub host_header: HostHeader,
    /// Add `X-Forwarded-For` (appended to the client's), `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` (replacing the client's), and an RFC 7239 `Forwarded` element
    /// (appended). When false, whatever the client sent of them passes unchanged.
    /// Default: true.
    pub forwarded_headers: bool,
    /// Longest wait for the upstream: for the response head once the request is sent, for
    /// each write of the request, and for each read of the response body. Past it the client
    /// gets 504 (or, once the response has started, its connection is closed).
    /// Default: [`HttpUpstream::DEFAULT_RESPONSE_TIMEOUT`] (60 s).
    pub response_timeout: Duration,
    /// Idle upstream connections kept for reuse (0: a new connection per request, sent with
    /// `Connection: close`). Requests with and without a body reuse them; when a reused one
    /// turns out to be closed, only a replayable idempotent request is sent again (see the
    /// module docs). Default: [`HttpUpstream::DEFAULT_MAX_IDLE`] (16).
    pub max_idle: usize,
    /// How long an idle upstream connection is kept. Default:
    /// [`HttpUpstream::DEFAULT_IDLE_TIMEOUT`] (15 s).
    pub idle_timeout: Duration,
    /// Name to verify the `https` upstream's certificate against (and send in SNI) instead
    /// of [`HttpUpstream::host`]. Default: `None`.
    pub server_name: Option<String>,
}

impl HttpUpstream {
    /// Default of [`HttpUpstream::response_timeout`].
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default of [`HttpUpstream::max_idle`].
    pub const DEFAULT_MAX_IDLE: usize = 16;
    /// Default of [`HttpUpstream::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

    /// Parses `http://host[:port][/base]` or `https://...` (IPv6 hosts in brackets).
    ///
    /// ```
    /// let up = ws_proxy::HttpUpstream::parse("http://127.0.0.1:8000/app/")?;
    /// assert_eq!((up.host.as_str(), up.port, up.base.as_str()), ("127.0.0.1", 8000, "/app"));
    /// assert_eq!(up.to_string(), "http://127.0.0.1:8000/app");
    /// # Ok::<(), ws_proxy::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHttpUpstream`] for another scheme, a query or port 0,
    /// [`Error::InvalidHttpUpstreamUrl`] for a missing or invalid host or port, a fragment or
    /// user info; then as [`HttpUpstream::validate`].
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        let bad = |reason| Error::InvalidHttpUpstream {
            input: input.to_owned(),
            reason,
        };
        let scheme = input.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let secure = match scheme.as_deref() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("expected http:// or https://")),
        };
        let url = ws_http::WsUrl::parse(input).map_err(|source| Error::InvalidHttpUpstreamUrl {
            input: input.to_owned(),
            source,
        })?;
        if url.target().contains('?') {
            return Err(bad("a query is not allowed"));
        }
        if url.port() == 0 {
            return Err(bad("port 0"));
        }
        let up = Self {
            secure,
            host: url.host().to_owned(),
            port: url.port(),
            base: url.target().trim_end_matches('/').to_owned(),
            ..Self::default()
        };
        up.validate()?;
        Ok(up)
    }

    /// The authority: host (bracketed for IPv6) and the port unless it is the scheme's
    /// default. This is the `Host` sent with [`HostHeader::Upstream`].
    #[must_use]
    pub fn authority(&self) -> String {
        ws_http::host_header(&self.host, self.port, self.secure)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::ConfigValue`] for an empty or invalid host, a base that does not start with
    /// `/` or holds `?`, `#`, spaces or controls; [`Error::Config`] for port 0 or a zero
    /// response or idle timeout.
    pub fn validate(&self) -> Result<(), Error> {
        if self.host.is_empty() || self.host.contains(['/', '?', '#', ' ', '@']) {
            return Err(Error::ConfigValue {
                field: "HTTP upstream host",
                value: self.host.clone(),
                rule: "must be a host name or address",
            });
        }
        if self.port == 0 {
            return Err(Error::Config {
                field: "HTTP upstream port",
                rule: "must not be 0",
            });
        }
        if !self.base.is_empty()
            && (!self.base.starts_with('/')
                || self.base.contains(['?', '#'])
                || !self.base.bytes().all(|b| (0x21..0x7f).contains(&b)))
        {
            return Err(Error::ConfigValue {
                field: "HTTP upstream base",
                value: self.base.clone(),
                rule: "must be empty or an absolute path without query",
            });
        }
        if self.response_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(Error::Config {
                field: "HTTP upstream response_timeout and idle_timeout",
                rule: "must not be zero",
            });
        }
        Ok(())
    }
}

impl Default for HttpUpstream {
    /// `http://127.0.0.1:80` with the documented defaults.
    fn default() -> Self {
        Self {
            secure: false,
            host: "127.0.0.1".to_owned(),
            port: 80,
            base: String::new(),
            host_header: HostHeader::Client,
            forwarded_headers: true,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            max_idle: Self::DEFAULT_MAX_IDLE,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            server_name: None,
        }
    }
}

impl fmt::Display for HttpUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.base)
    }
}

impl std::str::FromStr for HttpUpstream {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
