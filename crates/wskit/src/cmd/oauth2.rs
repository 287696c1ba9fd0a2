//! Token authentication for `wskit serve` (`--jwt-secret`, `--jwt-key`, `--jwks`, `--oauth2`)
//! and `wskit oauth2`, which manages the OAuth2 server's apps and users in its SQLite
//! database.
//!
//! ```text
//! wskit serve --jwt-secret S            every route needs a JWT (HS256) ...
//! wskit serve --jwt-key PUBLIC.pem      ... or one signed with this key ...
//! wskit serve --jwks https://.../jwks   ... or with a key of this JWKS
//! wskit serve --oauth2 [--oauth2-db F]  the authorization server; every other route needs its token
//!                                       (with --jwt-*: its tokens or those JWTs)
//! wskit oauth2 client add NAME --redirect-uri URI [--grant G] [--public]   prints the credentials
//! wskit oauth2 client list | remove ID ; wskit oauth2 user add NAME | remove NAME
//! wskit oauth2 token client-credentials | code | refresh | password ...   the client (oauth2_client.rs)
//! ```

use std::{io::BufRead as _, path::PathBuf, sync::Arc, time::SystemTime};

use anyhow::{Context, Result, bail};
use auth_oauth2_jwt::{
    Config, JwtAuth, Key, Location, Signer, Verifier,
    jsonwebtoken::Algorithm,
    oauth2::{AuthServer, OAuth2, OsRandom, SqliteStore, Store, password},
    parse_algorithm,
};
use ws_server::{Handler, Server, ServerConfig, ServerHandle};

/// Default database of the OAuth2 server.
const DEFAULT_DB: &str = "wskit-oauth2.db";
/// Default algorithm of `--oauth2-jwt-key`.
const DEFAULT_JWT_ALG: &str = "ES256";

super::config::layered! {
/// Token authentication flags of `wskit serve`, and their keys in its `[serve]` table
/// (flattened into `serve::Args`: no `deny_unknown_fields` here, `serve` has it).
#[derive(Clone, Debug, Default, clap::Args, serde::Deserialize)]
#[serde(default)]
pub(crate) struct TokenAuthArgs {
    /// Every route needs a JWT signed with this HMAC secret (HS256; see --jwt-alg). Visible in
    /// the process list: prefer --jwt-secret-file.
    #[arg(long, value_name = "S")]
    pub(crate) jwt_secret: Option<String>,
    /// File holding the HMAC secret (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub(crate) jwt_secret_file: Option<PathBuf>,
    /// Every route needs a JWT signed with the private key of this PEM public key (RS256,
    /// ES256, ES384 or EdDSA by the key's kind; see --jwt-alg). Repeatable.
    #[arg(long, value_name = "PUBLIC.pem")]
    pub(crate) jwt_key: Vec<PathBuf>,
    /// Every route needs a JWT signed with a key of this JWKS (https://), fetched at start,
    /// cached for an hour and fetched again for an unknown kid (at most every 30 s).
    #[arg(long, value_name = "URL")]
    pub(crate) jwks: Option<String>,
    /// Algorithm(s) the JWT keys may verify (repeatable), e.g. HS512 or PS256.
    #[arg(long = "jwt-alg", value_name = "ALG")]
    #[serde(alias = "jwt_alg")]
    pub(crate) jwt_algs: Vec<String>,
    /// Required JWT issuer (repeatable: any of them).
    #[arg(long, value_name = "ISS")]
    pub(crate) jwt_iss: Vec<String>,
    /// Accepted JWT audience (repeatable: any of them).
    #[arg(long, value_name = "AUD")]
    pub(crate) jwt_aud: Vec<String>,
    /// Where tokens are looked for, in order (repeatable): `header`, `query[:NAME]`,
    /// `cookie[:NAME]`, `protocol[:PREFIX]`. Default: header, query:access_token,
    /// cookie:access_token, protocol:bearer.
    #[arg(long = "token-source", value_name = "SOURCE")]
    #[serde(alias = "token_source")]
    pub(crate) token_sources: Vec<String>,
    /// Run the OAuth2 authorization server on this port (/oauth2/authorize, /oauth2/token,
    /// /oauth2/introspect, /oauth2/revoke, /.well-known/oauth-authorization-server); every
    /// other route needs one of its access tokens. Manage apps and users with `wskit oauth2`.
    #[arg(long)]
    pub(crate) oauth2: bool,
    /// The OAuth2 server's database (apps, tokens, users). Default: wskit-oauth2.db.
    #[arg(long, value_name = "FILE")]
    pub(crate) oauth2_db: Option<PathBuf>,
    /// The OAuth2 issuer URL (metadata, RFC 9207 iss). Default: http://ADDRESS of the first
    /// --listen address.
    #[arg(long, value_name = "URL")]
    pub(crate) oauth2_issuer: Option<String>,
    /// Serve the OAuth2 endpoints at the seed's paths /sgc/oauth2/auth and /sgc/oauth2/token.
    #[arg(long)]
    pub(crate) oauth2_sgc_paths: bool,
    /// Issue access tokens as JWTs (RFC 9068) signed with this private key (PEM); its public
    /// key is published at /oauth2/jwks.
    #[arg(long, value_name = "PRIVATE.pem")]
    pub(crate) oauth2_jwt_key: Option<PathBuf>,
    /// Algorithm of --oauth2-jwt-key: ES256 (default), ES384, EdDSA, RS256, PS256, ...
    #[arg(long, value_name = "ALG")]
    pub(crate) oauth2_jwt_alg: Option<String>,
}
}

