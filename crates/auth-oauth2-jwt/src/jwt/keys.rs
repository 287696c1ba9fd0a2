//! Verification keys: each with its own list of allowed algorithms (never taken from a
//! token), an optional key id, and where it came from.

use std::{fmt, str::FromStr};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};

use crate::error::{Error, TokenError};

/// Every algorithm this crate signs and verifies.
pub const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Parses an algorithm name (`HS256`, ..., `EdDSA`).
///
/// # Errors
/// [`TokenError::AlgNone`] for `none`; [`TokenError::UnsupportedAlgorithm`] for anything
/// else unknown, ES512 included: jsonwebtoken 12 has no P-521 curve, and no well-kept crate
/// pairs with it, so ES512 tokens are refused (see the crate docs).
pub fn parse_algorithm(name: &str) -> Result<Algorithm, TokenError> {
    if name.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    Algorithm::from_str(name).map_err(|_| TokenError::UnsupportedAlgorithm(name.to_owned()))
}

/// A verification key.
#[derive(Clone)]
pub struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
    pub(crate) from_jwks: bool,
}

impl fmt::Debug for Key {
    /// Key material is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .field("from_jwks", &self.from_jwks)
            .finish_non_exhaustive()
    }
}

fn family_ok(algorithms: &[Algorithm], family: jsonwebtoken::AlgorithmFamily) -> Result<(), Error> {
    if algorithms.is_empty() {
        return Err(Error::Key(
            "a key needs at least one allowed algorithm".into(),
        ));
    }
    if let Some(a) = algorithms.iter().find(|a| a.family() != family) {
        return Err(Error::Key(format!(
            "algorithm {a:?} does not fit this kind of key"
        )));
    }
    Ok(())
}

impl Key {
    /// An HMAC secret for `algorithms` (HS256/384/512).
    ///
    /// # Errors
    /// [`Error::Key`] for an empty secret or a non-HMAC algorithm.
    pub fn secret(secret: &[u8], algorithms: &[Algorithm]) -> Result<Self, Error> {
        family_ok(algorithms, jsonwebtoken::AlgorithmFamily::Hmac)?;
        if secret.is_empty() {
            return Err(Error::Key("empty HMAC secret".into()));
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| Error::Key(e.to_string()))?;
        Ok(Self::with(key, algorithms))
    }

