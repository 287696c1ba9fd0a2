//! Scale-out backplanes for ws-server: the broadcasts of one `wskit serve` node reach the
//! channel subscribers of every other node through an existing pub/sub engine, Redis pub/sub
//! (feature `redis`) or core NATS (feature `nats`). No home-made cluster protocol.
//!
//! ```text
//!  ws-server registry --publish/subscribe/unsubscribe (never waits)--> Link
//!        ^                                                              | unbounded queue
//!        | take_incoming()                                              v
//!        +---- envelopes from other nodes <-- engine task: encode once per message (wire),
//!              (own and duplicate ones            per-subject sequence numbers, outage buffer,
//!               dropped, gaps counted)            reconnect with backoff, resubscribe, replay
//!                                                         |
//!                                            Redis PUBLISH / PSUBSCRIBE  |  NATS PUB / SUB
//! ```
//!
//! Guarantees and the outage policy are in docs/scale-out.md: exactly once to every matching
//! subscriber on every node while the engine is up, per-publisher order per channel, and
//! during an outage a bounded buffer (default [`Config::DEFAULT_OUTAGE_BUFFER`] envelopes)
//! replayed after reconnecting; past it envelopes are dropped and counted
//! ([`ws_server::BackplaneStats::dropped`]).
//!
//! # Example
//!
//! ```no_run
//! # async fn run(server: ws_server::ServerHandle) -> Result<(), ws_backplane::Error> {
//! let link = ws_backplane::connect(ws_backplane::Config::new("redis://127.0.0.1:6379", "node-1"))?;
//! server.attach_backplane(link);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dedupe;
mod error;
mod link;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
mod subject;
mod wire;

use std::{sync::Arc, time::Duration};

pub use error::Error;
pub use link::Link;
pub use wire::{MAX_HEARTBEAT_BYTES, MAX_HEARTBEAT_PATTERNS};

/// Settings of a backplane link.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// `redis://HOST:PORT` or `nats://HOST:PORT` (a Redis URL may carry a password and a
    /// database: `redis://:secret@host:6379/0`). No default.
    pub url: String,
    /// This node's id, unique in the cluster (envelopes carry it; a node ignores its own).
    /// An empty id is replaced by a random one. No default.
    pub node_id: String,
    /// Prefix of every engine subject, so that several clusters can share one engine.
    /// Default: [`Config::DEFAULT_PREFIX`].
    pub prefix: String,
    /// Broadcasts held while the engine is unreachable, replayed in order once it is back; past
    /// it they are dropped and counted. Default: [`Config::DEFAULT_OUTAGE_BUFFER`].
    pub outage_buffer: usize,
    /// First reconnect delay; it doubles per failed attempt. Default:
    /// [`Config::DEFAULT_BACKOFF_MIN`] (100 ms).
    pub backoff_min: Duration,
    /// Longest reconnect delay. Default: [`Config::DEFAULT_BACKOFF_MAX`] (5 s).
    pub backoff_max: Duration,
    /// Envelopes from other nodes waiting for the registry; when full, reading from the engine
    /// waits. Default: [`Config::DEFAULT_INCOMING`].
    pub incoming: usize,
    /// How often this node tells the others it is alive and how many connections it has.
    /// Default: [`Config::DEFAULT_HEARTBEAT`] (1 s).
    pub heartbeat: Duration,
    /// A node not heard from for this long counts as gone (cluster-wide count, live nodes).
    /// Default: [`Config::DEFAULT_NODE_TTL`] (3 s).
    pub node_ttl: Duration,
}

impl Config {
    /// Default of [`Config::prefix`].
    pub const DEFAULT_PREFIX: &'static str = "wskit";
    /// Default of [`Config::outage_buffer`].
    pub const DEFAULT_OUTAGE_BUFFER: usize = 10_000;
    /// Default of [`Config::backoff_min`].
    pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
    /// Default of [`Config::backoff_max`].
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
    /// Default of [`Config::incoming`].
    pub const DEFAULT_INCOMING: usize = 8192;
    /// Default of [`Config::heartbeat`].
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
    /// Default of [`Config::node_ttl`].
    pub const DEFAULT_NODE_TTL: Duration = Duration::from_secs(3);

