//! [`Config`]: everything a session and a client are configured with.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;

use crate::{
    error::Error,
    packet::{ConnectProperties, WillProperties},
    reason::{QoS, Version},
    topic,
};

/// The will message (the seeds' `LastWillTestament`): published by the server when the
/// connection ends without a DISCONNECT (or with reason 0x04).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Will {
    /// Topic (mandatory).
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Will properties (MQTT 5): delay interval, payload format, message expiry, content
    /// type, response topic, correlation data, user properties.
    pub properties: Option<WillProperties>,
}

impl Will {
    /// A QoS 0, not retained will.
    #[must_use]
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: None,
        }
    }
}

/// Answers the server's AUTH challenges in MQTT 5 enhanced authentication: called with the
/// authentication method and the server's data for each AUTH "Continue authentication"
/// (during CONNECT and during re-authentication); returns the data to send back, or an error
/// that ends the connection. See [`Config::authenticator`].
pub type AuthenticatorFn =
    dyn Fn(&str, Option<&[u8]>) -> Result<Option<Bytes>, String> + Send + Sync;

/// A shared [`AuthenticatorFn`].
#[derive(Clone)]
pub struct Authenticator(pub Arc<AuthenticatorFn>);

impl Authenticator {
    /// Wraps a function.
    pub fn new(
        f: impl Fn(&str, Option<&[u8]>) -> Result<Option<Bytes>, String> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authenticator(..)")
    }
}

/// What `publish` does when the outgoing queue is full ([`Config::max_queued`] messages that
/// are queued, offline or waiting for the in-flight window, or in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OfflinePolicy {
    /// Wait until there is room (acknowledgements free it). Callers wait in a bounded command
    /// queue; the connection task never waits for them, so acknowledgements keep flowing.
    #[default]
    Wait,
    /// Fail at once with [`Error::QueueFull`].
    FailFast,
}

/// Reconnect backoff: the delay before attempt *n* is `min(initial * multiplier^(n-1), max)`,
/// times a random factor in `1 - jitter ..= 1 + jitter`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay before the first retry. Default: 500 ms.
    pub initial: Duration,
    /// Growth per attempt. Default: 2.0.
    pub multiplier: f64,
    /// Largest delay. Default: 30 s.
    pub max: Duration,
    /// Random spread, 0.0 ..= 1.0. Default: 0.3.
    pub jitter: f64,
    /// Consecutive failed attempts before the client gives up (0: never). Default: 0.
    pub max_attempts: u32,
}

impl Backoff {
    /// The delay before attempt `attempt` (1-based) for `random` in `0.0 .. 1.0`.
    #[must_use]
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let base = if base.is_finite() {
            base.min(self.max.as_secs_f64())
        } else {
            self.max.as_secs_f64()
        };
        let j = self.jitter.clamp(0.0, 1.0);
        Duration::from_secs_f64((base * (1.0 - j + 2.0 * j * random.clamp(0.0, 1.0))).max(0.0))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            multiplier: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.3,
            max_attempts: 0,
        }
    }
}

