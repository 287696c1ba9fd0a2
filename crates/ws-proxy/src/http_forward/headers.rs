//! Header rewriting: hop-by-hop fields, `Connection`-named fields, trailers that may be
//! forwarded, `Forwarded` values and the response head sent to the client.

use super::*;

// ---------------------------------------------------------------------------------------------
// Forwarding.
// ---------------------------------------------------------------------------------------------

/// Hop-by-hop fields (RFC 9110 section 7.6.1), never forwarded in either direction; the
/// fields named by `Connection` are dropped too. `Content-Length` and `Expect` are handled
/// by the proxy (the body is framed again; `100 Continue` is answered by ws-server).
/// `Trailer` is end-to-end and goes on only with the trailers (see the module docs).
pub(super) const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Fields that must not be forwarded in a trailer section (RFC 9110 section 6.5.1), besides
/// the hop-by-hop ones: framing, routing, request modifiers, authentication, response
/// control and payload processing.
pub(super) const NOT_IN_TRAILERS: [&str; 31] = [
    // Message framing.
    "content-length",
    "transfer-encoding",
    // Routing.
    "host",
    // Request modifiers: controls and conditionals (RFC 9110 sections 7.6.2, 10.1, 13).
    "te",
    "expect",
    "range",
    "cache-control",
    "pragma",
    "max-forwards",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    // Authentication.
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    // Response control data.
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "warning",
    // Payload processing (and the announcement itself).
    "content-encoding",
    "content-type",
    "content-range",
    "trailer",
];

/// Whether a request with `method` may be repeated (RFC 9110 section 9.2.2).
pub(super) fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// The field names listed in the `Connection` fields among `fields`, lowercase.
pub(super) fn connection_named<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<String> {
    fields
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether a trailer field called `name` goes on to the next hop: not hop-by-hop, not named
/// by the head's `Connection` (`named`), and allowed in trailers ([`NOT_IN_TRAILERS`]).
pub(super) fn trailer_allowed(name: &str, named: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    !HOP_BY_HOP.contains(&lower.as_str())
        && !NOT_IN_TRAILERS.contains(&lower.as_str())
        && !named.contains(&lower)
}

/// The trailer fields to forward, in their order.
pub(super) fn forward_trailers(
    trailers: &ws_http::Headers,
    named: &[String],
) -> Vec<(String, String)> {
    trailers
        .iter()
        .filter(|(n, _)| trailer_allowed(n, named))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// The `Trailer` field for a message that goes on chunked: the names announced in `values`
/// that [`trailer_allowed`] lets through, each once; `None` when none is left.
pub(super) fn trailer_announcement<'a>(
    values: impl IntoIterator<Item = &'a str>,
    named: &[String],
) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for name in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
        if !name.is_empty()
            && trailer_allowed(name, named)
            && !names.iter().any(|n| n.eq_ignore_ascii_case(name))
        {
            names.push(name);
        }
    }
    (!names.is_empty()).then(|| names.join(", "))
}

/// Quotes a `Forwarded` parameter value unless it is a token (RFC 7239 section 4).
pub(super) fn forwarded_value(v: &str) -> String {
    let token = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `Content-Length` of a response head, when it is one valid number.
pub(super) fn content_length(resp: &ws_http::Response) -> Option<u64> {
    let mut values = resp
        .headers()
        .get_all("content-length")
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().parse::<u64>().ok());
    let first = values.next()??;
    values.all(|v| v == Some(first)).then_some(first)
}

/// The response fields to relay: everything but hop-by-hop fields (and the framing, which
/// ws-server writes itself); `Trailer` (reduced to the names forwarded) only when the
/// response goes on chunked (`chunked_out`).
pub(super) fn response_headers(
    resp: &ws_http::Response,
    chunked_out: bool,
) -> Vec<(String, String)> {
    let named = connection_named(resp.headers().iter());
    let mut fields: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(n, _)| {
            let lower = n.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&lower.as_str())
                && !named.contains(&lower)
                && lower != "content-length"
                && lower != "trailer"
        })
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    if chunked_out {
        if let Some(names) = trailer_announcement(resp.headers().get_all("trailer"), &named) {
            fields.push(("Trailer".to_owned(), names));
        }
    }
    fields
}
