//! The RFC 6455 section 4 opening handshake, both sides, with subprotocol and RFC 7692
//! permessage-deflate negotiation.

mod os_random;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};
use ws_frame::deflate::{DeflateConfig, DeflateParams, EXTENSION_NAME};

use crate::{
    BodyDecoder, BodyEvent, BodyKind, Error, Extension, Limits, Parsed, Request, Response, Version,
    encode::{write_request_head, write_response, write_response_head},
    error::{ConfigError, HandshakeError},
    extension::{extensions_of, protocols_of},
    headers::{is_field_value, is_token},
    parse_response,
    rejection::Rejection,
    url::WsUrl,
};

/// The GUID RFC 6455 section 1.3 appends to the key.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Header fields the handshake writes itself; extra headers may not set them.
const RESERVED: [&str; 10] = [
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2):
/// base64(SHA-1(key + GUID)).
///
/// ```
/// assert_eq!(ws_http::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
#[must_use]
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

fn check_extra(headers: &[(String, String)]) -> Result<(), Error> {
    for (name, value) in headers {
        if let Some(r) = RESERVED.iter().find(|r| r.eq_ignore_ascii_case(name)) {
            return Err(ConfigError::ReservedHeader(r).into());
        }
        if !is_token(name) || !is_field_value(value) {
            return Err(Error::InvalidField("header"));
        }
    }
    Ok(())
}

