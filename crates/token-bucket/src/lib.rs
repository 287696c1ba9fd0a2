//! The one token bucket of the wskit workspace: ws-server's per-connection throttle, ws-client's
//! send throttle and the TURN server's relay bandwidth limit.
//!
//! Sans-IO: every method takes `now`, so a test drives the bucket on a fake clock. Two ways to
//! spend, for the two kinds of caller:
//! - [`TokenBucket::try_take`] admits only what the balance covers (a relay drops a packet it
//!   cannot pay for);
//! - [`TokenBucket::consume`] books what already happened (bytes a socket read or wrote), so the
//!   balance may go into debt, and [`TokenBucket::ready_at`] says when it is paid off.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use token_bucket::TokenBucket;
//!
//! let t0 = Instant::now();
//! let mut bucket = TokenBucket::new(1_000, t0); // 1,000 units per second, burst 1,000
//! bucket.consume(1_500, t0);
//! assert_eq!(bucket.ready_at(t0), Some(t0 + Duration::from_millis(500) + Duration::from_nanos(1)));
//! assert!(!bucket.try_take(1, t0 + Duration::from_millis(499)));
//! assert!(bucket.try_take(1, t0 + Duration::from_millis(502)));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::time::{Duration, Instant};

/// A token bucket of `rate` units per second that holds at most `burst` units (one second's worth
/// unless set with [`TokenBucket::with_burst`]). It starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    burst: i64,
    /// Current balance (negative: in debt after [`TokenBucket::consume`]).
    tokens: i64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` units per second with a burst of one second's worth.
    pub fn new(rate: u64, now: Instant) -> Self {
        Self::with_burst(rate, rate, now)
    }

    /// A full bucket refilling at `rate` units per second that holds at most `burst` units.
    pub fn with_burst(rate: u64, burst: u64, now: Instant) -> Self {
        let burst = i64::try_from(burst).unwrap_or(i64::MAX);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// The refill rate in units per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The balance at `now` (negative while in debt).
    pub fn balance(&mut self, now: Instant) -> i64 {
        self.refill(now);
        self.tokens
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let add = elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000;
        // Only move `last` when whole units were added, so that frequent calls with tiny
        // intervals do not lose the fractions.
        if add > 0 {
            let add = i64::try_from(add).unwrap_or(i64::MAX);
            self.tokens = self.tokens.saturating_add(add).min(self.burst);
            self.last = now;
        }
    }

    /// Takes `n` units when the balance covers them and returns `true`; otherwise takes nothing
    /// and returns `false`.
    pub fn try_take(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Books `n` units that were already spent; the balance may go into debt.
    pub fn consume(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.tokens = self
            .tokens
            .saturating_sub(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `None` when the balance is not in debt at `now`, else the instant the debt is paid off.
    pub fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        if self.tokens >= 0 {
            return None;
        }
        let debt = self.tokens.unsigned_abs();
        let nanos = u128::from(debt) * 1_000_000_000 / u128::from(self.rate.max(1));
        Some(
            now + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
                + Duration::from_nanos(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_at_the_configured_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        b.consume(1000, t0);
        assert_eq!(b.ready_at(t0), None);
        b.consume(500, t0);
        let wait = b.ready_at(t0).expect("in debt") - t0;
        assert!(wait >= Duration::from_millis(500) && wait <= Duration::from_millis(501));
        assert_eq!(b.ready_at(t0 + Duration::from_millis(500)), None);
    }

    #[test]
    fn burst_is_capped_at_one_second_by_default() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, t0);
        let later = t0 + Duration::from_secs(60);
        b.consume(150, later);
        assert_eq!(
            b.ready_at(later).expect("burst is only 100") - later,
            Duration::from_millis(500) + Duration::from_nanos(1)
        );
    }

    #[test]
    fn try_take_admits_only_what_is_covered() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        assert!(b.try_take(700, t0));
        assert!(!b.try_take(301, t0), "only 300 left");
        assert_eq!(b.balance(t0), 300, "a refused take costs nothing");
        assert!(b.try_take(300, t0));
        assert!(!b.try_take(1, t0));
        // 1 ms at 1,000/s refills one unit.
        assert!(b.try_take(1, t0 + Duration::from_millis(1)));
    }

    #[test]
    fn small_steps_do_not_lose_fractions() {
        let t0 = Instant::now();
        let mut b = TokenBucket::with_burst(1000, 10, t0);
        assert!(b.try_take(10, t0));
        // 100 steps of 0.1 ms each: one unit in total, although no single step adds one.
        let mut now = t0;
        for _ in 0..10 {
            now += Duration::from_micros(100);
            let _ = b.balance(now);
        }
        assert_eq!(b.balance(now), 1);
    }

    #[test]
    fn a_custom_burst_caps_the_balance() {
        let t0 = Instant::now();
        let mut b = TokenBucket::with_burst(1000, 50, t0);
        assert_eq!(b.balance(t0 + Duration::from_secs(10)), 50);
        assert!(!b.try_take(51, t0 + Duration::from_secs(10)));
    }
}
