//! WebSocket URLs (RFC 6455 section 3): `ws://host[:port]/path?query` and `wss://...`, and for
//! clients also `tcp://host:port` (raw TCP, no handshake) and `user:password@` credentials.

use std::{fmt, net::Ipv6Addr};

use crate::{Error, error::UrlError};

/// How a [`WsUrl`] is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UrlScheme {
    /// `ws://` (or `http://`): WebSocket over plain TCP, default port 80.
    Ws,
    /// `wss://` (or `https://`): WebSocket over TLS, default port 443.
    Wss,
    /// `tcp://host:port`: plain TCP without an HTTP handshake or framing (the seeds'
    /// `RFC6455 = false`); no default port. Only [`WsUrl::parse_client`] accepts it.
    Tcp,
}

impl UrlScheme {
    /// The scheme's name as written in URLs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Wss => "wss",
            Self::Tcp => "tcp",
        }
    }

    /// The port used when the URL has none (`tcp://` has no default).
    #[must_use]
    pub const fn default_port(self) -> Option<u16> {
        match self {
            Self::Ws => Some(80),
            Self::Wss => Some(443),
            Self::Tcp => None,
        }
    }
}

/// A parsed `ws`/`wss` URL (`http`/`https` are accepted as synonyms, as in the WHATWG
/// WebSocket API).
///
/// [`WsUrl::parse`] takes what a server or an HTTP fetcher may be given: no user info, no
/// `tcp://`. [`WsUrl::parse_client`] takes what a WebSocket client is given: `tcp://host:port`
/// and `user:password@` as well. Neither `Display` nor `Debug` ever shows the password.
///
/// ```
/// let url = ws_http::WsUrl::parse("wss://[::1]:8443/chat?room=1")?;
/// assert!(url.is_secure());
/// assert_eq!((url.host(), url.port(), url.target()), ("::1", 8443, "/chat?room=1"));
/// assert_eq!(url.host_header(), "[::1]:8443");
/// let next = url.join("/elsewhere")?; // a redirect's Location
/// assert_eq!(next.to_string(), "wss://[::1]:8443/elsewhere");
/// assert_eq!(url.join("../up?x=1")?.target(), "/up?x=1");
///
/// let raw = ws_http::WsUrl::parse_client("tcp://alice:s3cret@localhost:7000")?;
/// assert_eq!(raw.kind(), ws_http::UrlScheme::Tcp);
/// assert_eq!(raw.credentials(), Some(("alice", "s3cret")));
/// assert_eq!(raw.to_string(), "tcp://localhost:7000");
/// # Ok::<(), ws_http::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WsUrl {
    scheme: UrlScheme,
    user: Option<(String, String)>,
    host: String,
    port: u16,
    target: String,
}

impl WsUrl {
    /// Parses an absolute `ws`, `wss`, `http` or `https` URL.
    ///
    /// # Errors
    /// [`Error::Url`]: an unknown scheme, a missing or invalid host (user info included), an
    /// invalid port, a fragment, spaces or controls in the path, or a relative reference.
    pub fn parse(url: &str) -> Result<Self, Error> {
        Self::parse_with(url, false)
    }

    /// Parses what a WebSocket client connects to: as [`WsUrl::parse`], plus
    /// `tcp://host:port` (the port is required) and `user[:password]@` before the host
    /// (percent-decoded; see [`WsUrl::credentials`]).
    ///
    /// # Errors
    /// As [`WsUrl::parse`]; [`UrlError::Port`] for a `tcp://` URL without a port,
    /// [`UrlError::Host`] for user info that does not percent-decode to UTF-8.
    pub fn parse_client(url: &str) -> Result<Self, Error> {
        Self::parse_with(url, true)
    }

