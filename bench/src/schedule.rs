//! The open-loop constant-rate schedule: request `i` is due at `t0 + i / rate`.
//!
//! The schedule never looks at responses, so a slow system cannot slow the
//! offered load down (no coordinated omission).

use std::time::Duration;

/// Due times of a constant-rate schedule, as offsets from its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    total: u64,
    warmup: u64,
}

impl Schedule {
    /// `rate` requests per second for `warmup + duration`; the first
    /// `warmup * rate` requests are warm-up and not measured.
    ///
    /// Returns `None` when `rate` is not a positive finite number.
    pub fn new(rate: f64, warmup: Duration, duration: Duration) -> Option<Schedule> {
        if !rate.is_finite() || rate <= 0.0 {
            return None;
        }
        let warmup_n = (warmup.as_secs_f64() * rate).round() as u64;
        let measured = (duration.as_secs_f64() * rate).round() as u64;
        Some(Schedule {
            rate,
            total: warmup_n + measured,
            warmup: warmup_n,
        })
    }

    /// The offered rate, requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How many requests the whole schedule holds (warm-up included).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many leading requests are warm-up.
    pub fn warmup_requests(&self) -> u64 {
        self.warmup
    }

    /// Whether request `i` is measured (not warm-up).
    pub fn is_measured(&self, i: u64) -> bool {
        i >= self.warmup
    }

    /// Offset of request `i`'s due time from the schedule's start.
    pub fn due(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many requests are due `elapsed` after the start (capped at [`Schedule::total`]).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let n = (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1;
        n.min(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_evenly_spaced() {
        let s = Schedule::new(1000.0, Duration::from_secs(1), Duration::from_secs(2)).unwrap();
        assert_eq!(s.total(), 3000);
        assert_eq!(s.warmup_requests(), 1000);
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_millis(1));
        assert_eq!(s.due(2500), Duration::from_millis(2500));
        assert!(!s.is_measured(999));
        assert!(s.is_measured(1000));
    }

    #[test]
    fn due_by_counts_requests_whose_time_has_come() {
        let s = Schedule::new(100.0, Duration::ZERO, Duration::from_secs(1)).unwrap();
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(Duration::from_millis(9)), 1);
        assert_eq!(s.due_by(Duration::from_millis(10)), 2);
        assert_eq!(s.due_by(Duration::from_secs(60)), 100);
    }

    #[test]
    fn rejects_nonsense_rates() {
        assert!(Schedule::new(0.0, Duration::ZERO, Duration::from_secs(1)).is_none());
        assert!(Schedule::new(f64::NAN, Duration::ZERO, Duration::from_secs(1)).is_none());
        assert!(Schedule::new(-5.0, Duration::ZERO, Duration::from_secs(1)).is_none());
    }
}
