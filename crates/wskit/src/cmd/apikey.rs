//! `wskit apikey`: API keys in a SQLite database, and `wskit serve --api-keys FILE`, which puts
//! every route behind them (the seed's `APIKeyManager`).
//!
//! ```text
//! wskit apikey add NAME [--db FILE]     prints {"id": ..., "name": ..., "key": ...}; the key once
//! wskit apikey list [--db FILE]         JSON: id, name, created_at, revoked (never a key)
//! wskit apikey revoke ID | remove ID
//! wskit serve --api-keys FILE           X-API-Key header or ?api_key= on every request
//! ```

use std::{path::Path, path::PathBuf, sync::Arc, time::SystemTime};

use anyhow::{Context, Result, bail};
use auth_oauth2_jwt::{
    ApiKeyConfig, ApiKeyGuard, ApiKeys,
    oauth2::{OsRandom, SqliteStore},
};
use ws_server::{Handler, ServerConfig, ServerHandle};

/// Default database of `wskit apikey`.
const DEFAULT_DB: &str = "wskit-apikeys.db";

/// Flags of `wskit apikey`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key database (give the same file to `wskit serve --api-keys`).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_DB, global = true)]
    db: PathBuf,
    #[command(subcommand)]
    command: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Creates a key and prints {"id", "name", "key"} as JSON: the key is shown this once
    /// (only its SHA-256 digest is stored).
    Add {
        /// Who or what the key is for (the server records the user as apikey:NAME).
        name: String,
    },
    /// Lists the keys as JSON (ids and names, never the keys).
    List,
    /// Revokes a key: it stops working and stays listed.
    Revoke {
        /// The key's id (from `add` or `list`).
        id: String,
    },
    /// Deletes a key.
    Remove {
        /// The key's id (from `add` or `list`).
        id: String,
    },
}

fn open(db: &Path) -> Result<ApiKeys> {
    let store = SqliteStore::open(db).with_context(|| format!("opening {}", db.display()))?;
    Ok(ApiKeys::new(Arc::new(store)))
}

/// Runs `wskit apikey ...`.
pub(crate) fn run(args: Args) -> Result<()> {
    let keys = open(&args.db)?;
    match args.command {
        What::Add { name } => {
            let (record, key) = keys.create(&name, &OsRandom, SystemTime::now())?;
            let out = serde_json::json!({"id": record.id, "name": record.name, "key": key});
            println!("{out}");
        }
        What::List => {
            let list: Vec<_> = keys
                .list()?
                .into_iter()
                .map(|k| {
                    serde_json::json!({
                        "id": k.id,
                        "name": k.name,
                        "created_at": k.created_at,
                        "revoked": k.revoked,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        What::Revoke { id } => {
            if !keys.revoke(&id)? {
                bail!("no API key with id {id:?} (see wskit apikey list)");
            }
            println!("revoked {id}");
        }
        What::Remove { id } => {
            if !keys.remove(&id)? {
                bail!("no API key with id {id:?} (see wskit apikey list)");
            }
            println!("removed {id}");
        }
    }
    Ok(())
}

/// Starts the server with `app` behind the API keys of `db` (when given), then the token
/// check the token flags ask for (`cmd::oauth2::start`). `--public` paths (handed over in
/// `config.auth`) need no key.
pub(crate) async fn start<H: Handler>(
    mut config: ServerConfig,
    app: H,
    token_auth: &super::oauth2::TokenAuthArgs,
    db: Option<&Path>,
) -> Result<ServerHandle> {
    let Some(db) = db else {
        return super::oauth2::start(config, app, token_auth).await;
    };
    let mut cfg = ApiKeyConfig::default();
    if let Some(auth) = &config.auth {
        if !auth.users.is_empty() {
            // The key's user would stand in for the Basic credentials (ws-server checks a
            // request only while it has no user).
            bail!("--api-keys cannot be combined with --user (Basic)");
        }
        cfg.public_paths.clone_from(&auth.public_paths);
        if !token_auth.enabled() {
            // Only the public paths were handed over: the keys are the only credentials.
            config.auth = None;
        }
    }
    let keys = open(db)?;
    let n = keys.list()?.iter().filter(|k| !k.revoked).count();
    if n == 0 {
        tracing::warn!(db = %db.display(), "no API key in the database: every request is refused; add one with wskit apikey add NAME --db FILE");
    }
    tracing::info!(db = %db.display(), keys = n, "API keys required");
    super::oauth2::start(config, ApiKeyGuard::new(app, keys, cfg), token_auth).await
}
