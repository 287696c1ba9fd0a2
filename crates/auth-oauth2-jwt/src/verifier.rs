//! [`Verifier`]: the runtime side of verification. Static keys plus, optionally, a JWKS URL
//! fetched over rustls, cached for [`Config::jwks_max_age`] and fetched again when a token
//! names an unknown `kid` (at most once per [`Config::jwks_min_refresh`]), so that a key
//! rotation at the issuer needs no restart.

use std::{
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant, SystemTime},
};

use crate::{
    config::Config,
    error::{Error, TokenError},
    fetch,
    jwt::{
        keys::{Key, parse_jwks},
        verify::{KeyHook, KeySet, Verified, decode_unverified},
    },
};

/// When to fetch a JWKS: a pure policy over the times of the last fetch and the last try.
#[derive(Clone, Debug, Default)]
pub struct RefreshPolicy {
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

impl RefreshPolicy {
    /// Whether to fetch at `now`: never fetched yet; or the keys are older than `max_age`, or
    /// `unknown_kid` asks for new keys, and the last try is at least `min_interval` ago.
    #[must_use]
    pub fn should_fetch(
        &self,
        now: Instant,
        unknown_kid: bool,
        max_age: Duration,
        min_interval: Duration,
    ) -> bool {
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        let tried_recently = since(self.last_attempt).is_some_and(|d| d < min_interval);
        if tried_recently {
            return false;
        }
        match since(self.fetched_at) {
            None => true,
            Some(age) => unknown_kid || age >= max_age,
        }
    }