fn check_protocols(protocols: &[String]) -> Result<(), Error> {
    for (i, p) in protocols.iter().enumerate() {
        if !is_token(p) || protocols[..i].contains(p) {
            return Err(ConfigError::InvalidProtocol.into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// What a client asks for in its upgrade request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `Origin` to send (browsers always do; servers may check it). Default: `None`.
    pub origin: Option<String>,
    /// Subprotocols to offer, most preferred first; the server picks at most one. Default:
    /// empty (no `Sec-WebSocket-Protocol`).
    pub protocols: Vec<String>,
    /// permessage-deflate preferences; `Some` offers the extension (first, before
    /// [`ClientConfig::extensions`]). Default: `None`.
    pub deflate: Option<DeflateConfig>,
    /// Other extension offers, sent as they are; a server acceptance of one of them comes back
    /// in [`Upgraded::extensions`]. Default: empty.
    pub extensions: Vec<Extension>,
    /// Extra header fields (`Authorization`, `Cookie`, `User-Agent`, ...). The fields the
    /// handshake writes itself are refused. Default: empty.
    pub headers: Vec<(String, String)>,
    /// Limits for parsing the server's answer; [`Limits::max_rejection_body`] bounds the body
    /// kept from a non-101 answer. Default: [`Limits::default`].
    pub limits: Limits,
}

impl ClientConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid limits, a subprotocol that is not a token or is listed
    /// twice, or an extra header the handshake sets itself; [`Error::InvalidField`] for an
    /// extra header or `Origin` that cannot be written, or an extension that is not made of
    /// tokens.
    pub fn validate(&self) -> Result<(), Error> {
        self.limits.validate()?;
        check_protocols(&self.protocols)?;
        check_extra(&self.headers)?;
        if self.origin.as_deref().is_some_and(|o| !is_field_value(o)) {
            return Err(Error::InvalidField("Origin"));
        }
        if !self.extensions.iter().all(Extension::is_valid) {
            return Err(Error::InvalidField("extension"));
        }
        Ok(())
    }
}

#[derive(Debug)]
enum ClientState {
    /// Waiting for the response head.
    Head,
    /// A non-101 answer: collecting its (bounded) body for the [`Rejection`].
    RejectionBody {
        response: Box<Response>,
        decoder: BodyDecoder,
        body: BytesMut,
    },
    /// The handshake ended (upgraded or failed).
    Done,
}

/// The client side of the opening handshake: writes the upgrade request, then checks the
/// server's answer.
///
/// Call order: [`ClientHandshake::new`] (the request is appended to `out`; send it), then
/// [`ClientHandshake::handle_response`] with the receive buffer after each read until it
/// returns `Ok(Some(upgraded))` or an error; call [`ClientHandshake::handle_eof`] if the
/// transport ends first. On success the bytes after the response head are still in the
/// buffer: they are the first WebSocket frames.
#[derive(Debug)]
pub struct ClientHandshake {
    key: String,
    accept: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
    extensions: Vec<Extension>,
    limits: Limits,
    state: ClientState,
}

impl ClientHandshake {
    /// Validates `config`, draws a random 16-byte key from the operating system and appends
    /// the upgrade request for `target` (origin-form: `/path?query`) on `host` (the `Host`
    /// value, port included when not the default) to `out`. The key is the crate's one read of
    /// entropy, kept in its own module; [`ClientHandshake::with_key`] is the sans-IO
    /// constructor that takes the key from the caller.
    ///
    /// # Errors
    /// As [`ClientConfig::validate`]; [`Error::InvalidField`] for an invalid host or target;
    /// [`Error::Random`] when the OS has no random bytes.
    pub fn new(
        config: &ClientConfig,
        host: &str,
        target: &str,
        out: &mut BytesMut,
    ) -> Result<Self, Error> {
        Self::with_key(config, host, target, os_random::handshake_key()?, out)
    }

    /// [`ClientHandshake::new`] for a parsed URL.
    ///
    /// # Errors
    /// As [`ClientHandshake::new`].
    pub fn for_url(config: &ClientConfig, url: &WsUrl, out: &mut BytesMut) -> Result<Self, Error> {
        Self::new(config, &url.host_header(), url.target(), out)
    }

    /// [`ClientHandshake::new`] with the key nonce from the caller: runtimes that own their
    /// randomness, tests and reproducible traces. RFC 6455 requires a fresh random nonce per
    /// connection: draw it from a strong random source (or use [`ClientHandshake::new`]).
    ///
    /// # Errors
    /// As [`ClientHandshake::new`], except [`Error::Random`].
    pub fn with_key(
        config: &ClientConfig,
        host: &str,
        target: &str,
        key: [u8; 16],
        out: &mut BytesMut,
    ) -> Result<Self, Error> {
        config.validate()?;
        if host.is_empty() || !is_field_value(host) || host.contains([' ', '\t']) {
            return Err(Error::InvalidField("host"));
        }
        if !target.starts_with('/') {
            return Err(Error::InvalidField("request target"));
        }
        let key = STANDARD.encode(key);
        let protocols = config.protocols.join(", ");
        let mut offers: Vec<String> = Vec::new();
        if let Some(d) = &config.deflate {
            offers.push(d.client_offer());
        }
        offers.extend(config.extensions.iter().map(ToString::to_string));
        let offers = offers.join(", ");
        let mut fields: Vec<(&str, &str)> = vec![
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", &key),
            ("Sec-WebSocket-Version", "13"),
        ];
        if let Some(origin) = &config.origin {
            fields.push(("Origin", origin));
        }
        if !protocols.is_empty() {
            fields.push(("Sec-WebSocket-Protocol", &protocols));
        }
        if !offers.is_empty() {
            fields.push(("Sec-WebSocket-Extensions", &offers));
        }
        fields.extend(config.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        write_request_head(out, "GET", target, &fields)?;
        Ok(Self {
            accept: accept_key(&key),
            key,
            protocols: config.protocols.clone(),
            deflate: config.deflate.clone(),
            extensions: config.extensions.clone(),
            limits: config.limits.clone(),
            state: ClientState::Head,
        })
    }

    /// The `Sec-WebSocket-Key` sent.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `Sec-WebSocket-Accept` the server must answer with.
    #[must_use]
    pub fn expected_accept(&self) -> &str {
        &self.accept
    }

    /// Reads the server's answer from the front of `rx`. `Ok(None)`: read more into `rx` and
    /// call again. `Ok(Some(_))`: upgraded; the response head was removed from `rx` and what
    /// remains is WebSocket data.
    ///
    /// # Errors
    /// [`Error::Rejected`] for a non-101 answer, once its body is complete (or
    /// [`Limits::max_rejection_body`] bytes of it arrived); [`Error::Handshake`] for a 101 that
    /// fails RFC 6455 section 4.1 or RFC 7692 (wrong accept key, subprotocol or extension not
    /// offered, bad deflate parameters); head parsing errors. After an error or success, later
    /// calls return `Ok(None)`.
    pub fn handle_response(&mut self, rx: &mut BytesMut) -> Result<Option<Upgraded>, Error> {
        loop {
            match &mut self.state {
                ClientState::Done => return Ok(None),
                ClientState::Head => {
                    let parsed = parse_response(rx, &self.limits);
                    let (response, len) = match parsed {
                        Ok(Parsed::Partial) => return Ok(None),
                        Ok(Parsed::Complete(r, len)) => (r, len),
                        Err(e) => {
                            self.state = ClientState::Done;
                            return Err(e);
                        }
                    };
                    let _ = rx.split_to(len);
                    if response.status() == 101 {
                        self.state = ClientState::Done;
                        return self.check_response(&response).map(Some);
                    }
                    if (100..200).contains(&response.status()) {
                        // An interim answer (100 Continue, 103 Early Hints): the final one follows.
                        continue;
                    }
                    // The body is kept only up to max_rejection_body; collection stops there, so
                    // max_body does not apply. Unusable framing: keep no body.
                    let kind = response.body_kind("GET").unwrap_or(BodyKind::Length(0));
                    self.state = ClientState::RejectionBody {
                        response: Box::new(response),
                        decoder: BodyDecoder::unbounded(kind, &self.limits),
                        body: BytesMut::new(),
                    };
                }
                ClientState::RejectionBody { decoder, body, .. } => {
                    let max = self.limits.max_rejection_body;
                    let truncated = loop {
                        match decoder.decode(rx) {
                            Ok(Some(BodyEvent::Data(d))) => {
                                let room = max.saturating_sub(body.len());
                                if d.len() > room {
                                    body.extend_from_slice(&d[..room]);
                                    break true;
                                }
                                body.extend_from_slice(&d);
                            }
                            Ok(Some(BodyEvent::End { .. })) => break false,
                            Ok(None) => return Ok(None),
                            // A broken error page: keep what arrived.
                            Err(_) => break true,
                        }
                    };
                    let ClientState::RejectionBody { response, body, .. } =
                        std::mem::replace(&mut self.state, ClientState::Done)
                    else {
                        return Ok(None);
                    };
                    return Err(Rejection {
                        response: *response,
                        body: body.freeze(),
                        truncated,
                    }
                    .into());
                }
            }
        }
    }

    /// The transport closed. Returns the error to report: the [`Rejection`] when a non-101
    /// answer's body was being read (a close-delimited body ends here), otherwise
    /// [`Error::IncompleteBody`] (no complete answer arrived).
    pub fn handle_eof(&mut self) -> Error {
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::RejectionBody {
                response,
                mut decoder,
                body,
            } => {
                let truncated = decoder.finish().is_err();
                Rejection {
                    response: *response,
                    body: body.freeze(),
                    truncated,
                }
                .into()
            }
            ClientState::Head | ClientState::Done => Error::IncompleteBody,
        }
    }

    /// Checks a 101 response head against what this handshake offered (RFC 6455 section 4.1,
    /// RFC 7692 section 5), for callers that parse the head themselves.
    ///
    /// # Errors
    /// [`Error::Rejected`] (without body) for a status other than 101, [`Error::Handshake`]
    /// for a 101 that does not fit the request.
    pub fn check_response(&self, response: &Response) -> Result<Upgraded, Error> {
        if response.status() != 101 {
            return Err(Rejection {
                response: response.clone(),
                body: Bytes::new(),
                truncated: false,
            }
            .into());
        }
        let h = response.headers();
        if !h.has_token("upgrade", "websocket") {
            return Err(HandshakeError::ResponseMissingUpgrade.into());
        }
        if !h.has_token("connection", "upgrade") {
            return Err(HandshakeError::ResponseMissingConnection.into());
        }
        let mut accepts = h.get_all("sec-websocket-accept");
        if accepts.next() != Some(self.accept.as_str()) || accepts.next().is_some() {
            return Err(HandshakeError::AcceptMismatch.into());
        }
        let chosen = protocols_of(h)?;
        let protocol = match chosen.as_slice() {
            [] => None,
            [p] if self.protocols.contains(p) => Some(p.clone()),
            _ => return Err(HandshakeError::UnexpectedProtocol.into()),
        };
        let mut deflate = None;
        let mut others: Vec<Extension> = Vec::new();
        for ext in extensions_of(h)? {
            if ext.name().eq_ignore_ascii_case(EXTENSION_NAME) && self.deflate.is_some() {
                let Some(config) = self.deflate.as_ref().filter(|_| deflate.is_none()) else {
                    return Err(HandshakeError::UnexpectedExtension.into());
                };
                let params = config
                    .accept_response(&ext.param_list())
                    .map_err(|e| HandshakeError::Deflate(Box::new(e)))?;
                deflate = Some(params);
            } else if self
                .extensions
                .iter()
                .any(|o| o.name().eq_ignore_ascii_case(ext.name()))
                && !others
                    .iter()
                    .any(|o| o.name().eq_ignore_ascii_case(ext.name()))
            {
                others.push(ext);
            } else {
                return Err(HandshakeError::UnexpectedExtension.into());
            }
        }
        Ok(Upgraded {
            response: response.clone(),
            protocol,
            deflate,
            extensions: others,
        })
    }
}

/// A successful client handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgraded {
    response: Response,
    protocol: Option<String>,
    deflate: Option<DeflateParams>,
    extensions: Vec<Extension>,
}

impl Upgraded {
    /// The 101 response head (cookies, server name...).
    #[must_use]
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The subprotocol the server selected.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The negotiated permessage-deflate parameters (for `ws_frame::Config::deflate`).
    #[must_use]
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref()
    }

    /// Other extensions the server accepted among [`ClientConfig::extensions`].
    #[must_use]
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// A validated upgrade request (RFC 6455 section 4.2.1), with what the client offered.
///
/// ```
/// use bytes::BytesMut;
/// use ws_http::{Accept, Limits, Parsed, UpgradeRequest, parse_request};
///
/// let raw = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let Parsed::Complete(req, _) = parse_request(raw, &Limits::default())? else { panic!() };
/// let upgrade = UpgradeRequest::from_request(&req)?;
/// let protocol = upgrade.choose_protocol(&["superchat", "chat"]);
/// assert_eq!(protocol, Some("superchat"));
/// let mut out = BytesMut::new();
/// upgrade.write_accept(&Accept::new().protocol(protocol), &mut out)?;
/// assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
/// # Ok::<(), ws_http::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest {
    key: String,
    accept: String,
    origin: Option<String>,
    protocols: Vec<String>,
    extensions: Vec<Extension>,
}

