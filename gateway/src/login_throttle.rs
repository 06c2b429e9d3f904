//! [`LoginThrottle`]: failed logins counted per source address, across
//! connections, so a brute-force attempt cannot go on by reconnecting.
//!
//! Each failed login adds one strike to its source; strikes leak away
//! continuously at `limit / window` per second. While a source holds `limit`
//! strikes its LOGINs are answered RATE_LIMITED without the token being
//! verified, until one strike has leaked (the answer says how long that is).
//! A successful login removes no strike (one valid token must not buy
//! unlimited guesses for other accounts), and a refused login adds none.
//!
//! A source is an IPv4 address or an IPv6 /64 prefix: one host is usually
//! given a whole /64, so keying by the full IPv6 address would let it rotate
//! through 2^64 keys. IPv4-mapped IPv6 addresses count as IPv4.
//!
//! Memory is bounded by `max_sources` entries. Entries whose strikes have all
//! leaked are swept when the table is full (at most once per
//! [`SWEEP_INTERVAL`]) and every [`SWEEP_EVERY`] failures. When the table is
//! full of live entries a new source's failure is not tracked but counted
//! ([`LoginThrottle::untracked_failures`]): failing open there keeps an
//! attacker with many addresses from locking every unseen (legitimate)
//! address out; such a source is still closed after `max_failed_logins` per
//! connection and limited by `max_connections`.
//!
//! Hand-written rather than a `governor` keyed limiter: governor cannot test
//! a key without spending a cell, and here only failures may spend (a
//! successful login must cost nothing). The leaky counter is the same
//! arithmetic as a token bucket, in a `DashMap`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Failures between two sweeps of idle sources.
pub const SWEEP_EVERY: u64 = 1024;
/// Least time between two sweeps triggered by a full table.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Where a login comes from, as the throttle counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl Source {
    /// The source an address belongs to.
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    Source::V6Prefix([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

/// Strikes of one source at one instant.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    level: f64,
    at: Instant,
}

impl Strikes {
    fn level_at(&self, now: Instant, leak_per_sec: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.level - elapsed * leak_per_sec).max(0.0)
    }
}

/// Failed logins per source address (see the module docs).
#[derive(Debug)]
pub struct LoginThrottle {
    limit: f64,
    leak_per_sec: f64,
    max_sources: usize,
    sources: DashMap<Source, Strikes>,
    last_sweep: Mutex<Option<Instant>>,
    failures: AtomicU64,
    refused: AtomicU64,
    untracked: AtomicU64,
}

impl LoginThrottle {
    /// `limit` failures per source per `window`; `None` (no throttle) when
    /// `limit` is 0 or `window` is zero.
    pub fn new(limit: u32, window: Duration, max_sources: usize) -> Option<LoginThrottle> {
        if limit == 0 || window.is_zero() {
            return None;
        }
        let limit = f64::from(limit);
        Some(LoginThrottle {
            limit,
            leak_per_sec: limit / window.as_secs_f64(),
            max_sources: max_sources.max(1),
            sources: DashMap::new(),
            last_sweep: Mutex::new(None),
            failures: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        })
    }

