//! JWT and OAuth2 for wskit: sign and verify JWTs (keys, JWKS over rustls), guard every
//! ws-server route with one token check, feed ws-client's token hook, and an OAuth2
//! authorization server whose apps and tokens live in SQLite.
//!
//! ```text
//!  floor 0  error, config (Config, Location), random (Random, OsRandom)
//!  floor 1  jwt::{keys, claims, sign, verify}   sans-IO: KeySet::verify(token, &config, now)
//!           source (find the token in headers / query / cookie / subprotocol)
//!  floor 2  verifier (static keys + JWKS: fetch over tokio-rustls, cache, rate-limited refresh)
//!  floor 3  guard (ws-server: Guard<H> wrapper, Authenticator, hooks)   client (ws-client)
//!           apikey (API keys: ApiKeys over ApiKeyStore, ApiKeyGuard<H> for ws-server)
//!           oauth2_client (the oauth2 crate over fetch; OAuth2TokenSource for ws-client)
//!  oauth2   store (SQLite) -> server (decisions at `now`) -> http (endpoints + guard)
//! ```
//!
//! Algorithms: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 and EdDSA (Ed25519),
//! through jsonwebtoken with its pure-Rust `rust_crypto` backend. `none` is always refused.
//! **ES512 is refused**: jsonwebtoken 12 has no P-521 support, and adding a second ECDSA
//! stack for one curve is not worth its weight; tokens and keys using it are rejected with
//! [`TokenError::UnsupportedAlgorithm`]. The algorithms a key verifies come from the key's
//! settings (or its JWK `alg`, or its curve), never from a token.
//!
//! Randomness (OAuth2 codes and tokens) comes from the OS through `getrandom` in the runtime
//! layer; the cores take it as an argument. Time is an argument of every check (`now`).
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use auth_oauth2_jwt::{Config, Key, KeySet, Signer, TokenError, jsonwebtoken::Algorithm};
//!
//! let signer = Signer::with_secret(Algorithm::HS256, b"s3cret")?
//!     .claim("sub", "alice")
//!     .lifetime(Duration::from_secs(3600));
//! let now = SystemTime::now();
//! let token = signer.sign(now)?;
//!
//! let mut keys = KeySet::new();
//! keys.push(Key::secret(b"s3cret", &[Algorithm::HS256])?);
//! let config = Config::default();
//! let verified = keys.verify(&token, &config, now)?;
//! assert_eq!(verified.claims.sub(), Some("alice"));
//! let later = now + Duration::from_secs(7200);
//! assert!(matches!(keys.verify(&token, &config, later), Err(TokenError::Expired { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apikey;
pub mod client;
mod config;
mod error;
mod fetch;
pub mod guard;
pub mod jwt;
pub mod oauth2;
pub mod oauth2_client;
pub mod random;
pub mod source;
pub mod verifier;

pub use apikey::{ApiKeyConfig, ApiKeyGuard, ApiKeys};
pub use config::{Config, Location, OAuth2Config};
pub use error::{Error, OAuthError, TokenError};
pub use guard::{Guard, GuardHooks, JwtAuth, TokenCheck};
/// The JWT library underneath (for [`jsonwebtoken::Algorithm`]).
pub use jsonwebtoken;
pub use jwt::{
    claims::Claims,
    keys::{Key, parse_algorithm},
    sign::Signer,
    verify::{KeySet, Verified},
};
pub use verifier::Verifier;
