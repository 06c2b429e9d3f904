//! Admission: the first policy a request meets, before any backend is
//! chosen. Two checks, both answered at once and never queued:
//!
//! * the per-account rate limit ([`crate::resilience::rate_limit`]) →
//!   RATE_LIMITED;
//! * the gateway-wide in-flight limit (a bulkhead over all backends) →
//!   SERVICE_UNAVAILABLE.
//!
//! The in-flight counter is an atomic checked against the live limit with a
//! compare-and-swap instead of a `Semaphore`: the limit can change on a
//! config reload while requests hold slots. An admitted request holds an
//! [`Admitted`] guard; dropping it frees the slot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hts_proto::v1::Code;

use crate::resilience::rate_limit::AccountLimiter;

/// Parameters of [`Admission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionParams {
    /// Client requests in flight towards backends over the whole gateway.
    pub max_in_flight: usize,
    /// Sustained requests per second per account (0 = no limit).
    pub account_rate_per_sec: u32,
    /// Burst per account.
    pub account_burst: u32,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is over its rate limit.
    RateLimited,
    /// The gateway is at its in-flight limit.
    AtCapacity,
}

impl Refusal {
    /// The response code of the refusal.
    pub fn code(self) -> Code {
        match self {
            Refusal::RateLimited => Code::RateLimited,
            Refusal::AtCapacity => Code::ServiceUnavailable,
        }
    }

    /// The message of the refusal.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::RateLimited => "account is over its request rate limit: slow down and retry",
            Refusal::AtCapacity => {
                "gateway is at its in-flight limit: nothing was sent, retry later"
            }
        }
    }
}

/// The admission policy; see the module documentation.
#[derive(Debug)]
pub struct Admission {
    params: ArcSwap<AdmissionParams>,
    limiter: ArcSwap<Option<AccountLimiter>>,
    in_flight: AtomicUsize,
    rate_limited: AtomicU64,
    at_capacity: AtomicU64,
}

/// One admitted request's slot of the in-flight limit.
#[derive(Debug)]
pub struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Admission with `params`.
    pub fn new(params: AdmissionParams) -> Admission {
        Admission {
            limiter: ArcSwap::from_pointee(limiter(&params)),
            params: ArcSwap::from_pointee(params),
            in_flight: AtomicUsize::new(0),
            rate_limited: AtomicU64::new(0),
            at_capacity: AtomicU64::new(0),
        }
    }

    /// Switches to `params`; the rate limiter starts afresh only if its
    /// own settings changed, and slots already held stay held.
    pub fn reconfigure(&self, params: AdmissionParams) {
        let old = self.params.load();
        if (old.account_rate_per_sec, old.account_burst)
            != (params.account_rate_per_sec, params.account_burst)
        {
            self.limiter.store(Arc::new(limiter(&params)));
        }
        self.params.store(Arc::new(params));
    }

    /// Admits one request of `account`, or says why not.
    pub fn admit(&self, account: &Arc<str>) -> Result<Admitted<'_>, Refusal> {
        if let Some(limiter) = self.limiter.load().as_ref() {
            if !limiter.check(account) {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::RateLimited);
            }
        }
        let limit = self.params.load().max_in_flight;
        match self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            }) {
            Ok(_) => Ok(Admitted(&self.in_flight)),
            Err(_) => {
                self.at_capacity.fetch_add(1, Ordering::Relaxed);
                Err(Refusal::AtCapacity)
            }
        }
    }

    /// Requests admitted and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests refused RATE_LIMITED since start.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Requests refused at the in-flight limit since start.
    pub fn at_capacity(&self) -> u64 {
        self.at_capacity.load(Ordering::Relaxed)
    }
}

fn limiter(params: &AdmissionParams) -> Option<AccountLimiter> {
    AccountLimiter::new(params.account_rate_per_sec, params.account_burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(max_in_flight: usize, rate: u32, burst: u32) -> AdmissionParams {
        AdmissionParams {
            max_in_flight,
            account_rate_per_sec: rate,
            account_burst: burst,
        }
    }

    #[test]
    fn in_flight_limit_refuses_at_once_and_frees_on_drop() {
        let a = Admission::new(params(2, 0, 0));
        let acc: Arc<str> = Arc::from("ACC-1");
        let one = a.admit(&acc).unwrap();
        let _two = a.admit(&acc).unwrap();
        assert_eq!(a.admit(&acc).unwrap_err(), Refusal::AtCapacity);
        assert_eq!(a.at_capacity(), 1);
        drop(one);
        assert!(a.admit(&acc).is_ok());
        assert_eq!(Refusal::AtCapacity.code(), Code::ServiceUnavailable);
    }

    #[test]
    fn rate_limit_is_per_account_and_kept_across_unrelated_changes() {
        let a = Admission::new(params(100, 1, 2));
        let noisy: Arc<str> = Arc::from("ACC-NOISY");
        let quiet: Arc<str> = Arc::from("ACC-QUIET");
        assert!(a.admit(&noisy).is_ok());
        assert!(a.admit(&noisy).is_ok());
        assert_eq!(a.admit(&noisy).unwrap_err(), Refusal::RateLimited);
        assert!(a.admit(&quiet).is_ok());
        // A change of the in-flight limit keeps the buckets.
        a.reconfigure(params(50, 1, 2));
        assert_eq!(a.admit(&noisy).unwrap_err(), Refusal::RateLimited);
        // A new rate starts afresh; 0 switches the limit off.
        a.reconfigure(params(50, 0, 0));
        for _ in 0..10 {
            assert!(a.admit(&noisy).is_ok());
        }
        assert_eq!(a.rate_limited(), 2);
        assert_eq!(Refusal::RateLimited.code(), Code::RateLimited);
    }
}