impl UpgradeRequest {
    /// Validates `request` as a WebSocket upgrade.
    ///
    /// # Errors
    /// [`Error::Handshake`] with the detail (its [`Error::status`] and
    /// [`Error::write_response`] give the answer): not GET (405), not HTTP/1.1 (400), no
    /// `Upgrade: websocket` (426), no `Connection: upgrade` (400), `Sec-WebSocket-Version` not 13
    /// (426 with `Sec-WebSocket-Version: 13`), a key that is missing, repeated or not 16 bytes
    /// (400), a target that is not origin- or absolute-form, malformed protocol or extension
    /// lists (400).
    pub fn from_request(request: &Request) -> Result<Self, Error> {
        let h = request.headers();
        if request.method() != "GET" {
            return Err(HandshakeError::MethodNotGet.into());
        }
        if request.version() != Version::Http11 {
            return Err(HandshakeError::NotHttp11.into());
        }
        if !h.has_token("upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade.into());
        }
        if !h.has_token("connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade.into());
        }
        let mut versions = h.get_all("sec-websocket-version");
        if versions.next() != Some("13") || versions.next().is_some() {
            return Err(HandshakeError::UnsupportedVersion.into());
        }
        let mut keys = h.get_all("sec-websocket-key");
        let key = match (keys.next(), keys.next()) {
            (Some(k), None) if STANDARD.decode(k).is_ok_and(|d| d.len() == 16) => k.to_owned(),
            _ => return Err(HandshakeError::InvalidKey.into()),
        };
        let target = request.target();
        let absolute = ["ws://", "wss://", "http://", "https://"].iter().any(|s| {
            target
                .get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        });
        if !target.starts_with('/') && !absolute {
            return Err(HandshakeError::InvalidTarget.into());
        }
        Ok(Self {
            accept: accept_key(&key),
            key,
            origin: h.get("origin").map(str::to_owned),
            protocols: protocols_of(h)?,
            extensions: extensions_of(h)?,
        })
    }