impl TokenAuthArgs {
    fn jwt(&self) -> bool {
        self.jwt_secret.is_some()
            || self.jwt_secret_file.is_some()
            || !self.jwt_key.is_empty()
            || self.jwks.is_some()
    }

    /// Whether token authentication is on (`--public` paths then apply to it).
    pub(crate) fn enabled(&self) -> bool {
        self.jwt() || self.oauth2
    }

    fn config(&self) -> Result<Config> {
        let mut config = Config::default();
        config.issuers.clone_from(&self.jwt_iss);
        config.audiences.clone_from(&self.jwt_aud);
        if !self.token_sources.is_empty() {
            config.sources = self
                .token_sources
                .iter()
                .map(|s| Location::parse(s))
                .collect::<Result<_, _>>()?;
        }
        Ok(config)
    }

    fn algorithms(&self) -> Result<Vec<Algorithm>> {
        self.jwt_algs
            .iter()
            .map(|s| parse_algorithm(s).map_err(|e| anyhow::anyhow!("--jwt-alg: {e}")))
            .collect()
    }

    async fn verifier(&self, config: Config) -> Result<Verifier> {
        let algs = self.algorithms()?;
        let mut keys = Vec::new();
        let secret = match (&self.jwt_secret, &self.jwt_secret_file) {
            (Some(_), Some(_)) => bail!("give --jwt-secret or --jwt-secret-file, not both"),
            (Some(s), None) => Some(s.as_bytes().to_vec()),
            (None, Some(f)) => {
                let mut s = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                if s.last() == Some(&b'\n') {
                    s.pop();
                }
                Some(s)
            }
            (None, None) => None,
        };
        if let Some(secret) = secret {
            let hs: Vec<Algorithm> = algs
                .iter()
                .copied()
                .filter(|a| a.family() == auth_oauth2_jwt::jsonwebtoken::AlgorithmFamily::Hmac)
                .collect();
            let hs = if hs.is_empty() {
                vec![Algorithm::HS256]
            } else {
                hs
            };
            keys.push(Key::secret(&secret, &hs).context("--jwt-secret")?);
        }
        for path in &self.jwt_key {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let mine: Vec<Algorithm> = algs
                .iter()
                .copied()
                .filter(|a| a.family() != auth_oauth2_jwt::jsonwebtoken::AlgorithmFamily::Hmac)
                .collect();
            keys.push(
                Key::public_pem(&pem, &mine)
                    .with_context(|| format!("--jwt-key {}", path.display()))?,
            );
        }
        let mut config = config;
        if !algs.is_empty() {
            config.jwks_rsa_algorithms.clone_from(&algs);
        }
        let jwks = match &self.jwks {
            Some(url) => Some((
                url.clone(),
                ws_tls::client_config(&ws_tls::ClientTlsConfig::default())?,
            )),
            None => None,
        };
        let verifier = Verifier::build(config, keys, jwks, None)?;
        if self.jwks.is_some() {
            let n = verifier.load_jwks().await?;
            tracing::info!(keys = n, "JWKS loaded");
        }
        Ok(verifier)
    }
}