    /// Settings for `url` and `node_id`, the rest at their defaults.
    #[must_use]
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_id: node_id.into(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            outage_buffer: Self::DEFAULT_OUTAGE_BUFFER,
            backoff_min: Self::DEFAULT_BACKOFF_MIN,
            backoff_max: Self::DEFAULT_BACKOFF_MAX,
            incoming: Self::DEFAULT_INCOMING,
            heartbeat: Self::DEFAULT_HEARTBEAT,
            node_ttl: Self::DEFAULT_NODE_TTL,
        }
    }

    fn validate(&mut self) -> Result<(), Error> {
        let bad = |field, reason| Err(Error::InvalidConfig { field, reason });
        if self.node_id.is_empty() {
            self.node_id = format!("node-{:016x}", link::random_u64());
        }
        if self.node_id.len() > 1024 {
            return bad("node_id", "at most 1,024 bytes");
        }
        if self.prefix.is_empty()
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return bad("prefix", "one or more of A-Z a-z 0-9 _ -");
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return bad("backoff_min", "above zero and at most backoff_max");
        }
        if self.incoming == 0 {
            return bad("incoming", "at least 1");
        }
        if self.heartbeat.is_zero() || self.node_ttl <= self.heartbeat {
            return bad("node_ttl", "longer than heartbeat, which is above zero");
        }
        Ok(())
    }
}

/// Which engine a URL names.
fn engine_of(url: &str) -> Result<&'static str, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
    if rest.is_empty() {
        return Err(invalid("no host"));
    }
    match scheme {
        "redis" => Ok("redis"),
        "nats" => Ok("nats"),
        _ => Err(invalid("unknown scheme")),
    }
}

/// Starts a link to the engine `config.url` names and returns it at once: the engine task
/// connects in the background (and keeps reconnecting), so a node starts, and serves its own
/// clients, while the engine is down. Call it inside a tokio runtime.
///
/// # Errors
/// [`Error::InvalidUrl`], [`Error::EngineNotBuilt`] or [`Error::InvalidConfig`]: what to fix
/// is in the message.
pub fn connect(mut config: Config) -> Result<Arc<Link>, Error> {
    config.validate()?;
    let engine = engine_of(&config.url)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (in_tx, in_rx) = tokio::sync::mpsc::channel(config.incoming);
    let counters = Arc::new(link::Counters::new(config.node_ttl));
    let link = Arc::new(Link {
        node_id: config.node_id.clone(),
        engine,
        tx,
        incoming: std::sync::Mutex::new(Some(in_rx)),
        counters: counters.clone(),
    });
    let core = link::Core::new(config, counters, in_tx);
    match engine {
        #[cfg(feature = "redis")]
        "redis" => redis::start(core, rx)?,
        #[cfg(feature = "nats")]
        "nats" => nats::start(core, rx)?,
        other => return Err(Error::EngineNotBuilt { engine: other }),
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_settings_are_checked() {
        assert_eq!(engine_of("redis://h:1").unwrap(), "redis");
        assert_eq!(engine_of("nats://h:1").unwrap(), "nats");
        for bad in ["h:1", "kafka://h:1", "redis://"] {
            let e = engine_of(bad).unwrap_err().to_string();
            assert!(e.contains("redis://HOST:PORT"), "{e}");
        }
        let mut c = Config::new("redis://h:1", "");
        c.validate().unwrap();
        assert!(c.node_id.starts_with("node-"));
        c.prefix = "a.b".into();
        assert!(matches!(
            c.validate(),
            Err(Error::InvalidConfig {
                field: "prefix",
                ..
            })
        ));
    }
}
