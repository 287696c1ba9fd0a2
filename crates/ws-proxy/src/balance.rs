//! Load balancing, sans-IO: which backend a new connection goes to, given the backends' state
//! and the time. No sockets, no clock reads, no tasks: the tokio layer ([`crate::ProxyServer`])
//! asks [`Balancer::pick`], reports connections ([`Balancer::acquire`], [`Balancer::release`]),
//! runs the probes [`Balancer::poll_check`] asks for and reports their results
//! ([`Balancer::check_result`]), and sleeps until [`Balancer::poll_timeout`].
//!
//! ```text
//!  add / drain (config, registration API) --> Balancer --pick(key, now)--> backend
//!  connect failed --connect_failed(now)-->      |  <--acquire / release-- bridges, requests
//!  probe results --check_result(ok, now)-->     |  --poll_check(now)--> probes due
//! ```
//!
//! # States
//!
//! A backend is up when it is added. A failed connection marks it down at once (passive
//! check); so do [`HealthCheck::unhealthy_threshold`] failed probes in a row. A down backend
//! is up again after [`HealthCheck::healthy_threshold`] good probes in a row, or, without
//! active checks, [`BalancerConfig::retry_down_after`] after it went down. A draining backend
//! ([`Balancer::drain`]) gets no new connections; it is removed once its last connection
//! ended.
//!
//! ```
//! use std::time::Instant;
//! use ws_proxy::{Target, balance::{Balancer, BalancerConfig, Policy}};
//!
//! let now = Instant::now();
//! let mut lb = Balancer::new(BalancerConfig::new(Policy::RoundRobin));
//! let (a, b) = (Target::parse("tcp://10.0.0.1:80")?, Target::parse("tcp://10.0.0.2:80")?);
//! lb.add(a.clone(), now);
//! lb.add(b.clone(), now);
//! assert_eq!(lb.pick(None, now), Some(a.clone()));
//! assert_eq!(lb.pick(None, now), Some(b.clone()));
//! lb.connect_failed(&a, now); // down: only b is picked now
//! assert_eq!(lb.pick(None, now), Some(b.clone()));
//! assert_eq!(lb.pick(None, now), Some(b));
//! # Ok::<(), ws_proxy::Error>(())
//! ```

use std::{
    fmt,
    time::{Duration, Instant},
};

use crate::{error::Error, target::Target};

/// How a backend is chosen for a new connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// Each usable backend in turn.
    RoundRobin,
    /// The usable backend with the fewest open connections (ties: in turn).
    LeastConnections,
    /// The same backend for the same value of this cookie (for example the application's
    /// session cookie), by rendezvous hashing: removing a backend moves only its own
    /// clients. Requests without the cookie go round robin.
    StickyCookie(String),
    /// As [`Policy::StickyCookie`], keyed by the value of this request header field.
    StickyHeader(String),
}

impl Policy {
    /// Parses `round-robin`, `least-connections`, `cookie:NAME` or `header:NAME`.
    ///
    /// # Errors
    /// [`Error::ConfigValue`] for anything else or an empty name.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = |rule| Error::ConfigValue {
            field: "balance policy",
            value: input.to_owned(),
            rule,
        };
        let s = input.trim();
        let named = |name: &str| {
            let name = name.trim();
            if name.is_empty() {
                Err(bad("needs a name after ':'"))
            } else {
                Ok(name.to_owned())
            }
        };
        match s.to_ascii_lowercase().as_str() {
            "round-robin" | "roundrobin" | "rr" => return Ok(Self::RoundRobin),
            "least-connections" | "leastconn" | "least" => return Ok(Self::LeastConnections),
            _ => {}
        }
        if let Some((kind, name)) = s.split_once(':') {
            match kind.to_ascii_lowercase().as_str() {
                "cookie" => return Ok(Self::StickyCookie(named(name)?)),
                "header" => return Ok(Self::StickyHeader(named(name)?)),
                _ => {}
            }
        }
        Err(bad(
            "expected round-robin, least-connections, cookie:NAME or header:NAME",
        ))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RoundRobin => f.write_str("round-robin"),
            Self::LeastConnections => f.write_str("least-connections"),
            Self::StickyCookie(n) => write!(f, "cookie:{n}"),
            Self::StickyHeader(n) => write!(f, "header:{n}"),
        }
    }
}

