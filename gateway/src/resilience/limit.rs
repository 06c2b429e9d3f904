//! [`AdaptiveLimit`]: how many calls one backend may have in flight, learnt
//! from the latency of its answers, so each backend runs near its best
//! throughput and the excess is refused at the gateway instead of queueing
//! in the backend until its deadline.
//!
//! # Which algorithm, and why
//!
//! The anchors compared:
//!
//! * **Netflix concurrency-limits, Gradient2** — per sample, `gradient =
//!   clamp(tolerance × long_rtt / rtt, 0.5, 1)`, `limit = limit × gradient +
//!   queue_size`, smoothed; `long_rtt` is a slow exponential average, so
//!   no probing is needed and the limit follows a backend whose no-load
//!   latency drifts. Its weakness for us: it has no absolute target — under
//!   a sustained overload `long_rtt` creeps up and the limit stops
//!   shrinking although answers now arrive late.
//! * **Netflix Vegas** — `queue = limit × (1 − rtt_noload / rtt)`, grow
//!   below α, shrink above β; needs a true minimum RTT, which a batching
//!   store (group commit) does not have: its latency at low load is the
//!   flush interval, and Vegas then sheds load needlessly.
//! * **Envoy adaptive concurrency** — a gradient against a min-RTT measured
//!   by periodically pinning concurrency to a handful of requests for a
//!   window. Those windows refuse nearly everything for tens of
//!   milliseconds every interval: unacceptable in front of an exchange.
//! * **Google SRE client-side throttling** — rejects with probability
//!   `(requests − K × accepts) / (requests + 1)`; it reacts only after the
//!   backend has started rejecting, i.e. after the queue built up, and it
//!   bounds rate, not concurrency.
//!
//! We take **Gradient2** and add the one thing it lacks, a deadline-derived
//! ceiling: an answer slower than `target` (a share of the request
//! deadline) *and* slower than `tolerance` × the backend's recent minimum
//! latency (a windowed minimum, as BBR keeps one) pulls the gradient down to
//! `target / rtt` whatever the long average says. The second condition
//! keeps a backend whose latency is high at any load (a slow link, a
//! synchronous replica far away) from being throttled to nothing: there a
//! smaller limit only cuts throughput (Little's law) without making answers
//! faster. And a call that timed out or was answered "overloaded"
//! backs the limit off by [`DROP_BACKOFF`] (as Netflix's AIMD limit does
//! on a drop). The limit only grows while it is actually used (in flight ≥
//! half of it: not application-limited) and decays while it is not (as
//! TCP's window does, RFC 2861), and the long average is pulled down fast
//! once latency is back to normal, so the limit recovers within a few
//! hundred samples of the end of an overload.
//!
//! Hand-written: no maintained Rust crate implements these limits, and the
//! algorithm is a few lines of arithmetic under one small lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Factor applied to the limit when a call timed out or the backend said
/// it was overloaded.
pub const DROP_BACKOFF: f64 = 0.9;
/// Gradient2's bounds: one sample moves the limit down by at most half.
const MIN_GRADIENT: f64 = 0.5;
/// Weight of a new answer in the short latency average the gradient and
/// the ceiling compare (about the last five answers). One answer alone is
/// noise: a batching backend (group commit, batch lanes) answers the
/// request that opened a batch in a fraction of the one that waited for
/// it; judging single answers halved the limit on every slow one of them.
/// Netflix's limiters judge a window of samples for the same reason
/// (`WindowedLimit`).
const SHORT_WEIGHT: f64 = 0.2;
/// Samples averaged plainly before the long average becomes exponential.
const WARMUP_SAMPLES: u32 = 10;
/// Per application-limited sample, the limit keeps this share of itself
/// (never less than twice the calls in flight): a limit not used decays,
/// as TCP's congestion window does while the application sends less than
/// it allows (RFC 2861), so a burst after a quiet period starts from what
/// was needed, not from a stale high value, and grows as latency allows.
const IDLE_DECAY: f64 = 0.995;

/// Parameters of [`AdaptiveLimit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitParams {
    /// Whether the limit adapts; off: always `max`.
    pub adaptive: bool,
    /// Limit before any sample.
    pub initial: usize,
    /// The limit never goes below this.
    pub min: usize,
    /// The limit never goes above this (the static bulkhead).
    pub max: usize,
    /// An answer slower than this shrinks the limit whatever the long
    /// average says (a share of the request deadline).
    pub target: Duration,
    /// The latency rise over the long average tolerated before shrinking
    /// (1.0 = none; Netflix uses 1.5–2; our default is 3: a batching
    /// backend's latency rises with its batch size while its throughput
    /// still grows, and at 1.5 the limit held such a backend to about half
    /// of what it serves directly, docs/benchmarks.md).
    pub tolerance: f64,
    /// Weight of a new estimate (Gradient2's smoothing).
    pub smoothing: f64,
    /// Samples of the long RTT average (its memory).
    pub long_window: u32,
}

