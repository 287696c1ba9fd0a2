//! The server configuration and its validation.

use super::*;

/// Server configuration. Build with `ServerConfig::default()`, set fields, then [`Server::new`]
/// validates it.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Realm of the long-term credential mechanism. Default: [`ServerConfig::DEFAULT_REALM`].
    pub realm: String,
    /// Static users (name, password). Default: none.
    pub users: Vec<(String, String)>,
    /// TURN REST API shared secret: usernames `"<expiry>:<user>"` with password
    /// base64(HMAC-SHA1(secret, username)) are accepted until the expiry. Default: `None`.
    pub auth_secret: Option<String>,
    /// Whether TURN methods are served; `false` makes a STUN-only server. Default: `true`.
    pub turn: bool,
    /// Whether Binding requests need credentials too. Default: `false`.
    pub stun_auth: bool,
    /// Nonce validity; older nonces get 438 Stale Nonce. Default: [`ServerConfig::DEFAULT_NONCE_LIFETIME`] (600 s).
    pub nonce_lifetime: Duration,
    /// Whether the 401 advertises PASSWORD-ALGORITHMS (MD5, SHA-256) per RFC 8489. Default: `true`.
    pub password_algorithms: bool,
    /// SOFTWARE sent in responses (`None`: omitted). Default: `Some("wskit")`.
    pub software: Option<String>,
    /// Whether every response carries FINGERPRINT (otherwise only responses to requests that had one).
    /// Default: `false`.
    pub fingerprint: bool,
    /// Allocation lifetime when the client asks for less or nothing. Default: [`ServerConfig::DEFAULT_LIFETIME`] (600 s).
    pub default_lifetime: Duration,
    /// Longest allocation lifetime granted. Default: [`ServerConfig::DEFAULT_MAX_LIFETIME`] (3600 s).
    pub max_lifetime: Duration,
    /// Permission lifetime. Default: [`ServerConfig::DEFAULT_PERMISSION_LIFETIME`] (300 s).
    pub permission_lifetime: Duration,
    /// Channel binding lifetime. Default: [`ServerConfig::DEFAULT_CHANNEL_LIFETIME`] (600 s).
    pub channel_lifetime: Duration,
    /// Allocations per user (486 beyond). Default: [`ServerConfig::DEFAULT_USER_QUOTA`] (100).
    pub user_quota: usize,
    /// Allocations in total (508 beyond). Default: [`ServerConfig::DEFAULT_TOTAL_QUOTA`] (100 000).
    pub total_quota: usize,
    /// Permissions per allocation (508 beyond). Default: [`ServerConfig::DEFAULT_MAX_PERMISSIONS`] (64).
    pub max_permissions: usize,
    /// Channels per allocation (508 beyond). Default: [`ServerConfig::DEFAULT_MAX_CHANNELS`] (64).
    pub max_channels: usize,
    /// Relayed bytes per second per allocation, each direction; `None`: unlimited. Default: `None`.
    pub bandwidth_limit: Option<u64>,
    /// Let peers in 127.0.0.0/8 and ::1 be reached. Default: `false`.
    pub allow_loopback_peers: bool,
    /// Networks that peers may be in even though they are special (private, link-local...).
    /// Default: none.
    pub allowed_peers: Vec<Cidr>,
    /// Networks that peers may never be in (checked first). Default: none.
    pub denied_peers: Vec<Cidr>,
    /// Redirect Allocate requests (and Binding on a STUN-only server) with 300 Try Alternate.
    /// Default: `None`.
    pub alternate_server: Option<SocketAddr>,
    /// Address sent as OTHER-ADDRESS in Binding responses (RFC 5780). Default: `None`.
    pub other_address: Option<SocketAddr>,
    /// How long a RESERVATION-TOKEN holds the reserved port. Default: [`ServerConfig::DEFAULT_RESERVATION_LIFETIME`] (30 s).
    pub reservation_lifetime: Duration,
    /// How long responses are kept for retransmitted requests. Default: [`ServerConfig::DEFAULT_TRANSACTION_CACHE_LIFETIME`] (40 s).
    pub transaction_cache_lifetime: Duration,
    /// Most cached responses. Default: [`ServerConfig::DEFAULT_TRANSACTION_CACHE_SIZE`] (65 536).
    pub transaction_cache_size: usize,
    /// RFC 6062: how long a peer connection waits for ConnectionBind. Default: [`ServerConfig::DEFAULT_CONNECTION_BIND_TIMEOUT`] (30 s).
    pub connection_bind_timeout: Duration,
    /// Decoder limits. Default: [`DecodeLimits::default`].
    pub limits: DecodeLimits,
    /// Application hooks: a password callback, a say on each relay, notifications
    /// ([`ServerHooks`]). Default: `None`.
    pub hooks: Option<SharedHooks>,
    /// Authenticate Binding requests with the short-term credential mechanism (RFC 8489
    /// section 9.1: USERNAME and MESSAGE-INTEGRITY keyed with the password itself, no realm and
    /// no nonce) instead of the long-term one. Needs [`ServerConfig::stun_auth`] and a STUN-only
    /// server (`turn = false`): RFC 8656 TURN clients use long-term credentials.
    /// Default: `false`.
    pub short_term: bool,
}

