//! The resilience layer's clock: Tokio's, so tests that pause time
//! (`#[tokio::test(start_paused = true)]`) move every timer, breaker delay,
//! latency window and deadline together.
//!
//! The breaker and the latency trackers take `std::time::Instant`s; this is
//! Tokio's instant converted, which under paused time is the virtual "now".

/// The current instant as the policies measure it.
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