/// Samples per window of the windowed minimum latency, in units of
/// `long_window`: the minimum forgets a value after one to two windows.
const MIN_WINDOW_FACTOR: u32 = 4;

#[derive(Debug)]
struct State {
    estimate: f64,
    long_rtt_micros: f64,
    /// Short exponential average of the latency (see [`SHORT_WEIGHT`]).
    short_rtt_micros: f64,
    samples: u32,
    /// Windowed minimum latency: the minimum of this window and the last.
    min_current: f64,
    min_previous: f64,
    min_samples: u32,
}

impl State {
    /// Adds `rtt` to the windowed minimum and returns the minimum.
    fn min_rtt(&mut self, rtt: f64, window: u32) -> f64 {
        self.min_current = self.min_current.min(rtt);
        self.min_samples = self.min_samples.saturating_add(1);
        if self.min_samples >= window {
            self.min_previous = self.min_current;
            self.min_current = f64::INFINITY;
            self.min_samples = 0;
        }
        self.min_current.min(self.min_previous)
    }
}

/// One backend's adaptive concurrency limit; see the module documentation.
#[derive(Debug)]
pub struct AdaptiveLimit {
    state: Mutex<State>,
    /// The current limit, read lock-free on the request path.
    limit: AtomicUsize,
}

impl AdaptiveLimit {
    /// A limit starting at `params.initial` (or `max` when not adaptive).
    pub fn new(params: &LimitParams) -> AdaptiveLimit {
        let start = if params.adaptive {
            params.initial.clamp(params.min.max(1), params.max.max(1))
        } else {
            params.max.max(1)
        };
        AdaptiveLimit {
            state: Mutex::new(State {
                estimate: start as f64,
                long_rtt_micros: 0.0,
                short_rtt_micros: 0.0,
                samples: 0,
                min_current: f64::INFINITY,
                min_previous: f64::INFINITY,
                min_samples: 0,
            }),
            limit: AtomicUsize::new(start),
        }
    }

    /// The current limit under `params` (their bounds apply at once after
    /// a reconfiguration).
    pub fn get(&self, params: &LimitParams) -> usize {
        if !params.adaptive {
            return params.max.max(1);
        }
        self.limit
            .load(Ordering::Acquire)
            .clamp(params.min.max(1), params.max.max(1))
    }

    /// Learns from one answer that took `rtt` while `in_flight` calls
    /// (including it) were out.
    pub fn on_answer(&self, params: &LimitParams, rtt: Duration, in_flight: usize) {
        if !params.adaptive {
            return;
        }
        let sample = (rtt.as_secs_f64() * 1e6).max(1.0);
        let mut s = self.lock();
        s.samples = s.samples.saturating_add(1);
        s.short_rtt_micros = if s.samples == 1 {
            sample
        } else {
            s.short_rtt_micros + (sample - s.short_rtt_micros) * SHORT_WEIGHT
        };
        let rtt = s.short_rtt_micros;
        if s.samples <= WARMUP_SAMPLES {
            s.long_rtt_micros += (sample - s.long_rtt_micros) / f64::from(s.samples);
        } else {
            s.long_rtt_micros +=
                (sample - s.long_rtt_micros) / f64::from(params.long_window.max(1));
        }
        // Back to normal after a prolonged overload: let the long average
        // follow at once instead of over hundreds of samples.
        if s.long_rtt_micros / rtt > 2.0 {
            s.long_rtt_micros *= 0.9;
        }
        let window = params.long_window.max(1).saturating_mul(MIN_WINDOW_FACTOR);
        let min_rtt = s.min_rtt(sample, window);
        let target = (params.target.as_secs_f64() * 1e6).max(1.0);
        // Late: past the deadline's share, and queueing (slower than the
        // backend is at its fastest), not merely a backend slow at any load.
        let late = rtt > target && rtt > params.tolerance * min_rtt;
        // Application-limited (far below the limit): nothing to learn about
        // growth, and an unused limit decays; a late answer still shrinks it.
        if !late && (in_flight as f64) < s.estimate / 2.0 {
            let decayed = (s.estimate * IDLE_DECAY).max(2.0 * in_flight as f64);
            self.store(&mut s, params, decayed);
            return;
        }
        let mut gradient = (params.tolerance * s.long_rtt_micros / rtt).clamp(MIN_GRADIENT, 1.0);
        if late {
            gradient = gradient.min((target / rtt).max(MIN_GRADIENT));
        }
        let queue = s.estimate.sqrt().max(1.0);
        let proposed = s.estimate * gradient + if late { 0.0 } else { queue };
        let smoothed = s.estimate * (1.0 - params.smoothing) + proposed * params.smoothing;
        self.store(&mut s, params, smoothed);
    }

    /// A call timed out or the backend answered that it is overloaded:
    /// back off.
    pub fn on_drop(&self, params: &LimitParams) {
        if !params.adaptive {
            return;
        }
        let mut s = self.lock();
        let backed_off = s.estimate * DROP_BACKOFF;
        self.store(&mut s, params, backed_off);
    }

