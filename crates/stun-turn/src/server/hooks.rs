//! Application hooks: decisions (a password for a user, accept or refuse a relay) and
//! notifications (allocations created and deleted, requests answered, messages discarded).

use super::*;

/// Why an allocation went away ([`ServerHooks::allocation_deleted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteReason {
    /// The client sent Refresh with LIFETIME 0.
    Refreshed,
    /// Its lifetime ran out without a refresh.
    Expired,
    /// The client's TCP or TLS connection closed (RFC 6062 section 5).
    ClientClosed,
}

/// Why the server dropped a message or ChannelData frame from a client without answering
/// ([`ServerHooks::message_discarded`], [`ServerHooks::channel_data_discarded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscardReason {
    /// Neither a STUN message nor ChannelData, or one that does not decode.
    Malformed,
    /// FINGERPRINT present and wrong.
    BadFingerprint,
    /// A response or an indication other than Send: clients do not send those to a server.
    Unexpected,
    /// Send indication or ChannelData without an allocation on this 5-tuple (or an expired one).
    NoAllocation,
    /// No permission for the peer, or a Send indication on a TCP relay.
    NoPermission,
    /// ChannelData on a channel number that is not bound.
    UnknownChannel,
    /// Over [`ServerConfig::bandwidth_limit`].
    BandwidthExceeded,
    /// A Send indication without XOR-PEER-ADDRESS or DATA.
    MissingAttribute,
}

/// Hooks the application plugs into the server ([`ServerConfig::hooks`]). Every method has a
/// default (no password, accept every relay, ignore notifications), so an implementation
/// overrides only what it needs. They run synchronously inside the core, before the reply
/// leaves: keep them quick (a user lookup in memory or a local database is fine, a network
/// call is not).
pub trait ServerHooks: Send + Sync {
    /// The password of `username` in `realm`, for users that are not in
    /// [`ServerConfig::users`] (a user database). Asked before the TURN REST secret; `None`
    /// leaves the user to the secret, or answers 401. With [`ServerConfig::short_term`],
    /// `realm` is empty and the password is the short-term one.
    fn password(&self, username: &str, realm: &str) -> Option<String> {
        let _ = (username, realm);
        None
    }

    /// A relay socket was bound at `relay` for an Allocate of `username` from `client`;
    /// `false` refuses it: the socket is released and the client gets 403 Forbidden.
    fn before_allocate(&self, client: &FiveTuple, username: &str, relay: SocketAddr) -> bool {
        let _ = (client, username, relay);
        true
    }

    /// An allocation was created (just before its success response is sent).
    fn allocation_created(
        &self,
        client: &FiveTuple,
        username: &str,
        relay: SocketAddr,
        lifetime: Duration,
    ) {
        let _ = (client, username, relay, lifetime);
    }

    /// An allocation was deleted.
    fn allocation_deleted(&self, client: &FiveTuple, relay: SocketAddr, reason: DeleteReason) {
        let _ = (client, relay, reason);
    }

    /// A request from `from` got a success response (called before it is sent).
    fn request_succeeded(&self, from: &FiveTuple, method: Method) {
        let _ = (from, method);
    }

    /// A request from `from` got an error response with `code` (called before it is sent;
    /// includes the 401 challenge that starts every long-term authentication).
    fn request_failed(&self, from: &FiveTuple, method: Method, code: ErrorCode) {
        let _ = (from, method, code);
    }

    /// A STUN message from `from` was dropped without an answer.
    fn message_discarded(&self, from: &FiveTuple, reason: DiscardReason) {
        let _ = (from, reason);
    }

    /// A ChannelData frame from `from` was dropped.
    fn channel_data_discarded(&self, from: &FiveTuple, reason: DiscardReason) {
        let _ = (from, reason);
    }
}

/// The hooks as [`ServerConfig`] holds them: shared, so that one set serves every event-loop
/// thread of the runtime.
pub type SharedHooks = std::sync::Arc<dyn ServerHooks>;

/// The hooks used when none are configured.
pub(super) struct NoHooks;

impl ServerHooks for NoHooks {}

impl Server {
    pub(super) fn hooks(&self) -> &dyn ServerHooks {
        match &self.cfg.hooks {
            Some(h) => h.as_ref(),
            None => &NoHooks,
        }
    }
}
