//! [`Throughput`]: calls the backends answered per second, over the last
//! two windows of [`WINDOW`] — how many waiting requests they can serve
//! within a wait budget (the fair queue's bound) — and whether they make
//! progress at all ([`Throughput::stalled`]: calls in flight, none ended for
//! [`STALL`]), which tells a cold start (wait) from hung backends (refuse).
//!
//! Hand-written: a counter and two rotating windows under one small lock;
//! the latency trackers' HDR histograms would be the wrong tool for a rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of one counting window.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Answers the two windows need before their rate is trusted: a cold start
/// or a trickle says nothing about what the backends can serve.
pub const MIN_ANSWERS: u64 = 20;
/// Busy this long without any call ending: the backends are stalled.
pub const STALL: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct Windows {
    started: Instant,
    current: u64,
    previous: u64,
    /// Calls in flight over every backend.
    in_flight: u64,
    /// Since when calls have been in flight without a pause.
    busy_since: Instant,
    /// When a call last ended (answer or failure).
    last_end: Instant,
}

/// Answers per second, recently.
#[derive(Debug)]
pub struct Throughput {
    windows: Mutex<Windows>,
}

impl Throughput {
    /// A meter that has counted nothing, starting at `now`.
    pub fn new(now: Instant) -> Throughput {
        Throughput {
            windows: Mutex::new(Windows {
                started: now,
                current: 0,
                previous: 0,
                in_flight: 0,
                busy_since: now,
                last_end: now,
            }),
        }
    }

    fn rotate(w: &mut Windows, now: Instant) {
        let elapsed = now.saturating_duration_since(w.started);
        if elapsed >= WINDOW * 2 {
            w.previous = 0;
            w.current = 0;
            w.started = now;
        } else if elapsed >= WINDOW {
            w.previous = w.current;
            w.current = 0;
            w.started += WINDOW;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one answer at `now`.
    pub fn record(&self, now: Instant) {
        let mut w = self.lock();
        Self::rotate(&mut w, now);
        w.current += 1;
    }

    /// A call was sent at `now`.
    pub fn call_started(&self, now: Instant) {
        let mut w = self.lock();
        if w.in_flight == 0 {
            w.busy_since = now;
        }
        w.in_flight += 1;
    }

    /// A call ended (answered, failed or abandoned) at `now`.
    pub fn call_ended(&self, now: Instant) {
        let mut w = self.lock();
        w.in_flight = w.in_flight.saturating_sub(1);
        w.last_end = now;
    }

    /// Whether calls have been in flight for `after` (at least [`STALL`])
    /// and none ended in it.
    pub fn stalled(&self, now: Instant, after: Duration) -> bool {
        let after = after.max(STALL);
        let w = self.lock();
        w.in_flight > 0
            && now.saturating_duration_since(w.busy_since) >= after
            && now.saturating_duration_since(w.last_end) >= after
    }

    /// Answers per second as of `now` (the previous full window and the
    /// part of the current one), or 0 with fewer than [`MIN_ANSWERS`] in them.
    pub fn per_sec(&self, now: Instant) -> f64 {
        let mut w = self.lock();
        Self::rotate(&mut w, now);
        let answers = w.previous + w.current;
        if answers < MIN_ANSWERS {
            return 0.0;
        }
        let into_current = now.saturating_duration_since(w.started).min(WINDOW);
        let span = WINDOW + into_current;
        answers as f64 / span.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_the_recent_rate_and_forgets_old_ones() {
        let t0 = Instant::now();
        let m = Throughput::new(t0);
        assert_eq!(m.per_sec(t0 + Duration::from_millis(50)), 0.0);
        for i in 0..(MIN_ANSWERS - 1) {
            m.record(t0 + Duration::from_micros(i));
        }
        assert_eq!(
            m.per_sec(t0 + Duration::from_millis(1)),
            0.0,
            "too few to trust"
        );
        // 1,000/s for 300 ms (after the first few).
        for i in 0..300 {
            m.record(t0 + Duration::from_millis(i));
        }
        let rate = m.per_sec(t0 + Duration::from_millis(300));
        assert!((900.0..=1100.0).contains(&rate), "{rate}");
        // Idle for a while: the rate drops to zero.
        assert_eq!(m.per_sec(t0 + Duration::from_secs(2)), 0.0);
    }

    #[test]
    fn hung_calls_are_a_stall_a_cold_start_is_not() {
        let t0 = Instant::now();
        let m = Throughput::new(t0);
        m.call_started(t0 + Duration::from_secs(10));
        let busy = t0 + Duration::from_secs(10);
        let z = Duration::ZERO;
        assert!(
            !m.stalled(busy + STALL / 2, z),
            "just busy: cold, not stalled"
        );
        assert!(m.stalled(busy + STALL, z), "busy a while, nothing ended");
        assert!(
            !m.stalled(busy + STALL, STALL * 2),
            "slow backends get longer"
        );
        m.call_started(busy + STALL);
        m.call_ended(busy + STALL);
        assert!(!m.stalled(busy + STALL + STALL / 2, z), "progress");
        m.call_ended(busy + STALL * 3);
        assert!(!m.stalled(busy + STALL * 10, z), "idle is not stalled");
    }
}
