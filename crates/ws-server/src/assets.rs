//! The built-in test page and JavaScript client (the seed's `Options.HTMLFiles` and
//! `Options.JavascriptFiles`), embedded in the library.
//!
//! With [`crate::ServerConfig::html_files`] the server answers `GET`/`HEAD` on [`PAGE_PATHS`]
//! with [`crate::ServerConfig::test_page`] (by default [`TEST_PAGE_HTML`]); with
//! [`crate::ServerConfig::javascript_files`] it answers [`SCRIPT_PATHS`] with [`WSKIT_JS`].
//! Files of [`crate::ServerConfig::document_root`] win over both; both win over
//! [`crate::Handler::on_http`].

/// The test page: connect, send, close, state, server-sent events and an upload form. It
/// loads the client from `/wskit.js`, so it needs [`crate::ServerConfig::javascript_files`]
/// (or a `wskit.js` of its own in the document root).
pub const TEST_PAGE_HTML: &str = include_str!("../assets/index.html");

/// The JavaScript client: `WskitClient`, and the seed's `sgcWebSocket(url, protocol,
/// transport)` API with `sgcWSStreamRead` / `sgcWSStreamWrite`.
pub const WSKIT_JS: &str = include_str!("../assets/wskit.js");

/// Where the test page is served: `/` and the seed's `/sgcWebSockets.html`.
pub const PAGE_PATHS: [&str; 2] = ["/", "/sgcWebSockets.html"];

/// Where the client is served: `/wskit.js` and the seed's `/sgcWebSockets.js`.
pub const SCRIPT_PATHS: [&str; 2] = ["/wskit.js", "/sgcWebSockets.js"];
