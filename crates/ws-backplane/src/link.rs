//! The engine-independent half of a backplane: the [`Link`] handed to ws-server, its counters,
//! the outage buffer, sequence numbers, duplicate filtering and the reconnect backoff.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::mpsc;
use ws_server::{Backplane, BackplaneStats, Envelope, NodeCount};

use crate::{
    Config,
    dedupe::{Dedupe, Verdict},
    subject, wire,
};

/// What the [`Link`] asks of its engine task.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A broadcast (`None`), or a direct envelope for one node.
    Publish(Option<String>, Envelope),
    Subscribe(String),
    Unsubscribe(String),
}

/// What a node last reported and when.
#[derive(Debug)]
struct Seen {
    connections: usize,
    channels: BTreeMap<String, usize>,
    at: Instant,
}

/// Other nodes as last heard: connection count, subscribers per pattern, and when.
#[derive(Debug)]
pub(crate) struct Peers {
    ttl: Duration,
    seen: HashMap<String, Seen>,
}

impl Peers {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            seen: HashMap::new(),
        }
    }

    /// `node` reported `count` connections and `channels` subscribers at `now`.
    pub(crate) fn heard(
        &mut self,
        node: &str,
        count: usize,
        channels: BTreeMap<String, usize>,
        now: Instant,
    ) {
        let seen = Seen {
            connections: count,
            channels,
            at: now,
        };
        match self.seen.get_mut(node) {
            Some(entry) => *entry = seen,
            None => {
                self.seen.insert(node.to_owned(), seen);
            }
        }
    }

    /// Forgets the nodes not heard from within the time-to-live before `now`.
    fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.seen
            .retain(|_, s| now.saturating_duration_since(s.at) < ttl);
    }

    /// The nodes heard from within the time-to-live before `now` (and forgets the others).
    pub(crate) fn live(&mut self, now: Instant) -> Vec<NodeCount> {
        self.expire(now);
        self.seen
            .iter()
            .map(|(node, s)| {
                NodeCount::new(node.clone(), s.connections).with_channels(s.channels.clone())
            })
            .collect()
    }

    /// Subscribers of exactly `pattern` on the nodes live at `now`, and how many nodes those
    /// are.
    pub(crate) fn channel_count(&mut self, pattern: &str, now: Instant) -> (usize, usize) {
        self.expire(now);
        let sum = self
            .seen
            .values()
            .map(|s| s.channels.get(pattern).copied().unwrap_or(0))
            .sum();
        (sum, self.seen.len())
    }

    /// Forgets every node (this one lost the engine: it cannot tell who is alive).
    pub(crate) fn clear(&mut self) {
        self.seen.clear();
    }
}

/// Counters shared by the link and its engine task.
#[derive(Debug)]
pub(crate) struct Counters {
    /// This node's connections ([`Backplane::set_local_count`]).
    pub(crate) local_count: AtomicUsize,
    /// This node's subscribers per exact pattern ([`Backplane::channel_count_changed`]),
    /// read by the engine task at each heartbeat.
    pub(crate) local_channels: Mutex<HashMap<String, usize>>,
    pub(crate) peers: Mutex<Peers>,
    /// Heartbeats that could not be decoded (ignored).
    pub(crate) bad_heartbeats: AtomicU64,
    pub(crate) connected: AtomicBool,
    pub(crate) outages: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) buffered: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) missed: AtomicU64,
    pub(crate) duplicates: AtomicU64,
}

impl Counters {
    pub(crate) fn new(node_ttl: Duration) -> Self {
        Self {
            local_count: AtomicUsize::new(0),
            local_channels: Mutex::new(HashMap::new()),
            peers: Mutex::new(Peers::new(node_ttl)),
            bad_heartbeats: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            outages: AtomicU64::new(0),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        }
    }

