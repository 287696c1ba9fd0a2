//! The URLs the client connects to: `ws://`, `wss://` and `tcp://` (plain TCP, no handshake),
//! plus resolution of redirect `Location` values against the current URL.

use std::{fmt, net::IpAddr};

use crate::error::Error;

/// How a [`Url`] is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `ws://`: WebSocket over plain TCP (default port 80).
    Ws,
    /// `wss://`: WebSocket over TLS (default port 443).
    Wss,
    /// `tcp://`: plain TCP, no HTTP handshake, no framing (the seeds' `RFC6455 = false`).
    Tcp,
}

impl Scheme {
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

    /// Whether the connection runs over TLS.
    #[must_use]
    pub const fn is_tls(self) -> bool {
        matches!(self, Self::Wss)
    }
}

/// Host part of a [`Url`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name (lower-cased).
    Name(String),
    /// An IPv4 or IPv6 literal (`[::1]` in the URL).
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Self::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed client URL: `scheme://[user[:password]@]host[:port][/path][?query]`.
///
/// `http://` and `https://` are accepted as aliases of `ws://` and `wss://`. A `#fragment` is
/// refused (RFC 6455 section 3).
///
/// ```
/// use ws_client::{Host, Scheme, Url};
/// let url = Url::parse("wss://[::1]:8443/chat?room=1")?;
/// assert_eq!(url.scheme(), Scheme::Wss);
/// assert_eq!(url.host(), &Host::Ip("::1".parse().unwrap()));
/// assert_eq!(url.port(), 8443);
/// assert_eq!(url.target(), "/chat?room=1");
/// assert_eq!(url.to_string(), "wss://[::1]:8443/chat?room=1");
/// # Ok::<(), ws_client::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Url {
    scheme: Scheme,
    user: Option<(String, String)>,
    host: Host,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