/// Everything a session and a client are configured with. Start from `Config::default()`;
/// [`Config::validate`] runs when a session is created.
///
/// ```
/// use std::time::Duration;
/// use proto_mqtt::{Config, QoS, Version, Will};
///
/// let mut config = Config::default();
/// config.version = Version::V311;
/// config.client_id = Some("sensor-17".into());
/// config.clean_start = false;
/// config.keep_alive = Duration::from_secs(30);
/// config.credentials = Some(("user".into(), "secret".into()));
/// let mut will = Will::new("sensors/17/status", "offline");
/// will.qos = QoS::AtLeastOnce;
/// will.retain = true;
/// config.will = Some(will);
/// config.validate()?;
/// # Ok::<(), proto_mqtt::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Protocol version. Default: [`Version::V5`].
    pub version: Version,
    /// Client identifier; `None`: a random `wskit-` id made from the randomness the client
    /// is given (the seeds' default). Default: `None`.
    pub client_id: Option<String>,
    /// Clean Session (3.1.1) / Clean Start (5) for the first connection. With MQTT 5 and a
    /// session expiry above 0, reconnections of the same client resume (Clean Start 0).
    /// Default: true.
    pub clean_start: bool,
    /// Session Expiry Interval in seconds (MQTT 5; 0: the session ends with the connection).
    /// Default: 0.
    pub session_expiry: u32,
    /// Keep Alive: a PINGREQ goes out when nothing was sent for this long; 0 disables it.
    /// The server's Server Keep Alive replaces it. Default: [`Config::DEFAULT_KEEP_ALIVE`] (60 s).
    pub keep_alive: Duration,
    /// How long to wait for PINGRESP before the connection is considered dead.
    /// Default: [`Config::DEFAULT_PING_TIMEOUT`] (10 s).
    pub ping_timeout: Duration,
    /// How long to wait for CONNACK after CONNECT (and for the transport to open).
    /// Default: [`Config::DEFAULT_CONNECT_TIMEOUT`] (10 s).
    pub connect_timeout: Duration,
    /// User name and password sent in CONNECT. Default: `None`.
    pub credentials: Option<(String, String)>,
    /// Will message. Default: `None`.
    pub will: Option<Will>,
    /// Extra CONNECT properties (MQTT 5): request response/problem information, user
    /// properties, authentication method and data. The session sets Session Expiry, Receive
    /// Maximum, Maximum Packet Size and Topic Alias Maximum from the fields below.
    /// Default: `None`.
    pub connect_properties: Option<ConnectProperties>,
    /// Answers AUTH challenges (MQTT 5 enhanced authentication; set the method and initial
    /// data in [`Config::connect_properties`]). Without one, AUTH packets are only reported as
    /// events and [`crate::Client::auth`] answers them. Default: `None`.
    pub authenticator: Option<Authenticator>,
    /// Incoming QoS 2 messages awaiting PUBREL at once (our Receive Maximum); a server that
    /// sends more breaks the protocol (0x93). Default: [`Config::DEFAULT_RECEIVE_MAXIMUM`] (65535).
    pub receive_maximum: u16,
    /// Largest packet accepted from the server (sent as Maximum Packet Size in MQTT 5).
    /// Default: [`Config::DEFAULT_MAX_INCOMING_PACKET`] (1 MiB).
    pub max_incoming_packet: usize,
    /// Longest topic accepted from the server. Default: 65535.
    pub max_topic_len: usize,
    /// Topic aliases the server may use towards us (MQTT 5 Topic Alias Maximum).
    /// Default: [`Config::DEFAULT_TOPIC_ALIAS_MAXIMUM`] (32).
    pub topic_alias_maximum: u16,
    /// Use topic aliases for outgoing PUBLISH when the server allows them: the first message
    /// to a topic carries topic and alias, later ones only the alias. Default: true.
    pub auto_topic_alias: bool,
    /// Our own cap on outgoing QoS 1/2 messages in flight; the server's Receive Maximum
    /// applies too. Default: 65535 (the server decides).
    pub max_inflight: u16,
    /// The in-flight window used with MQTT 3.1.1 servers, which cannot announce a Receive
    /// Maximum (mosquitto closes a 3.1.1 client that goes over its `max_inflight_messages`).
    /// Default: [`Config::DEFAULT_V311_RECEIVE_MAXIMUM`] (20, mosquitto's default).
    pub v311_receive_maximum: u16,
    /// Most outgoing messages held at once: in flight, waiting for the window, or queued
    /// while offline. Default: [`Config::DEFAULT_MAX_QUEUED`] (10,000).
    pub max_queued: usize,
    /// What `publish` does when [`Config::max_queued`] is reached. Default:
    /// [`OfflinePolicy::Wait`].
    pub offline_policy: OfflinePolicy,
    /// Reconnect after an unexpected disconnect; `None`: the client ends instead.
    /// Default: `Some(Backoff::default())`.
    pub reconnect: Option<Backoff>,
    /// SQLite file holding in-flight outgoing messages, incoming QoS 2 ids and
    /// subscriptions, so they survive a restart; `None`: memory only. Default: `None`.
    pub store: Option<PathBuf>,
    /// WebSocket and TLS settings (trust roots, client certificate, SNI, proxies,
    /// permessage-deflate, headers). `mqtts://` uses its `tls` too. The `mqtt` subprotocol
    /// is added for `ws://` and `wss://`. Default: `ws_client::ClientConfig::default()`.
    pub transport: ws_client::ClientConfig,
    /// Events buffered for the application; when full the client stops reading from the
    /// server. Default: [`Config::DEFAULT_EVENT_QUEUE`] (1024).
    pub event_queue: usize,
}