    /// Records a try at `now`, and whether it brought keys.
    pub fn record(&mut self, now: Instant, ok: bool) {
        self.last_attempt = Some(now);
        if ok {
            self.fetched_at = Some(now);
        }
    }
}

struct Jwks {
    url: String,
    tls: Arc<rustls::ClientConfig>,
    policy: Mutex<RefreshPolicy>,
    fetching: tokio::sync::Mutex<()>,
}

struct Inner {
    config: Config,
    keys: RwLock<KeySet>,
    jwks: Option<Jwks>,
}

/// Verifies tokens against static keys and an optional JWKS. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "keys",
                &*self
                    .inner
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner),
            )
            .field("jwks", &self.inner.jwks.as_ref().map(|j| &j.url))
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with `keys` (for a JWKS or a key hook, see [`Verifier::build`]).
    ///
    /// # Errors
    /// [`Error::Config`] from [`Config::validate`].
    pub fn new(config: Config, keys: Vec<Key>) -> Result<Self, Error> {
        Self::build(config, keys, None, None)
    }

    /// A verifier with static `keys`, the JWKS at `url` (fetched with `tls`; build it with
    /// `ws_tls::client_config`), and an optional key-choosing hook.
    ///
    /// # Errors
    /// [`Error::Config`] or [`Error::ConfigValue`] from [`Config::validate`], or ([`Error::ConfigValue`]) a JWKS URL that is not `https://`
    /// (nor a loopback `http://` URL with [`Config::jwks_allow_loopback_http`]).
    pub fn build(
        config: Config,
        keys: Vec<Key>,
        jwks: Option<(String, Arc<rustls::ClientConfig>)>,
        hook: Option<KeyHook>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let mut set = KeySet::new();
        for k in keys {
            set.push(k);
        }
        if let Some(h) = hook {
            set.set_hook(h);
        }
        let jwks = match jwks {
            Some((url, tls)) => {
                let lower = url.to_ascii_lowercase();
                let allowed = lower.starts_with("https://")
                    || (config.jwks_allow_loopback_http && lower.starts_with("http://"));
                if !allowed {
                    return Err(Error::ConfigValue {
                        field: "JWKS URL",
                        value: url,
                        rule: "must be https://",
                    });
                }
                Some(Jwks {
                    url,
                    tls,
                    policy: Mutex::new(RefreshPolicy::default()),
                    fetching: tokio::sync::Mutex::new(()),
                })
            }
            None => None,
        };
        if jwks.is_none() && set.keys().is_empty() {
            return Err(Error::Config {
                field: "a verifier",
                rule: "needs a key, a secret or a JWKS URL",
            });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                keys: RwLock::new(set),
                jwks,
            }),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Verifies with the keys at hand, never fetching (for re-checks, e.g. the claims of an
    /// open connection).
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn verify_cached(&self, token: &str, now: SystemTime) -> Result<Verified, TokenError> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .verify(token, &self.inner.config, now)
    }

    /// Verifies `token` at `now`, fetching the JWKS first when it is due, and once more when
    /// the token names a key id not seen yet (rate-limited).
    ///
    /// # Errors
    /// Why the token is refused.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<Verified, TokenError> {
        if token.len() > self.inner.config.max_token_len {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: self.inner.config.max_token_len,
            });
        }
        if self.inner.jwks.is_some() {
            self.refresh(false).await;
        }
        let first = self.verify_cached(token, now);
        let Some(_) = &self.inner.jwks else {
            return first;
        };
        let unknown_kid = match &first {
            Err(TokenError::UnknownKid(_)) => true,
            Err(TokenError::BadSignature | TokenError::AlgorithmNotAllowed { .. }) => {
                decode_unverified(token)
                    .ok()
                    .and_then(|(h, _)| h.kid)
                    .is_some_and(|kid| {
                        !self
                            .inner
                            .keys
                            .read()
                            .unwrap_or_else(PoisonError::into_inner)
                            .keys()
                            .iter()
                            .any(|k| k.kid() == Some(kid.as_str()))
                    })
            }
            _ => false,
        };
        if unknown_kid && self.refresh(true).await {
            return self.verify_cached(token, now);
        }
        first
    }

    /// Fetches the JWKS when the policy says so; true when new keys were installed.
    async fn refresh(&self, unknown_kid: bool) -> bool {
        let Some(jwks) = &self.inner.jwks else {
            return false;
        };
        let c = &self.inner.config;
        let due = |p: &Mutex<RefreshPolicy>| {
            p.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .should_fetch(
                    Instant::now(),
                    unknown_kid,
                    c.jwks_max_age,
                    c.jwks_min_refresh,
                )
        };
        if !due(&jwks.policy) {
            return false;
        }
        let _one = jwks.fetching.lock().await;
        // Another task may have fetched while this one waited.
        if !due(&jwks.policy) {
            return false;
        }
        let result = fetch::get(
            &jwks.url,
            &jwks.tls,
            c.jwks_allow_loopback_http,
            c.jwks_max_bytes,
            c.jwks_timeout,
        )
        .await
        .and_then(|body| parse_jwks(&body, &c.jwks_rsa_algorithms).map_err(|e| e.to_string()));
        let ok = result.is_ok();
        jwks.policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(Instant::now(), ok);
        match result {
            Ok((keys, skipped)) => {
                tracing::info!(url = %jwks.url, keys = keys.len(), skipped, "JWKS fetched");
                self.inner
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .replace_jwks(keys);
                true
            }
            Err(reason) => {
                tracing::warn!(url = %jwks.url, %reason, "JWKS fetch failed; keeping the keys at hand");
                false
            }
        }
    }

    /// Fetches the JWKS now (at start-up, to fail early on a wrong URL).
    ///
    /// # Errors
    /// [`Error::Jwks`] with the reason; [`Error::Config`] without a JWKS URL.
    pub async fn load_jwks(&self) -> Result<usize, Error> {
        let Some(jwks) = &self.inner.jwks else {
            return Err(Error::Config {
                field: "JWKS URL",
                rule: "is not configured",
            });
        };
        let c = &self.inner.config;
        let body = fetch::get(
            &jwks.url,
            &jwks.tls,
            c.jwks_allow_loopback_http,
            c.jwks_max_bytes,
            c.jwks_timeout,
        )
        .await
        .map_err(|reason| Error::Jwks {
            url: jwks.url.clone(),
            reason,
        })?;
        let (keys, _) = parse_jwks(&body, &c.jwks_rsa_algorithms).map_err(|e| Error::Jwks {
            url: jwks.url.clone(),
            reason: e.to_string(),
        })?;
        let n = keys.len();
        jwks.policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(Instant::now(), true);
        self.inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace_jwks(keys);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_policy_is_rate_limited() {
        let t0 = Instant::now();
        let (max_age, min) = (Duration::from_secs(3600), Duration::from_secs(30));
        let mut p = RefreshPolicy::default();
        assert!(p.should_fetch(t0, false, max_age, min), "first use fetches");
        p.record(t0, true);
        assert!(
            !p.should_fetch(t0 + Duration::from_secs(5), true, max_age, min),
            "unknown kid within 30 s: no"
        );
        assert!(
            p.should_fetch(t0 + Duration::from_secs(31), true, max_age, min),
            "unknown kid after 30 s"
        );
        assert!(
            !p.should_fetch(t0 + Duration::from_secs(31), false, max_age, min),
            "fresh keys, known kid"
        );
        assert!(
            p.should_fetch(t0 + Duration::from_secs(3600), false, max_age, min),
            "stale"
        );
        p.record(t0 + Duration::from_secs(40), false);
        assert!(
            !p.should_fetch(t0 + Duration::from_secs(50), true, max_age, min),
            "a failed try counts too"
        );
    }
}
