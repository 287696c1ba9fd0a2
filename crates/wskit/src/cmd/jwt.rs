//! `wskit jwt sign` and `wskit jwt verify`: JSON Web Tokens on the command line, through the
//! auth-oauth2-jwt crate.
//!
//! ```text
//! wskit jwt sign --alg HS256 --secret S --claim sub=alice --exp 1h      prints the token
//! wskit jwt verify TOKEN --secret S [--iss I] [--aud A]                prints the claims (JSON)
//! ```
//! `verify` exits with status 1 and says why when the token is refused.

use std::{io::Read as _, path::PathBuf, time::Duration, time::SystemTime};

use anyhow::{Context, Result, bail};
use auth_oauth2_jwt::{Config, Key, Signer, Verifier, jsonwebtoken::Algorithm, parse_algorithm};

/// Flags of `wskit jwt`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: JwtCommand,
}

#[derive(Debug, clap::Subcommand)]
enum JwtCommand {
    /// Signs claims and prints the compact token.
    Sign(SignArgs),
    /// Verifies a token and prints its claims as JSON, or why it is refused (exit status 1).
    Verify(VerifyArgs),
}

/// Where the key comes from (one of them).
#[derive(Debug, clap::Args)]
struct KeyArgs {
    /// HMAC secret (HS256/384/512). Visible to other local users in the process list: prefer
    /// --secret-file.
    #[arg(long, value_name = "S")]
    secret: Option<String>,
    /// File holding the HMAC secret (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// PEM key: the private key for `sign`, the public key for `verify` (RS*, PS*, ES256/384,
    /// EdDSA).
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
}

impl KeyArgs {
    fn secret(&self) -> Result<Option<Vec<u8>>> {
        match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => bail!("give --secret or --secret-file, not both"),
            (Some(s), None) => Ok(Some(s.as_bytes().to_vec())),
            (None, Some(f)) => {
                let mut s = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                if s.last() == Some(&b'\n') {
                    s.pop();
                }
                Ok(Some(s))
            }
            (None, None) => Ok(None),
        }
    }
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// Algorithm: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
    /// EdDSA (ES512 is not supported).
    #[arg(long, default_value = "HS256")]
    alg: String,
    #[command(flatten)]
    key: KeyArgs,
    /// A payload claim NAME=VALUE (repeatable). VALUE is taken as JSON when it is a number,
    /// true/false/null, an array or an object, else as a string.
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    claims: Vec<String>,
    /// A header field NAME=VALUE (repeatable), as --claim.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Expiry from now: 90s, 15m, 1h, 7d, or seconds. Sets exp and iat.
    #[arg(long, value_name = "DURATION")]
    exp: Option<String>,
    /// Not before: this long from now (sets nbf).
    #[arg(long, value_name = "DURATION")]
    nbf: Option<String>,
    /// Key id (the header's kid).
    #[arg(long)]
    kid: Option<String>,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The token, or `-` to read it from standard input.
    token: String,
    #[command(flatten)]
    key: KeyArgs,
    /// JWKS URL (https://) to take the keys from.
    #[arg(long, value_name = "URL")]
    jwks: Option<String>,
    /// CA file to trust for the JWKS server (besides the built-in roots).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Algorithm(s) the key may verify (repeatable). Default: HS256 for a secret, the key's
    /// kind for a PEM key.
    #[arg(long = "alg")]
    algs: Vec<String>,
    /// Required issuer (repeatable: any of them).
    #[arg(long)]
    iss: Vec<String>,
    /// Accepted audience (repeatable: any of them). Without it, a token with `aud` is refused.
    #[arg(long)]
    aud: Vec<String>,
    /// Clock skew tolerated on exp, nbf, iat.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    leeway: String,
    /// A claim that must be present (repeatable; exp is always required unless --no-exp).
    #[arg(long = "require", value_name = "CLAIM")]
    required: Vec<String>,
    /// Accept tokens without exp.
    #[arg(long)]
    no_exp: bool,
}

