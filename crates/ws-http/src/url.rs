//! WebSocket URLs (RFC 6455 section 3): `ws://host[:port]/path?query` and `wss://...`.

use std::fmt;

use crate::{Error, error::UrlError};

/// A parsed `ws`/`wss` URL (`http`/`https` are accepted as synonyms, as in the WHATWG
/// WebSocket API).
///
/// ```
/// let url = ws_http::WsUrl::parse("wss://[::1]:8443/chat?room=1")?;
/// assert!(url.is_secure());
/// assert_eq!((url.host(), url.port(), url.target()), ("::1", 8443, "/chat?room=1"));
/// assert_eq!(url.host_header(), "[::1]:8443");
/// let next = url.join("/elsewhere")?; // a redirect's Location
/// assert_eq!(next.to_string(), "wss://[::1]:8443/elsewhere");
/// # Ok::<(), ws_http::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WsUrl {
    secure: bool,
    host: String,
    port: u16,
    target: String,
}

impl WsUrl {
    /// Parses an absolute URL.
    ///
    /// # Errors
    /// [`Error::Url`]: an unknown scheme, a missing or invalid host (user info included), an
    /// invalid port, a fragment, spaces or controls in the path, or a relative reference.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(UrlError::Relative.into());
        };
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ if scheme.is_empty() || scheme.contains('/') => return Err(UrlError::Relative.into()),
            _ => return Err(UrlError::Scheme.into()),
        };
        if rest.contains('#') {
            return Err(UrlError::Fragment.into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let (host, port) = parse_authority(authority, if secure { 443 } else { 80 })?;
        Ok(Self {
            secure,
            host,
            port,
            target: check_target(target)?,
        })
    }

    /// Resolves a redirect's `Location` against this URL: an absolute URL, a scheme-relative
    /// `//host/path` or an absolute path `/path`.
    ///
    /// # Errors
    /// As [`WsUrl::parse`]; a relative path (`other/page`) is [`UrlError::Relative`].
    pub fn join(&self, location: &str) -> Result<Self, Error> {
        let location = location.trim();
        if let Some(rest) = location.strip_prefix("//") {
            return Self::parse(&format!("{}://{rest}", self.scheme()));
        }
        if location.starts_with('/') {
            if location.contains('#') {
                return Err(UrlError::Fragment.into());
            }
            return Ok(Self {
                target: check_target(location)?,
                ..self.clone()
            });
        }
        Self::parse(location)
    }

    /// `wss` (TLS) or `ws`.
    #[must_use]
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `"wss"` or `"ws"`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.secure { "wss" } else { "ws" }
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

    /// The `Host` header value: the host (bracketed for IPv6) and the port unless it is the
    /// scheme's default.
    #[must_use]
    pub fn host_header(&self) -> String {
        host_header(&self.host, self.port, self.secure)
    }
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{}://{host}:{}{}", self.scheme(), self.port, self.target)
    }
}

fn parse_authority(authority: &str, default_port: u16) -> Result<(String, u16), Error> {
    if authority.contains('@') {
        return Err(UrlError::Host.into());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::Host)?;
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
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
        None => default_port,
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
        assert_eq!(WsUrl::parse("https://h:1/").unwrap().host_header(), "h:1");
        for (bad, e) in [
            ("ftp://h/", UrlError::Scheme),
            ("ws:///p", UrlError::Host),
            ("ws://u@h/", UrlError::Host),
            ("ws://h:0/", UrlError::Port),
            ("ws://h:65536/", UrlError::Port),
            ("ws://h:/", UrlError::Port),
            ("ws://[::1/", UrlError::Host),
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
    fn joins() {
        let u = WsUrl::parse("wss://a:9/x").unwrap();
        assert_eq!(u.join("//b/y").unwrap().to_string(), "wss://b:443/y");
        assert_eq!(u.join("ws://c/").unwrap().to_string(), "ws://c:80/");
        assert!(u.join("rel").is_err());
    }
}