    fn store(&self, s: &mut State, params: &LimitParams, estimate: f64) {
        let (min, max) = (params.min.max(1) as f64, params.max.max(1) as f64);
        s.estimate = estimate.clamp(min, max);
        self.limit.store(s.estimate as usize, Ordering::Release);
    }

    /// The long RTT average (the latency the backend shows at its limit).
    pub fn long_rtt(&self) -> Duration {
        Duration::from_secs_f64(self.lock().long_rtt_micros / 1e6)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> LimitParams {
        LimitParams {
            adaptive: true,
            initial: 20,
            min: 2,
            max: 200,
            target: Duration::from_millis(20),
            tolerance: 1.5,
            smoothing: 0.2,
            long_window: 600,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_while_used_and_fast_and_decays_when_app_limited() {
        let p = params();
        let l = AdaptiveLimit::new(&p);
        for _ in 0..50 {
            l.on_answer(&p, ms(2), 3);
        }
        let idle = l.get(&p);
        assert!(
            (6..20).contains(&idle),
            "unused: decays, never below 2 x in flight: {idle}"
        );
        for _ in 0..200 {
            let used = l.get(&p);
            l.on_answer(&p, ms(2), used);
        }
        assert_eq!(l.get(&p), 200, "fast answers at the limit grow it to max");
    }

    #[test]
    fn queueing_shrinks_it_and_late_answers_shrink_it_whatever_the_average() {
        let p = params();
        let l = AdaptiveLimit::new(&LimitParams { initial: 100, ..p });
        for _ in 0..100 {
            l.on_answer(&p, ms(2), 100);
        }
        let before = l.get(&p);
        // Latency rises 5x (a queue builds): the gradient pulls it down.
        for _ in 0..30 {
            let used = l.get(&p);
            l.on_answer(&p, ms(10), used);
        }
        let queued = l.get(&p);
        assert!(queued < before, "{queued} !< {before}");
        // A backend that was fast and now answers every call past the
        // target shrinks to the minimum although its long average follows
        // the slow answers.
        let slow = AdaptiveLimit::new(&LimitParams { initial: 100, ..p });
        for _ in 0..100 {
            slow.on_answer(&p, ms(2), 100);
        }
        for _ in 0..2_000 {
            let used = slow.get(&p);
            slow.on_answer(&p, ms(40), used);
        }
        assert_eq!(slow.get(&p), p.min);
    }

    #[test]
    fn a_backend_slow_at_any_load_is_not_throttled() {
        // 40 ms from the first answer on (past the 20 ms target): its
        // latency does not come from queueing, so the limit keeps growing
        // while it is used.
        let p = params();
        let l = AdaptiveLimit::new(&p);
        for _ in 0..500 {
            let used = l.get(&p);
            l.on_answer(&p, ms(40), used);
        }
        assert_eq!(l.get(&p), p.max);
        // Queueing on top of it (3x) still shrinks it.
        for _ in 0..200 {
            let used = l.get(&p);
            l.on_answer(&p, ms(120), used);
        }
        assert!(l.get(&p) < p.max / 4, "{}", l.get(&p));
    }

    #[test]
    fn drops_back_off_and_recovery_follows_fast_answers() {
        let p = params();
        let l = AdaptiveLimit::new(&LimitParams { initial: 100, ..p });
        // Normal answers first (its fast latency is known), then drops.
        for _ in 0..20 {
            l.on_answer(&p, ms(2), 100);
        }
        let normal = l.get(&p);
        for _ in 0..10 {
            l.on_drop(&p);
        }
        let expected = (normal as f64 * DROP_BACKOFF.powi(10)) as usize;
        assert!(
            l.get(&p).abs_diff(expected) <= 1,
            "{normal} x 0.9^10: {}",
            l.get(&p)
        );
        // A stall ended: long average inflated by slow answers...
        for _ in 0..50 {
            let used = l.get(&p);
            l.on_answer(&p, ms(200), used);
        }
        assert_eq!(l.get(&p), p.min);
        // ...then normal answers at the limit: back at max within a few
        // hundred samples (well under a second at the rates we serve).
        let mut n = 0;
        while l.get(&p) < p.max {
            let used = l.get(&p);
            l.on_answer(&p, ms(2), used);
            n += 1;
            assert!(n < 400, "recovery too slow: {} after {n}", l.get(&p));
        }
    }

    #[test]
    fn bounds_apply_and_a_static_limit_ignores_samples() {
        let p = params();
        let l = AdaptiveLimit::new(&p);
        let narrower = LimitParams { max: 10, ..p };
        assert_eq!(l.get(&narrower), 10);
        let fixed = LimitParams {
            adaptive: false,
            max: 64,
            ..p
        };
        let s = AdaptiveLimit::new(&fixed);
        s.on_drop(&fixed);
        s.on_answer(&fixed, ms(500), 64);
        assert_eq!(s.get(&fixed), 64);
    }
}
