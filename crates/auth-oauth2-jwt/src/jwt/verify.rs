//! Verification: a pure function of the token, the keys, the settings and `now`.
//!
//! ```text
//!  token --len > max_token_len?--> TooLarge (before any decoding)
//!    | split in 3, decode header JSON: alg none -> AlgNone; ES512/unknown -> Unsupported;
//!    | crit -> CriticalHeader
//!    v
//!  candidate keys: hook's choice, else by kid (none -> UnknownKid), else all keys
//!    | keep those whose *configured* algorithms contain alg (none -> AlgorithmNotAllowed)
//!    v
//!  signature (jsonwebtoken, with only that algorithm) -> BadSignature
//!    v
//!  claims at `now`: exp, nbf, iat (leeway), max_age, iss, aud, required claims
//! ```

use std::{fmt, sync::Arc, time::SystemTime};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::{
    config::Config,
    error::TokenError,
    jwt::{claims::Claims, keys::Key, keys::parse_algorithm},
};

/// The decoded, not yet verified header of a token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenHeader {
    /// `alg`.
    pub alg: Algorithm,
    /// `kid`, if any.
    pub kid: Option<String>,
    /// The whole header object.
    pub raw: Map<String, Value>,
}

/// Picks the keys to try for a token from its header and (unverified) claims: the seeds'
/// `OnJWTBeforeValidateSignature`. Return `None` to use the default choice (by `kid`).
pub type KeyHook = Arc<dyn Fn(&TokenHeader, &Claims) -> Option<Vec<Key>> + Send + Sync>;

/// A token that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// The header.
    pub header: TokenHeader,
    /// The claims.
    pub claims: Claims,
}

/// A set of keys and the checks to apply, without any IO: [`KeySet::verify`] at `now`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    hook: Option<KeyHook>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.keys)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn b64(part: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("not base64url"))
}

/// Splits and decodes a token's header and payload without checking anything else.
///
/// # Errors
/// [`TokenError::Malformed`], [`TokenError::AlgNone`], [`TokenError::UnsupportedAlgorithm`].
pub fn decode_unverified(token: &str) -> Result<(TokenHeader, Claims), TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    let raw: Map<String, Value> = serde_json::from_slice(&b64(h)?)
        .map_err(|_| TokenError::Malformed("header is not a JSON object"))?;
    let alg = raw
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed("header has no alg"))?;
    let alg = parse_algorithm(alg)?;
    let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
    let claims: Map<String, Value> = serde_json::from_slice(&b64(p)?)
        .map_err(|_| TokenError::Malformed("payload is not a JSON object"))?;
    Ok((TokenHeader { alg, kid, raw }, Claims(claims)))
}

fn time_claim(claims: &Claims, name: &'static str) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(TokenError::BadTimeClaim(name)),
    }
}

/// Checks the registered claims of `claims` at `now` against `config` (no signature).
///
/// # Errors
/// The first failed check.
pub fn check_claims(claims: &Claims, config: &Config, now: SystemTime) -> Result<(), TokenError> {
    let now = unix(now);
    let leeway = config.leeway.as_secs();
    for name in &config.required_claims {
        if claims.get(name).is_none() {
            return Err(TokenError::MissingClaim(name.clone()));
        }
    }
    if let Some(exp) = time_claim(claims, "exp")? {
        if now >= exp.saturating_add(leeway) {
            return Err(TokenError::Expired { exp, now });
        }
    }
    if let Some(nbf) = time_claim(claims, "nbf")? {
        if now.saturating_add(leeway) < nbf {
            return Err(TokenError::NotYetValid { nbf, now });
        }
    }
    if let Some(iat) = time_claim(claims, "iat")? {
        if iat > now.saturating_add(leeway) {
            return Err(TokenError::BadIssuedAt { iat });
        }
        if let Some(max) = config.max_age {
            if now.saturating_sub(iat) > max.as_secs().saturating_add(leeway) {
                return Err(TokenError::BadIssuedAt { iat });
            }
        }
    } else if config.max_age.is_some() {
        return Err(TokenError::MissingClaim("iat".into()));
    }
    if !config.issuers.is_empty() {
        match claims.iss() {
            Some(iss) if config.issuers.iter().any(|i| i == iss) => {}
            _ => return Err(TokenError::WrongIssuer),
        }
    }
    let aud = claims.aud();
    if claims.get("aud").is_some() && aud.is_empty() {
        return Err(TokenError::WrongAudience);
    }
    if (!config.audiences.is_empty() || !aud.is_empty())
        && !aud.iter().any(|a| config.audiences.iter().any(|c| c == a))
    {
        return Err(TokenError::WrongAudience);
    }
    Ok(())
}

impl KeySet {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key.
    pub fn push(&mut self, key: Key) {
        self.keys.push(key);
    }

    /// Replaces the keys that came from a JWKS with `keys`.
    pub fn replace_jwks(&mut self, keys: Vec<Key>) {
        self.keys.retain(|k| !k.from_jwks);
        self.keys.extend(keys);
    }

    /// The keys.
    #[must_use]
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Sets the hook that chooses the keys for a token.
    pub fn set_hook(&mut self, hook: KeyHook) {
        self.hook = Some(hook);
    }

    /// Verifies `token` at `now`: size, header, key choice, signature, claims (flow in the
    /// module docs).
    ///
    /// # Errors
    /// The [`TokenError`] of the first failed step.
    pub fn verify(
        &self,
        token: &str,
        config: &Config,
        now: SystemTime,
    ) -> Result<Verified, TokenError> {
        if token.len() > config.max_token_len {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: config.max_token_len,
            });
        }
        let (header, unverified) = decode_unverified(token)?;
        if header.raw.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        let chosen = self.hook.as_ref().and_then(|h| h(&header, &unverified));
        let pool: Vec<&Key> = match &chosen {
            Some(keys) => keys.iter().collect(),
            None => match &header.kid {
                Some(kid) if self.keys.iter().any(|k| k.kid.is_some()) => {
                    let with_kid: Vec<&Key> = self
                        .keys
                        .iter()
                        .filter(|k| k.kid.as_deref() == Some(kid))
                        .collect();
                    if with_kid.is_empty() {
                        // Keys without an id still serve tokens whose kid we do not know
                        // only when no key has an id at all (above); here some do.
                        let anonymous: Vec<&Key> =
                            self.keys.iter().filter(|k| k.kid.is_none()).collect();
                        if anonymous.is_empty() {
                            return Err(TokenError::UnknownKid(kid.clone()));
                        }
                        anonymous
                    } else {
                        with_kid
                    }
                }
                _ => self.keys.iter().collect(),
            },
        };
        if pool.is_empty() {
            return Err(match &header.kid {
                Some(kid) if chosen.is_none() => TokenError::UnknownKid(kid.clone()),
                _ => TokenError::NoKey,
            });
        }
        let candidates: Vec<&Key> = pool
            .into_iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .collect();
        if candidates.is_empty() {
            return Err(TokenError::AlgorithmNotAllowed {
                alg: format!("{:?}", header.alg),
            });
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let mut verified = None;
        for key in candidates {
            if let Ok(data) =
                jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            {
                verified = Some(Claims(data.claims));
                break;
            }
        }
        let claims = verified.ok_or(TokenError::BadSignature)?;
        check_claims(&claims, config, now)?;
        Ok(Verified { header, claims })
    }
}