    /// A PEM public key (`-----BEGIN PUBLIC KEY-----`, or `BEGIN RSA PUBLIC KEY`, or a
    /// certificate for RSA) for `algorithms`, which must all be of the key's kind (RSA: RS* and
    /// PS*; EC: ES256 or ES384; Ed25519: EdDSA). With `algorithms` empty, the kind's defaults:
    /// RSA RS256, P-256 ES256, P-384 ES384, Ed25519 EdDSA.
    ///
    /// # Errors
    /// [`Error::Key`] when the PEM does not parse as a public key of the algorithms' kind.
    pub fn public_pem(pem: &[u8], algorithms: &[Algorithm]) -> Result<Self, Error> {
        let text = std::str::from_utf8(pem).map_err(|_| Error::Key("PEM is not text".into()))?;
        if text.contains("PRIVATE KEY") {
            return Err(Error::Key(
                "this is a private key; give the verifier the public key".into(),
            ));
        }
        let guesses: Vec<Vec<Algorithm>> = if algorithms.is_empty() {
            vec![
                vec![Algorithm::RS256],
                vec![Algorithm::ES256],
                vec![Algorithm::ES384],
                vec![Algorithm::EdDSA],
            ]
        } else {
            vec![algorithms.to_vec()]
        };
        let mut last = String::from("unrecognised public key");
        for algs in guesses {
            let family = algs[0].family();
            family_ok(&algs, family)?;
            let parsed = match family {
                jsonwebtoken::AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
                jsonwebtoken::AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
                jsonwebtoken::AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
                jsonwebtoken::AlgorithmFamily::Hmac => {
                    return Err(Error::Key(
                        "HMAC algorithms take a secret, not a PEM key".into(),
                    ));
                }
            };
            match parsed {
                Ok(key) => {
                    if algorithms.is_empty() && family == jsonwebtoken::AlgorithmFamily::Ec {
                        // Tell P-256 from P-384 by the size of the point.
                        let algs = match key.try_get_as_bytes().map(<[u8]>::len) {
                            Ok(97) => vec![Algorithm::ES384],
                            Ok(65) => vec![Algorithm::ES256],
                            _ => return Err(Error::Key("unsupported EC curve (P-256 and P-384 are supported; P-521/ES512 is not)".into())),
                        };
                        return Ok(Self::with(key, &algs));
                    }
                    return Ok(Self::with(key, &algs));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Key(last))
    }

    /// A key from a JWK. Its algorithms: the JWK's `alg` when present; else by kind: RSA
    /// `rsa_default`, EC by curve (P-256 ES256, P-384 ES384), OKP Ed25519 EdDSA. Symmetric
    /// (`oct`) keys are refused when `allow_symmetric` is false (keys from a fetched JWKS),
    /// as are keys whose `use` is not `sig`.
    ///
    /// # Errors
    /// [`Error::Key`] for unsupported key types or curves (P-521 included), an `alg` that does
    /// not fit the key, `use: enc`.
    pub fn from_jwk(
        jwk: &Jwk,
        rsa_default: &[Algorithm],
        allow_symmetric: bool,
    ) -> Result<Self, Error> {
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return Err(Error::Key("JWK is not for signatures".into()));
        }
        let by_kind: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => rsa_default.to_vec(),
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => {
                    return Err(Error::Key(
                        "unsupported curve (ES512/P-521 is not supported)".into(),
                    ));
                }
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            AlgorithmParameters::OctetKey(_) if allow_symmetric => {
                vec![Algorithm::HS256]
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(Error::Key(
                    "symmetric keys in a fetched JWKS are refused".into(),
                ));
            }
            _ => return Err(Error::Key("unsupported JWK key type".into())),
        };
        let algorithms = match jwk.common.key_algorithm {
            Some(alg) => {
                let alg = jwk_algorithm(alg)?;
                if by_kind.first().map(|a| a.family()) != Some(alg.family()) {
                    return Err(Error::Key(format!("JWK alg {alg:?} does not fit its key")));
                }
                vec![alg]
            }
            None => by_kind,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| Error::Key(e.to_string()))?;
        Ok(Self {
            kid: jwk.common.key_id.clone(),
            algorithms,
            key,
            from_jwks: false,
        })
    }

    fn with(key: DecodingKey, algorithms: &[Algorithm]) -> Self {
        Self {
            kid: None,
            algorithms: algorithms.to_vec(),
            key,
            from_jwks: false,
        }
    }

    /// Gives the key an id: tokens with this `kid` are checked with this key only.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key verifies.
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

fn jwk_algorithm(alg: KeyAlgorithm) -> Result<Algorithm, Error> {
    Ok(match alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        other => {
            return Err(Error::Key(format!(
                "JWK alg {other:?} is not a signature algorithm here"
            )));
        }
    })
}

/// Parses a JWKS document into keys, skipping (and counting) the keys that cannot be used:
/// encryption keys, unsupported kinds, symmetric keys.
///
/// # Errors
/// [`Error::Key`] when the document is not a JWKS.
pub fn parse_jwks(json: &[u8], rsa_default: &[Algorithm]) -> Result<(Vec<Key>, usize), Error> {
    let set: JwkSet =
        serde_json::from_slice(json).map_err(|e| Error::Key(format!("not a JWKS: {e}")))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    let mut skipped = 0;
    for jwk in &set.keys {
        match Key::from_jwk(jwk, rsa_default, false) {
            Ok(mut k) => {
                k.from_jwks = true;
                keys.push(k);
            }
            Err(_) => skipped += 1,
        }
    }
    Ok((keys, skipped))
}
