//! Latency tracking: [`LatencyTracker`] (recent quantiles over a rotating
//! window, for hedge delays and snapshots) and [`Ewma`] (for load balancing).
//!
//! The tracker keeps two HDR histograms, the current window and the previous
//! one, and answers quantiles over both, so "recent" always means one to two
//! windows. Quantiles are recomputed at most every [`REFRESH`], so the
//! request path reads a cached value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::resilience::clock;

/// Highest latency recorded (larger samples are clamped), in microseconds.
const MAX_MICROS: u64 = 60_000_000;
/// How often cached quantiles are recomputed.
pub const REFRESH: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Inner {
    current: Histogram<u64>,
    previous: Histogram<u64>,
    window_start: Instant,
    computed_at: Option<Instant>,
    /// Cached (p50, p95, p99, requested quantile).
    cached: Quantiles,
}

/// Recent latency quantiles.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quantiles {
    /// Samples in the recent windows.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The tracker's configured quantile (e.g. for hedging).
    pub configured: Duration,
}

/// Recent latency distribution over a rotating window.
#[derive(Debug)]
pub struct LatencyTracker {
    inner: Mutex<Inner>,
    window: Duration,
    quantile: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("constant histogram bounds are valid")
}

impl LatencyTracker {
    /// A tracker over windows of `window`, reporting `quantile` as `configured`.
    pub fn new(window: Duration, quantile: f64) -> LatencyTracker {
        LatencyTracker {
            inner: Mutex::new(Inner {
                current: histogram(),
                previous: histogram(),
                window_start: clock::now(),
                computed_at: None,
                cached: Quantiles::default(),
            }),
            window: window.max(Duration::from_millis(1)),
            quantile: quantile.clamp(0.0, 1.0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one call's latency observed at `now`.
    pub fn record(&self, latency: Duration, now: Instant) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        let mut inner = self.lock();
        rotate(&mut inner, self.window, now);
        inner.current.saturating_record(micros);
    }

    /// Quantiles of the recent windows as of `now` (cached for [`REFRESH`]).
    pub fn quantiles(&self, now: Instant) -> Quantiles {
        let mut inner = self.lock();
        rotate(&mut inner, self.window, now);
        let fresh = inner
            .computed_at
            .is_some_and(|t| now.saturating_duration_since(t) < REFRESH);
        if !fresh {
            let mut merged = inner.previous.clone();
            // Both histograms share bounds, so adding cannot fail.
            let _ = merged.add(&inner.current);
            let q = |p: f64| Duration::from_micros(merged.value_at_quantile(p));
            inner.cached = Quantiles {
                count: merged.len(),
                p50: q(0.5),
                p95: q(0.95),
                p99: q(0.99),
                configured: q(self.quantile),
            };
            inner.computed_at = Some(now);
        }
        inner.cached
    }
}

fn rotate(inner: &mut Inner, window: Duration, now: Instant) {
    let age = now.saturating_duration_since(inner.window_start);
    if age < window {
        return;
    }
    if age >= window * 2 {
        inner.previous.reset();
    } else {
        std::mem::swap(&mut inner.previous, &mut inner.current);
    }
    inner.current.reset();
    inner.window_start = now;
    inner.computed_at = None;
}

/// An exponentially weighted moving average of latency, lock-free. Read
/// with [`Ewma::decayed_micros`], an estimate that has not been refreshed
/// for a while fades (halving every `half_life`), so a backend that was
/// once slow and then avoided gets tried again instead of starving.
#[derive(Debug)]
pub struct Ewma {
    /// f64 microseconds as bits; 0.0 until the first sample.
    bits: AtomicU64,
    /// Nanoseconds since `epoch` of the last sample.
    last: AtomicU64,
    epoch: Instant,
}

impl Default for Ewma {
    fn default() -> Ewma {
        Ewma::new()
    }
}

impl Ewma {
    /// An empty average.
    pub fn new() -> Ewma {
        Ewma {
            bits: AtomicU64::new(0f64.to_bits()),
            last: AtomicU64::new(0),
            epoch: clock::now(),
        }
    }

    /// Folds in one sample with weight `alpha`.
    pub fn observe(&self, sample: Duration, alpha: f64) {
        let since = clock::now().saturating_duration_since(self.epoch);
        self.last.store(
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        let x = sample.as_secs_f64() * 1e6;
        let _ = self
            .bits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                let old = f64::from_bits(old);
                let new = if old == 0.0 {
                    x
                } else {
                    old + alpha * (x - old)
                };
                Some(new.to_bits())
            });
    }

    /// The average in microseconds (0 before any sample).
    pub fn micros(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Acquire))
    }

    /// The average as of `now`, halved for every `half_life` since the last
    /// sample (`half_life` zero: no decay).
    pub fn decayed_micros(&self, now: Instant, half_life: Duration) -> f64 {
        let value = self.micros();
        if half_life.is_zero() {
            return value;
        }
        let last = self.epoch + Duration::from_nanos(self.last.load(Ordering::Acquire));
        let age = now.saturating_duration_since(last);
        value * 0.5f64.powf(age.as_secs_f64() / half_life.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_reflects_the_slow_tail() {
        let t = LatencyTracker::new(Duration::from_secs(10), 0.95);
        let now = Instant::now();
        for i in 0..1000 {
            let ms = if i % 100 < 10 { 200 } else { 2 };
            t.record(Duration::from_millis(ms), now);
        }
        let q = t.quantiles(now);
        assert_eq!(q.count, 1000);
        assert!(q.p50 < Duration::from_millis(3), "{q:?}");
        // 10 % are slow: p95 and p99 are in the slow group.
        assert!(q.p95 > Duration::from_millis(150), "{q:?}");
        assert_eq!(q.configured, q.p95);
    }

    #[test]
    fn old_windows_are_forgotten() {
        let t = LatencyTracker::new(Duration::from_secs(1), 0.95);
        let t0 = Instant::now();
        for _ in 0..100 {
            t.record(Duration::from_millis(500), t0);
        }
        // One window later the old samples still count (previous window) ...
        let t1 = t0 + Duration::from_millis(1500);
        for _ in 0..100 {
            t.record(Duration::from_millis(1), t1);
        }
        assert_eq!(t.quantiles(t1).count, 200);
        // ... two windows later only the recent ones do.
        let t2 = t1 + Duration::from_millis(1100);
        t.record(Duration::from_millis(1), t2);
        let q = t.quantiles(t2);
        assert_eq!(q.count, 101);
        assert!(q.p99 < Duration::from_millis(2), "{q:?}");
        // Long silence forgets everything.
        assert_eq!(t.quantiles(t2 + Duration::from_secs(5)).count, 0);
    }

    #[test]
    fn cached_until_refresh() {
        let t = LatencyTracker::new(Duration::from_secs(10), 0.5);
        let now = Instant::now();
        t.record(Duration::from_millis(1), now);
        assert_eq!(t.quantiles(now).count, 1);
        t.record(Duration::from_millis(1), now);
        assert_eq!(t.quantiles(now).count, 1, "cached");
        assert_eq!(t.quantiles(now + REFRESH).count, 2);
    }

    #[test]
    fn ewma_moves_towards_samples() {
        let e = Ewma::new();
        assert_eq!(e.micros(), 0.0);
        e.observe(Duration::from_millis(10), 0.5);
        assert!((e.micros() - 10_000.0).abs() < 1.0);
        e.observe(Duration::from_millis(20), 0.5);
        assert!((e.micros() - 15_000.0).abs() < 1.0);
    }

    #[test]
    fn stale_estimates_fade() {
        let e = Ewma::new();
        e.observe(Duration::from_millis(100), 0.5);
        let now = Instant::now();
        let hl = Duration::from_secs(1);
        let fresh = e.decayed_micros(now, hl);
        assert!(fresh > 99_000.0, "{fresh}");
        let later = e.decayed_micros(now + Duration::from_secs(2), hl);
        assert!(
            later < 25_500.0 && later > 24_000.0,
            "two half-lives: {later}"
        );
        assert_eq!(
            e.decayed_micros(now + Duration::from_secs(9), Duration::ZERO),
            e.micros()
        );
    }
}