/// What an active health check does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Probe {
    /// Open a TCP connection to the backend (and close it).
    Tcp,
    /// `GET path` over HTTP(S) to the backend's address; a 2xx or 3xx status is healthy.
    Http {
        /// The request path, starting with `/`.
        path: String,
    },
}

/// Active health checks of every backend.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheck {
    /// What a check does. Default: [`Probe::Tcp`].
    pub probe: Probe,
    /// Time between two checks of one backend. Default: 5 s.
    pub interval: Duration,
    /// A check that takes longer fails. Default: 2 s.
    pub timeout: Duration,
    /// Good checks in a row that bring a down backend up. Default: 2.
    pub healthy_threshold: u32,
    /// Failed checks in a row that take an up backend down. Default: 3.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            probe: Probe::Tcp,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// The small HTTP API through which backends register and deregister themselves, on the
/// proxy's own listeners.
///
/// Every request needs `Authorization: Bearer <secret>` (compared in constant time); others
/// get 401. Under [`Registration::path`] (default `/_wskit/backends`):
///
/// | request | effect |
/// |---|---|
/// | `GET path` | one line per backend: `target state active total` (200) |
/// | `POST path` with a target as body (`ws://host:port`, `tcp://host:port`, ...) | adds it (201), or makes a draining one usable again (200) |
/// | `DELETE path?target=T` (T percent-encoded) or `POST path/remove` with T as body | drains T: no new connections, removed once its last one ended (200; 404 when unknown) |
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Registration {
    /// The bearer secret. At least 16 bytes.
    pub secret: String,
    /// Where the API answers. Default: [`Registration::DEFAULT_PATH`].
    pub path: String,
}

impl Registration {
    /// Default of [`Registration::path`].
    pub const DEFAULT_PATH: &'static str = "/_wskit/backends";

    /// The API at the default path with this secret.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            path: Self::DEFAULT_PATH.to_owned(),
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("secret", &"<redacted>")
            .field("path", &self.path)
            .finish()
    }
}

/// The balancer's settings ([`crate::ProxyConfig::balance`]).
///
/// WebSocket upgrades go to a backend picked per connection; the proxy connects to it before
/// answering the upgrade, so a backend that cannot be reached is marked down and the next one
/// is tried (up to every usable backend, then 502). For `ws://` and `wss://` backends whose URL
/// has the path `/`, the browser's path and query are kept (`ws://b:9001` + `/chat?x` =
/// `ws://b:9001/chat?x`); plain HTTP requests go to the same backend over `http://` or
/// `https://` (a `wskit serve` or any ws-server serves both).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BalancerConfig {
    /// How a backend is chosen. Default: [`Policy::RoundRobin`].
    pub policy: Policy,
    /// The backends known at start (more can register). Default: empty.
    pub backends: Vec<Target>,
    /// Active health checks. Default: `None` (passive only: a failed connect marks a backend
    /// down for [`BalancerConfig::retry_down_after`]).
    pub health: Option<HealthCheck>,
    /// Without active checks, how long a backend that failed a connect is left out.
    /// Default: 10 s.
    pub retry_down_after: Duration,
    /// The self-registration API. Default: `None` (off).
    pub registration: Option<Registration>,
}

impl BalancerConfig {
    /// Defaults with this policy.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for zero intervals or thresholds, a probe path not starting with `/`,
    /// a registration secret shorter than 16 bytes or a registration path not starting with
    /// `/`; [`Error::Config`] also when there is no backend and no registration API.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, rule| Err(Error::Config { field, rule });
        if self.backends.is_empty() && self.registration.is_none() {
            return bad(
                "balance.backends",
                "is empty: give a backend or enable the registration API",
            );
        }
        if self.retry_down_after.is_zero() {
            return bad("balance.retry_down_after", "must not be zero");
        }
        if let Some(h) = &self.health {
            if h.interval.is_zero() || h.timeout.is_zero() {
                return bad("health check interval and timeout", "must not be zero");
            }
            if h.healthy_threshold == 0 || h.unhealthy_threshold == 0 {
                return bad("health check thresholds", "must be at least 1");
            }
            if let Probe::Http { path } = &h.probe
                && !path.starts_with('/')
            {
                return bad("health check path", "must start with '/'");
            }
        }
        if let Some(r) = &self.registration {
            if r.secret.len() < 16 {
                return bad(
                    "registration secret",
                    "must be at least 16 bytes (use a random string)",
                );
            }
            if !r.path.starts_with('/') || r.path.len() < 2 {
                return bad("registration path", "must start with '/' and not be '/'");
            }
        }
        Ok(())
    }
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            policy: Policy::RoundRobin,
            backends: Vec::new(),
            health: None,
            retry_down_after: Duration::from_secs(10),
            registration: None,
        }
    }
}

