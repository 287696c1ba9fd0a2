//! The crate's error type.

/// What can go wrong when configuring or starting the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy settings are invalid.
    #[error("invalid proxy configuration: {0}")]
    Config(String),
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
