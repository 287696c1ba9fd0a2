//! Token bucket for per-connection throughput limits.

use std::time::{Duration, Instant};

/// A token bucket of `rate` bytes per second with a burst of one second's worth. Bytes are
/// taken after the IO happened, so the balance may go negative; the caller then waits until
/// [`TokenBucket::ready_at`].
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: u64,
    /// Current balance in bytes (negative: in debt).
    tokens: i64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        Self {
            rate,
            tokens: i64::try_from(rate).unwrap_or(i64::MAX),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let add = (elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000) as i64;
        if add > 0 {
            let cap = i64::try_from(self.rate).unwrap_or(i64::MAX);
            self.tokens = self.tokens.saturating_add(add).min(cap);
            self.last = now;
        }
    }

    /// Takes `n` bytes from the bucket.
    pub(crate) fn consume(&mut self, n: usize, now: Instant) {
        self.refill(now);
        self.tokens = self
            .tokens
            .saturating_sub(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `None` when IO may proceed now, else the instant the debt is paid off.
    pub(crate) fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        if self.tokens >= 0 {
            return None;
        }
        let debt = self.tokens.unsigned_abs();
        let nanos = u128::from(debt) * 1_000_000_000 / u128::from(self.rate.max(1));
        Some(now + Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64 + 1))
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
        let ready = b.ready_at(t0).expect("in debt");
        let wait = ready - t0;
        assert!(wait >= Duration::from_millis(500) && wait <= Duration::from_millis(501));
        assert_eq!(b.ready_at(t0 + Duration::from_millis(500)), None);
    }

    #[test]
    fn burst_is_capped_at_one_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, t0);
        let later = t0 + Duration::from_secs(60);
        b.consume(150, later);
        let ready = b.ready_at(later).expect("burst is only 100");
        assert_eq!(
            ready - later,
            Duration::from_millis(500) + Duration::from_nanos(1)
        );
    }
}