fn bad(url: &str, why: &str) -> Error {
    Error::InvalidUrl(format!("{url:?}: {why}"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Url {
    /// Parses an absolute URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an unknown scheme, a missing or invalid host, an invalid port,
    /// a `tcp://` URL without port, a fragment, or characters that cannot go in a request
    /// target (spaces, controls).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let s = input.trim();
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad(input, "missing scheme (ws://, wss:// or tcp://)"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => Scheme::Ws,
            "wss" | "https" => Scheme::Wss,
            "tcp" => Scheme::Tcp,
            _ => return Err(bad(input, "scheme must be ws, wss or tcp")),
        };
        if rest.contains('#') {
            return Err(bad(input, "WebSocket URLs cannot have a #fragment"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad(input, "invalid character in path or query"));
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let u = percent_decode(u).ok_or_else(|| bad(input, "bad user name"))?;
                let p = percent_decode(p).ok_or_else(|| bad(input, "bad password"))?;
                (Some((u, p)), hostport)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| bad(input, "unterminated IPv6 literal"))?;
            let ip: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| bad(input, "invalid IPv6 literal"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad(input, "junk after IPv6 literal"))?,
                ),
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (h, p) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            };
            if h.is_empty() {
                return Err(bad(input, "missing host"));
            }
            let host = if let Ok(ip) = h.parse::<std::net::Ipv4Addr>() {
                Host::Ip(IpAddr::V4(ip))
            } else if h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                Host::Name(h.to_ascii_lowercase())
            } else {
                return Err(bad(input, "invalid host name"));
            };
            (host, p)
        };
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad(input, "port must be 1..=65535")),
                Ok(p) => p,
            },
            None => scheme
                .default_port()
                .ok_or_else(|| bad(input, "tcp:// URLs need a port"))?,
        };
        Ok(Self {
            scheme,
            user,
            host,
            port,
            target,
        })
    }

    /// Resolves a redirect `Location` against this URL: absolute URLs (`ws`, `wss`, `http`,
    /// `https`), scheme-relative `//host/path`, absolute paths `/path?q`, and relative paths.
    /// Credentials in this URL are not carried to another host.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the result does not parse.
    pub fn join(&self, location: &str) -> Result<Self, Error> {
        let location = location.trim();
        if location.contains("://") {
            return Self::parse(location);
        }
        let mut next = if let Some(rest) = location.strip_prefix("//") {
            Self::parse(&format!("{}://{rest}", self.scheme.as_str()))?
        } else {
            let target = if location.starts_with('/') {
                location.to_owned()
            } else if let Some(q) = location.strip_prefix('?') {
                format!("{}?{q}", self.path())
            } else {
                let path = self.path();
                let dir = &path[..=path.rfind('/').unwrap_or(0)];
                normalize(&format!("{dir}{location}"))
            };
            let mut url = self.clone();
            url.target = target;
            if url.target.bytes().any(|b| b <= b' ' || b == 0x7f) || url.target.contains('#') {
                return Err(bad(location, "invalid redirect location"));
            }
            return Ok(url);
        };
        if next.host == self.host && next.port == self.port && next.user.is_none() {
            next.user.clone_from(&self.user);
        }
        Ok(next)
    }

    /// The scheme.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host.
    #[must_use]
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host as a string without brackets (for DNS, SNI and proxies).
    #[must_use]
    pub fn host_str(&self) -> String {
        match &self.host {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// The port (explicit or the scheme's default).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: path and query, starting with `/`.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path without the query.
    #[must_use]
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    /// The query without `?`, if any.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Credentials from the URL's `user:password@` part (used for Basic authentication when
    /// no other authentication is configured).
    #[must_use]
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.user.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The `Host` header value: the host, and the port unless it is the scheme's default.
    #[must_use]
    pub fn host_header(&self) -> String {
        if Some(self.port) == self.scheme.default_port() {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Returns the URL with `name=value` appended to the query (both percent-encoded).
    #[must_use]
    pub fn with_query_param(&self, name: &str, value: &str) -> Self {
        let mut url = self.clone();
        let sep = if url.target.contains('?') { '&' } else { '?' };
        url.target = format!(
            "{}{sep}{}={}",
            url.target,
            percent_encode(name),
            percent_encode(value)
        );
        url
    }

    /// A copy with another scheme (keeps an explicit port).
    #[must_use]
    pub fn with_scheme(&self, scheme: Scheme) -> Self {
        let mut url = self.clone();
        url.scheme = scheme;
        url
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Removes `.` and `..` segments from a path (RFC 3986 section 5.2.4); the query is kept.
fn normalize(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *seg {
            "." => {
                if last {
                    segments.push("");
                }
            }
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

impl fmt::Display for Url {
    /// Writes the URL without credentials (they never end up in logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if Some(self.port) != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        if self.scheme == Scheme::Tcp && self.target == "/" {
            return Ok(());
        }
        f.write_str(&self.target)
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({self})")
    }
}

impl std::str::FromStr for Url {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// What [`crate::connect`] accepts as a URL.
pub trait IntoUrl {
    /// Converts to a [`Url`].
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when it does not parse.
    fn into_url(self) -> Result<Url, Error>;
}

impl IntoUrl for Url {
    fn into_url(self) -> Result<Url, Error> {
        Ok(self)
    }
}

impl IntoUrl for &Url {
    fn into_url(self) -> Result<Url, Error> {
        Ok(self.clone())
    }
}

impl IntoUrl for &str {
    fn into_url(self) -> Result<Url, Error> {
        Url::parse(self)
    }
}

impl IntoUrl for String {
    fn into_url(self) -> Result<Url, Error> {
        Url::parse(&self)
    }
}

impl IntoUrl for &String {
    fn into_url(self) -> Result<Url, Error> {
        Url::parse(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_schemes_hosts_ports_and_targets() {
        let u = p("ws://example.com");
        assert_eq!((u.scheme(), u.port(), u.target()), (Scheme::Ws, 80, "/"));
        assert_eq!(u.host(), &Host::Name("example.com".into()));
        assert_eq!(u.host_header(), "example.com");
        let u = p("WSS://Example.COM/a/b?x=1&y=2");
        assert_eq!((u.scheme(), u.port()), (Scheme::Wss, 443));
        assert_eq!(u.host_str(), "example.com");
        assert_eq!(u.path(), "/a/b");
        assert_eq!(u.query(), Some("x=1&y=2"));
        let u = p("ws://127.0.0.1:9001?case=1");
        assert_eq!(u.host(), &Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(u.target(), "/?case=1");
        assert_eq!(u.host_header(), "127.0.0.1:9001");
        let u = p("ws://[::1]:8080/x");
        assert_eq!(u.host_str(), "::1");
        assert_eq!(u.host_header(), "[::1]:8080");
        assert_eq!(u.to_string(), "ws://[::1]:8080/x");
        let u = p("wss://[2001:db8::1]/");
        assert_eq!(u.port(), 443);
        let u = p("tcp://localhost:7000");
        assert_eq!((u.scheme(), u.port()), (Scheme::Tcp, 7000));
        assert_eq!(u.to_string(), "tcp://localhost:7000");
        assert_eq!(p("http://h/").scheme(), Scheme::Ws);
        assert_eq!(p("https://h/").scheme(), Scheme::Wss);
    }

    #[test]
    fn credentials_are_parsed_and_never_displayed() {
        let u = p("ws://al%40ice:s%3Acret@host:81/p");
        assert_eq!(u.credentials(), Some(("al@ice", "s:cret")));
        assert_eq!(u.to_string(), "ws://host:81/p");
        assert!(!format!("{u:?}").contains("cret"));
    }

    #[test]
    fn rejects_bad_urls() {
        for s in [
            "example.com",
            "ftp://x/",
            "ws://",
            "ws://:80/",
            "ws://h:0/",
            "ws://h:65536/",
            "ws://h:x/",
            "ws://h/#frag",
            "ws://h/a b",
            "ws://[::1/",
            "ws://[zz]/",
            "ws://h^st/",
            "tcp://h",
        ] {
            assert!(
                matches!(Url::parse(s), Err(Error::InvalidUrl(_))),
                "{s} should fail"
            );
        }
    }

    #[test]
    fn joins_redirect_locations() {
        let base = p("ws://u:p@h:81/a/b/c?q=1");
        assert_eq!(base.join("/x?y").unwrap().to_string(), "ws://h:81/x?y");
        assert_eq!(base.join("d").unwrap().target(), "/a/b/d");
        assert_eq!(base.join("../d").unwrap().target(), "/a/d");
        assert_eq!(base.join("./").unwrap().target(), "/a/b/");
        assert_eq!(base.join("?z=2").unwrap().target(), "/a/b/c?z=2");
        assert_eq!(base.join("/x").unwrap().credentials(), Some(("u", "p")));
        let other = base.join("wss://other:444/s").unwrap();
        assert_eq!(other.to_string(), "wss://other:444/s");
        assert_eq!(other.credentials(), None);
        let https = base.join("https://other/s").unwrap();
        assert_eq!((https.scheme(), https.port()), (Scheme::Wss, 443));
        let sr = base.join("//h:81/z").unwrap();
        assert_eq!(sr.to_string(), "ws://h:81/z");
        assert_eq!(sr.credentials(), Some(("u", "p")));
        assert!(base.join("/a#b").is_err());
    }

    #[test]
    fn query_params_are_encoded() {
        let u = p("ws://h/p").with_query_param("token", "a b&c");
        assert_eq!(u.target(), "/p?token=a%20b%26c");
        let u = p("ws://h/p?x=1").with_query_param("t", "v");
        assert_eq!(u.target(), "/p?x=1&t=v");
    }
}
