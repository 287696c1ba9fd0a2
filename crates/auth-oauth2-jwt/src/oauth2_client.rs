//! OAuth2 client (the seed's `TsgcHTTP_OAuth2_Client`) on the `oauth2` crate, talking HTTP
//! through this crate's small rustls client: client credentials, authorization code with PKCE
//! S256 and a loopback redirect listener on a random port (RFC 8252), the password grant when
//! asked for, refresh; [`OAuth2TokenSource`] feeds ws-client so that every connection attempt
//! carries a fresh access token.
//!
//! Randomness: the PKCE verifier and `state` come from the `oauth2` crate (`rand`'s thread
//! generator, seeded by the OS).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use oauth2::{
    AsyncHttpClient, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, RedirectUrl, RefreshToken,
    RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse as _,
    TokenUrl,
    basic::{BasicClient, BasicErrorResponse, BasicTokenResponse},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use ws_client::{BoxFuture, TokenSource};

use crate::{
    error::{Error, OAuthError},
    fetch,
    oauth2::server::ct_eq,
    source::query_param,
};

/// Where the client talks to and as whom.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientSettings {
    /// Token endpoint URL (`https://`; loopback `http://` with `allow_loopback_http`).
    pub token_url: String,
    /// Authorization endpoint URL (for the code grant).
    pub auth_url: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client secret (confidential clients), sent with HTTP Basic.
    pub client_secret: Option<String>,
    /// Scopes to ask for. Default: none.
    pub scopes: Vec<String>,
    /// The server's issuer: when set, the authorization response must carry this `iss`
    /// (RFC 9207, a defence against mix-up attacks).
    pub issuer: Option<String>,
    /// TLS settings for the endpoints (build with `ws_tls::client_config`).
    pub tls: Arc<rustls::ClientConfig>,
    /// Allow `http://` endpoints on loopback addresses. Default: false.
    pub allow_loopback_http: bool,
    /// A token is renewed when it expires within this margin. Default: 60 s.
    pub refresh_margin: Duration,
    /// Time allowed for each HTTP exchange. Default: 30 s.
    pub timeout: Duration,
    /// Time the loopback listener waits for the browser's redirect. Default: 5 minutes.
    pub redirect_timeout: Duration,
}

impl ClientSettings {
    /// Settings for `client_id` at `token_url`, defaults otherwise.
    #[must_use]
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            token_url: token_url.into(),
            auth_url: None,
            client_id: client_id.into(),
            client_secret: None,
            scopes: Vec::new(),
            issuer: None,
            tls,
            allow_loopback_http: false,
            refresh_margin: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            redirect_timeout: Duration::from_secs(300),
        }
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("token_url", &self.token_url)
            .field("auth_url", &self.auth_url)
            .field("client_id", &self.client_id)
            .field("confidential", &self.client_secret.is_some())
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Tokens from a token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if any.
    pub refresh_token: Option<String>,
    /// When the access token expires, if the server said.
    pub expires_at: Option<SystemTime>,
    /// The granted scope, if the server said.
    pub scope: Option<String>,
}

impl fmt::Debug for TokenSet {
    /// Tokens are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("refresh_token", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// Whether the access token is still good for `margin` at `now`.
    #[must_use]
    pub fn is_fresh(&self, now: SystemTime, margin: Duration) -> bool {
        self.expires_at.is_none_or(|at| now + margin < at)
    }

    fn from_response(r: &BasicTokenResponse, now: SystemTime) -> Self {
        Self {
            access_token: r.access_token().secret().clone(),
            refresh_token: r.refresh_token().map(|t| t.secret().clone()),
            expires_at: r.expires_in().map(|d| now + d),
            scope: r
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
        }
    }
}

/// The HTTP client handed to the `oauth2` crate.
#[derive(Clone)]
struct Http {
    tls: Arc<rustls::ClientConfig>,
    allow_loopback_http: bool,
    timeout: Duration,
}

/// Why an HTTP exchange failed.
#[derive(Debug)]
struct HttpError(String);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let url = request.uri().to_string();
            let parsed = fetch::parse_url(&url, self.allow_loopback_http).map_err(HttpError)?;
            let headers: Vec<(String, String)> = request
                .headers()
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let fields: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let (status, _, response_headers, body) = fetch::request(
                &parsed,
                request.method().as_str(),
                &fields,
                request.body(),
                &self.tls,
                1 << 20,
                self.timeout,
            )
            .await
            .map_err(HttpError)?;
            let mut builder = oauth2::http::Response::builder().status(status);
            for (n, v) in &response_headers {
                builder = builder.header(n.as_str(), v.as_str());
            }
            builder.body(body).map_err(|e| HttpError(e.to_string()))
        })
    }
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// An OAuth2 client.
pub struct OAuth2Client {
    settings: ClientSettings,
    http: Http,
}

