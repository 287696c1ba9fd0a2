//! Scale-out: the [`Backplane`] trait through which broadcasts reach the subscribers of other
//! nodes, and the [`Envelope`] it carries.
//!
//! ```text
//!  node A: ServerHandle::broadcast(msg, filter)
//!            |-- local subscribers of A (directly, no round trip through the engine)
//!            '-- Backplane::publish(Envelope { origin: "A", channel, .. })   (never waits)
//!                         |
//!                  pub/sub engine (Redis, NATS: crate ws-backplane)
//!                         |
//!  node B: Backplane::take_incoming() -> Envelope -> B's local subscribers (one Message,
//!          shared by every subscriber: one payload per node per message)
//! ```
//!
//! ws-server holds no engine: an implementation (crate `ws-backplane`, or a test double) is
//! attached with [`crate::ServerHandle::attach_backplane`]. Without one, nothing changes and
//! the broadcast path costs one atomic load more.
//!
//! What the registry asks of an implementation:
//! - [`Backplane::subscribe`] when a channel pattern gets its first local subscriber and
//!   [`Backplane::unsubscribe`] when its last one leaves (called under the registry's channel
//!   lock, in order: an implementation queues them and must not wait);
//! - [`Backplane::publish`] for every broadcast that other nodes may serve (a `channel` and/or
//!   `protocol`/`path` filter, no `include` list: connection ids are local to a node);
//! - every envelope it receives from another node once on [`Backplane::take_incoming`], and
//!   never one whose origin is this node (the registry drops those too).

use std::{collections::BTreeMap, fmt};

use tokio::sync::mpsc;
use ws_frame::Message;

use crate::types::ConnId;

/// A broadcast travelling between nodes: the message, the parts of the [`crate::Filter`] that
/// mean the same on every node, and the node it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// Id of the node that published it ([`Backplane::node_id`]).
    pub origin: String,
    /// Only subscribers of this channel (wildcards match as in [`crate::channel_matches`]);
    /// `None`: every connection (narrowed by `protocol` and `path`).
    pub channel: Option<String>,
    /// Only connections with this negotiated subprotocol.
    pub protocol: Option<String>,
    /// Only connections opened on this request path.
    pub path: Option<String>,
    /// The message itself.
    pub message: Message,
    /// For one connection of the receiving node only ([`Backplane::publish_to`]; the filter
    /// fields are then ignored). Default: `None`.
    pub to: Option<ConnId>,
    /// With `to`: drop that connection instead of sending the message. Default: `false`.
    pub disconnect: bool,
}

impl Envelope {
    /// An envelope from `origin` for the subscribers of `channel`.
    #[must_use]
    pub fn new(origin: impl Into<String>, channel: Option<String>, message: Message) -> Self {
        Self {
            origin: origin.into(),
            channel,
            protocol: None,
            path: None,
            message,
            to: None,
            disconnect: false,
        }
    }

    /// An envelope for connection `to` of the node it is sent to: `message` for it, or with
    /// `disconnect` the order to drop it.
    #[must_use]
    pub fn direct(
        origin: impl Into<String>,
        to: ConnId,
        message: Message,
        disconnect: bool,
    ) -> Self {
        Self {
            to: Some(to),
            disconnect,
            ..Self::new(origin, None, message)
        }
    }

    /// Also require the subprotocol `protocol`.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Option<String>) -> Self {
        self.protocol = protocol;
        self
    }

    /// Also require the request path `path`.
    #[must_use]
    pub fn with_path(mut self, path: Option<String>) -> Self {
        self.path = path;
        self
    }
}

/// One live node of a cluster, its connection count and its channel subscriber counts
/// ([`Backplane::nodes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeCount {
    /// The node's id.
    pub node: String,
    /// Its established connections, as it last reported them.
    pub connections: usize,
    /// Its local subscribers per subscription pattern (exactly as subscribed: `room/#` and
    /// `room/a` are separate entries), as it last reported them; patterns without
    /// subscribers are absent. An implementation may carry only some of a node's patterns
    /// (ws-backplane: at most 10,000).
    pub channels: BTreeMap<String, usize>,
}

impl NodeCount {
    /// `node` with `connections` connections and no channel subscribers.
    #[must_use]
    pub fn new(node: impl Into<String>, connections: usize) -> Self {
        Self {
            node: node.into(),
            connections,
            channels: BTreeMap::new(),
        }
    }

