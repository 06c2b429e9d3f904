//! [`CircuitBreaker`]: a count-window circuit breaker, used per backend by
//! the gateway and in front of the Account service by the order service.
//!
//! * **Closed**: every call passes; the outcomes of the last `window` calls are
//!   kept. Once `window` calls are recorded (the minimum volume) and the
//!   failure ratio reaches `failure_ratio`, the breaker opens.
//! * **Open**: no call passes until `delay` has elapsed.
//! * **Half-open**: `half_open_probes` probe calls pass; when all succeed the
//!   breaker closes, any failure reopens it with the delay doubled (capped at
//!   `max_delay`).
//!
//! What counts as a failure is the caller's decision (the gateway: timeouts,
//! transport errors and gRPC UNAVAILABLE; business codes are successes). An
//! attempt that was cancelled (a hedge loser, the client deadline) is
//! [`BreakerOutcome::Cancelled`]: it frees its probe slot and counts neither
//! way. Hand-written rather than a crate: the crates seen (failsafe, recloser)
//! have no half-open probe limit with backoff and would not report counts for
//! a snapshot. Time is passed in, so the state machine is tested without
//! sleeping. Its own crate because two crates that must not depend on each
//! other (gateway, account-client) share it.
#![deny(missing_docs)]

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The breaker's settings (taken from the live config on every call).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Calls evaluated, and the minimum volume before the breaker can open.
    pub window: usize,
    /// Failure ratio at which the breaker opens.
    pub failure_ratio: f64,
    /// First open period.
    pub delay: Duration,
    /// Cap of the doubled open period.
    pub max_delay: Duration,
    /// Probe calls in half-open state.
    pub half_open_probes: u32,
}

/// The breaker's externally visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// No calls pass.
    Open,
    /// A few probe calls pass.
    HalfOpen,
}

impl BreakerState {
    /// The value of a breaker-state gauge: 0 closed, 1 half-open, 2 open
    /// (the metric convention of docs/operations.md).
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// How one admitted call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerOutcome {
    /// The backend answered (business codes included).
    Success,
    /// Timeout, transport error, UNAVAILABLE or another server failure.
    Failure,
    /// The call was abandoned before it ended; it counts neither way.
    Cancelled,
}

/// Permission for one call, handed back with its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    probe: bool,
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// `true` = failure, newest at the back.
    recent: VecDeque<bool>,
    failures: usize,
    open_delay: Duration,
    generation: u64,
    times_opened: u64,
}

/// Counters of a breaker for the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BreakerCounts {
    /// Current state.
    pub state: BreakerState,
    /// Calls in the window.
    pub window_calls: usize,
    /// Failures in the window.
    pub window_failures: usize,
    /// Times the breaker opened since start.
    pub times_opened: u64,
}

/// A circuit breaker for one backend.
#[derive(Debug)]
pub struct CircuitBreaker {
    inner: Mutex<Inner>,
}