impl fmt::Debug for OAuth2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Client")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn token_error(e: RequestTokenError<HttpError, BasicErrorResponse>) -> Error {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = match r.error().as_ref() {
                "invalid_request" => "invalid_request",
                "invalid_client" => "invalid_client",
                "invalid_grant" => "invalid_grant",
                "unauthorized_client" => "unauthorized_client",
                "unsupported_grant_type" => "unsupported_grant_type",
                "invalid_scope" => "invalid_scope",
                _ => "server_error",
            };
            Error::OAuth(OAuthError::new(
                code,
                r.error_description().cloned().unwrap_or_default(),
            ))
        }
        RequestTokenError::Request(e) => Error::Http(e.0),
        RequestTokenError::Parse(e, _) => Error::Http(format!("unreadable token response: {e}")),
        RequestTokenError::Other(s) => Error::Http(s),
    }
}

impl OAuth2Client {
    /// A client with `settings`.
    ///
    /// # Errors
    /// [`Error::Url`] for URLs that do not parse or are not `https://` (nor loopback
    /// `http://` when allowed).
    pub fn new(settings: ClientSettings) -> Result<Self, Error> {
        fetch::parse_url(&settings.token_url, settings.allow_loopback_http).map_err(|reason| {
            Error::Url {
                field: "token URL",
                url: settings.token_url.clone(),
                reason,
            }
        })?;
        if let Some(a) = &settings.auth_url {
            fetch::parse_url(a, settings.allow_loopback_http).map_err(|reason| Error::Url {
                field: "authorization URL",
                url: a.clone(),
                reason,
            })?;
        }
        let http = Http {
            tls: settings.tls.clone(),
            allow_loopback_http: settings.allow_loopback_http,
            timeout: settings.timeout,
        };
        Ok(Self { settings, http })
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    fn client(&self, redirect: Option<String>) -> Result<Client, Error> {
        let s = &self.settings;
        let auth = s.auth_url.clone().unwrap_or_else(|| s.token_url.clone());
        let mut c = BasicClient::new(ClientId::new(s.client_id.clone()))
            .set_auth_uri(AuthUrl::new(auth.clone()).map_err(|e| Error::Url {
                field: "authorization URL",
                url: auth,
                reason: e.to_string(),
            })?)
            .set_token_uri(TokenUrl::new(s.token_url.clone()).map_err(|e| Error::Url {
                field: "token URL",
                url: s.token_url.clone(),
                reason: e.to_string(),
            })?);
        if let Some(secret) = &s.client_secret {
            c = c.set_client_secret(ClientSecret::new(secret.clone()));
        }
        if let Some(r) = redirect {
            c = c.set_redirect_uri(RedirectUrl::new(r.clone()).map_err(|e| Error::Url {
                field: "redirect URL",
                url: r,
                reason: e.to_string(),
            })?);
        }
        Ok(c)
    }

    fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.settings.scopes.iter().map(|s| Scope::new(s.clone()))
    }

    /// The client credentials grant.
    ///
    /// # Errors
    /// [`Error::OAuth`] with the server's error, [`Error::Http`].
    pub async fn client_credentials(&self) -> Result<TokenSet, Error> {
        let r = self
            .client(None)?
            .exchange_client_credentials()
            .add_scopes(self.scopes())
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(TokenSet::from_response(&r, SystemTime::now()))
    }

    /// The resource owner password grant (only where the server allows it).
    ///
    /// # Errors
    /// As [`OAuth2Client::client_credentials`].
    pub async fn password(&self, user: &str, password: &str) -> Result<TokenSet, Error> {
        let (u, p) = (
            ResourceOwnerUsername::new(user.to_owned()),
            ResourceOwnerPassword::new(password.to_owned()),
        );
        let r = self
            .client(None)?
            .exchange_password(&u, &p)
            .add_scopes(self.scopes())
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(TokenSet::from_response(&r, SystemTime::now()))
    }