/// Starts the server with `app` behind the token check the flags ask for (or none).
pub(crate) async fn start<H: Handler>(
    mut config: ServerConfig,
    app: H,
    args: &TokenAuthArgs,
) -> Result<ServerHandle> {
    if !args.enabled() {
        return Ok(Server::start(config, app).await?);
    }
    if config.auth.as_ref().is_some_and(|a| !a.users.is_empty()) {
        bail!("--user (Basic) cannot be combined with token authentication");
    }
    let mut token_config = args.config()?;
    // `--public` paths, handed over by `serve` in an AuthConfig without users.
    let mut public = config
        .auth
        .as_ref()
        .map(|a| a.public_paths.clone())
        .unwrap_or_default();
    let auth = if args.oauth2 {
        if let Some(issuer) = &args.oauth2_issuer {
            token_config.oauth2.issuer = issuer.trim_end_matches('/').to_owned();
        } else if let Some(b) = config.bindings.first() {
            let scheme = if b.tls.is_some() { "https" } else { "http" };
            token_config.oauth2.issuer = format!("{scheme}://{}", b.addr);
        }
        if args.oauth2_sgc_paths {
            token_config.oauth2 = token_config.oauth2.sgc_paths();
        }
        token_config.public_paths.clone_from(&public);
        let token_config_jwt = token_config.clone();
        public.extend(
            token_config
                .oauth2
                .endpoint_paths()
                .iter()
                .map(|p| (*p).to_owned()),
        );
        let path = args
            .oauth2_db
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB));
        let store =
            SqliteStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut core = AuthServer::new(token_config, Arc::new(store), Arc::new(OsRandom))?;
        if let Some(key) = &args.oauth2_jwt_key {
            let alg = parse_algorithm(args.oauth2_jwt_alg.as_deref().unwrap_or(DEFAULT_JWT_ALG))
                .map_err(|e| anyhow::anyhow!("--oauth2-jwt-alg: {e}"))?;
            let pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            // A stable key id: the start of the key file's digest (not secret: a hash).
            let kid = auth_oauth2_jwt::oauth2::server::digest(&String::from_utf8_lossy(&pem));
            let signer = Signer::with_private_pem(alg, &pem)
                .with_context(|| format!("--oauth2-jwt-key {}", key.display()))?
                .kid(&kid[..16]);
            core = core.with_jwt_access_tokens(signer)?;
        }
        tracing::info!(db = %path.display(), issuer = %core.config().oauth2.issuer, "OAuth2 authorization server on");
        let mut oauth2 = OAuth2::new(core);
        if args.jwt() {
            // The seed's JWT attachment beside the OAuth2 one: JWTs of the --jwt-* keys too.
            let verifier = args.verifier(token_config_jwt).await?;
            oauth2 = oauth2.with_also_accepted(Arc::new(verifier));
        }
        let auth = oauth2.auth();
        install(&mut config, &auth, public);
        return Ok(Server::start(config, oauth2.wrap(app)).await?);
    } else {
        JwtAuth::new(args.verifier(token_config).await?).with_public(public.clone())
    };
    install(&mut config, &auth, public);
    Ok(Server::start(config, auth.guard(app)).await?)
}

