//! The per-backend circuit breaker: [`hts_breaker`], shared with the
//! account client (the order service's breaker in front of the Account
//! service), re-exported here so the resilience modules name it in one place.

pub use hts_breaker::*;