    /// The client's `Sec-WebSocket-Key`.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `Sec-WebSocket-Accept` value of the answer.
    #[must_use]
    pub fn accept_key(&self) -> &str {
        &self.accept
    }

    /// The `Origin` field, if sent (check it against an allow-list to stop cross-site use).
    #[must_use]
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The subprotocols offered, in the client's order.
    #[must_use]
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The extension offers, in the client's order (its preference).
    #[must_use]
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// The first subprotocol in the server's `preferences` that the client offered
    /// (comparison is exact: subprotocol names are case-sensitive).
    #[must_use]
    pub fn choose_protocol<S: AsRef<str>>(&self, preferences: &[S]) -> Option<&str> {
        preferences.iter().find_map(|want| {
            self.protocols
                .iter()
                .find(|p| p.as_str() == want.as_ref())
                .map(String::as_str)
        })
    }

    /// Answers the client's permessage-deflate offers (RFC 7692 section 5): the first offer, in
    /// the client's order, that `config` accepts through
    /// [`DeflateConfig::accept_offer`]. Malformed offers and offers `config` cannot honour are
    /// declined and the next one is tried; `None` when all are declined.
    #[must_use]
    pub fn negotiate_deflate(&self, config: &DeflateConfig) -> Option<DeflateParams> {
        self.extensions
            .iter()
            .filter(|e| e.name().eq_ignore_ascii_case(EXTENSION_NAME))
            .find_map(|e| config.accept_offer(&e.param_list()).ok().flatten())
    }

