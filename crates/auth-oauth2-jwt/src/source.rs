//! Finding the token in a request: a pure function over its header fields and target, tried
//! in the configured order (the first place that has a token decides).

use ws_http::Headers;

use crate::config::Location;

/// A token found in a request, and where.
#[derive(Clone, PartialEq, Eq)]
pub struct Found {
    /// The token.
    pub token: String,
    /// Where it was.
    pub location: Location,
    /// For [`Location::Protocol`]: the whole `Sec-WebSocket-Protocol` entry carrying it.
    pub protocol_entry: Option<String>,
}

impl std::fmt::Debug for Found {
    /// The token is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("location", &self.location)
            .field("len", &self.token.len())
            .finish_non_exhaustive()
    }
}

fn header<'a>(headers: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers.get_all(name)
}

/// Percent-decodes a query component (`+` is a space). `None` for bad escapes or non-UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The first query parameter `name` of `target`, percent-decoded.
#[must_use]
pub fn query_param(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k).as_deref() == Some(name))
            .then(|| percent_decode(v))
            .flatten()
    })
}

/// The token of `headers` and `target` (path and query), from the first of `sources` that
/// has one. An `Authorization` field with another scheme than Bearer does not count.
#[must_use]
pub fn find_token(headers: &Headers, target: &str, sources: &[Location]) -> Option<Found> {
    for source in sources {
        let found = match source {
            Location::Header => header(headers, "authorization").find_map(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                let token = token.trim();
                (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
                    .then(|| (token.to_owned(), None))
            }),
            Location::Query(name) => query_param(target, name)
                .filter(|t| !t.is_empty())
                .map(|t| (t, None)),
            Location::Cookie(name) => header(headers, "cookie")
                .flat_map(|v| v.split(';'))
                .find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    let v = v.trim().trim_matches('"');
                    (k.trim() == name && !v.is_empty()).then(|| (v.to_owned(), None))
                }),
            Location::Protocol(prefix) => header(headers, "sec-websocket-protocol")
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .find_map(|entry| {
                    let token = entry.strip_prefix(prefix.as_str())?;
                    (!token.is_empty()).then(|| (token.to_owned(), Some(entry.to_owned())))
                }),
        };
        if let Some((token, protocol_entry)) = found {
            return Some(Found {
                token,
                location: source.clone(),
                protocol_entry,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    #[test]
    fn every_place_in_the_configured_order() {
        let headers = h(&[
            ("Authorization", "Bearer HTOKEN"),
            ("Cookie", "a=1; access_token=C"),
            ("Sec-WebSocket-Protocol", "chat, bearer.P"),
        ]);
        let target = "/ws?x=1&access_token=Q%2B";
        let all = Location::defaults();
        assert_eq!(find_token(&headers, target, &all).unwrap().token, "HTOKEN");
        let order = [Location::Protocol("bearer.".into()), Location::Header];
        let found = find_token(&headers, target, &order).unwrap();
        assert_eq!(
            (found.token.as_str(), found.protocol_entry.as_deref()),
            ("P", Some("bearer.P"))
        );
        let q = [Location::Query("access_token".into())];
        assert_eq!(find_token(&headers, target, &q).unwrap().token, "Q+");
        let c = [Location::Cookie("access_token".into())];
        assert_eq!(find_token(&headers, target, &c).unwrap().token, "C");
        // Basic credentials are not a bearer token; the next place is tried.
        let basic = h(&[("Authorization", "Basic YTpi")]);
        assert!(find_token(&basic, "/", &[Location::Header]).is_none());
        assert_eq!(
            find_token(&basic, "/?access_token=T", &all)
                .unwrap()
                .location,
            Location::Query("access_token".into())
        );
        assert!(!format!("{:?}", find_token(&headers, target, &all).unwrap()).contains("HTOKEN"));
    }
}