    /// `Err(retry_after)` when logins from `ip` are refused at `now`.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(strikes) = self.sources.get(&Source::of(ip)).map(|e| *e.value()) else {
            return Ok(());
        };
        let level = strikes.level_at(now, self.leak_per_sec);
        // A strike's worth of headroom is needed for one more attempt.
        let excess = level - (self.limit - 1.0);
        if excess <= 0.0 {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        let wait = Duration::from_secs_f64(excess / self.leak_per_sec);
        Err(wait.max(Duration::from_millis(1)))
    }

    /// Adds a strike to `ip`'s source.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n % SWEEP_EVERY == 0 {
            self.sweep(now);
        }
        let source = Source::of(ip);
        if let Some(mut s) = self.sources.get_mut(&source) {
            let level = s.level_at(now, self.leak_per_sec) + 1.0;
            *s = Strikes {
                level: level.min(self.limit),
                at: now,
            };
            return;
        }
        if self.sources.len() >= self.max_sources {
            self.sweep_if_due(now);
            if self.sources.len() >= self.max_sources {
                self.untracked.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.sources
            .entry(source)
            .and_modify(|s| {
                s.level = (s.level_at(now, self.leak_per_sec) + 1.0).min(self.limit);
                s.at = now;
            })
            .or_insert(Strikes {
                level: 1.0,
                at: now,
            });
    }

    fn sweep_if_due(&self, now: Instant) {
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return; // another thread is sweeping
        };
        if last.is_some_and(|t| now.saturating_duration_since(t) < SWEEP_INTERVAL) {
            return;
        }
        *last = Some(now);
        drop(last);
        self.sweep(now);
    }

    /// Forgets sources whose strikes have all leaked.
    fn sweep(&self, now: Instant) {
        let leak = self.leak_per_sec;
        self.sources.retain(|_, s| s.level_at(now, leak) > 0.0);
    }

    /// Sources currently tracked.
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Logins refused RATE_LIMITED since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Failures not tracked because the table was full of live sources.
    pub fn untracked_failures(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn zero_limit_means_no_throttle() {
        assert!(LoginThrottle::new(0, Duration::from_secs(60), 10).is_none());
        assert!(LoginThrottle::new(5, Duration::ZERO, 10).is_none());
    }

    #[test]
    fn limit_failures_then_refused_until_one_leaks() {
        let t = LoginThrottle::new(3, Duration::from_secs(30), 100).unwrap();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.check(v4(1), now).is_ok());
            t.record_failure(v4(1), now);
        }
        let wait = t.check(v4(1), now).unwrap_err();
        // One strike leaks every 10 s.
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_millis(10_001),
            "{wait:?}"
        );
        assert!(t.check(v4(2), now).is_ok(), "other sources are unaffected");
        assert!(t.check(v4(1), now + Duration::from_secs(5)).is_err());
        assert!(t.check(v4(1), now + Duration::from_millis(10_001)).is_ok());
        assert_eq!(t.refused(), 2);
    }

    #[test]
    fn strikes_do_not_pile_up_beyond_the_limit() {
        let t = LoginThrottle::new(2, Duration::from_secs(2), 100).unwrap();
        let now = Instant::now();
        for _ in 0..50 {
            t.record_failure(v4(1), now);
        }
        // One strike leaks per second: after 1 s one attempt is allowed again.
        assert!(t.check(v4(1), now + Duration::from_millis(999)).is_err());
        assert!(t.check(v4(1), now + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn ipv6_hosts_count_per_64_prefix_and_mapped_v4_as_v4() {
        let t = LoginThrottle::new(2, Duration::from_secs(60), 100).unwrap();
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        t.record_failure(a, now);
        t.record_failure(b, now);
        assert!(t.check(a, now).is_err(), "same /64");
        assert!(t.check(other, now).is_ok(), "another /64");
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        t.record_failure(mapped, now);
        t.record_failure(v4(7), now);
        assert!(t.check(v4(7), now).is_err());
        assert_eq!(
            Source::of(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            Source::V6Prefix([0; 8])
        );
    }

    #[test]
    fn table_is_bounded_and_idle_sources_are_swept() {
        let t = LoginThrottle::new(5, Duration::from_secs(5), 100).unwrap();
        let now = Instant::now();
        for i in 0..1000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.record_failure(ip, now);
        }
        assert_eq!(t.tracked_sources(), 100);
        assert_eq!(t.untracked_failures(), 900);
        // Once their strikes have leaked, old sources make room for new ones.
        let later = now + Duration::from_secs(2);
        t.record_failure(v4(250), later);
        assert_eq!(t.tracked_sources(), 1);
        assert_eq!(t.untracked_failures(), 900);
    }
}
