//! `wskit oauth2 token ...`: the OAuth2 client of auth-oauth2-jwt on the command line. Each
//! flow prints the token response as JSON on stdout (`access_token`, `token_type`, and
//! `refresh_token`, `expires_in`, `scope` when the server gave them); what to do goes to stderr.
//!
//! ```text
//! wskit oauth2 token client-credentials --issuer URL --client-id ID --client-secret-file F
//! wskit oauth2 token code --issuer URL --client-id ID       sign in in a browser (PKCE S256)
//! wskit oauth2 token refresh --issuer URL --client-id ID --refresh-token-file F
//! wskit oauth2 token password --issuer URL --client-id ID --user NAME   password on stdin
//! ```
//!
//! `--issuer` is the server's base URL: the endpoints are `wskit serve --oauth2`'s
//! (`/oauth2/token`, `/oauth2/authorize`) unless `--token-url` / `--auth-url` say otherwise,
//! and the authorization response must carry it as `iss` (RFC 9207).

use std::{io::BufRead as _, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use auth_oauth2_jwt::oauth2_client::{ClientSettings, OAuth2Client, TokenSet};

/// Where the server is and who the client is.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientFlags {
    /// The authorization server's issuer URL, e.g. http://127.0.0.1:8080 for `wskit serve
    /// --oauth2`: its token and authorization endpoints are ISSUER/oauth2/token and
    /// ISSUER/oauth2/authorize, and the sign-in redirect must name it as `iss` (RFC 9207).
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// The token endpoint (instead of the one --issuer implies).
    #[arg(long, value_name = "URL")]
    token_url: Option<String>,
    /// The authorization endpoint (instead of the one --issuer implies).
    #[arg(long, value_name = "URL")]
    auth_url: Option<String>,
    /// The client id (`wskit oauth2 client add` prints it).
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The client secret of a confidential client. Visible in the process list: prefer
    /// --client-secret-file.
    #[arg(long, value_name = "SECRET", conflicts_with = "client_secret_file")]
    client_secret: Option<String>,
    /// File holding the client secret (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    client_secret_file: Option<PathBuf>,
    /// Scope to ask for (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// PEM bundle of CA certificates to trust for https:// endpoints (instead of the built-in
    /// web roots).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Seconds each HTTP exchange may take. Default: 30.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

/// The client flows.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// The client credentials grant (a confidential client acting for itself).
    ClientCredentials {
        #[command(flatten)]
        client: ClientFlags,
    },
    /// Authorization code with PKCE S256: prints the sign-in URL to open in a browser and
    /// waits for the redirect on 127.0.0.1 (a random port; register
    /// http://127.0.0.1/callback as the app's redirect URI).
    Code {
        #[command(flatten)]
        client: ClientFlags,
        /// Seconds to wait for the browser's redirect. Default: 300.
        #[arg(long, value_name = "SECS")]
        redirect_timeout: Option<u64>,
    },
    /// Trades a refresh token for new tokens (keep the new refresh token: the server
    /// rotates them, and a reused one revokes the whole family).
    Refresh {
        #[command(flatten)]
        client: ClientFlags,
        /// File holding the refresh token; `-` reads it from standard input.
        #[arg(long, value_name = "FILE")]
        refresh_token_file: PathBuf,
    },
    /// The password grant (only where the server allows it); the password is read from
    /// standard input (one line).
    Password {
        #[command(flatten)]
        client: ClientFlags,
        /// The user name.
        #[arg(long, value_name = "NAME")]
        user: String,
    },
}

/// A secret from a file, or from standard input for `-`, without its trailing newline.
pub(crate) fn read_secret(path: &std::path::Path, what: &str) -> Result<String> {
    let mut text = if path.as_os_str() == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .with_context(|| format!("reading the {what} from standard input"))?;
        line
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    while text.ends_with(['\n', '\r']) {
        text.pop();
    }
    if text.is_empty() {
        bail!("empty {what}");
    }
    Ok(text)
}

/// Where an OAuth2 client talks to, as the flags say it (shared with `wskit client
/// --oauth2-*`).
pub(crate) struct Endpoints<'a> {
    /// `--issuer`: the base of wskit's endpoint paths, and the `iss` to expect.
    pub(crate) issuer: Option<&'a str>,
    pub(crate) token_url: Option<&'a str>,
    pub(crate) auth_url: Option<&'a str>,
    pub(crate) ca_file: Option<&'a std::path::Path>,
}

impl Endpoints<'_> {
    /// The client library's settings for `client_id` (defaults otherwise).
    pub(crate) fn settings(&self, client_id: &str) -> Result<ClientSettings> {
        let issuer = self.issuer.map(|i| i.trim_end_matches('/'));
        let token_url = match (self.token_url, issuer) {
            (Some(url), _) => url.to_owned(),
            (None, Some(i)) => format!("{i}/oauth2/token"),
            (None, None) => bail!("give --issuer URL (or --token-url URL)"),
        };
        let mut tls = ws_tls::ClientTlsConfig::default();
        if let Some(ca) = self.ca_file {
            tls.ca_file = Some(ca.to_owned());
            tls.webpki_roots = false;
        }
        let tls = ws_tls::client_config(&tls).context("TLS configuration")?;
        let mut s = ClientSettings::new(token_url, client_id, tls);
        s.auth_url = match (self.auth_url, issuer) {
            (Some(url), _) => Some(url.to_owned()),
            (None, Some(i)) => Some(format!("{i}/oauth2/authorize")),
            (None, None) => None,
        };
        s.issuer = issuer.map(str::to_owned);
        // Plain http:// only to this host (the library refuses it elsewhere).
        s.allow_loopback_http = true;
        Ok(s)
    }
}