    pub(crate) fn peers(&self) -> std::sync::MutexGuard<'_, Peers> {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn local_channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.local_channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

/// A node's link to the engine: implements [`ws_server::Backplane`]; give it to
/// [`ws_server::ServerHandle::attach_backplane`]. Made by [`crate::connect`]. Dropping the last
/// reference ends the engine task.
pub struct Link {
    pub(crate) node_id: String,
    pub(crate) engine: &'static str,
    pub(crate) tx: mpsc::UnboundedSender<Cmd>,
    pub(crate) incoming: Mutex<Option<mpsc::Receiver<Envelope>>>,
    pub(crate) counters: Arc<Counters>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("node_id", &self.node_id)
            .field("engine", &self.engine)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Backplane for Link {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn publish(&self, envelope: Envelope) {
        let _ = self.tx.send(Cmd::Publish(None, envelope));
    }

    fn publish_to(&self, node: &str, envelope: Envelope) {
        let _ = self.tx.send(Cmd::Publish(Some(node.to_owned()), envelope));
    }

    fn subscribe(&self, pattern: &str) {
        let _ = self.tx.send(Cmd::Subscribe(pattern.to_owned()));
    }

    fn unsubscribe(&self, pattern: &str) {
        let _ = self.tx.send(Cmd::Unsubscribe(pattern.to_owned()));
    }

    fn take_incoming(&self) -> Option<mpsc::Receiver<Envelope>> {
        self.incoming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn stats(&self) -> BackplaneStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = BackplaneStats::default();
        s.connected = c.connected.load(Ordering::Acquire);
        s.outages = get(&c.outages);
        s.published = get(&c.published);
        s.received = get(&c.received);
        s.buffered = get(&c.buffered);
        s.replayed = get(&c.replayed);
        s.dropped = get(&c.dropped);
        s.missed = get(&c.missed);
        s.duplicates = get(&c.duplicates);
        s.bad_heartbeats = get(&c.bad_heartbeats);
        s
    }

    fn set_local_count(&self, count: usize) {
        self.counters.local_count.store(count, Ordering::Relaxed);
    }

    fn nodes(&self) -> Vec<NodeCount> {
        let mut nodes = self.counters.peers().live(Instant::now());
        let channels = self
            .counters
            .local_channels()
            .iter()
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        nodes.push(
            NodeCount::new(
                self.node_id.clone(),
                self.counters.local_count.load(Ordering::Relaxed),
            )
            .with_channels(channels),
        );
        nodes
    }

    fn channel_count_changed(&self, pattern: &str, count: usize) {
        let mut local = self.counters.local_channels();
        if count == 0 {
            local.remove(pattern);
        } else if let Some(n) = local.get_mut(pattern) {
            *n = count;
        } else {
            local.insert(pattern.to_owned(), count);
        }
    }

    fn cluster_channel_count(&self, pattern: &str) -> Option<usize> {
        // Without copying the nodes' pattern tables; this node's figure is its own, exact.
        let (others, _) = self.counters.peers().channel_count(pattern, Instant::now());
        let local = self
            .counters
            .local_channels()
            .get(pattern)
            .copied()
            .unwrap_or(0);
        Some(others + local)
    }
}

/// The delay before reconnect attempt `attempt` (0-based): `min` doubled per attempt up to
/// `max`, then a random point in its upper half (`jitter` is a random number), so that nodes
/// restarted together do not reconnect in lockstep.
pub(crate) fn backoff(attempt: u32, min: Duration, max: Duration, jitter: u64) -> Duration {
    let full = min.saturating_mul(1 << attempt.min(20)).min(max);
    let half = full / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(if nanos == 0 { 0 } else { jitter % (nanos + 1) })
}

/// A random number (epochs, jitter).
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // Without an OS random source, fall back on the clock: epochs only need to differ
    // between runs of one node.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return u64::try_from(t.as_nanos() & u128::from(u64::MAX)).unwrap_or(0);
    }
    u64::from_ne_bytes(b)
}

