//! Client transaction timers (RFC 8489 §6.2.1 and §6.2.2), with time as an argument.

use std::time::{Duration, Instant};

use crate::error::ConfigError;

/// Retransmission parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetransmitConfig {
    /// Initial retransmission timeout over UDP; doubles after each retransmission.
    /// Default: [`RetransmitConfig::DEFAULT_RTO`] (500 ms).
    pub rto: Duration,
    /// Total transmissions over UDP (the first included). Default: [`RetransmitConfig::DEFAULT_RC`] (7).
    pub rc: u32,
    /// After the last transmission the client waits `rm * rto`. Default: [`RetransmitConfig::DEFAULT_RM`] (16).
    pub rm: u32,
    /// Timeout over reliable transports (TCP, TLS), where nothing is retransmitted.
    /// Default: [`RetransmitConfig::DEFAULT_RELIABLE_TIMEOUT`] (39.5 s).
    pub reliable_timeout: Duration,
}

impl RetransmitConfig {
    /// Default of [`RetransmitConfig::rto`].
    pub const DEFAULT_RTO: Duration = Duration::from_millis(500);
    /// Default of [`RetransmitConfig::rc`].
    pub const DEFAULT_RC: u32 = 7;
    /// Default of [`RetransmitConfig::rm`].
    pub const DEFAULT_RM: u32 = 16;
    /// Default of [`RetransmitConfig::reliable_timeout`].
    pub const DEFAULT_RELIABLE_TIMEOUT: Duration = Duration::from_millis(39_500);

    /// Checks the values.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] when `rto` is zero, `rc` is 0 or above 32, or `rm` is 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rto.is_zero() || self.rc == 0 || self.rc > 32 || self.rm == 0 {
            return Err(ConfigError::OutOfRange {
                field: "retransmit",
                rule: "rto > 0, 1 <= rc <= 32, rm >= 1",
            });
        }
        Ok(())
    }
}

impl Default for RetransmitConfig {
    fn default() -> Self {
        Self {
            rto: Self::DEFAULT_RTO,
            rc: Self::DEFAULT_RC,
            rm: Self::DEFAULT_RM,
            reliable_timeout: Self::DEFAULT_RELIABLE_TIMEOUT,
        }
    }
}

/// What a transaction timer asks for when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// Not due yet.
    Wait,
    /// Send the request again.
    Retransmit,
    /// Give up: the transaction failed with a timeout.
    TimedOut,
}

/// The timer of one client transaction.
///
/// Create it when the request is first sent, arm a timer at [`TransactionTimer::deadline`], and
/// call [`TransactionTimer::handle_timeout`] when it fires: it says whether to retransmit or give up.
#[derive(Clone, Debug)]
pub struct TransactionTimer {
    sent: u32,
    rto: Duration,
    deadline: Instant,
    reliable: bool,
    rc: u32,
    rm: u32,
    base_rto: Duration,
}

impl TransactionTimer {
    /// The timer of a request first sent at `now`.
    pub fn new(now: Instant, reliable: bool, cfg: &RetransmitConfig) -> Self {
        let deadline = if reliable {
            now + cfg.reliable_timeout
        } else if cfg.rc <= 1 {
            now + cfg.rto * cfg.rm
        } else {
            now + cfg.rto
        };
        Self {
            sent: 1,
            rto: cfg.rto,
            deadline,
            reliable,
            rc: cfg.rc,
            rm: cfg.rm,
            base_rto: cfg.rto,
        }
    }

    /// When the timer fires next.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Transmissions so far, the first included.
    pub fn transmissions(&self) -> u32 {
        self.sent
    }

    /// Advances the timer to `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> TimerAction {
        if now < self.deadline {
            return TimerAction::Wait;
        }
        if self.reliable || self.sent >= self.rc {
            return TimerAction::TimedOut;
        }
        self.sent += 1;
        self.rto *= 2;
        self.deadline = if self.sent >= self.rc {
            self.deadline + self.base_rto * self.rm
        } else {
            self.deadline + self.rto
        };
        TimerAction::Retransmit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a timer to its end and returns (ms of each transmission, ms of the timeout).
    fn schedule(reliable: bool, cfg: &RetransmitConfig) -> (Vec<u128>, u128) {
        let t0 = Instant::now();
        let mut t = TransactionTimer::new(t0, reliable, cfg);
        let mut sends = vec![0];
        loop {
            let at = t.deadline();
            assert_eq!(
                t.handle_timeout(at - Duration::from_millis(1)),
                TimerAction::Wait
            );
            match t.handle_timeout(at) {
                TimerAction::Retransmit => sends.push((at - t0).as_millis()),
                TimerAction::TimedOut => return (sends, (at - t0).as_millis()),
                TimerAction::Wait => unreachable!("deadline reached"),
            }
        }
    }

    #[test]
    fn udp_schedule_is_the_rfc_example() {
        let (sends, timeout) = schedule(false, &RetransmitConfig::default());
        assert_eq!(sends, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(timeout, 39_500);
    }

    #[test]
    fn tcp_sends_once_and_times_out_at_39_5_s() {
        let (sends, timeout) = schedule(true, &RetransmitConfig::default());
        assert_eq!(sends, vec![0]);
        assert_eq!(timeout, 39_500);
    }

    #[test]
    fn custom_parameters_and_validation() {
        let cfg = RetransmitConfig {
            rto: Duration::from_millis(100),
            rc: 3,
            rm: 4,
            ..Default::default()
        };
        cfg.validate().unwrap();
        let (sends, timeout) = schedule(false, &cfg);
        assert_eq!(sends, vec![0, 100, 300]);
        assert_eq!(timeout, 700);
        let one = RetransmitConfig {
            rc: 1,
            ..Default::default()
        };
        assert_eq!(schedule(false, &one), (vec![0], 8000));
        assert!(
            RetransmitConfig {
                rc: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            RetransmitConfig {
                rto: Duration::ZERO,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