    fn parse_with(url: &str, client: bool) -> Result<Self, Error> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(UrlError::Relative.into());
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => UrlScheme::Ws,
            "wss" | "https" => UrlScheme::Wss,
            "tcp" if client => UrlScheme::Tcp,
            _ if scheme.is_empty() || scheme.contains('/') => return Err(UrlError::Relative.into()),
            _ => return Err(UrlError::Scheme.into()),
        };
        if rest.contains('#') {
            return Err(UrlError::Fragment.into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let (user, authority) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) if client => {
                let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let user = decode_userinfo(u).ok_or(UrlError::Host)?;
                let password = decode_userinfo(p).ok_or(UrlError::Host)?;
                (Some((user, password)), hostport)
            }
            _ => (None, authority),
        };
        let (host, port) = parse_authority(authority, scheme.default_port())?;
        Ok(Self {
            scheme,
            user,
            host,
            port,
            target: check_target(target)?,
        })
    }

    /// Resolves a redirect's `Location` against this URL (RFC 3986 section 5.2): an absolute
    /// URL, a scheme-relative `//host/path`, an absolute path `/path`, a query `?q`, or a
    /// relative path (`other/page`, `../up`; dot segments are removed). The credentials of
    /// this URL are kept when the result names the same host and port, never for another.
    ///
    /// # Errors
    /// As [`WsUrl::parse`] for the result.
    pub fn join(&self, location: &str) -> Result<Self, Error> {
        let location = location.trim();
        if location.contains('#') {
            return Err(UrlError::Fragment.into());
        }
        let mut next = if let Some(rest) = location.strip_prefix("//") {
            Self::parse(&format!("{}://{rest}", self.scheme()))?
        } else if location.contains("://") {
            Self::parse(location)?
        } else {
            let target = if location.starts_with('/') {
                location.to_owned()
            } else if let Some(q) = location.strip_prefix('?') {
                format!("{}?{q}", self.path())
            } else {
                let path = self.path();
                let dir = &path[..=path.rfind('/').unwrap_or(0)];
                format!("{dir}{location}")
            };
            return Ok(Self {
                target: remove_dot_segments(&check_target(&target)?),
                ..self.clone()
            });
        };
        if next.host == self.host && next.port == self.port {
            next.user.clone_from(&self.user);
        }
        Ok(next)
    }

    /// `wss` (TLS) or not.
    #[must_use]
    pub fn is_secure(&self) -> bool {
        self.scheme == UrlScheme::Wss
    }

    /// Whether this is a `tcp://` URL (raw TCP, no handshake).
    #[must_use]
    pub fn is_tcp(&self) -> bool {
        self.scheme == UrlScheme::Tcp
    }

    /// `"wss"`, `"ws"` or `"tcp"`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        self.scheme.as_str()
    }

    /// The scheme as a value.
    #[must_use]
    pub fn kind(&self) -> UrlScheme {
        self.scheme
    }

    /// The host, without brackets for IPv6 literals (what a resolver or TLS SNI takes).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (default 80 for ws, 443 for wss).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: path and query, at least `/`.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path, without the query.
    #[must_use]
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    /// The query without `?`, if any.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// `(user, password)` from a `user[:password]@` part ([`WsUrl::parse_client`] only),
    /// percent-decoded; the password is empty when none was given.
    #[must_use]
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.user.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The `Host` header value: the host (bracketed for IPv6) and the port unless it is the
    /// scheme's default.
    #[must_use]
    pub fn host_header(&self) -> String {
        host_header(&self.host, self.port, self.is_secure())
    }

    /// The same URL with `name=value` appended to the query, both percent-encoded (every
    /// byte but RFC 3986's unreserved characters).
    ///
    /// ```
    /// let url = ws_http::WsUrl::parse("ws://h/p?x=1")?.with_query_param("token", "a b&c");
    /// assert_eq!(url.target(), "/p?x=1&token=a%20b%26c");
    /// # Ok::<(), ws_http::Error>(())
    /// ```
    #[must_use]
    pub fn with_query_param(&self, name: &str, value: &str) -> Self {
        let sep = if self.target.contains('?') { '&' } else { '?' };
        Self {
            target: format!(
                "{}{sep}{}={}",
                self.target,
                percent_encode(name),
                percent_encode(value)
            ),
            ..self.clone()
        }
    }

    /// The same URL with another request target (path and query).
    ///
    /// # Errors
    /// [`UrlError::Path`] for spaces or controls; [`UrlError::Fragment`] for a `#`.
    pub fn with_target(&self, target: &str) -> Result<Self, Error> {
        if target.contains('#') {
            return Err(UrlError::Fragment.into());
        }
        Ok(Self {
            target: check_target(target)?,
            ..self.clone()
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-decodes user info (`+` stays `+`, unlike in a query).
fn decode_userinfo(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Removes `.` and `..` segments from the path of `target` (RFC 3986 section 5.2.4); the
/// query is kept as it is.
fn remove_dot_segments(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *seg {
            "." if last => segments.push(""),
            "." => {}
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A `Host` header value for `host` (bracketed when it is an IPv6 address) and `port`, which
/// is left out when it is the default of the scheme (443 when `secure`, else 80).
///
/// ```
/// assert_eq!(ws_http::host_header("::1", 8080, false), "[::1]:8080");
/// assert_eq!(ws_http::host_header("example.org", 443, true), "example.org");
/// ```
#[must_use]
pub fn host_header(host: &str, port: u16, secure: bool) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == if secure { 443 } else { 80 } {
        host
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for WsUrl {
    /// The URL without credentials (they never end up in logs); a `tcp://` URL without a
    /// path is written without one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{}://{host}:{}", self.scheme(), self.port)?;
        if self.is_tcp() && self.target == "/" {
            return Ok(());
        }
        f.write_str(&self.target)
    }
}

impl fmt::Debug for WsUrl {
    /// As `Display`, plus the user name when there is one (never the password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some((user, _)) => write!(f, "WsUrl({self}, user {user:?})"),
            None => write!(f, "WsUrl({self})"),
        }
    }
}

impl std::str::FromStr for WsUrl {
    type Err = Error;

    /// [`WsUrl::parse`].
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

fn parse_authority(authority: &str, default_port: Option<u16>) -> Result<(String, u16), Error> {
    if authority.contains('@') {
        return Err(UrlError::Host.into());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::Host)?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(UrlError::Host.into());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::Port)?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !authority.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(UrlError::Host.into());
    }
    let port = match port {
        None => default_port.ok_or(UrlError::Port)?,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(UrlError::Port.into()),
            }
        }
        Some(_) => return Err(UrlError::Port.into()),
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn check_target(target: &str) -> Result<String, Error> {
    if !target.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(UrlError::Path.into());
    }
    Ok(match target {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let u = WsUrl::parse("ws://Example.com?x").unwrap();
        assert_eq!((u.host(), u.port(), u.target()), ("example.com", 80, "/?x"));
        assert_eq!(u.host_header(), "example.com");
        assert_eq!((u.path(), u.query()), ("/", Some("x")));
        assert_eq!(WsUrl::parse("https://h:1/").unwrap().host_header(), "h:1");
        for (bad, e) in [
            ("ftp://h/", UrlError::Scheme),
            ("tcp://h:1", UrlError::Scheme),
            ("ws:///p", UrlError::Host),
            ("ws://u@h/", UrlError::Host),
            ("ws://h:0/", UrlError::Port),
            ("ws://h:65536/", UrlError::Port),
            ("ws://h:/", UrlError::Port),
            ("ws://[::1/", UrlError::Host),
            ("ws://[zz]/", UrlError::Host),
            ("ws://[1:2:3]/", UrlError::Host),
            ("ws://[::1]x/", UrlError::Port),
            ("ws://h/#f", UrlError::Fragment),
            ("ws://h/a b", UrlError::Path),
            ("/p", UrlError::Relative),
        ] {
            assert!(
                matches!(WsUrl::parse(bad), Err(Error::Url(x)) if x == e),
                "{bad}"
            );
        }
    }

    #[test]
    fn client_urls_take_tcp_and_credentials() {
        let u = WsUrl::parse_client("tcp://Host:7000").unwrap();
        assert!(u.is_tcp() && !u.is_secure());
        assert_eq!((u.kind(), u.port()), (UrlScheme::Tcp, 7000));
        assert_eq!(u.to_string(), "tcp://host:7000");
        assert!(matches!(
            WsUrl::parse_client("tcp://h"),
            Err(Error::Url(UrlError::Port))
        ));
        let u = WsUrl::parse_client("ws://al%40ice:s%3Acr+t@host:81/p").unwrap();
        assert_eq!(u.credentials(), Some(("al@ice", "s:cr+t")));
        assert_eq!(u.to_string(), "ws://host:81/p");
        let debug = format!("{u:?}");
        assert!(
            debug.contains("al@ice") && !debug.contains("cr+t"),
            "{debug}"
        );
        assert_eq!(
            WsUrl::parse_client("ws://bob@h/").unwrap().credentials(),
            Some(("bob", ""))
        );
        assert!(WsUrl::parse_client("ws://%ff@h/").is_err());
    }

    #[test]
    fn joins() {
        let u = WsUrl::parse("wss://a:9/x").unwrap();
        assert_eq!(u.join("//b/y").unwrap().to_string(), "wss://b:443/y");
        assert_eq!(u.join("ws://c/").unwrap().to_string(), "ws://c:80/");
        assert_eq!(u.join("rel").unwrap().to_string(), "wss://a:9/rel");
        assert!(u.join("/a#b").is_err());
        let base = WsUrl::parse_client("ws://u:p@h:81/a/b/c?q=1").unwrap();
        assert_eq!(base.join("/x?y").unwrap().target(), "/x?y");
        assert_eq!(base.join("d").unwrap().target(), "/a/b/d");
        assert_eq!(base.join("../d").unwrap().target(), "/a/d");
        assert_eq!(base.join("./").unwrap().target(), "/a/b/");
        assert_eq!(base.join("?z=2").unwrap().target(), "/a/b/c?z=2");
        assert_eq!(base.join("/x").unwrap().credentials(), Some(("u", "p")));
        assert_eq!(
            base.join("//h:81/z").unwrap().credentials(),
            Some(("u", "p"))
        );
        let other = base.join("wss://other:444/s").unwrap();
        assert_eq!(other.credentials(), None);
        assert_eq!(base.join("https://other/s").unwrap().port(), 443);
        assert!(
            base.join("tcp://h:81").is_err(),
            "a redirect never leads to raw TCP"
        );
    }

    #[test]
    fn query_params_and_targets() {
        let u = WsUrl::parse("ws://h/p").unwrap();
        assert_eq!(u.with_query_param("t", "a b&c").target(), "/p?t=a%20b%26c");
        assert_eq!(u.with_target("/q?x").unwrap().target(), "/q?x");
        assert!(u.with_target("/a b").is_err());
    }
}
