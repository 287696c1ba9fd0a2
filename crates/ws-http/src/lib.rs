//! Sans-IO HTTP/1.1 codec and the RFC 6455 WebSocket opening handshake.
//!
//! No sockets, no async runtime, no clock reads, no `std::io` traits: parsers take byte slices
//! (or the caller's receive buffer) and builders append to a caller-owned [`bytes::BytesMut`].
//! Every limit in [`Limits`] is checked before bytes are copied or memory is reserved, and no
//! input makes any function panic.
//!
//! ```text
//!  bytes from the peer                                      bytes to the peer
//!        |                                                          ^
//!        v                                                          |
//!  looks_like_http(prefix) -- false --> plain TCP fallback          |
//!        | true                                                     |
//!  parse_request / parse_response (limits, then httparse)           |
//!        | Parsed::Partial: read more    Parsed::Complete(head, len)|
//!        v                                                          |
//!  Request::body_kind -> BodyDecoder::decode(&mut rx) -> Data | End |
//!        |                                                          |
//!  UpgradeRequest::from_request --> choose_protocol,                |
//!        |                          negotiate_deflate (ws-frame) -> write_accept / write_rejection
//!        | Err(e): e.status(), e.write_response(out) -------------> Error::write_response
//!                                                                   |
//!  ClientHandshake::new ------------------------------------------> upgrade request
//!  ClientHandshake::handle_response(&mut rx) -> Upgraded | Err(Rejected(status, headers, body))
//!  write_response / write_response_head / ChunkedEncoder ---------> ordinary HTTP responses
//! ```
//!
//! # Example: both sides of the handshake
//!
//! ```
//! use bytes::BytesMut;
//! use ws_frame::deflate::DeflateConfig;
//! use ws_http::{
//!     Accept, ClientConfig, ClientHandshake, Limits, Parsed, UpgradeRequest, parse_request,
//! };
//!
//! // Client: write the upgrade request.
//! let mut config = ClientConfig::default();
//! config.protocols = vec!["chat".into()];
//! config.deflate = Some(DeflateConfig::default());
//! let mut to_server = BytesMut::new();
//! let mut client = ClientHandshake::new(&config, "example.com", "/chat?room=1", &mut to_server)?;
//!
//! // Server: parse and validate it, negotiate, answer 101.
//! let Parsed::Complete(request, len) = parse_request(&to_server, &Limits::default())? else {
//!     panic!("incomplete request");
//! };
//! assert_eq!((request.path(), len), ("/chat", to_server.len()));
//! let upgrade = UpgradeRequest::from_request(&request)?;
//! let accept = Accept::new()
//!     .protocol(upgrade.choose_protocol(&["chat"]))
//!     .deflate(upgrade.negotiate_deflate(&DeflateConfig::default()));
//! let mut to_client = BytesMut::new();
//! upgrade.write_accept(&accept, &mut to_client)?;
//! to_client.extend_from_slice(b"\x81\x02hi"); // the first frame may follow at once
//!
//! // Client: check the answer; the frame bytes stay in the buffer.
//! let upgraded = client.handle_response(&mut to_client)?.expect("complete response");
//! assert_eq!(upgraded.protocol(), Some("chat"));
//! assert_eq!(upgraded.deflate(), accept.deflate_params());
//! assert_eq!(&to_client[..], b"\x81\x02hi");
//! # Ok::<(), ws_http::Error>(())
//! ```
//!
//! A server that refuses answers with [`write_rejection`] (or [`Error::write_response`] for
//! the errors this crate detects, e.g. 426 with `Sec-WebSocket-Version: 13`); the client then
//! gets [`Error::Rejected`] with the status, headers and a bounded body.
//!
//! Request bodies in `multipart/form-data` go through [`multipart::Parser`]: fed in any pieces,
//! it yields each part's headers and content chunks within the multipart limits of [`Limits`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod encode;
mod error;
mod extension;
mod handshake;
mod head;
mod headers;
mod limits;
mod message;
pub mod multipart;
mod rejection;
mod scan;
mod url;

#[doc(hidden)]
pub mod fuzzing;

pub use body::{BodyDecoder, BodyEvent, ChunkedEncoder};
pub use encode::{reason_phrase, write_request_head, write_response, write_response_head};
pub use error::{
    ChunkedError, ConfigError, Error, FramingError, HandshakeError, Malformed, MultipartError,
    UrlError,
};
pub use extension::{Extension, parse_extensions};
pub use handshake::{
    Accept, ClientConfig, ClientHandshake, GUID, UpgradeRequest, Upgraded, accept_key,
    write_rejection,
};
pub use head::{BodyKind, Parsed, Request, Response, Version};
pub use headers::Headers;
pub use limits::Limits;
pub use message::{looks_like_http, parse_request, parse_response, percent_decode};
pub use rejection::Rejection;
pub use url::{UrlScheme, WsUrl, host_header};
