//! Tunables of the account client.

use std::time::Duration;

use hts_breaker::BreakerConfig;

/// Connection, timeout and circuit-breaker settings of an
/// [`crate::AccountClient`].
#[derive(Debug, Clone, PartialEq)]
pub struct AccountClientConfig {
    /// Upper bound on every call, including waiting for a connection.
    pub call_timeout: Duration,
    /// Upper bound on establishing a TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// Interval of HTTP/2 keepalive pings on an idle connection.
    pub keepalive_interval: Duration,
    /// How long to wait for a keepalive ping acknowledgement.
    pub keepalive_timeout: Duration,
    /// The circuit breaker in front of the Account service.
    pub breaker: BreakerConfig,
}

impl AccountClientConfig {
    /// Default breaker: opens when half of the last 20 calls failed, stays
    /// open 1 s (doubling up to 10 s while probes fail), closes after 3
    /// successful probes. With the service down, at 100 orders/s the breaker
    /// opens within about 0.2 s and later orders are refused without a
    /// network round trip.
    pub const DEFAULT_BREAKER: BreakerConfig = BreakerConfig {
        window: 20,
        failure_ratio: 0.5,
        delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
        half_open_probes: 3,
    };
}

impl Default for AccountClientConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
            breaker: Self::DEFAULT_BREAKER,
        }
    }
}
