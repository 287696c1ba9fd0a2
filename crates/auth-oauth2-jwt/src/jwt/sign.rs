//! Signing: a [`Signer`] holds the key, the header and payload fields to add, the lifetime,
//! and caches its token for [`Signer::refresh_after`] (the seed's `RefreshTokenAfter`).

use std::{
    fmt,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::{error::Error, jwt::keys::ALGORITHMS};

/// Signs tokens. Secrets and private keys are never printed by `Debug`.
pub struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    kid: Option<String>,
    typ: String,
    header_extra: Map<String, Value>,
    claims: Map<String, Value>,
    lifetime: Option<Duration>,
    refresh_after: Option<Duration>,
    cached: Mutex<Option<(String, SystemTime)>>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .field("lifetime", &self.lifetime)
            .field("refresh_after", &self.refresh_after)
            .finish_non_exhaustive()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Signer {
    /// A signer with an HMAC secret (`alg` HS256/384/512).
    ///
    /// # Errors
    /// [`Error::Key`] for an empty secret or a non-HMAC algorithm.
    pub fn with_secret(alg: Algorithm, secret: &[u8]) -> Result<Self, Error> {
        if alg.family() != jsonwebtoken::AlgorithmFamily::Hmac {
            return Err(Error::Key(format!("{alg:?} does not take a secret")));
        }
        if secret.is_empty() {
            return Err(Error::Key("empty HMAC secret".into()));
        }
        let key = EncodingKey::from_secret(secret).map_err(|e| Error::Key(e.to_string()))?;
        Ok(Self::new(alg, key))
    }

    /// A signer with a PEM private key (PKCS#8, or PKCS#1 for RSA; SEC1 or PKCS#8 for EC;
    /// PKCS#8 for Ed25519) for `alg`.
    ///
    /// # Errors
    /// [`Error::Key`] when the PEM is not a private key of `alg`'s kind.
    pub fn with_private_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, Error> {
        if !ALGORITHMS.contains(&alg) {
            return Err(Error::Key(format!("{alg:?} is not supported")));
        }
        let key = match alg.family() {
            jsonwebtoken::AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem),
            jsonwebtoken::AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem),
            jsonwebtoken::AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem),
            jsonwebtoken::AlgorithmFamily::Hmac => {
                return Err(Error::Key(format!("{alg:?} takes a secret, not a PEM key")));
            }
        }
        .map_err(|e| Error::Key(e.to_string()))?;
        Ok(Self::new(alg, key))
    }

    fn new(alg: Algorithm, key: EncodingKey) -> Self {
        Self {
            alg,
            key,
            kid: None,
            typ: "JWT".into(),
            header_extra: Map::new(),
            claims: Map::new(),
            lifetime: None,
            refresh_after: None,
            cached: Mutex::new(None),
        }
    }

    /// Sets the header's `kid`.
    #[must_use]
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Sets the header's `typ` (default `JWT`; RFC 9068 access tokens use `at+jwt`).
    #[must_use]
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = typ.into();
        self
    }

    /// The public key of this signer as a JWK (with its `kid` and `alg`), for a JWKS; `None`
    /// for HMAC secrets, which are never published.
    #[must_use]
    pub fn public_jwk(&self) -> Option<Value> {
        if self.alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
            return None;
        }
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.key, self.alg).ok()?;
        jwk.common.key_id.clone_from(&self.kid);
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        serde_json::to_value(jwk).ok()
    }

    /// Adds a header field (`typ`, `alg` and `kid` have their own setters and cannot be
    /// overridden here).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.header_extra.insert(name.into(), value.into());
        self
    }

    /// Adds a payload claim (`sub`, `iss`, `aud`, `jti`, custom ones). `iat` and `exp` are
    /// set at signing time when [`Signer::lifetime`] is set.
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Each token expires this long after it is signed (`exp`), and carries `iat`.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// Reuse a signed token for this long, then sign a new one (the seed's
    /// `RefreshTokenAfter`). Without it, [`Signer::token`] signs every time.
    #[must_use]
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.refresh_after = Some(after);
        self
    }

    /// The algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Signs the claims at `now` (`iat` = now and `exp` = now + lifetime, when a lifetime
    /// is set; claims set with [`Signer::claim`] win over neither).
    ///
    /// # Errors
    /// [`Error::Sign`] when the key does not fit the algorithm.
    pub fn sign(&self, now: SystemTime) -> Result<String, Error> {
        self.sign_with(now, &Map::new())
    }

    /// Signs with `extra` claims added to the configured ones (they win on a name clash).
    ///
    /// # Errors
    /// As [`Signer::sign`].
    pub fn sign_with(&self, now: SystemTime, extra: &Map<String, Value>) -> Result<String, Error> {
        let mut header = Header::new(self.alg);
        header.kid.clone_from(&self.kid);
        header.typ = Some(self.typ.clone());
        for (k, v) in &self.header_extra {
            match k.as_str() {
                "alg" | "typ" | "kid" => {}
                "cty" => header.cty = v.as_str().map(str::to_owned),
                _ => header.extras.insert(k.clone(), v.clone()),
            }
        }
        let mut claims = self.claims.clone();
        if let Some(lifetime) = self.lifetime {
            let t = unix(now);
            claims.insert("iat".into(), t.into());
            claims.insert("exp".into(), t.saturating_add(lifetime.as_secs()).into());
        }
        for (k, v) in extra {
            claims.insert(k.clone(), v.clone());
        }
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| Error::Sign(e.to_string()))
    }

    /// The current token: the cached one while it is younger than
    /// [`Signer::refresh_after`] (and `force` is false), else a newly signed one.
    ///
    /// # Errors
    /// As [`Signer::sign`].
    pub fn token(&self, now: SystemTime, force: bool) -> Result<String, Error> {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some((token, at)), Some(after), false) = (&*cached, self.refresh_after, force) {
            if now.duration_since(*at).is_ok_and(|age| age < after) {
                return Ok(token.clone());
            }
        }
        let token = self.sign(now)?;
        *cached = Some((token.clone(), now));
        Ok(token)
    }
}