/// Whether a backend takes new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Usable.
    Up,
    /// Left out: a connect failed, or health checks failed.
    Down,
    /// Taken out: no new connections; removed once the open ones ended.
    Draining,
    /// Gone from the list (drained and without connections). Never in
    /// [`Balancer::status`]; [`crate::Hooks::on_backend_state`] reports it once.
    Removed,
}

impl State {
    /// `up`, `down`, `draining` or `removed`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Draining => "draining",
            Self::Removed => "removed",
        }
    }
}

/// A backend as the balancer sees it ([`Balancer::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendStatus {
    /// The backend.
    pub target: Target,
    /// Whether it takes new connections.
    pub state: State,
    /// Connections (bridges and HTTP requests) open now.
    pub active: usize,
    /// Connections given to it since it was added.
    pub total: u64,
}

#[derive(Debug)]
struct Entry {
    target: Target,
    down: bool,
    draining: bool,
    active: usize,
    total: u64,
    /// Good probes in a row (while down) or failed ones (while up).
    streak: u32,
    /// When the next probe is due (active checks), or when a passively downed backend is
    /// tried again (no active checks).
    due: Option<Instant>,
    /// A probe was handed out and has not reported.
    probing: bool,
}

impl Entry {
    fn usable(&self, now: Instant, passive: bool) -> bool {
        !self.draining && (!self.down || (passive && self.due.is_some_and(|d| now >= d)))
    }
}

/// The balancer's state: backends, their health and open connections. See the module docs.
#[derive(Debug)]
pub struct Balancer {
    cfg: BalancerConfig,
    backends: Vec<Entry>,
    cursor: usize,
}

