//! Admission: the first policy a request meets, before any backend is
//! chosen. Two checks, both answered at once and never queued:
//!
//! * the per-account rate limit ([`crate::resilience::rate_limit`]) →
//!   RATE_LIMITED with the time until the account's bucket refills; cancels
//!   draw on a bucket of their own, so a flood of places never uses up an
//!   account's cancels;
//! * the gateway-wide in-flight limit (a bulkhead over all backends) →
//!   SERVICE_UNAVAILABLE; its last `priority_reserve` slots are for cancels
//!   only.
//!
//! The in-flight counter is an atomic checked against the live limit with a
//! compare-and-swap instead of a `Semaphore`: the limit can change on a
//! config reload while requests hold slots. An admitted request holds an
//! [`Admitted`] guard; dropping it frees the slot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hts_proto::v1::Code;

use crate::resilience::rate_limit::AccountLimiter;
use crate::upstream::Class;

/// Parameters of [`Admission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionParams {
    /// Client requests in flight towards backends over the whole gateway.
    pub max_in_flight: usize,
    /// Of those, how many only the priority class (cancels) may use.
    pub priority_reserve: usize,
    /// Sustained places and queries per second per account (0 = no limit).
    pub account_rate_per_sec: u32,
    /// Their burst per account.
    pub account_burst: u32,
    /// Sustained cancels per second per account (0 = no limit).
    pub cancel_rate_per_sec: u32,
    /// Their burst per account.
    pub cancel_burst: u32,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is over its rate limit; its bucket holds a request again after this.
    RateLimited(Duration),
    /// The gateway is at its in-flight limit.
    AtCapacity,
}

impl Refusal {
    /// The response code of the refusal.
    pub fn code(self) -> Code {
        match self {
            Refusal::RateLimited(_) => Code::RateLimited,
            Refusal::AtCapacity => Code::ServiceUnavailable,
        }
    }

    /// Why, for the refusal's message.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::RateLimited(_) => "account is over its request rate limit: slow down",
            Refusal::AtCapacity => "gateway is at its in-flight limit",
        }
    }
}

/// The admission policy; see the module documentation.
#[derive(Debug)]
pub struct Admission {
    params: ArcSwap<AdmissionParams>,
    places: ArcSwap<Option<AccountLimiter>>,
    cancels: ArcSwap<Option<AccountLimiter>>,
    in_flight: Arc<AtomicUsize>,
    rate_limited: AtomicU64,
    at_capacity: AtomicU64,
}

/// One admitted request's slot of the in-flight limit (it may move into
/// the request's task).
#[derive(Debug)]
pub struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Admission with `params`.
    pub fn new(params: AdmissionParams) -> Admission {
        Admission {
            places: ArcSwap::from_pointee(AccountLimiter::new(
                params.account_rate_per_sec,
                params.account_burst,
            )),
            cancels: ArcSwap::from_pointee(AccountLimiter::new(
                params.cancel_rate_per_sec,
                params.cancel_burst,
            )),
            params: ArcSwap::from_pointee(params),
            in_flight: Arc::new(AtomicUsize::new(0)),
            rate_limited: AtomicU64::new(0),
            at_capacity: AtomicU64::new(0),
        }
    }

    /// Switches to `params`; a rate limiter starts afresh only if its own
    /// settings changed, and slots already held stay held.
    pub fn reconfigure(&self, params: AdmissionParams) {
        let old = self.params.load();
        if (old.account_rate_per_sec, old.account_burst)
            != (params.account_rate_per_sec, params.account_burst)
        {
            self.places.store(Arc::new(AccountLimiter::new(
                params.account_rate_per_sec,
                params.account_burst,
            )));
        }
        if (old.cancel_rate_per_sec, old.cancel_burst)
            != (params.cancel_rate_per_sec, params.cancel_burst)
        {
            self.cancels.store(Arc::new(AccountLimiter::new(
                params.cancel_rate_per_sec,
                params.cancel_burst,
            )));
        }
        self.params.store(Arc::new(params));
    }

    /// Admits one request of `class` of `account`, or says why not.
    pub fn admit(&self, account: &Arc<str>, class: Class) -> Result<Admitted, Refusal> {
        let bucket = match class {
            Class::Normal => self.places.load(),
            Class::Priority => self.cancels.load(),
        };
        if let Some(limiter) = bucket.as_ref() {
            if let Err(wait) = limiter.check(account) {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::RateLimited(wait));
            }
        }
        let p = self.params.load();
        let limit = match class {
            Class::Priority => p.max_in_flight,
            Class::Normal => p.max_in_flight.saturating_sub(p.priority_reserve).max(1),
        };
        match self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            }) {
            Ok(_) => Ok(Admitted(self.in_flight.clone())),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(max_in_flight: usize, rate: u32, burst: u32) -> AdmissionParams {
        AdmissionParams {
            max_in_flight,
            priority_reserve: 1,
            account_rate_per_sec: rate,
            account_burst: burst,
            cancel_rate_per_sec: rate,
            cancel_burst: burst,
        }
    }

    #[test]
    fn in_flight_limit_refuses_at_once_keeps_a_reserve_for_cancels_and_frees_on_drop() {
        let a = Admission::new(params(3, 0, 0));
        let acc: Arc<str> = Arc::from("ACC-1");
        let one = a.admit(&acc, Class::Normal).unwrap();
        let _two = a.admit(&acc, Class::Normal).unwrap();
        assert_eq!(
            a.admit(&acc, Class::Normal).unwrap_err(),
            Refusal::AtCapacity,
            "the last slot is reserved"
        );
        let cancel = a.admit(&acc, Class::Priority).unwrap();
        assert_eq!(
            a.admit(&acc, Class::Priority).unwrap_err(),
            Refusal::AtCapacity
        );
        assert_eq!(a.at_capacity(), 2);
        drop(one);
        assert!(
            a.admit(&acc, Class::Normal).is_err(),
            "a cancel in flight counts against the places' share too"
        );
        drop(cancel);
        assert!(a.admit(&acc, Class::Normal).is_ok());
        assert_eq!(Refusal::AtCapacity.code(), Code::ServiceUnavailable);
    }

    #[test]
    fn rate_limits_are_per_account_per_class_and_say_when_to_retry() {
        let a = Admission::new(params(100, 1, 2));
        let noisy: Arc<str> = Arc::from("ACC-NOISY");
        let quiet: Arc<str> = Arc::from("ACC-QUIET");
        assert!(a.admit(&noisy, Class::Normal).is_ok());
        assert!(a.admit(&noisy, Class::Normal).is_ok());
        let Err(Refusal::RateLimited(wait)) = a.admit(&noisy, Class::Normal) else {
            panic!("not rate limited")
        };
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(a.admit(&quiet, Class::Normal).is_ok());
        // The noisy account's places used up its place bucket, not its cancels.
        assert!(a.admit(&noisy, Class::Priority).is_ok());
        // A change of the in-flight limit keeps the buckets.
        a.reconfigure(params(50, 1, 2));
        assert!(a.admit(&noisy, Class::Normal).is_err());
        // A new rate starts afresh; 0 switches the limit off.
        a.reconfigure(params(50, 0, 0));
        for _ in 0..10 {
            assert!(a.admit(&noisy, Class::Normal).is_ok());
        }
        assert_eq!(a.rate_limited(), 2);
        assert_eq!(Refusal::RateLimited(wait).code(), Code::RateLimited);
    }
}
