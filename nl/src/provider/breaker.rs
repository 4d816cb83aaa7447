//! A circuit breaker for one provider.
//!
//! A provider that keeps failing (down, overloaded, misconfigured) should cost
//! a question nothing: after `failures` consecutive failed calls the breaker
//! *opens* and calls fail at once, so the chain moves to the next provider
//! without waiting for timeouts. After `cooldown` the breaker lets exactly one
//! *trial* call through (*half-open*): its success closes the breaker, its
//! failure opens it for another cooldown.
//!
//! Time is [`tokio::time::Instant`], so tests may pause and advance tokio's
//! clock; every method also has an `*_at(now)` form that takes the instant
//! explicitly. State sits behind a [`Mutex`] held only for a few comparisons.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What a breaker does with the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// The cooldown is over: one trial call goes through (or is in flight).
    HalfOpen,
    /// Calls fail at once until the cooldown ends.
    Open,
}

impl BreakerState {
    /// The state as a number for the `helios_nl_breaker_state` gauge:
    /// 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    /// `failures` consecutive failures so far.
    Closed { failures: u32 },
    /// Opened at `since`.
    Open { since: Instant },
    /// The cooldown is over; `trial` is when the trial call was let through,
    /// if one is in flight.
    HalfOpen { trial: Option<Instant> },
}

/// A circuit breaker: closed → open after N consecutive failures → half-open
/// after the cooldown → closed on a trial's success, open again on its failure.
#[derive(Debug)]
pub struct Breaker {
    /// Consecutive failures that open the breaker; 0 disables it.
    failures: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker that opens after `failures` consecutive failures
    /// (0: never) and waits `cooldown` before a trial call.
    pub fn new(failures: u32, cooldown: Duration) -> Self {
        Breaker {
            failures,
            cooldown,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a plain value: a panic elsewhere cannot leave it torn.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a call go through now? `Err(retry_in)`: no, the breaker is open
    /// (or half-open with its trial in flight) for about `retry_in` more.
    ///
    /// A granted call must end in [`record_success`](Self::record_success),
    /// [`record_failure`](Self::record_failure) or
    /// [`release`](Self::release).
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.try_acquire_at(Instant::now())
    }

    pub fn try_acquire_at(&self, now: Instant) -> Result<(), Duration> {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => Ok(()),
            Inner::Open { since } => {
                let ready = since + self.cooldown;
                if now >= ready {
                    *inner = Inner::HalfOpen { trial: Some(now) };
                    Ok(())
                } else {
                    Err(ready - now)
                }
            }
            Inner::HalfOpen { trial: None } => {
                *inner = Inner::HalfOpen { trial: Some(now) };
                Ok(())
            }
            Inner::HalfOpen {
                trial: Some(started),
            } => {
                // A trial that has not reported within a cooldown is presumed
                // lost (its caller gave up without a word): let another one go.
                let stale = started + self.cooldown;
                if now >= stale {
                    *inner = Inner::HalfOpen { trial: Some(now) };
                    Ok(())
                } else {
                    Err(stale - now)
                }
            }
        }
    }

    /// The call succeeded: the breaker closes and the failure count restarts.
    pub fn record_success(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
    }

    /// The call failed: one more consecutive failure (opening the breaker at
    /// the threshold); a failed trial opens it again.
    pub fn record_failure(&self) {
        self.record_failure_at(Instant::now())
    }

