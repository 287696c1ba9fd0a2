//! What the HTTP forwarding hooks see and change: the request as it will go upstream
//! ([`ForwardRequest`]), and its outcome ([`Forwarded`] or [`ForwardError`]).

use std::fmt;

use ws_server::Request;

use crate::upstream::HttpUpstream;

/// A plain HTTP request as it will be forwarded; [`crate::Hooks::on_before_forward`] may
/// change any field. The hop-by-hop fields, `Content-Length`, `Expect` and the
/// `X-Forwarded-*` / `Forwarded` fields are handled by the forwarder afterwards (see the crate
/// docs, "HTTP forwarding"), whatever the hook did to them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardRequest {
    /// The method. Default: the client's.
    pub method: String,
    /// The path, starting with `/` (the upstream's base is put before it). Default: the
    /// client's, as it sent it (not percent-decoded).
    pub path: String,
    /// The query without `?`. Default: the client's.
    pub query: Option<String>,
    /// The `Host` sent upstream; `None` follows [`HttpUpstream::host_header`]. Default:
    /// `None`.
    pub host: Option<String>,
    /// The `Origin` sent upstream (`None`: none). Default: the client's.
    pub origin: Option<String>,
    /// The other header fields, in order (neither `Host` nor `Origin`). Default: the
    /// client's.
    pub headers: Vec<(String, String)>,
    /// Where the request goes. Default: the balanced backend picked for it, else
    /// [`crate::ProxyConfig::http_upstream`]; `None` answers 404.
    pub upstream: Option<HttpUpstream>,
}

impl ForwardRequest {
    /// The client's request, to go to `upstream`.
    #[must_use]
    pub fn from_request(req: &Request, upstream: Option<HttpUpstream>) -> Self {
        let (path, query) = split_target(req.url());
        let mut origin = None;
        let mut headers = Vec::new();
        for (name, value) in req.headers().iter() {
            if name.eq_ignore_ascii_case("host") {
                continue;
            }
            if name.eq_ignore_ascii_case("origin") {
                origin.get_or_insert_with(|| value.to_owned());
                continue;
            }
            headers.push((name.to_owned(), value.to_owned()));
        }
        Self {
            method: req.method().to_owned(),
            path,
            query,
            host: None,
            origin,
            headers,
            upstream,
        }
    }

    /// The first value of header field `name` (any case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every field `name` with one `name: value` (at the place of the first).
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.headers[i].1 = value;
                let mut k = 0;
                self.headers.retain(|(n, _)| {
                    let keep = k == i || !n.eq_ignore_ascii_case(name);
                    k += 1;
                    keep
                });
            }
            None => self.headers.push((name.to_owned(), value)),
        }
    }

    /// Removes every field `name`; false when there was none.
    pub fn remove_header(&mut self, name: &str) -> bool {
        let before = self.headers.len();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.len() != before
    }

    /// Sets path and query from a request target (`/a/b?x=1`).
    pub fn set_url(&mut self, target: &str) {
        let (path, query) = split_target(target);
        self.path = path;
        self.query = query;
    }

    /// The request target: path, and `?query` when there is one.
    #[must_use]
    pub fn url(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Path and query of a request target; an absolute-form target (`http://h/p?q`) keeps its
/// path and query, `*` stays as it is.
fn split_target(target: &str) -> (String, Option<String>) {
    let rest = match target.split_once("://") {
        Some((_, r)) => match r.find(['/', '?']) {
            Some(i) if r[i..].starts_with('/') => &r[i..],
            Some(i) => return ("/".to_owned(), Some(r[i + 1..].to_owned())),
            None => "/",
        },
        None => target,
    };
    match rest.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (rest.to_owned(), None),
    }
}

/// The upstream's answer to a forwarded request, as [`crate::Hooks::on_after_forward`] sees
/// it (its body is still being streamed to the client).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Forwarded {
    /// Where the request went.
    pub upstream: HttpUpstream,
    /// The upstream's status.
    pub status: u16,
    /// The response's header fields as relayed to the client.
    pub headers: Vec<(String, String)>,
}

/// Why a request was not forwarded, or got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardErrorKind {
    /// No upstream: none configured, none picked by the hook, or no balanced backend usable
    /// (the client gets 404, as without HTTP forwarding); or an upstream the hook picked
    /// that cannot be used (502).
    NoUpstream,
    /// The upstream could not be reached (502).
    Connect,
    /// The upstream took too long (504).
    Timeout,
    /// The upstream's answer was broken or its connection failed (502).
    Upstream,
    /// The client's request body failed (413, 400 or 408).
    Body,
}

/// The error [`crate::Hooks::on_after_forward`] sees.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardError {
    /// What kind of failure.
    pub kind: ForwardErrorKind,
    /// The status the client gets.
    pub status: u16,
    /// The reason, as in the response body.
    pub message: String,
    /// Where the request was to go.
    pub upstream: Option<HttpUpstream>,
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ForwardError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_and_headers_edit() {
        assert_eq!(split_target("/a?b=1"), ("/a".into(), Some("b=1".into())));
        assert_eq!(split_target("/a"), ("/a".into(), None));
        assert_eq!(
            split_target("http://h:1/x/y?z"),
            ("/x/y".into(), Some("z".into()))
        );
        assert_eq!(split_target("http://h"), ("/".into(), None));
        let mut f = ForwardRequest {
            method: "GET".into(),
            path: "/".into(),
            query: None,
            host: None,
            origin: None,
            headers: vec![
                ("A".into(), "1".into()),
                ("b".into(), "2".into()),
                ("a".into(), "3".into()),
            ],
            upstream: None,
        };
        f.set_header("a", "9");
        assert_eq!(
            f.headers,
            [("A".to_owned(), "9".to_owned()), ("b".into(), "2".into())]
        );
        f.set_header("C", "x");
        assert_eq!(f.header("c"), Some("x"));
        assert!(f.remove_header("B"));
        assert!(!f.remove_header("B"));
        f.set_url("/p?q=1");
        assert_eq!((f.path.as_str(), f.url()), ("/p", "/p?q=1".to_owned()));
    }
}