/// Engine-independent state of the engine task.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) config: Config,
    epoch: u64,
    /// Next sequence number per engine subject.
    seqs: HashMap<String, u64>,
    /// Local channel patterns (a set: the registry subscribes each once).
    patterns: Vec<String>,
    /// Envelopes held during an outage: (subject, bytes), oldest first.
    pub(crate) buffer: VecDeque<(String, Bytes)>,
    dedupe: Dedupe,
    pub(crate) counters: Arc<Counters>,
    incoming: mpsc::Sender<Envelope>,
    /// The current outage was logged.
    outage_logged: bool,
}

/// How [`Core::subject_of`] names subjects for an engine.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Naming {
    Redis,
    Nats,
}

impl Core {
    pub(crate) fn new(
        config: Config,
        counters: Arc<Counters>,
        incoming: mpsc::Sender<Envelope>,
    ) -> Self {
        Self {
            config,
            epoch: random_u64(),
            seqs: HashMap::new(),
            patterns: Vec::new(),
            buffer: VecDeque::new(),
            dedupe: Dedupe::default(),
            counters,
            incoming,
            outage_logged: false,
        }
    }

    /// The engine subject an envelope is published on.
    pub(crate) fn subject_of(&self, naming: Naming, env: &Envelope) -> String {
        let prefix = &self.config.prefix;
        match (naming, env.channel.as_deref()) {
            (Naming::Redis, Some(c)) if !subject::is_wildcard(c) => {
                subject::redis::channel(prefix, c)
            }
            (Naming::Redis, _) => subject::redis::all(prefix),
            (Naming::Nats, Some(c)) if !subject::is_wildcard(c) => {
                subject::nats::channel(prefix, c)
            }
            (Naming::Nats, _) => subject::nats::all(prefix),
        }
    }

    /// The subject of direct envelopes for `node`.
    pub(crate) fn node_subject(&self, naming: Naming, node: &str) -> String {
        match naming {
            Naming::Redis => subject::redis::node(&self.config.prefix, node).0,
            Naming::Nats => subject::nats::node(&self.config.prefix, node),
        }
    }

    /// The engine pattern (Redis) or subject (NATS) of this node's direct envelopes.
    pub(crate) fn own_node_pattern(&self, naming: Naming) -> String {
        match naming {
            Naming::Redis => subject::redis::node(&self.config.prefix, &self.config.node_id).1,
            Naming::Nats => subject::nats::node(&self.config.prefix, &self.config.node_id),
        }
    }

    /// The subject of a publish command: node `to`'s, or the envelope's channel's.
    pub(crate) fn target(&self, naming: Naming, to: Option<&str>, env: &Envelope) -> String {
        match to {
            Some(node) => self.node_subject(naming, node),
            None => self.subject_of(naming, env),
        }
    }

    /// Engine patterns for a channel pattern.
    pub(crate) fn engine_patterns(&self, naming: Naming, pattern: &str) -> Vec<String> {
        match naming {
            Naming::Redis => subject::redis::patterns(&self.config.prefix, pattern),
            Naming::Nats => subject::nats::patterns(&self.config.prefix, pattern),
        }
    }

    /// The subject every node listens to.
    pub(crate) fn all_subject(&self, naming: Naming) -> String {
        match naming {
            Naming::Redis => subject::redis::all(&self.config.prefix),
            Naming::Nats => subject::nats::all(&self.config.prefix),
        }
    }