impl ClientFlags {
    fn client(&self, redirect_timeout: Option<u64>) -> Result<OAuth2Client> {
        let mut s = Endpoints {
            issuer: self.issuer.as_deref(),
            token_url: self.token_url.as_deref(),
            auth_url: self.auth_url.as_deref(),
            ca_file: self.ca_file.as_deref(),
        }
        .settings(&self.client_id)?;
        s.client_secret = match (&self.client_secret, &self.client_secret_file) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(file)) => Some(read_secret(file, "client secret")?),
            (None, None) => None,
        };
        s.scopes.clone_from(&self.scopes);
        if let Some(secs) = self.timeout {
            s.timeout = Duration::from_secs(secs.max(1));
        }
        if let Some(secs) = redirect_timeout {
            s.redirect_timeout = Duration::from_secs(secs.max(1));
        }
        Ok(OAuth2Client::new(s)?)
    }
}

/// The token response as JSON, `expires_in` counted from now.
fn token_json(t: &TokenSet) -> serde_json::Value {
    let mut out = serde_json::json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
    });
    if let Some(r) = &t.refresh_token {
        out["refresh_token"] = r.clone().into();
    }
    if let Some(at) = t.expires_at {
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        out["expires_in"] = left.as_secs().into();
    }
    if let Some(scope) = &t.scope {
        out["scope"] = scope.clone().into();
    }
    out
}

/// Runs one flow and prints the tokens.
pub(crate) async fn run(command: TokenCommand) -> Result<()> {
    let tokens = match command {
        TokenCommand::ClientCredentials { client } => {
            if client.client_secret.is_none() && client.client_secret_file.is_none() {
                bail!(
                    "the client credentials grant needs the client's secret: --client-secret-file FILE"
                );
            }
            client
                .client(None)?
                .client_credentials()
                .await
                .context("client credentials grant")?
        }
        TokenCommand::Code {
            client,
            redirect_timeout,
        } => {
            let c = client.client(redirect_timeout)?;
            if c.settings().auth_url.is_none() {
                bail!(
                    "the code flow needs the authorization endpoint: --issuer URL or --auth-url URL"
                );
            }
            c.authorize_loopback(|url| {
                eprintln!("open this URL in a browser to sign in:\n{url}");
            })
            .await
            .context("authorization code grant")?
        }
        TokenCommand::Refresh {
            client,
            refresh_token_file,
        } => {
            let token = read_secret(&refresh_token_file, "refresh token")?;
            client
                .client(None)?
                .refresh(&token)
                .await
                .context("refresh token grant")?
        }
        TokenCommand::Password { client, user } => {
            let c = client.client(None)?;
            eprintln!("password for {user} (one line on standard input):");
            let password = read_secret(std::path::Path::new("-"), "password")?;
            c.password(&user, &password)
                .await
                .context("password grant")?
        }
    };
    println!("{}", token_json(&tokens));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(issuer: Option<&str>) -> ClientFlags {
        ClientFlags {
            issuer: issuer.map(str::to_owned),
            token_url: None,
            auth_url: None,
            client_id: "id".into(),
            client_secret: None,
            client_secret_file: None,
            scopes: vec!["chat".into()],
            ca_file: None,
            timeout: None,
        }
    }

    #[test]
    fn the_issuer_names_the_endpoints_and_the_iss_to_check() {
        let c = flags(Some("http://127.0.0.1:8080/"))
            .client(Some(5))
            .unwrap();
        let s = c.settings();
        assert_eq!(s.token_url, "http://127.0.0.1:8080/oauth2/token");
        assert_eq!(
            s.auth_url.as_deref(),
            Some("http://127.0.0.1:8080/oauth2/authorize")
        );
        assert_eq!(s.issuer.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(s.redirect_timeout, Duration::from_secs(5));
        assert_eq!(s.scopes, ["chat"]);
        let mut f = flags(None);
        assert!(f.client(None).is_err(), "no endpoint at all");
        f.token_url = Some("http://127.0.0.1:1/t".into());
        let c = f.client(None).unwrap();
        assert_eq!(c.settings().auth_url, None);
        assert_eq!(c.settings().issuer, None);
        // Plain http only on loopback.
        assert!(flags(Some("http://example.org")).client(None).is_err());
    }

    #[test]
    fn the_json_has_the_token_response_fields() {
        let t = TokenSet {
            access_token: "a".into(),
            refresh_token: Some("r".into()),
            expires_at: Some(std::time::SystemTime::now() + Duration::from_secs(100)),
            scope: None,
        };
        let j = token_json(&t);
        assert_eq!(j["access_token"], "a");
        assert_eq!(j["token_type"], "Bearer");
        assert_eq!(j["refresh_token"], "r");
        assert!(j["expires_in"].as_u64().unwrap() <= 100);
        assert!(j.get("scope").is_none());
    }
}