    /// Uses a refresh token (the server may rotate it: keep the returned one).
    ///
    /// # Errors
    /// As [`OAuth2Client::client_credentials`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, Error> {
        let rt = RefreshToken::new(refresh_token.to_owned());
        let r = self
            .client(None)?
            .exchange_refresh_token(&rt)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let mut set = TokenSet::from_response(&r, SystemTime::now());
        if set.refresh_token.is_none() {
            set.refresh_token = Some(refresh_token.to_owned());
        }
        Ok(set)
    }

    /// The authorization code grant with PKCE S256: listens on 127.0.0.1 (random port) for
    /// the redirect, calls `open` with the authorization URL (open a browser there: the
    /// seed's `OnBeforeAuthorizeCode`), checks `state` and, when [`ClientSettings::issuer`]
    /// is set, `iss`, answers the browser, and exchanges the code.
    ///
    /// # Errors
    /// [`Error::OAuth`] for an error redirect or a refused exchange; [`Error::Http`] for a
    /// redirect that never came or does not match.
    pub async fn authorize_loopback(
        &self,
        open: impl FnOnce(String) + Send,
    ) -> Result<TokenSet, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Http(format!("loopback listener: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::Http(e.to_string()))?
            .port();
        let redirect = format!("http://127.0.0.1:{port}/callback");
        let client = self.client(Some(redirect.clone()))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes())
            .set_pkce_challenge(challenge)
            .url();
        open(url.to_string());
        let target =
            tokio::time::timeout(self.settings.redirect_timeout, wait_for_redirect(&listener))
                .await
                .map_err(|_| Error::Http("no redirect from the browser in time".into()))??;
        let p = |n: &str| query_param(&target, n);
        if !p("state").is_some_and(|s| ct_eq(s.as_bytes(), state.secret().as_bytes())) {
            return Err(Error::Http(
                "the redirect's state does not match (possible CSRF)".into(),
            ));
        }
        if let Some(issuer) = &self.settings.issuer {
            if p("iss").as_deref() != Some(issuer.as_str()) {
                return Err(Error::Http(
                    "the redirect's iss is not the expected issuer (RFC 9207)".into(),
                ));
            }
        }
        if let Some(error) = p("error") {
            return Err(Error::OAuth(OAuthError::new(
                if error == "access_denied" {
                    "access_denied"
                } else {
                    "server_error"
                },
                p("error_description").unwrap_or(error),
            )));
        }
        let code = p("code").ok_or_else(|| Error::Http("the redirect has no code".into()))?;
        let r = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(TokenSet::from_response(&r, SystemTime::now()))
    }
}

/// Accepts connections until one brings `GET /callback?...`; answers it and returns its
/// target.
async fn wait_for_redirect(listener: &TcpListener) -> Result<String, Error> {
    loop {
        let (mut tcp, _) = listener
            .accept()
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        let mut buf = bytes::BytesMut::with_capacity(4096);
        let head = loop {
            if buf.len() > 16 * 1024 || tcp.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                break None;
            }
            match ws_http::parse_request(&buf, &ws_http::Limits::default()) {
                Ok(ws_http::Parsed::Complete(head, _)) => break Some(head),
                Ok(ws_http::Parsed::Partial) => {}
                Err(_) => break None,
            }
        };
        let Some(head) = head else { continue };
        if head.path() != "/callback" {
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let page =
            "<!doctype html><title>Signed in</title><p>Signed in. You can close this window.</p>";
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = tcp.write_all(answer.as_bytes()).await;
        return Ok(head.target().to_owned());
    }
}

/// Feeds ws-client: the current access token, renewed before it expires (with the refresh
/// token, else with client credentials when the client has a secret), and at once after a 401.
pub struct OAuth2TokenSource {
    client: Arc<OAuth2Client>,
    current: tokio::sync::Mutex<Option<TokenSet>>,
}

impl fmt::Debug for OAuth2TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2TokenSource")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl OAuth2TokenSource {
    /// Starts from `initial` tokens (e.g. from [`OAuth2Client::authorize_loopback`]), or none.
    #[must_use]
    pub fn new(client: Arc<OAuth2Client>, initial: Option<TokenSet>) -> Self {
        Self {
            client,
            current: tokio::sync::Mutex::new(initial),
        }
    }

    /// The access token to use now.
    ///
    /// # Errors
    /// Why no token could be had.
    pub async fn access_token(&self, force: bool) -> Result<String, Error> {
        let mut current = self.current.lock().await;
        let margin = self.client.settings.refresh_margin;
        if let Some(set) = current.as_ref() {
            if !force && set.is_fresh(SystemTime::now(), margin) {
                return Ok(set.access_token.clone());
            }
        }
        let refreshed = match current.as_ref().and_then(|s| s.refresh_token.clone()) {
            Some(rt) => self.client.refresh(&rt).await.ok(),
            None => None,
        };
        let set = match refreshed {
            Some(set) => set,
            None if self.client.settings.client_secret.is_some() => {
                self.client.client_credentials().await?
            }
            None => {
                return Err(Error::Http(
                    "the token expired and cannot be renewed (no refresh token, no client secret)"
                        .into(),
                ));
            }
        };
        let token = set.access_token.clone();
        *current = Some(set);
        Ok(token)
    }
}

impl TokenSource for OAuth2TokenSource {
    fn token(&self, refresh: bool) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move { self.access_token(refresh).await.map_err(|e| e.to_string()) })
    }
}