/// ws-server's own check, behind the guard: the same token check and public paths.
fn install(config: &mut ServerConfig, auth: &JwtAuth, public: Vec<String>) {
    let mut server_auth = auth.auth_config();
    server_auth.public_paths = public;
    config.auth = Some(server_auth);
}

/// Flags of `wskit oauth2`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The database `wskit serve --oauth2` uses (not read by `wskit oauth2 token`).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_DB, global = true)]
    db: PathBuf,
    #[command(subcommand)]
    command: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Client applications.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Users of the sign-in page.
    #[command(subcommand)]
    User(UserCommand),
    /// The OAuth2 client: gets tokens from an authorization server (this one or another) and
    /// prints them as JSON.
    #[command(subcommand)]
    Token(super::oauth2_client::TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum ClientCommand {
    /// Registers an app and prints {"client_id": ..., "client_secret": ...} (the secret is
    /// shown once; only its digest is stored).
    Add {
        /// Display name.
        name: String,
        /// Redirect URI (repeatable), matched exactly; a loopback http URI's port may vary.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Allowed grant (repeatable): authorization_code, client_credentials, refresh_token,
        /// password. Default: authorization_code and refresh_token.
        #[arg(long = "grant", value_name = "GRANT")]
        grants: Vec<String>,
        /// A public client (no secret; PKCE only), e.g. a browser or desktop app.
        #[arg(long)]
        public: bool,
    },
    /// Lists the apps as JSON.
    List,
    /// Removes an app and its tokens.
    Remove {
        /// The client id.
        client_id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Adds (or replaces) a user; the password is read from standard input (one line).
    Add {
        /// User name.
        name: String,
    },
    /// Removes a user.
    Remove {
        /// User name.
        name: String,
    },
}

/// Runs `wskit oauth2 ...`.
pub(crate) fn run(args: Args) -> Result<()> {
    if let What::Token(command) = args.command {
        // The client flows have no database.
        return crate::block_on(super::oauth2_client::run(command));
    }
    let store =
        SqliteStore::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?;
    match args.command {
        What::Client(ClientCommand::Add {
            name,
            redirect_uris,
            grants,
            public,
        }) => {
            let core = AuthServer::new(Config::default(), Arc::new(store), Arc::new(OsRandom))?;
            let (app, secret) =
                core.register_app(&name, &redirect_uris, &grants, !public, SystemTime::now())?;
            let out = serde_json::json!({"client_id": app.client_id, "client_secret": secret});
            println!("{out}");
        }
        What::Client(ClientCommand::List) => {
            let apps: Vec<_> = store
                .apps()?
                .into_iter()
                .map(|a| {
                    serde_json::json!({
                        "client_id": a.client_id,
                        "name": a.name,
                        "public": a.secret_hash.is_none(),
                        "redirect_uris": a.redirect_uris,
                        "grants": a.grants,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&apps)?);
        }
        What::Client(ClientCommand::Remove { client_id }) => {
            if !store.remove_app(&client_id)? {
                bail!("no app with client id {client_id:?}");
            }
            println!("removed {client_id}");
        }
        What::User(UserCommand::Add { name }) => {
            if name.is_empty() {
                bail!("empty user name");
            }
            eprintln!("password for {name} (one line on standard input):");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password")?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("empty password");
            }
            store.put_user(&name, &password::hash(password, &OsRandom)?)?;
            println!("user {name} saved");
        }
        What::User(UserCommand::Remove { name }) => {
            if !store.remove_user(&name)? {
                bail!("no user {name:?}");
            }
            println!("removed {name}");
        }
        What::Token(_) => unreachable!("handled above"),
    }
    Ok(())
}