impl Default for CircuitBreaker {
    fn default() -> CircuitBreaker {
        CircuitBreaker::new()
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new() -> CircuitBreaker {
        CircuitBreaker {
            inner: Mutex::new(Inner {
                state: State::Closed,
                recent: VecDeque::new(),
                failures: 0,
                open_delay: Duration::ZERO,
                generation: 0,
                times_opened: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent at every await-free step, so a panic
        // elsewhere cannot leave it half-updated.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call would be admitted now (without taking a probe slot).
    pub fn would_admit(&self, cfg: &BreakerConfig, now: Instant) -> bool {
        match self.lock().state {
            State::Closed => true,
            State::Open { until } => now >= until,
            State::HalfOpen { admitted, .. } => admitted < cfg.half_open_probes,
        }
    }

    /// Admits one call, or `None` when the breaker is open or all probe
    /// slots are taken.
    pub fn try_admit(&self, cfg: &BreakerConfig, now: Instant) -> Option<Admission> {
        let mut inner = self.lock();
        if let State::Open { until } = inner.state {
            if now < until {
                return None;
            }
            inner.state = State::HalfOpen {
                admitted: 0,
                succeeded: 0,
            };
            inner.generation += 1;
        }
        let generation = inner.generation;
        match &mut inner.state {
            State::Closed => Some(Admission {
                probe: false,
                generation,
            }),
            State::HalfOpen { admitted, .. } if *admitted < cfg.half_open_probes => {
                *admitted += 1;
                Some(Admission {
                    probe: true,
                    generation,
                })
            }
            _ => None,
        }
    }

    /// Gives back an admission whose call was abandoned (counts neither way).
    pub fn cancel(&self, admission: Admission) {
        let mut inner = self.lock();
        if admission.generation != inner.generation || !admission.probe {
            return;
        }
        if let State::HalfOpen {
            admitted,
            succeeded,
        } = inner.state
        {
            inner.state = State::HalfOpen {
                admitted: admitted.saturating_sub(1),
                succeeded,
            };
        }
    }

    /// Records the outcome of an admitted call.
    pub fn record(
        &self,
        cfg: &BreakerConfig,
        admission: Admission,
        outcome: BreakerOutcome,
        now: Instant,
    ) {
        if outcome == BreakerOutcome::Cancelled {
            return self.cancel(admission);
        }
        let mut inner = self.lock();
        if admission.generation != inner.generation {
            return; // The breaker changed state since; this result is stale.
        }
        match (inner.state, admission.probe) {
            (State::Closed, false) => {
                let failed = match outcome {
                    BreakerOutcome::Success => false,
                    BreakerOutcome::Failure => true,
                    BreakerOutcome::Cancelled => return,
                };
                inner.recent.push_back(failed);
                inner.failures += usize::from(failed);
                while inner.recent.len() > cfg.window.max(1) {
                    if inner.recent.pop_front() == Some(true) {
                        inner.failures -= 1;
                    }
                }
                let calls = inner.recent.len();
                if calls >= cfg.window.max(1)
                    && inner.failures as f64 / calls as f64 >= cfg.failure_ratio
                {
                    inner.open_delay = cfg.delay;
                    open(&mut inner, now);
                }
            }
            (
                State::HalfOpen {
                    admitted,
                    succeeded,
                },
                true,
            ) => match outcome {
                BreakerOutcome::Success if succeeded + 1 >= cfg.half_open_probes => {
                    inner.state = State::Closed;
                    inner.recent.clear();
                    inner.failures = 0;
                    inner.generation += 1;
                }
                BreakerOutcome::Success => {
                    inner.state = State::HalfOpen {
                        admitted,
                        succeeded: succeeded + 1,
                    };
                }
                BreakerOutcome::Failure => {
                    inner.open_delay = (inner.open_delay * 2).min(cfg.max_delay).max(cfg.delay);
                    open(&mut inner, now);
                }
                BreakerOutcome::Cancelled => {
                    inner.state = State::HalfOpen {
                        admitted: admitted.saturating_sub(1),
                        succeeded,
                    };
                }
            },
            _ => {}
        }
    }

    /// Closes the breaker and forgets its window (operator action).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.state = State::Closed;
        inner.recent.clear();
        inner.failures = 0;
        inner.generation += 1;
    }

    /// The state as of `now` (an open breaker whose delay passed is half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.lock().state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Counters for the snapshot.
    pub fn counts(&self, now: Instant) -> BreakerCounts {
        let state = self.state(now);
        let inner = self.lock();
        BreakerCounts {
            state,
            window_calls: inner.recent.len(),
            window_failures: inner.failures,
            times_opened: inner.times_opened,
        }
    }
}

fn open(inner: &mut Inner, now: Instant) {
    inner.state = State::Open {
        until: now + inner.open_delay,
    };
    inner.recent.clear();
    inner.failures = 0;
    inner.generation += 1;
    inner.times_opened += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            window: 50,
            failure_ratio: 0.2,
            delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(100),
            half_open_probes: 3,
        }
    }

    fn call(b: &CircuitBreaker, outcome: BreakerOutcome, now: Instant) -> bool {
        match b.try_admit(&cfg(), now) {
            Some(a) => {
                b.record(&cfg(), a, outcome, now);
                true
            }
            None => false,
        }
    }

    fn trip(b: &CircuitBreaker, now: Instant) {
        for i in 0..50 {
            let o = if i % 5 == 0 {
                BreakerOutcome::Failure
            } else {
                BreakerOutcome::Success
            };
            assert!(call(b, o, now));
        }
        assert_eq!(b.state(now), BreakerState::Open);
    }

    #[test]
    fn stays_closed_below_minimum_volume_even_if_all_fail() {
        let b = CircuitBreaker::new();
        let now = Instant::now();
        for _ in 0..49 {
            assert!(call(&b, BreakerOutcome::Failure, now));
        }
        assert_eq!(b.state(now), BreakerState::Closed);
        assert!(call(&b, BreakerOutcome::Failure, now));
        assert_eq!(b.state(now), BreakerState::Open);
        assert!(!call(&b, BreakerOutcome::Success, now));
    }

    #[test]
    fn opens_at_exactly_the_failure_ratio_and_not_below() {
        let b = CircuitBreaker::new();
        let now = Instant::now();
        // 9 failures in 50 = 18 %: stays closed however long it runs.
        for i in 0..500 {
            let o = if i % 50 < 9 {
                BreakerOutcome::Failure
            } else {
                BreakerOutcome::Success
            };
            call(&b, o, now);
        }
        assert_eq!(b.state(now), BreakerState::Closed);
        let b = CircuitBreaker::new();
        trip(&b, now); // 10 in 50 = 20 %
        assert_eq!(b.counts(now).times_opened, 1);
    }

    #[test]
    fn business_codes_and_cancellations_do_not_count() {
        let b = CircuitBreaker::new();
        let now = Instant::now();
        for _ in 0..200 {
            call(&b, BreakerOutcome::Success, now);
            call(&b, BreakerOutcome::Cancelled, now);
        }
        let c = b.counts(now);
        assert_eq!(
            (c.state, c.window_calls, c.window_failures),
            (BreakerState::Closed, 50, 0)
        );
    }

    #[test]
    fn half_open_probes_close_after_successes() {
        let b = CircuitBreaker::new();
        let t0 = Instant::now();
        trip(&b, t0);
        assert!(!call(
            &b,
            BreakerOutcome::Success,
            t0 + Duration::from_secs(29)
        ));
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        // Only three probes are admitted at once.
        let probes: Vec<_> = (0..3).map(|_| b.try_admit(&cfg(), t1).unwrap()).collect();
        assert!(b.try_admit(&cfg(), t1).is_none());
        for p in probes {
            b.record(&cfg(), p, BreakerOutcome::Success, t1);
        }
        assert_eq!(b.state(t1), BreakerState::Closed);
        assert!(call(&b, BreakerOutcome::Success, t1));
    }

    #[test]
    fn failed_probe_reopens_with_doubled_capped_delay() {
        let b = CircuitBreaker::new();
        let mut t = Instant::now();
        trip(&b, t);
        for expected in [60u64, 100, 100] {
            t += Duration::from_secs(if expected == 60 { 30 } else { 100 });
            assert!(call(&b, BreakerOutcome::Failure, t), "probe admitted");
            assert_eq!(b.state(t), BreakerState::Open);
            assert_eq!(
                b.state(t + Duration::from_secs(expected) - Duration::from_millis(1)),
                BreakerState::Open
            );
            assert_eq!(
                b.state(t + Duration::from_secs(expected)),
                BreakerState::HalfOpen
            );
        }
    }

    #[test]
    fn cancelled_probe_returns_its_slot_and_stale_results_are_ignored() {
        let b = CircuitBreaker::new();
        let t0 = Instant::now();
        let stale = b.try_admit(&cfg(), t0).unwrap();
        trip(&b, t0);
        let t1 = t0 + Duration::from_secs(30);
        let probes: Vec<_> = (0..3).map(|_| b.try_admit(&cfg(), t1).unwrap()).collect();
        b.record(&cfg(), probes[0], BreakerOutcome::Cancelled, t1);
        assert!(b.try_admit(&cfg(), t1).is_some(), "slot returned");
        // A result admitted before the breaker opened changes nothing.
        b.record(&cfg(), stale, BreakerOutcome::Failure, t1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        b.reset();
        assert_eq!(b.state(t1), BreakerState::Closed);
        // Probes from before the reset are stale too.
        b.record(&cfg(), probes[1], BreakerOutcome::Failure, t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
    }
}
