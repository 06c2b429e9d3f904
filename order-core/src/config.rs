//! Configuration of the order service.

use std::time::Duration;

/// Settings of [`crate::serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderServiceConfig {
    /// Where orders live, e.g. `sqlite:/var/lib/hts/orders.db`. Several
    /// order-service processes may share the same file.
    pub store_url: String,
    /// gRPC URL of the account service, e.g. `http://127.0.0.1:50061`.
    pub account_service_url: String,
    /// How often pending releases (of canceled orders) are retried.
    pub release_retry_interval: Duration,
}

impl OrderServiceConfig {
    /// Default interval between retries of pending releases.
    pub const DEFAULT_RELEASE_RETRY_INTERVAL: Duration = Duration::from_secs(1);

    /// A configuration with the default release retry interval.
    pub fn new(store_url: impl Into<String>, account_service_url: impl Into<String>) -> Self {
        Self {
            store_url: store_url.into(),
            account_service_url: account_service_url.into(),
            release_retry_interval: Self::DEFAULT_RELEASE_RETRY_INTERVAL,
        }
    }
}