/// Runs `wskit jwt ...`.
pub(crate) fn run(args: Args) -> Result<()> {
    match args.command {
        JwtCommand::Sign(a) => sign(&a),
        JwtCommand::Verify(a) => verify(a),
    }
}

/// `90s`, `15m`, `1h`, `7d`, or a number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("duration {s:?}: expected e.g. 90s, 15m, 1h, 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("duration {s:?}: unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(secs))
}

fn json_value(s: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) if !v.is_string() => v,
        _ => serde_json::Value::String(s.to_owned()),
    }
}

fn pairs(list: &[String], what: &str) -> Result<Vec<(String, serde_json::Value)>> {
    list.iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("--{what} {p:?}: expected NAME=VALUE"))?;
            Ok((k.to_owned(), json_value(v)))
        })
        .collect()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sign(a: &SignArgs) -> Result<()> {
    let alg = parse_algorithm(&a.alg).map_err(|e| anyhow::anyhow!("--alg: {e}"))?;
    let mut signer = match (a.key.secret()?, &a.key.key) {
        (Some(secret), None) => Signer::with_secret(alg, &secret)?,
        (None, Some(path)) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Signer::with_private_pem(alg, &pem)?
        }
        (None, None) => bail!("give a key: --secret, --secret-file or --key PRIVATE.pem"),
        (Some(_), Some(_)) => bail!("give --secret or --key, not both"),
    };
    let now = SystemTime::now();
    if let Some(exp) = &a.exp {
        signer = signer.lifetime(parse_duration(exp)?);
    }
    if let Some(nbf) = &a.nbf {
        signer = signer.claim("nbf", unix(now) + parse_duration(nbf)?.as_secs());
    }
    if let Some(kid) = &a.kid {
        signer = signer.kid(kid);
    }
    for (k, v) in pairs(&a.headers, "header")? {
        signer = signer.header(k, v);
    }
    for (k, v) in pairs(&a.claims, "claim")? {
        signer = signer.claim(k, v);
    }
    println!("{}", signer.sign(now)?);
    Ok(())
}

fn verify(a: VerifyArgs) -> Result<()> {
    let token = if a.token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the token from stdin")?;
        s.trim().to_owned()
    } else {
        a.token.trim().to_owned()
    };
    let algs = a
        .algs
        .iter()
        .map(|s| parse_algorithm(s).map_err(|e| anyhow::anyhow!("--alg: {e}")))
        .collect::<Result<Vec<Algorithm>>>()?;
    let mut keys = Vec::new();
    if let Some(secret) = a.key.secret()? {
        let algs = if algs.is_empty() {
            vec![Algorithm::HS256]
        } else {
            algs.clone()
        };
        keys.push(Key::secret(&secret, &algs)?);
    }
    if let Some(path) = &a.key.key {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        keys.push(Key::public_pem(&pem, &algs)?);
    }
    let mut config = Config::default();
    config.leeway = parse_duration(&a.leeway)?;
    config.issuers = a.iss;
    config.audiences = a.aud;
    if a.no_exp {
        config.required_claims.clear();
    }
    config.required_claims.extend(a.required);
    if !algs.is_empty() {
        config.jwks_rsa_algorithms.clone_from(&algs);
    }
    let jwks = match &a.jwks {
        Some(url) => {
            let mut tls = ws_tls::ClientTlsConfig::default();
            tls.ca_file.clone_from(&a.ca_file);
            Some((url.clone(), ws_tls::client_config(&tls)?))
        }
        None => None,
    };
    if keys.is_empty() && jwks.is_none() {
        bail!("give a key: --secret, --secret-file, --key PUBLIC.pem or --jwks URL");
    }
    let verifier = Verifier::build(config, keys, jwks, None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        if a.jwks.is_some() {
            verifier.load_jwks().await?;
        }
        Ok::<_, anyhow::Error>(verifier.verify(&token, SystemTime::now()).await)
    })?;
    match result {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::Value::Object(v.claims.0))?
            );
            Ok(())
        }
        Err(e) => bail!("invalid token: {e}"),
    }
}