impl ServerConfig {
    /// Default of [`ServerConfig::realm`].
    pub const DEFAULT_REALM: &'static str = "wskit";
    /// Default of [`ServerConfig::nonce_lifetime`].
    pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(600);
    /// Default of [`ServerConfig::default_lifetime`].
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
    /// Default of [`ServerConfig::max_lifetime`].
    pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(3600);
    /// Default of [`ServerConfig::permission_lifetime`].
    pub const DEFAULT_PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
    /// Default of [`ServerConfig::channel_lifetime`].
    pub const DEFAULT_CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
    /// Default of [`ServerConfig::user_quota`].
    pub const DEFAULT_USER_QUOTA: usize = 100;
    /// Default of [`ServerConfig::total_quota`].
    pub const DEFAULT_TOTAL_QUOTA: usize = 100_000;
    /// Default of [`ServerConfig::max_permissions`].
    pub const DEFAULT_MAX_PERMISSIONS: usize = 64;
    /// Default of [`ServerConfig::max_channels`].
    pub const DEFAULT_MAX_CHANNELS: usize = 64;
    /// Default of [`ServerConfig::reservation_lifetime`].
    pub const DEFAULT_RESERVATION_LIFETIME: Duration = Duration::from_secs(30);
    /// Default of [`ServerConfig::transaction_cache_lifetime`].
    pub const DEFAULT_TRANSACTION_CACHE_LIFETIME: Duration = Duration::from_secs(40);
    /// Default of [`ServerConfig::transaction_cache_size`].
    pub const DEFAULT_TRANSACTION_CACHE_SIZE: usize = 65_536;
    /// Default of [`ServerConfig::connection_bind_timeout`].
    pub const DEFAULT_CONNECTION_BIND_TIMEOUT: Duration = Duration::from_secs(30);

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] or [`ConfigError::Requires`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, rule| Err(ConfigError::OutOfRange { field, rule });
        if self.realm.is_empty() || self.realm.len() > 763 {
            return bad("realm", "1..=763 bytes");
        }
        if self.default_lifetime.is_zero() || self.max_lifetime < self.default_lifetime {
            return bad("default_lifetime", "positive and at most max_lifetime");
        }
        if self.max_lifetime > Duration::from_secs(u64::from(u32::MAX)) {
            return bad("max_lifetime", "at most 2^32 - 1 seconds");
        }
        if self.nonce_lifetime.is_zero()
            || self.permission_lifetime.is_zero()
            || self.channel_lifetime.is_zero()
        {
            return bad(
                "nonce_lifetime, permission_lifetime and channel_lifetime",
                "positive",
            );
        }
        if self.user_quota == 0
            || self.total_quota == 0
            || self.max_permissions == 0
            || self.max_channels == 0
        {
            return bad(
                "user_quota, total_quota, max_permissions and max_channels",
                "positive",
            );
        }
        if self.bandwidth_limit == Some(0) {
            return bad("bandwidth_limit", "positive (None for unlimited)");
        }
        for (u, _) in &self.users {
            if u.is_empty() || u.len() > 513 {
                return bad("user names", "1..=513 bytes");
            }
        }
        if self.turn && self.users.is_empty() && self.auth_secret.is_none() && self.hooks.is_none()
        {
            return Err(ConfigError::Requires {
                field: "a TURN server",
                needs: "users, an auth secret or a password hook",
            });
        }
        if self.short_term && (self.turn || !self.stun_auth) {
            return Err(ConfigError::Requires {
                field: "short_term",
                needs: "stun_auth = true and turn = false (TURN uses long-term credentials)",
            });
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            realm: Self::DEFAULT_REALM.into(),
            users: Vec::new(),
            auth_secret: None,
            turn: true,
            stun_auth: false,
            nonce_lifetime: Self::DEFAULT_NONCE_LIFETIME,
            password_algorithms: true,
            software: Some("wskit".into()),
            fingerprint: false,
            default_lifetime: Self::DEFAULT_LIFETIME,
            max_lifetime: Self::DEFAULT_MAX_LIFETIME,
            permission_lifetime: Self::DEFAULT_PERMISSION_LIFETIME,
            channel_lifetime: Self::DEFAULT_CHANNEL_LIFETIME,
            user_quota: Self::DEFAULT_USER_QUOTA,
            total_quota: Self::DEFAULT_TOTAL_QUOTA,
            max_permissions: Self::DEFAULT_MAX_PERMISSIONS,
            max_channels: Self::DEFAULT_MAX_CHANNELS,
            bandwidth_limit: None,
            allow_loopback_peers: false,
            allowed_peers: Vec::new(),
            denied_peers: Vec::new(),
            alternate_server: None,
            other_address: None,
            reservation_lifetime: Self::DEFAULT_RESERVATION_LIFETIME,
            transaction_cache_lifetime: Self::DEFAULT_TRANSACTION_CACHE_LIFETIME,
            transaction_cache_size: Self::DEFAULT_TRANSACTION_CACHE_SIZE,
            connection_bind_timeout: Self::DEFAULT_CONNECTION_BIND_TIMEOUT,
            limits: DecodeLimits::default(),
            hooks: None,
            short_term: false,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords and the secret are never printed.
        f.debug_struct("ServerConfig")
            .field("realm", &self.realm)
            .field(
                "users",
                &self
                    .users
                    .iter()
                    .map(|(u, _)| u.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "auth_secret",
                &self.auth_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("turn", &self.turn)
            .field("default_lifetime", &self.default_lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("user_quota", &self.user_quota)
            .field("allow_loopback_peers", &self.allow_loopback_peers)
            .field("allowed_peers", &self.allowed_peers)
            .field("hooks", &self.hooks.as_ref().map(|_| "<hooks>"))
            .field("short_term", &self.short_term)
            .finish_non_exhaustive()
    }
}
