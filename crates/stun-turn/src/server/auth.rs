//! Long-term credentials: nonces, authentication of requests, signed and error responses.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mac {
    Sha1,
    Sha256,
}

/// Credentials that passed authentication.
#[derive(Clone)]
pub(super) struct Auth {
    pub(super) username: String,
    pub(super) key: Key,
    pub(super) mac: Mac,
}

/// The nonce cookie of RFC 8489 §9.2 followed by the security feature set (password algorithms
/// and username anonymity), base64.
pub(super) const NONCE_COOKIE: &str = "obMatJos2AAAD";

impl Server {
    pub(super) fn make_nonce(&self, now: Instant, client: &FiveTuple) -> String {
        let t = now.saturating_duration_since(self.mono0).as_secs();
        let tag = self.nonce_tag(t, client.client.ip());
        let prefix = if self.cfg.password_algorithms {
            NONCE_COOKIE
        } else {
            ""
        };
        format!("{prefix}{t:012x}{tag}")
    }

    pub(super) fn nonce_tag(&self, t: u64, ip: IpAddr) -> String {
        let mut c = hmac::Context::with_key(&self.nonce_key);
        c.update(&t.to_be_bytes());
        match ip {
            IpAddr::V4(v) => c.update(&v.octets()),
            IpAddr::V6(v) => c.update(&v.octets()),
        }
        c.sign().as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `Some(true)`: valid; `Some(false)`: ours but expired; `None`: not ours.
    pub(super) fn check_nonce(
        &self,
        nonce: &str,
        now: Instant,
        client: &FiveTuple,
    ) -> Option<bool> {
        let body = nonce.strip_prefix(NONCE_COOKIE).unwrap_or(nonce);
        if body.len() != 28 || !body.is_char_boundary(12) {
            return None;
        }
        let t = u64::from_str_radix(&body[..12], 16).ok()?;
        let tag = self.nonce_tag(t, client.client.ip());
        if !crate::integrity::ct_eq(tag.as_bytes(), &body.as_bytes()[12..]) {
            return None;
        }
        let age = now
            .saturating_duration_since(self.mono0)
            .as_secs()
            .checked_sub(t)?;
        Some(Duration::from_secs(age) < self.cfg.nonce_lifetime)
    }

    pub(super) fn password_for(&self, username: &str, now: Instant) -> Option<String> {
        if let Some(p) = self.users.get(username) {
            return Some(p.clone());
        }
        let realm = if self.cfg.short_term {
            ""
        } else {
            &self.cfg.realm
        };
        if let Some(p) = self.hooks().password(username, realm) {
            return Some(p);
        }
        let secret = self.cfg.auth_secret.as_ref()?;
        let expiry = rest_api_expiry(username)?;
        if expiry < self.unix_now(now) {
            return None;
        }
        Some(rest_api_password(secret, username))
    }

    pub(super) fn authenticate(
        &self,
        msg: &Message<'_>,
        now: Instant,
        client: &FiveTuple,
    ) -> Result<Auth, Reject> {
        if self.cfg.short_term {
            return self.authenticate_short_term(msg, now);
        }
        if !msg.has_integrity() && !msg.has_integrity_sha256() {
            return Err(Reject::plain(ErrorCode::UNAUTHORIZED));
        }
        let bad = || Reject::plain(ErrorCode::BAD_REQUEST);
        let username = match (
            msg.username().map_err(|_| bad())?,
            msg.userhash().map_err(|_| bad())?,
        ) {
            (Some(u), _) => u.to_string(),
            (None, Some(h)) => self
                .userhashes
                .get(&h)
                .cloned()
                .ok_or(Reject::plain(ErrorCode::UNAUTHORIZED))?,
            (None, None) => return Err(bad()),
        };
        let realm = msg.realm().map_err(|_| bad())?.ok_or_else(bad)?;
        let nonce = msg.nonce().map_err(|_| bad())?.ok_or_else(bad)?;
        match self.check_nonce(nonce, now, client) {
            Some(true) => {}
            _ => return Err(Reject::plain(ErrorCode::STALE_NONCE)),
        }
        if realm != self.cfg.realm {
            return Err(Reject::plain(ErrorCode::UNAUTHORIZED));
        }
        let alg = match msg.password_algorithm().map_err(|_| bad())? {
            None => PasswordAlgorithm::Md5,
            Some(code) => {
                let alg = PasswordAlgorithm::from_code(code).ok_or_else(bad)?;
                // RFC 8489 §9.2.4: the request must echo the list the server offered.
                if self.cfg.password_algorithms {
                    let offered = [
                        PasswordAlgorithm::Md5.code(),
                        PasswordAlgorithm::Sha256.code(),
                    ];
                    match msg.password_algorithms().map_err(|_| bad())? {
                        Some(list) if list == offered => {}
                        _ => return Err(bad()),
                    }
                }
                alg
            }
        };
        let password = self
            .password_for(&username, now)
            .ok_or(Reject::plain(ErrorCode::UNAUTHORIZED))?;
        let key = Key::long_term_with(alg, &username, realm, &password);
        let mac = if msg.has_integrity_sha256() {
            msg.verify_integrity_sha256(&key)
                .map_err(|_| Reject::plain(ErrorCode::UNAUTHORIZED))?;
            Mac::Sha256
        } else {
            msg.verify_integrity(&key)
                .map_err(|_| Reject::plain(ErrorCode::UNAUTHORIZED))?;
            Mac::Sha1
        };
        Ok(Auth { username, key, mac })
    }

    /// RFC 8489 section 9.1.3: no USERNAME or MESSAGE-INTEGRITY is 400; an unknown user or a
    /// wrong MESSAGE-INTEGRITY is 401 (without REALM and NONCE, and unsigned).
    fn authenticate_short_term(&self, msg: &Message<'_>, now: Instant) -> Result<Auth, Reject> {
        let bad = || Reject::plain(ErrorCode::BAD_REQUEST);
        let unauthorized = || Reject::plain(ErrorCode::UNAUTHORIZED);
        if !msg.has_integrity() && !msg.has_integrity_sha256() {
            return Err(bad());
        }
        let username = msg.username().map_err(|_| bad())?.ok_or_else(bad)?;
        let password = self.password_for(username, now).ok_or_else(unauthorized)?;
        let key = Key::short_term(&password);
        let mac = if msg.has_integrity_sha256() {
            msg.verify_integrity_sha256(&key)
                .map_err(|_| unauthorized())?;
            Mac::Sha256
        } else {
            msg.verify_integrity(&key).map_err(|_| unauthorized())?;
            Mac::Sha1
        };
        Ok(Auth {
            username: username.to_string(),
            key,
            mac,
        })
    }

    pub(super) fn finish_response(
        &self,
        e: &mut MessageEncoder<'_>,
        auth: Option<&Auth>,
        fingerprint: bool,
    ) {
        if let Some(s) = &self.cfg.software {
            e.software(s);
        }
        if let Some(a) = auth {
            match a.mac {
                Mac::Sha1 => e.message_integrity(&a.key),
                Mac::Sha256 => e.message_integrity_sha256(&a.key),
            };
        }
        if fingerprint || self.cfg.fingerprint {
            e.fingerprint();
        }
    }

    pub(super) fn error_response(
        &self,
        out: &mut Vec<u8>,
        msg: &Message<'_>,
        reject: &Reject,
        auth: Option<&Auth>,
        now: Instant,
        client: &FiveTuple,
    ) {
        let start = out.len();
        let mut e = MessageEncoder::new(
            out,
            MessageType::new(msg.method(), Class::Error),
            msg.transaction_id(),
        );
        e.error_code(reject.code);
        if !reject.unknown.is_empty() {
            e.unknown_attributes(&reject.unknown);
        }
        if !self.cfg.short_term
            && matches!(
                reject.code,
                ErrorCode::UNAUTHORIZED | ErrorCode::STALE_NONCE
            )
        {
            e.realm(&self.cfg.realm)
                .nonce(&self.make_nonce(now, client));
            if self.cfg.password_algorithms {
                e.password_algorithms(&[PasswordAlgorithm::Md5, PasswordAlgorithm::Sha256]);
            }
        }
        if reject.code == ErrorCode::TRY_ALTERNATE
            && let Some(a) = self.cfg.alternate_server
        {
            e.alternate_server(a);
        }
        self.finish_response(
            &mut e,
            if reject.signed { auth } else { None },
            msg.has_fingerprint(),
        );
        if e.finish().is_err() {
            out.truncate(start);
        }
    }
}