    pub fn record_failure_at(&self, now: Instant) {
        let mut inner = self.lock();
        *inner = match *inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if self.failures > 0 && failures >= self.failures {
                    Inner::Open { since: now }
                } else {
                    Inner::Closed { failures }
                }
            }
            Inner::HalfOpen { .. } => Inner::Open { since: now },
            // A call granted before the breaker opened: it stays open, from now.
            Inner::Open { .. } => Inner::Open { since: now },
        };
    }

    /// A granted call ended without telling anything about the provider
    /// (cancelled, or refused locally by the rate limit): a half-open
    /// breaker lets the next trial through at once.
    pub fn release(&self) {
        let mut inner = self.lock();
        if let Inner::HalfOpen { .. } = *inner {
            *inner = Inner::HalfOpen { trial: None };
        }
    }

    /// The state now. An open breaker whose cooldown is over reports
    /// [`BreakerState::HalfOpen`]: the next call will be its trial.
    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    pub fn state_at(&self, now: Instant) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { since } if now >= since + self.cooldown => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures counted while closed.
    pub fn consecutive_failures(&self) -> u32 {
        match *self.lock() {
            Inner::Closed { failures } => failures,
            _ => self.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(10);

    fn open_breaker(t0: Instant) -> Breaker {
        let b = Breaker::new(3, COOLDOWN);
        for _ in 0..3 {
            b.try_acquire_at(t0).unwrap();
            b.record_failure_at(t0);
        }
        b
    }

    #[test]
    fn closed_lets_calls_through_below_the_threshold() {
        let t0 = Instant::now();
        let b = Breaker::new(3, COOLDOWN);
        assert_eq!(b.state_at(t0), BreakerState::Closed);
        for _ in 0..2 {
            assert!(b.try_acquire_at(t0).is_ok());
            b.record_failure_at(t0);
        }
        assert_eq!(b.state_at(t0), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 2);
        assert!(b.try_acquire_at(t0).is_ok());
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let t0 = Instant::now();
        let b = Breaker::new(3, COOLDOWN);
        b.record_failure_at(t0);
        b.record_failure_at(t0);
        b.record_success();
        assert_eq!(b.consecutive_failures(), 0);
        b.record_failure_at(t0);
        b.record_failure_at(t0);
        assert_eq!(b.state_at(t0), BreakerState::Closed);
    }

    #[test]
    fn closed_to_open_after_n_consecutive_failures() {
        let t0 = Instant::now();
        let b = open_breaker(t0);
        assert_eq!(b.state_at(t0), BreakerState::Open);
        let later = t0 + Duration::from_secs(4);
        assert_eq!(b.try_acquire_at(later), Err(Duration::from_secs(6)));
        assert_eq!(b.state_at(later), BreakerState::Open);
    }

    #[test]
    fn open_to_half_open_after_the_cooldown_lets_one_trial_through() {
        let t0 = Instant::now();
        let b = open_breaker(t0);
        let after = t0 + COOLDOWN;
        assert_eq!(b.state_at(after), BreakerState::HalfOpen);
        assert!(b.try_acquire_at(after).is_ok(), "the trial goes through");
        assert_eq!(b.state_at(after), BreakerState::HalfOpen);
        // Only one trial at a time.
        let retry_in = b
            .try_acquire_at(after + Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(retry_in, Duration::from_secs(9));
    }

    #[test]
    fn half_open_to_closed_on_success() {
        let t0 = Instant::now();
        let b = open_breaker(t0);
        let after = t0 + COOLDOWN;
        b.try_acquire_at(after).unwrap();
        b.record_success();
        assert_eq!(b.state_at(after), BreakerState::Closed);
        assert!(b.try_acquire_at(after).is_ok());
        assert!(b.try_acquire_at(after).is_ok());
    }

    #[test]
    fn half_open_to_open_on_failure_for_another_cooldown() {
        let t0 = Instant::now();
        let b = open_breaker(t0);
        let after = t0 + COOLDOWN;
        b.try_acquire_at(after).unwrap();
        b.record_failure_at(after);
        assert_eq!(b.state_at(after), BreakerState::Open);
        assert_eq!(b.try_acquire_at(after), Err(COOLDOWN));
        assert_eq!(b.state_at(after + COOLDOWN), BreakerState::HalfOpen);
        assert!(b.try_acquire_at(after + COOLDOWN).is_ok());
    }

    #[test]
    fn a_released_trial_lets_the_next_one_through() {
        let t0 = Instant::now();
        let b = open_breaker(t0);
        let after = t0 + COOLDOWN;
        b.try_acquire_at(after).unwrap();
        assert!(b.try_acquire_at(after).is_err());
        b.release();
        assert_eq!(b.state_at(after), BreakerState::HalfOpen);
        assert!(b.try_acquire_at(after).is_ok());
    }

    #[test]
    fn a_lost_trial_is_replaced_after_a_cooldown() {
        let t0 = Instant::now();
        let b = open_breaker(t0);
        let after = t0 + COOLDOWN;
        b.try_acquire_at(after).unwrap();
        assert!(b.try_acquire_at(after + COOLDOWN / 2).is_err());
        assert!(b.try_acquire_at(after + COOLDOWN).is_ok());
    }

    #[test]
    fn release_while_closed_changes_nothing() {
        let t0 = Instant::now();
        let b = Breaker::new(2, COOLDOWN);
        b.record_failure_at(t0);
        b.release();
        assert_eq!(b.consecutive_failures(), 1);
        assert_eq!(b.state_at(t0), BreakerState::Closed);
    }

    #[test]
    fn zero_failures_disables_the_breaker() {
        let t0 = Instant::now();
        let b = Breaker::new(0, COOLDOWN);
        for _ in 0..100 {
            b.record_failure_at(t0);
        }
        assert_eq!(b.state_at(t0), BreakerState::Closed);
        assert!(b.try_acquire_at(t0).is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn follows_tokio_time() {
        let b = Breaker::new(1, Duration::from_millis(50));
        b.try_acquire().unwrap();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.try_acquire().unwrap();
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn gauge_values() {
        assert_eq!(BreakerState::Closed.as_gauge(), 0.0);
        assert_eq!(BreakerState::HalfOpen.as_gauge(), 1.0);
        assert_eq!(BreakerState::Open.as_gauge(), 2.0);
    }
}
