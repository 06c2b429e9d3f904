//! Hedging: when the first attempt of a request with a request_id is slow,
//! send the same request to another backend and take whichever answers
//! first (the loser's future is dropped, which cancels its call; the order
//! services deduplicate by (account, request_id)).
//!
//! "Slow" is the pool's recent latency quantile (p95 by default) clamped to
//! `[min_delay, max_delay]`; there is no hedge until [`MIN_HEDGE_SAMPLES`]
//! calls were measured (a cold start is exactly when extra load hurts most),
//! nor while the pool is saturated — requests waiting for room, or no
//! other backend below its adaptive limit (then slowness is load, and a
//! hedge would amplify it; the router checks both). Every hedge also needs
//! the retry budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::resilience::clock;
use crate::resilience::latency::LatencyTracker;

/// Samples the pool needs in its recent window before hedging starts.
pub const MIN_HEDGE_SAMPLES: u64 = 20;

/// Parameters of the hedging policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgeParams {
    /// Whether slow attempts are hedged at all.
    pub enabled: bool,
    /// Lower bound of the hedge delay.
    pub min_delay: Duration,
    /// Upper bound of the hedge delay.
    pub max_delay: Duration,
    /// Quantile of the pool's recent latency used as the delay.
    pub quantile: f64,
    /// Length of the rotating latency window.
    pub latency_window: Duration,
}

/// The hedging policy and the pool latency it learns from.
#[derive(Debug)]
pub struct Hedging {
    params: ArcSwap<HedgeParams>,
    pool: ArcSwap<LatencyTracker>,
    sent: AtomicU64,
    won: AtomicU64,
}

fn tracker(p: &HedgeParams) -> LatencyTracker {
    LatencyTracker::new(p.latency_window, p.quantile)
}

impl Hedging {
    /// Hedging with `params` and no latency samples yet.
    pub fn new(params: HedgeParams) -> Hedging {
        Hedging {
            pool: ArcSwap::from_pointee(tracker(&params)),
            params: ArcSwap::from_pointee(params),
            sent: AtomicU64::new(0),
            won: AtomicU64::new(0),
        }
    }

    /// Switches to `params`; the latency window starts afresh only if its
    /// own settings changed.
    pub fn reconfigure(&self, params: HedgeParams) {
        let old = self.params.load();
        if (old.latency_window, old.quantile) != (params.latency_window, params.quantile) {
            self.pool.store(Arc::new(tracker(&params)));
        }
        self.params.store(Arc::new(params));
    }

    /// The pool's latency tracker.
    pub fn pool_latency(&self) -> Arc<LatencyTracker> {
        self.pool.load_full()
    }

    /// The measured delay as of `now`: the configured quantile clamped to
    /// the bounds; `None` until [`MIN_HEDGE_SAMPLES`] calls were measured.
    pub fn measured_delay(&self, now: Instant) -> Option<Duration> {
        let p = self.params.load();
        let q = self.pool.load().quantiles(now);
        (q.count >= MIN_HEDGE_SAMPLES).then(|| q.configured.clamp(p.min_delay, p.max_delay))
    }

    /// The hedge delay for a request (`idempotent`: it carries a
    /// request_id), or `None` when it is not to be hedged.
    pub fn delay(&self, idempotent: bool, now: Instant) -> Option<Duration> {
        if !idempotent || !self.params.load().enabled {
            return None;
        }
        self.measured_delay(now)
    }

    /// Counts a hedge sent.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request answered by its hedge.
    pub fn won(&self) {
        self.won.fetch_add(1, Ordering::Relaxed);
    }

    /// (hedges sent, requests answered by their hedge).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.won.load(Ordering::Relaxed),
        )
    }

    /// Starts measuring one attempt for the pool latency.
    pub fn measure(&self) -> PoolSample {
        PoolSample {
            tracker: self.pool_latency(),
            started: clock::now(),
            done: false,
        }
    }
}

/// One attempt's contribution to the pool latency. [`PoolSample::record`]
/// it when the attempt's duration says how long an answer takes; dropped
/// unrecorded (the attempt lost to a hedge or hit the deadline) it records
/// the time so far, because the call took at least that long. Without these
/// censored samples the slow calls that hedging cuts short would vanish
/// from the distribution, the p95 would describe only fast calls, and
/// hedging would fire for more than the intended 5 % of requests.
#[derive(Debug)]
pub struct PoolSample {
    tracker: Arc<LatencyTracker>,
    started: Instant,
    done: bool,
}

impl PoolSample {
    /// When the attempt started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Ends the sample: `measured` says whether the attempt's duration
    /// counts (an answer or a timeout does; a fast failure says nothing
    /// about how long an answer takes).
    pub fn finish(mut self, elapsed: Duration, measured: bool) {
        if measured {
            self.tracker.record(elapsed, clock::now());
        }
        self.done = true;
    }
}

impl Drop for PoolSample {
    fn drop(&mut self) {
        if !self.done {
            let now = clock::now();
            self.tracker
                .record(now.saturating_duration_since(self.started), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::latency::REFRESH;

    fn params() -> HedgeParams {
        HedgeParams {
            enabled: true,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(40),
            quantile: 0.95,
            latency_window: Duration::from_secs(5),
        }
    }

    #[test]
    fn delay_follows_the_quantile_within_bounds() {
        let h = Hedging::new(params());
        let now = Instant::now();
        assert_eq!(h.measured_delay(now), None, "no samples yet: no hedging");
        for _ in 0..100 {
            h.pool_latency().record(Duration::from_millis(10), now);
        }
        let now = now + REFRESH;
        let d = h.measured_delay(now).unwrap();
        assert!(
            d >= Duration::from_millis(9) && d <= Duration::from_millis(11),
            "{d:?}"
        );
        assert_eq!(h.delay(false, now), None, "no request_id: no hedge");
        for _ in 0..100 {
            h.pool_latency().record(Duration::from_secs(1), now);
        }
        let later = now + REFRESH;
        assert_eq!(
            h.delay(true, later),
            Some(Duration::from_millis(40)),
            "capped"
        );
        h.reconfigure(HedgeParams {
            enabled: false,
            ..params()
        });
        assert_eq!(h.delay(true, later), None, "switched off");
        assert!(h.measured_delay(later).is_some(), "samples kept");
        h.reconfigure(HedgeParams {
            quantile: 0.5,
            ..params()
        });
        assert_eq!(h.measured_delay(later), None, "new quantile: fresh window");
    }

    #[test]
    fn an_abandoned_attempt_still_counts_its_wait() {
        let h = Hedging::new(params());
        drop(h.measure());
        let fast = h.measure();
        fast.finish(Duration::from_millis(1), false);
        let q = h.pool_latency().quantiles(Instant::now() + REFRESH);
        assert_eq!(
            q.count, 1,
            "the dropped one counted, the fast failure did not"
        );
    }
}
