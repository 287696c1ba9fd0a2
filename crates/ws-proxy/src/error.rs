//! The crate's error type.

/// What can go wrong when configuring or starting the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting of [`crate::ProxyConfig`] or [`crate::HttpUpstream`] breaks its rule.
    #[error("invalid proxy configuration: {field} {rule}")]
    Config {
        /// The setting (or settings) at fault.
        field: &'static str,
        /// What it must be, or what is missing.
        rule: &'static str,
    },
    /// A setting's value breaks its rule.
    #[error("invalid proxy configuration: {field} {value:?} {rule}")]
    ConfigValue {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
    /// A target ([`crate::Target::parse`]) that cannot be used.
    #[error("invalid target {input:?}: {reason}")]
    InvalidTarget {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `ws://` or `wss://` target that is not a usable WebSocket URL.
    #[error("invalid target {input:?}: {source}")]
    InvalidTargetUrl {
        /// The text given.
        input: String,
        /// Why the URL was refused.
        #[source]
        source: ws_client::Error,
    },
    /// An HTTP upstream ([`crate::HttpUpstream::parse`]) that cannot be used.
    #[error("invalid HTTP upstream {input:?}: {reason}")]
    InvalidHttpUpstream {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An HTTP upstream URL that does not parse.
    #[error("invalid HTTP upstream {input:?}: {source}")]
    InvalidHttpUpstreamUrl {
        /// The text given.
        input: String,
        /// Why the URL was refused.
        #[source]
        source: ws_server::ws_http::Error,
    },
    /// A PROXY protocol version other than v1 and v2.
    #[error("PROXY protocol version: expected v1 or v2, got {input:?}")]
    InvalidProxyProtocol {
        /// The text given.
        input: String,
    },
    /// The TLS server name of an `https://` upstream is neither a DNS name nor an IP address.
    #[error("HTTP upstream TLS server name {name:?} is neither a DNS name nor an IP address")]
    InvalidServerName {
        /// The name.
        name: String,
    },
    /// The WebSocket server refused its configuration or could not bind.
    #[error(transparent)]
    Server(#[from] ws_server::Error),
    /// The upstream WebSocket client settings are invalid.
    #[error("upstream client: {0}")]
    Client(#[from] ws_client::Error),
    /// The backend TLS settings could not be turned into a TLS configuration.
    #[error("backend TLS: {0}")]
    Tls(#[from] ws_tls::Error),
    /// The token file could not be read.
    #[error("token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The former name of [`Error`].
#[deprecated(note = "renamed to ws_proxy::Error")]
pub type ProxyError = Error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_say_what_to_fix() {
        let e = crate::Target::parse("tcp://host").unwrap_err();
        assert!(
            matches!(&e, Error::InvalidTarget { input, reason: "missing port" } if input == "tcp://host"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "invalid target \"tcp://host\": missing port");
        assert!(matches!(
            crate::Target::parse("ws://a b"),
            Err(Error::InvalidTargetUrl { .. })
        ));
        assert!(matches!(
            crate::ProxyProtocol::parse("v3"),
            Err(Error::InvalidProxyProtocol { input }) if input == "v3"
        ));
        let e = crate::HttpUpstream::parse("ftp://x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid HTTP upstream \"ftp://x\": expected http:// or https://"
        );
        let e = crate::ProxyConfig::default().validate().unwrap_err();
        assert!(
            matches!(
                e,
                Error::Config {
                    field: "upstream",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