impl Balancer {
    /// A balancer with no backend yet (add [`BalancerConfig::backends`] with
    /// [`Balancer::add`]; [`crate::ProxyServer`] does).
    #[must_use]
    pub fn new(cfg: BalancerConfig) -> Self {
        Self {
            cfg,
            backends: Vec::new(),
            cursor: 0,
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &BalancerConfig {
        &self.cfg
    }

    fn find(&self, target: &Target) -> Option<usize> {
        self.backends.iter().position(|e| &e.target == target)
    }

    /// Adds a backend (up; its first probe is due at once). A known backend that was
    /// draining takes new connections again. Returns true when it was not known.
    pub fn add(&mut self, target: Target, now: Instant) -> bool {
        if let Some(i) = self.find(&target) {
            self.backends[i].draining = false;
            return false;
        }
        self.backends.push(Entry {
            target,
            down: false,
            draining: false,
            active: 0,
            total: 0,
            streak: 0,
            due: self.cfg.health.as_ref().map(|_| now),
            probing: false,
        });
        true
    }

    /// Takes a backend out: it gets no new connections and is removed once its open ones
    /// ended (at once when it has none). False when it is not known.
    pub fn drain(&mut self, target: &Target) -> bool {
        let Some(i) = self.find(target) else {
            return false;
        };
        self.backends[i].draining = true;
        if self.backends[i].active == 0 {
            self.backends.remove(i);
        }
        true
    }

    /// The backend for a new connection: per [`BalancerConfig::policy`] among the usable
    /// ones; `key` is the sticky policies' cookie or header value (`None` for the others or
    /// when the request has none). `None` when no backend is usable.
    pub fn pick(&mut self, key: Option<&str>, now: Instant) -> Option<Target> {
        self.pick_except(key, &[], now)
    }

    /// [`Balancer::pick`] leaving out `tried` (backends that just failed for this request).
    pub fn pick_except(
        &mut self,
        key: Option<&str>,
        tried: &[Target],
        now: Instant,
    ) -> Option<Target> {
        let passive = self.cfg.health.is_none();
        let ok = |e: &Entry| e.usable(now, passive) && !tried.contains(&e.target);
        let n = self.backends.len();
        let sticky = matches!(
            self.cfg.policy,
            Policy::StickyCookie(_) | Policy::StickyHeader(_)
        );
        let chosen = match (key, sticky) {
            (Some(key), true) => self
                .backends
                .iter()
                .enumerate()
                .filter(|(_, e)| ok(e))
                .max_by_key(|(_, e)| rendezvous(key, &e.target))
                .map(|(i, _)| i),
            _ if self.cfg.policy == Policy::LeastConnections => (0..n)
                .map(|k| (self.cursor + k) % n)
                .filter(|&i| ok(&self.backends[i]))
                .min_by_key(|&i| self.backends[i].active),
            _ => (0..n)
                .map(|k| (self.cursor + k) % n)
                .find(|&i| ok(&self.backends[i])),
        }?;
        if !sticky || key.is_none() {
            self.cursor = (chosen + 1) % n;
        }
        Some(self.backends[chosen].target.clone())
    }

    /// A connection to `target` opened (counts for [`Policy::LeastConnections`]). Without
    /// active checks, this also brings a backend that was down up again.
    pub fn acquire(&mut self, target: &Target) {
        let passive = self.cfg.health.is_none();
        if let Some(i) = self.find(target) {
            let e = &mut self.backends[i];
            e.active += 1;
            e.total += 1;
            if passive && e.down {
                e.down = false;
                e.due = None;
            }
        }
    }

    /// A connection to `target` ended; a draining backend whose last connection this was is
    /// removed.
    pub fn release(&mut self, target: &Target) {
        if let Some(i) = self.find(target) {
            let e = &mut self.backends[i];
            e.active = e.active.saturating_sub(1);
            if e.draining && e.active == 0 {
                self.backends.remove(i);
            }
        }
    }

    /// Connecting to `target` failed: it is down at once (passive check). With active
    /// checks it needs [`HealthCheck::healthy_threshold`] good probes to come back; without,
    /// it is tried again after [`BalancerConfig::retry_down_after`].
    pub fn connect_failed(&mut self, target: &Target, now: Instant) {
        let retry = self.cfg.retry_down_after;
        let active = self.cfg.health.is_some();
        if let Some(i) = self.find(target) {
            let e = &mut self.backends[i];
            if !e.down {
                e.down = true;
                e.streak = 0;
            }
            if !active {
                e.due = Some(now + retry);
            }
        }
    }

    /// A backend whose probe is due now: mark it as being probed, run the probe, report with
    /// [`Balancer::check_result`]. Call until `None`. Always `None` without active checks.
    pub fn poll_check(&mut self, now: Instant) -> Option<Target> {
        self.cfg.health.as_ref()?;
        let e = self
            .backends
            .iter_mut()
            .find(|e| !e.probing && e.due.is_some_and(|d| now >= d))?;
        e.probing = true;
        e.due = None;
        Some(e.target.clone())
    }

    /// The result of a probe handed out by [`Balancer::poll_check`].
    pub fn check_result(&mut self, target: &Target, healthy: bool, now: Instant) {
        let Some(h) = self.cfg.health.clone() else {
            return;
        };
        let Some(i) = self.find(target) else {
            return;
        };
        let e = &mut self.backends[i];
        e.probing = false;
        e.due = Some(now + h.interval);
        if e.down == healthy {
            e.streak += 1;
        } else {
            e.streak = 0;
        }
        if e.down && e.streak >= h.healthy_threshold {
            e.down = false;
            e.streak = 0;
        } else if !e.down && e.streak >= h.unhealthy_threshold {
            e.down = true;
            e.streak = 0;
        }
    }

    /// When [`Balancer::poll_check`] has something next (the earliest due probe).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.cfg.health.as_ref()?;
        self.backends
            .iter()
            .filter(|e| !e.probing)
            .filter_map(|e| e.due)
            .min()
    }

    /// Every backend, in the order they were added.
    #[must_use]
    pub fn status(&self) -> Vec<BackendStatus> {
        self.backends
            .iter()
            .map(|e| BackendStatus {
                target: e.target.clone(),
                state: if e.draining {
                    State::Draining
                } else if e.down {
                    State::Down
                } else {
                    State::Up
                },
                active: e.active,
                total: e.total,
            })
            .collect()
    }
}

/// Rendezvous (highest random weight) score of `key` on `target`: FNV-1a over both, then a
/// 64-bit finalizer so that close inputs spread.
fn rendezvous(key: &str, target: &Target) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let t = target.to_string();
    for b in key.bytes().chain([0xff]).chain(t.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(i: u8) -> Target {
        Target::parse(&format!("tcp://10.0.0.{i}:80")).unwrap()
    }

    fn lb(policy: Policy, n: u8, now: Instant) -> Balancer {
        let mut lb = Balancer::new(BalancerConfig::new(policy));
        for i in 1..=n {
            lb.add(t(i), now);
        }
        lb
    }

    fn counts(lb: &mut Balancer, key: Option<&str>, picks: usize, now: Instant) -> Vec<usize> {
        let mut c = [0; 4];
        for _ in 0..picks {
            let p = lb.pick(key, now).unwrap();
            let i = (1..=3).find(|&i| t(i) == p).unwrap();
            c[usize::from(i)] += 1;
        }
        c[1..].to_vec()
    }

    #[test]
    fn round_robin_takes_each_in_turn_and_skips_a_down_one() {
        let now = Instant::now();
        let mut lb = lb(Policy::RoundRobin, 3, now);
        assert_eq!(counts(&mut lb, None, 9, now), [3, 3, 3]);
        lb.connect_failed(&t(2), now);
        assert_eq!(counts(&mut lb, None, 6, now), [3, 0, 3]);
        // Passive only: back after retry_down_after.
        let later = now + Duration::from_secs(10);
        assert_eq!(counts(&mut lb, None, 9, later), [3, 3, 3]);
    }

    #[test]
    fn least_connections_fills_the_emptiest() {
        let now = Instant::now();
        let mut lb = lb(Policy::LeastConnections, 3, now);
        for _ in 0..5 {
            lb.acquire(&t(1));
        }
        lb.acquire(&t(2));
        // 2 and 3 get the next ones until they catch up with 1.
        let mut got = [0usize; 4];
        for _ in 0..9 {
            let p = lb.pick(None, now).unwrap();
            lb.acquire(&p);
            got[(1..=3).find(|&i| t(i) == p).unwrap() as usize] += 1;
        }
        let active: Vec<usize> = lb.status().iter().map(|s| s.active).collect();
        assert_eq!(active, [5, 5, 5], "{got:?}");
        assert_eq!(got[1], 0);
        lb.release(&t(3));
        lb.release(&t(3));
        assert_eq!(lb.pick(None, now), Some(t(3)));
    }

    #[test]
    fn sticky_keys_stay_and_only_the_removed_backends_keys_move() {
        let now = Instant::now();
        let mut lb = lb(Policy::StickyHeader("x-user".into()), 3, now);
        let keys: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
        let before: Vec<Target> = keys
            .iter()
            .map(|k| lb.pick(Some(k), now).unwrap())
            .collect();
        for (k, b) in keys.iter().zip(&before) {
            assert_eq!(&lb.pick(Some(k), now).unwrap(), b, "{k} moved");
        }
        // Spread over all three (rendezvous hashing is roughly even).
        for i in 1..=3 {
            let n = before.iter().filter(|b| **b == t(i)).count();
            assert!((60..=140).contains(&n), "backend {i} got {n} of 300");
        }
        lb.connect_failed(&t(2), now);
        for (k, b) in keys.iter().zip(&before) {
            let after = lb.pick(Some(k), now).unwrap();
            if *b == t(2) {
                assert_ne!(after, t(2));
            } else {
                assert_eq!(&after, b, "{k} moved although its backend is up");
            }
        }
        // No key: round robin.
        assert_eq!(counts(&mut lb, None, 4, now), [2, 0, 2]);
    }

    #[test]
    fn draining_gets_nothing_new_and_goes_when_empty() {
        let now = Instant::now();
        let mut lb = lb(Policy::RoundRobin, 3, now);
        lb.acquire(&t(1));
        assert!(lb.drain(&t(1)));
        assert_eq!(lb.status()[0].state, State::Draining);
        assert_eq!(counts(&mut lb, None, 4, now), [0, 2, 2]);
        lb.release(&t(1));
        assert_eq!(lb.status().len(), 2, "removed after its last connection");
        assert!(lb.drain(&t(3)), "no connection: removed at once");
        assert_eq!(lb.status().len(), 1);
        assert!(!lb.drain(&t(3)));
        // Re-adding a draining backend makes it usable again.
        lb.acquire(&t(2));
        lb.drain(&t(2));
        assert!(!lb.add(t(2), now));
        assert_eq!(lb.status()[0].state, State::Up);
        lb.drain(&t(2));
        lb.release(&t(2));
        assert_eq!(lb.pick(None, now), None);
    }

    #[test]
    fn health_thresholds_on_a_fake_clock() {
        let t0 = Instant::now();
        let mut cfg = BalancerConfig::new(Policy::RoundRobin);
        cfg.health = Some(HealthCheck {
            interval: Duration::from_secs(5),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            ..HealthCheck::default()
        });
        let mut lb = Balancer::new(cfg);
        lb.add(t(1), t0);
        lb.add(t(2), t0);
        assert_eq!(lb.poll_timeout(), Some(t0));
        assert_eq!(lb.poll_check(t0), Some(t(1)));
        assert_eq!(lb.poll_check(t0), Some(t(2)));
        assert_eq!(lb.poll_check(t0), None, "both are being probed");
        assert_eq!(lb.poll_timeout(), None);
        let mut now = t0;
        // Backend 1 fails three probes: down after the third.
        for round in 1..=3 {
            lb.check_result(&t(1), false, now);
            lb.check_result(&t(2), true, now);
            let state = lb.status()[0].state;
            assert_eq!(state, if round < 3 { State::Up } else { State::Down });
            assert_eq!(lb.poll_timeout(), Some(now + Duration::from_secs(5)));
            assert_eq!(lb.poll_check(now + Duration::from_secs(4)), None);
            now += Duration::from_secs(5);
            assert_eq!(lb.poll_check(now), Some(t(1)));
            assert_eq!(lb.poll_check(now), Some(t(2)));
        }
        assert_eq!(lb.pick(None, now), Some(t(2)));
        assert_eq!(lb.pick(None, now), Some(t(2)));
        // A good probe, a bad one (the streak restarts), then two good ones: up.
        for (ok, up) in [(true, false), (false, false), (true, false), (true, true)] {
            lb.check_result(&t(1), ok, now);
            lb.check_result(&t(2), true, now);
            assert_eq!(lb.status()[0].state == State::Up, up);
            now += Duration::from_secs(5);
            lb.poll_check(now);
            lb.poll_check(now);
        }
        // With active checks a failed connect is not retried by time alone.
        lb.connect_failed(&t(1), now);
        assert_eq!(
            lb.pick(None, now + Duration::from_secs(3600)),
            Some(t(2)),
            "only probes bring it back"
        );
    }

    #[test]
    fn pick_except_skips_what_was_tried() {
        let now = Instant::now();
        let mut lb = lb(Policy::RoundRobin, 2, now);
        assert_eq!(lb.pick_except(None, &[t(1)], now), Some(t(2)));
        assert_eq!(lb.pick_except(None, &[t(1), t(2)], now), None);
    }

    #[test]
    fn policies_parse_and_configs_validate() {
        assert_eq!(Policy::parse("rr").unwrap(), Policy::RoundRobin);
        assert_eq!(
            Policy::parse("least-connections").unwrap(),
            Policy::LeastConnections
        );
        assert_eq!(
            Policy::parse("cookie:SID").unwrap(),
            Policy::StickyCookie("SID".into())
        );
        assert_eq!(
            Policy::parse("header:X-User").unwrap().to_string(),
            "header:X-User"
        );
        for bad in ["", "random", "cookie:", "header: "] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        let mut c = BalancerConfig::new(Policy::RoundRobin);
        assert!(c.validate().is_err(), "no backend, no registration");
        c.registration = Some(Registration::new("short"));
        assert!(c.validate().is_err());
        c.registration = Some(Registration::new("0123456789abcdef"));
        c.validate().unwrap();
        c.health = Some(HealthCheck {
            probe: Probe::Http {
                path: "health".into(),
            },
            ..HealthCheck::default()
        });
        assert!(c.validate().is_err());
        assert!(!format!("{:?}", c.registration).contains("0123456789abcdef"));
    }
}