impl Config {
    /// Default of [`Config::keep_alive`].
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);
    /// Default of [`Config::ping_timeout`].
    pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`Config::connect_timeout`].
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`Config::receive_maximum`].
    pub const DEFAULT_RECEIVE_MAXIMUM: u16 = 65_535;
    /// Default of [`Config::max_incoming_packet`].
    pub const DEFAULT_MAX_INCOMING_PACKET: usize = 1 << 20;
    /// Default of [`Config::topic_alias_maximum`].
    pub const DEFAULT_TOPIC_ALIAS_MAXIMUM: u16 = 32;
    /// Default of [`Config::v311_receive_maximum`].
    pub const DEFAULT_V311_RECEIVE_MAXIMUM: u16 = 20;
    /// Default of [`Config::max_queued`].
    pub const DEFAULT_MAX_QUEUED: usize = 10_000;
    /// Default of [`Config::event_queue`].
    pub const DEFAULT_EVENT_QUEUE: usize = 1024;

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first problem: keep-alive over 65535 s, zero timeouts,
    /// receive maximum, in-flight cap, queue or event queue of 0, a packet limit under 64
    /// bytes, an invalid will topic, a client id over 65535 bytes, jitter outside 0..=1.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, rule| Err(Error::Config { field, rule });
        if self.keep_alive.as_secs() > u64::from(u16::MAX) {
            return bad("keep_alive", "at most 65535 s");
        }
        if self.ping_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("ping_timeout and connect_timeout", "above 0");
        }
        if self.receive_maximum == 0 || self.max_inflight == 0 || self.v311_receive_maximum == 0 {
            return bad(
                "receive_maximum, max_inflight and v311_receive_maximum",
                "at least 1",
            );
        }
        if self.max_queued == 0 || self.event_queue == 0 {
            return bad("max_queued and event_queue", "at least 1");
        }
        if self.max_incoming_packet < 64 {
            return bad("max_incoming_packet", "at least 64 bytes");
        }
        if let Some(w) = &self.will {
            topic::validate_topic(&w.topic)?;
        }
        if self.client_id.as_ref().is_some_and(|c| c.len() > 65_535) {
            return bad("client_id", "at most 65535 bytes");
        }
        if let Some(b) = &self.reconnect {
            if !(0.0..=1.0).contains(&b.jitter) || b.multiplier.is_nan() || b.multiplier < 1.0 {
                return bad(
                    "reconnect jitter and multiplier",
                    "in 0..=1 (jitter) and at least 1 (multiplier)",
                );
            }
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: Version::V5,
            client_id: None,
            clean_start: true,
            session_expiry: 0,
            keep_alive: Self::DEFAULT_KEEP_ALIVE,
            ping_timeout: Self::DEFAULT_PING_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            credentials: None,
            will: None,
            connect_properties: None,
            authenticator: None,
            receive_maximum: Self::DEFAULT_RECEIVE_MAXIMUM,
            max_incoming_packet: Self::DEFAULT_MAX_INCOMING_PACKET,
            max_topic_len: topic::MAX_TOPIC_LEN,
            topic_alias_maximum: Self::DEFAULT_TOPIC_ALIAS_MAXIMUM,
            auto_topic_alias: true,
            max_inflight: u16::MAX,
            v311_receive_maximum: Self::DEFAULT_V311_RECEIVE_MAXIMUM,
            max_queued: Self::DEFAULT_MAX_QUEUED,
            offline_policy: OfflinePolicy::Wait,
            reconnect: Some(Backoff::default()),
            store: None,
            transport: ws_client::ClientConfig::default(),
            event_queue: Self::DEFAULT_EVENT_QUEUE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        assert!(Config::default().validate().is_ok());
        let mut c = Config::default();
        c.keep_alive = Duration::from_secs(70_000);
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.will = Some(Will::new("a/#", "x"));
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.max_inflight = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, 0.5), Duration::from_millis(500));
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(b.delay(100, 0.5), Duration::from_secs(30));
        assert!(b.delay(1, 0.0) < b.delay(1, 0.99));
        assert!(b.delay(1, 0.0) >= Duration::from_millis(350));
    }
}