    /// With these subscriber counts per pattern.
    #[must_use]
    pub fn with_channels(mut self, channels: BTreeMap<String, usize>) -> Self {
        self.channels = channels;
        self
    }
}

/// What a backplane link did so far (all counters since it was created).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// Whether the link to the engine is up now.
    pub connected: bool,
    /// Times the link went down (each outage is logged once, with its cause).
    pub outages: u64,
    /// Envelopes handed to the engine.
    pub published: u64,
    /// Envelopes received from other nodes and handed to this node.
    pub received: u64,
    /// Envelopes held while the engine was unreachable, waiting to be sent.
    pub buffered: u64,
    /// Envelopes sent late, after the engine came back.
    pub replayed: u64,
    /// Envelopes dropped because the outage buffer was full.
    pub dropped: u64,
    /// Envelopes other nodes published that never arrived here (gaps in their sequence
    /// numbers, for example published while this node's link was down).
    pub missed: u64,
    /// Envelopes that arrived twice (through overlapping subscriptions) and were dropped.
    pub duplicates: u64,
    /// Heartbeats from other nodes that could not be decoded and were ignored.
    pub bad_heartbeats: u64,
}

/// A pub/sub engine linking the nodes of a cluster (see the module docs for the contract).
///
/// Every method is called from the broadcast or subscription path, often under a lock: none
/// may wait. Implementations queue work for a task of their own.
pub trait Backplane: fmt::Debug + Send + Sync + 'static {
    /// This node's id, unique in the cluster; carried in every published envelope.
    fn node_id(&self) -> &str;

    /// Hands a broadcast to the other nodes. Never waits; while the engine is unreachable the
    /// implementation applies its outage policy (buffer or drop, counted in
    /// [`BackplaneStats`]).
    fn publish(&self, envelope: Envelope);

    /// Asks for the broadcasts other nodes make to channels matching `pattern` (a channel or a
    /// wildcard pattern, already validated). Called when the pattern gets its first local
    /// subscriber.
    fn subscribe(&self, pattern: &str);

    /// Undoes [`Backplane::subscribe`]: the pattern's last local subscriber left.
    fn unsubscribe(&self, pattern: &str);

    /// The envelopes other nodes publish, each once, in each publisher's order. The first call
    /// returns the receiver, later calls `None`.
    fn take_incoming(&self) -> Option<mpsc::Receiver<Envelope>>;

    /// Liveness of the link to the engine and its counters.
    fn stats(&self) -> BackplaneStats;

    /// Hands a [`Envelope::direct`] envelope to node `node` only (node-qualified connection
    /// ids: `write_to` and `disconnect` across nodes). Never waits. Default: dropped.
    fn publish_to(&self, node: &str, envelope: Envelope) {
        let _ = (node, envelope);
    }

    /// This node's number of established connections, reported by the registry at every
    /// change while the backplane is attached (for [`Backplane::nodes`]). Never waits.
    /// Default: ignored.
    fn set_local_count(&self, count: usize) {
        let _ = count;
    }

    /// The live nodes of the cluster, this one included, with their connection counts; a node
    /// that stops reporting (it died, or lost the engine) drops out after the
    /// implementation's time-to-live. Default: none known (the cluster-wide count is then the
    /// local one).
    fn nodes(&self) -> Vec<NodeCount> {
        Vec::new()
    }

    /// The number of local connections subscribed with exactly `pattern` changed to `count`
    /// (0: its last subscriber left). Called by the registry at every change while the
    /// backplane is attached, under the registry's channel lock, in order; at attach time once
    /// per pattern with subscribers. Never waits. Default: ignored.
    fn channel_count_changed(&self, pattern: &str, count: usize) {
        let _ = (pattern, count);
    }

    /// Subscribers of exactly `pattern` on every live node ([`NodeCount::channels`] summed);
    /// `None` while no node is known (the count is then the local one). Never waits.
    /// Default: computed from [`Backplane::nodes`]; an implementation may override it to
    /// avoid copying every node's patterns.
    fn cluster_channel_count(&self, pattern: &str) -> Option<usize> {
        let nodes = self.nodes();
        if nodes.is_empty() {
            return None;
        }
        Some(
            nodes
                .iter()
                .map(|n| n.channels.get(pattern).copied().unwrap_or(0))
                .sum(),
        )
    }
}