    /// Stamps and encodes an envelope for `subject`; `None` (logged, counted as dropped) when
    /// it cannot be encoded.
    pub(crate) fn encode(&mut self, subject: &str, env: &Envelope) -> Option<Bytes> {
        let seq = match self.seqs.get_mut(subject) {
            Some(s) => {
                *s += 1;
                *s
            }
            None => {
                self.seqs.insert(subject.to_owned(), 1);
                1
            }
        };
        let stamp = wire::Stamp {
            epoch: self.epoch,
            seq,
        };
        match wire::encode(env, stamp) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(error = %e, "backplane: broadcast not relayed");
                bump(&self.counters.dropped, 1);
                None
            }
        }
    }

    /// Records a channel pattern subscription; returns the engine patterns this node must
    /// subscribe now (those no other local pattern needed already).
    pub(crate) fn add_pattern(&mut self, naming: Naming, pattern: String) -> Vec<String> {
        if self.patterns.contains(&pattern) {
            return Vec::new();
        }
        let before = self.engine_set(naming);
        self.patterns.push(pattern);
        let mut new: Vec<String> = self
            .engine_set(naming)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        new.dedup();
        new
    }

    /// Forgets a channel pattern; returns the engine patterns no longer needed.
    pub(crate) fn remove_pattern(&mut self, naming: Naming, pattern: &str) -> Vec<String> {
        let before = self.engine_set(naming);
        self.patterns.retain(|p| p != pattern);
        let after = self.engine_set(naming);
        before.into_iter().filter(|p| !after.contains(p)).collect()
    }

    /// Every engine pattern the local patterns need, without repeats, sorted.
    pub(crate) fn engine_set(&self, naming: Naming) -> Vec<String> {
        let mut all: Vec<String> = self
            .patterns
            .iter()
            .flat_map(|p| self.engine_patterns(naming, p))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Holds an envelope while the engine is unreachable (or drops it, counted, when the
    /// buffer is full).
    pub(crate) fn hold(&mut self, subject: String, bytes: Bytes) {
        if self.buffer.len() >= self.config.outage_buffer {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    capacity = self.config.outage_buffer,
                    "backplane: outage buffer full, broadcasts for other nodes are dropped"
                );
            }
            return;
        }
        bump(&self.counters.buffered, 1);
        self.buffer.push_back((subject, bytes));
    }

    /// Puts envelopes that may not have reached the engine back at the front of the buffer
    /// (a replay can then deliver one twice; receivers drop the copy).
    pub(crate) fn unsend(&mut self, batch: Vec<(String, Bytes)>) {
        for item in batch.into_iter().rev() {
            if self.buffer.len() >= self.config.outage_buffer {
                bump(&self.counters.dropped, 1);
                continue;
            }
            self.buffer.push_front(item);
        }
    }

    /// Handles a command while the engine is unreachable.
    pub(crate) fn offline(&mut self, naming: Naming, cmd: Cmd) {
        match cmd {
            Cmd::Publish(to, env) => {
                let subject = self.target(naming, to.as_deref(), &env);
                if let Some(bytes) = self.encode(&subject, &env) {
                    self.hold(subject, bytes);
                }
            }
            Cmd::Subscribe(p) => {
                let _ = self.add_pattern(naming, p);
            }
            Cmd::Unsubscribe(p) => {
                let _ = self.remove_pattern(naming, &p);
            }
        }
    }

    /// This node's heartbeat ([`wire::encode_heartbeat`]): its id, its connection count and
    /// its subscribers per pattern.
    pub(crate) fn heartbeat(&self) -> Bytes {
        let count = self.counters.local_count.load(Ordering::Relaxed);
        let channels = self.counters.local_channels().clone();
        wire::encode_heartbeat(&self.config.node_id, count, &channels)
    }

    /// The link is down: logs it once per outage, with the cause.
    pub(crate) fn down(&mut self, url: &str, cause: &dyn fmt::Display) {
        self.counters.peers().clear();
        let was_up = self.counters.connected.swap(false, Ordering::AcqRel);
        if was_up || !self.outage_logged {
            if !self.outage_logged {
                bump(&self.counters.outages, 1);
            }
            self.outage_logged = true;
            tracing::warn!(
                engine = url,
                cause = %cause,
                policy = "buffer and replay",
                buffer = self.config.outage_buffer,
                "backplane: engine unreachable; serving local clients only, reconnecting with backoff"
            );
        }
    }

    /// The link is up (again).
    pub(crate) fn up(&mut self, url: &str) {
        self.counters.connected.store(true, Ordering::Release);
        if self.outage_logged {
            self.outage_logged = false;
            tracing::info!(
                engine = url,
                held = self.buffer.len(),
                "backplane: engine reachable again; resubscribed, replaying held broadcasts"
            );
        }
    }

    /// Counts a message as published.
    pub(crate) fn sent(&self, n: u64, replayed: bool) {
        bump(&self.counters.published, n);
        if replayed {
            bump(&self.counters.replayed, n);
        }
    }

    /// An engine message on `subject`: decoded, filtered (own, duplicate) and handed to the
    /// registry. Waits when the registry's queue is full.
    pub(crate) async fn arrived(&mut self, subject: &str, bytes: Bytes) {
        if wire::is_heartbeat(&bytes) {
            match wire::decode_heartbeat(&bytes) {
                Ok(hb) if hb.node != self.config.node_id => {
                    let count = usize::try_from(hb.connections).unwrap_or(usize::MAX);
                    self.counters
                        .peers()
                        .heard(&hb.node, count, hb.channels, Instant::now());
                }
                Ok(_) => {}
                Err(e) => {
                    let bad = self.counters.bad_heartbeats.fetch_add(1, Ordering::Relaxed) + 1;
                    if bad.is_power_of_two() {
                        tracing::warn!(error = %e, subject, bad, "backplane: malformed heartbeat ignored");
                    } else {
                        tracing::debug!(error = %e, subject, "backplane: malformed heartbeat ignored");
                    }
                }
            }
            return;
        }
        let (env, stamp) = match wire::decode(bytes) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, subject, "backplane: foreign message ignored");
                return;
            }
        };
        if env.origin == self.config.node_id {
            return;
        }
        match self
            .dedupe
            .check(&env.origin, subject, stamp.epoch, stamp.seq)
        {
            Verdict::Duplicate => bump(&self.counters.duplicates, 1),
            Verdict::Deliver { missed, late } => {
                if late {
                    // It was counted as missed when a later one came first.
                    let _ = self.counters.missed.fetch_update(
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                        |m| Some(m.saturating_sub(1)),
                    );
                }
                bump(&self.counters.missed, missed);
                bump(&self.counters.received, 1);
                let _ = self.incoming.send(env).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff(0, min, max, 0), Duration::from_millis(50));
        assert_eq!(
            backoff(0, min, max, u64::MAX),
            backoff(0, min, max, u64::MAX)
        );
        for attempt in 0..40 {
            let full = (min * 2u32.pow(attempt.min(10))).min(max);
            for jitter in [0, 1, 12_345_678_901, u64::MAX] {
                let d = backoff(attempt, min, max, jitter);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} of {full:?}"
                );
            }
        }
        assert_eq!(backoff(30, min, max, 0), Duration::from_millis(2500));
    }

    fn core(buffer: usize) -> (Core, mpsc::Receiver<Envelope>) {
        let (tx, rx) = mpsc::channel(16);
        let mut config = Config::new("redis://127.0.0.1:1", "me");
        config.outage_buffer = buffer;
        (
            Core::new(config, Arc::new(Counters::new(Duration::from_secs(3))), tx),
            rx,
        )
    }

    #[test]
    fn outage_buffer_holds_then_drops_and_counts() {
        let (mut core, _rx) = core(2);
        assert_eq!(
            wire::decode_heartbeat(&core.heartbeat()).unwrap(),
            wire::Heartbeat {
                node: "me".into(),
                ..Default::default()
            }
        );
        for i in 0..5 {
            let env = Envelope::new(
                "me",
                Some("c".into()),
                ws_server::ws_frame::Message::text(format!("{i}")),
            );
            core.offline(Naming::Redis, Cmd::Publish(None, env));
        }
        assert_eq!(core.buffer.len(), 2);
        assert_eq!(core.counters.buffered.load(Ordering::Relaxed), 2);
        assert_eq!(core.counters.dropped.load(Ordering::Relaxed), 3);
        // The two held are the first two, in order, with sequence numbers 1 and 2.
        let seqs: Vec<u64> = core
            .buffer
            .iter()
            .map(|(_, b)| wire::decode(b.clone()).unwrap().1.seq)
            .collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn engine_patterns_are_shared_between_channel_patterns() {
        let (mut core, _rx) = core(1);
        assert_eq!(
            core.add_pattern(Naming::Redis, "room/#".into()),
            ["wskit:c:room", "wskit:c:room/*"]
        );
        // `room` needs an engine pattern `room/#` has already.
        assert!(core.add_pattern(Naming::Redis, "room".into()).is_empty());
        assert!(core.remove_pattern(Naming::Redis, "room/#") == ["wskit:c:room/*"]);
        assert_eq!(core.remove_pattern(Naming::Redis, "room"), ["wskit:c:room"]);
    }

    #[test]
    fn nodes_not_heard_from_within_the_ttl_are_gone() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut peers = Peers::new(3 * s);
        let subs = |n: usize| -> BTreeMap<String, usize> {
            [("room/a".to_owned(), n), ("room/#".to_owned(), 1)]
                .into_iter()
                .collect()
        };
        peers.heard("a", 5, subs(2), t0);
        peers.heard("b", 7, subs(3), t0 + s);
        assert_eq!(peers.channel_count("room/a", t0 + 2 * s), (5, 2));
        assert_eq!(peers.channel_count("room/#", t0 + 2 * s), (2, 2));
        assert_eq!(peers.channel_count("room/b", t0 + 2 * s), (0, 2));
        let mut live = peers.live(t0 + 2 * s);
        live.sort_by(|x, y| x.node.cmp(&y.node));
        assert_eq!(
            live,
            [
                NodeCount::new("a", 5).with_channels(subs(2)),
                NodeCount::new("b", 7).with_channels(subs(3))
            ]
        );
        peers.heard("b", 8, BTreeMap::new(), t0 + 3 * s);
        // `a` expired, and with it its subscribers.
        assert_eq!(peers.channel_count("room/a", t0 + 3 * s), (0, 1));
        assert_eq!(peers.live(t0 + 3 * s), [NodeCount::new("b", 8)]);
        peers.heard("b", 8, subs(4), t0 + 4 * s);
        assert_eq!(peers.channel_count("room/a", t0 + 6 * s), (4, 1));
        assert_eq!(peers.channel_count("room/a", t0 + 7 * s), (0, 0));
        assert!(peers.live(t0 + 7 * s).is_empty());
    }

    #[tokio::test]
    async fn own_and_duplicate_messages_are_not_delivered() {
        let (mut core, mut rx) = core(1);
        let msg = |origin: &str, seq| {
            wire::encode(
                &Envelope::new(
                    origin,
                    Some("c".into()),
                    ws_server::ws_frame::Message::text("x"),
                ),
                wire::Stamp { epoch: 9, seq },
            )
            .unwrap()
        };
        core.arrived("s", msg("me", 1)).await;
        core.arrived("s", msg("other", 1)).await;
        core.arrived("s", msg("other", 1)).await;
        core.arrived("s", msg("other", 4)).await;
        core.arrived("s", Bytes::from_static(b"junk")).await;
        // A malformed heartbeat is counted and ignored; a good one is heard.
        core.arrived("s", Bytes::from_static(b"N\x01\0")).await;
        core.arrived("s", Bytes::from_static(b"H\0")).await;
        let mut subs = HashMap::new();
        subs.insert("room/a".to_owned(), 2);
        core.arrived("s", wire::encode_heartbeat("other", 3, &subs))
            .await;
        core.arrived("s", wire::encode_heartbeat("me", 9, &subs))
            .await;
        assert_eq!(core.counters.bad_heartbeats.load(Ordering::Relaxed), 2);
        assert_eq!(
            core.counters
                .peers()
                .channel_count("room/a", Instant::now()),
            (2, 1)
        );
        assert_eq!(rx.recv().await.unwrap().origin, "other");
        assert_eq!(rx.recv().await.unwrap().origin, "other");
        assert!(rx.try_recv().is_err());
        let c = &core.counters;
        assert_eq!(c.received.load(Ordering::Relaxed), 2);
        assert_eq!(c.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(c.missed.load(Ordering::Relaxed), 2);
    }
}
