//! What [`crate::connect`] accepts as a URL. The URL type itself is ws-http's
//! [`WsUrl`], parsed with [`WsUrl::parse_client`] (`ws://`, `wss://`, their `http(s)://`
//! synonyms, and `tcp://host:port`; `user:password@` is kept for Basic authentication).

use ws_http::WsUrl;

use crate::error::Error;

/// Parses `input` as a client URL, or says what is wrong with it.
pub(crate) fn parse(input: &str) -> Result<WsUrl, Error> {
    WsUrl::parse_client(input).map_err(|e| Error::InvalidUrl {
        url: input.to_owned(),
        source: match e {
            ws_http::Error::Url(u) => u,
            // parse_client only fails with URL errors.
            _ => ws_http::UrlError::Host,
        },
    })
}

/// What [`crate::connect`] accepts as a URL: a [`WsUrl`] or text.
pub trait IntoUrl {
    /// Converts to a [`WsUrl`].
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when it does not parse.
    fn into_url(self) -> Result<WsUrl, Error>;
}

impl IntoUrl for WsUrl {
    fn into_url(self) -> Result<WsUrl, Error> {
        Ok(self)
    }
}

impl IntoUrl for &WsUrl {
    fn into_url(self) -> Result<WsUrl, Error> {
        Ok(self.clone())
    }
}

impl IntoUrl for &str {
    fn into_url(self) -> Result<WsUrl, Error> {
        parse(self)
    }
}

impl IntoUrl for String {
    fn into_url(self) -> Result<WsUrl, Error> {
        parse(&self)
    }
}

impl IntoUrl for &String {
    fn into_url(self) -> Result<WsUrl, Error> {
        parse(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_parses_as_a_client_url_and_errors_name_the_input() {
        let u = "tcp://h:7000".into_url().unwrap();
        assert!(u.is_tcp());
        let u = "ws://u:p@h/x".to_owned().into_url().unwrap();
        assert_eq!(u.credentials(), Some(("u", "p")));
        for bad in [
            "example.com",
            "ftp://x/",
            "ws://h/#f",
            "tcp://h",
            "ws://h^st/",
        ] {
            match bad.into_url() {
                Err(Error::InvalidUrl { url, .. }) => assert_eq!(url, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