    /// Appends the 101 Switching Protocols response to `out`: `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Accept`, then the protocol, extensions and headers of `accept`. Returns the
    /// number of bytes written.
    ///
    /// # Errors
    /// [`HandshakeError::ProtocolNotOffered`] for a subprotocol the client did not offer,
    /// [`Error::Config`] for an extra header the handshake sets itself,
    /// [`Error::InvalidField`] for an invalid header or extension; nothing is written then.
    pub fn write_accept(&self, accept: &Accept, out: &mut BytesMut) -> Result<usize, Error> {
        if let Some(p) = &accept.protocol {
            if !self.protocols.contains(p) {
                return Err(HandshakeError::ProtocolNotOffered.into());
            }
        }
        check_extra(&accept.headers)?;
        if !accept.extensions.iter().all(Extension::is_valid) {
            return Err(Error::InvalidField("extension"));
        }
        let mut extensions: Vec<String> = Vec::new();
        if let Some(d) = &accept.deflate {
            extensions.push(d.response_value());
        }
        extensions.extend(accept.extensions.iter().map(ToString::to_string));
        let extensions = extensions.join(", ");
        let mut fields: Vec<(&str, &str)> = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", &self.accept),
        ];
        if let Some(p) = &accept.protocol {
            fields.push(("Sec-WebSocket-Protocol", p));
        }
        if !extensions.is_empty() {
            fields.push(("Sec-WebSocket-Extensions", &extensions));
        }
        fields.extend(accept.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        write_response_head(out, 101, None, &fields)
    }
}

/// What the server answers an accepted upgrade with; see [`UpgradeRequest::write_accept`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accept {
    protocol: Option<String>,
    deflate: Option<DeflateParams>,
    extensions: Vec<Extension>,
    headers: Vec<(String, String)>,
}

impl Accept {
    /// No subprotocol, no extensions, no extra headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects a subprotocol (one the client offered; see [`UpgradeRequest::choose_protocol`]).
    #[must_use]
    pub fn protocol(mut self, protocol: Option<&str>) -> Self {
        self.protocol = protocol.map(str::to_owned);
        self
    }

    /// Enables permessage-deflate with parameters from [`UpgradeRequest::negotiate_deflate`].
    #[must_use]
    pub fn deflate(mut self, params: Option<DeflateParams>) -> Self {
        self.deflate = params;
        self
    }

    /// Accepts another extension (written after permessage-deflate).
    #[must_use]
    pub fn extension(mut self, extension: Extension) -> Self {
        self.extensions.push(extension);
        self
    }

    /// Adds an extra header field (`Set-Cookie`, `Server`, ...).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The selected subprotocol.
    #[must_use]
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The permessage-deflate parameters to use on this connection.
    #[must_use]
    pub fn deflate_params(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref()
    }
}

/// Appends a response refusing an upgrade (or any request) to `out`: `status`, `headers`,
/// `Content-Length`, `Connection: close` and `body`. Returns the number of bytes written.
/// For protocol errors found by this crate, [`Error::write_response`] writes the right answer.
///
/// # Errors
/// [`HandshakeError::InvalidRejectStatus`] for a status below 200; otherwise as
/// [`crate::write_response`].
pub fn write_rejection(
    out: &mut BytesMut,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<usize, Error> {
    if status < 200 {
        return Err(HandshakeError::InvalidRejectStatus.into());
    }
    write_response(out, status, headers, body, false)
}
