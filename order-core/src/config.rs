//! Configuration of the order service.

use std::path::Path;
use std::time::Duration;

use crate::outbox::{OutboxConfig, SinkConfig};

/// Settings of [`crate::serve`].
#[derive(Debug, Clone, PartialEq)]
pub struct OrderServiceConfig {
    /// Where orders live: `sqlite:/var/lib/hts/orders.db` or
    /// `postgres://h1,h2/hts?target_session_attrs=read-write`. Several
    /// order-service processes may share one store.
    pub store_url: String,
    /// gRPC URL of the account service, e.g. `http://127.0.0.1:50061`.
    pub account_service_url: String,
    /// Timeouts and circuit breaker of the account-service client.
    pub account_client: hts_account_client::AccountClientConfig,
    /// How often pending releases (of canceled orders) are retried.
    pub release_retry_interval: Duration,
    /// How often the orphan sweep looks for HELD reservations no order owns
    /// ([`crate::service::orphans`]); it also runs once at start.
    pub orphan_sweep_interval: Duration,
    /// PostgreSQL connections per process.
    pub db_pool_size: usize,
    /// Place lanes: orders of one account always share a lane, each lane
    /// runs one batch (one account-service call, one store transaction) at
    /// a time.
    pub place_lanes: usize,
    /// Event publishing.
    pub outbox: OutboxConfig,
    /// Fault injection (tests): exit right after the first commit that
    /// produced an event, before publishing it.
    pub fault_exit_after_commit: bool,
    /// Optional Redis cache of order summaries (never the source of truth).
    pub cache: Option<crate::cache::CacheConfig>,
    /// Create the order store if there is none (`--init`); otherwise a
    /// missing or empty store is refused at start.
    pub init: bool,
    /// Longest wait at start for the account service to tell its store
    /// identity (the pairing check of [`hts_dbkit::identity`]); past it the
    /// service starts and finishes the check in the background (stopping
    /// if it fails).
    pub pairing_timeout: Duration,
}

impl OrderServiceConfig {
    /// Default number of place lanes.
    pub const DEFAULT_PLACE_LANES: usize = 4;

    /// Default interval between retries of pending releases.
    pub const DEFAULT_RELEASE_RETRY_INTERVAL: Duration = Duration::from_secs(1);

    /// Default interval of the orphan sweep.
    pub const DEFAULT_ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

    /// Slack added to a place's in-flight bound in [`Self::orphan_grace`].
    pub const ORPHAN_GRACE_MARGIN: Duration = Duration::from_secs(1);

    /// Age a HELD reservation must reach before the orphan sweep may judge
    /// it: longer than a place can be in flight after its reservation is
    /// committed (the account call's timeout, then the store insert's
    /// retry budget [`crate::service::PLACE_STORE_BUDGET`]), plus
    /// [`Self::ORPHAN_GRACE_MARGIN`]. 7 s with the defaults. Correctness
    /// does not depend on it (the sweep claims the order's identity before
    /// releasing); it keeps the sweep from beating slow places.
    pub fn orphan_grace(&self) -> Duration {
        self.account_client.call_timeout
            + crate::service::PLACE_STORE_BUDGET
            + Self::ORPHAN_GRACE_MARGIN
    }

    /// The longest a HELD reservation without an order survives once the
    /// services are up: the grace, one sweep interval, and one more for the
    /// sweep itself and the account client's reconnection (9 s with the
    /// defaults).
    pub fn orphan_bound(&self) -> Duration {
        self.orphan_grace() + 2 * self.orphan_sweep_interval
    }

    /// Default of [`OrderServiceConfig::pairing_timeout`].
    pub const DEFAULT_PAIRING_TIMEOUT: Duration = Duration::from_secs(2);

    /// A configuration with defaults (the store must exist: `init` false):
    /// a SQLite store publishes to
    /// `events.jsonl` beside its file, a PostgreSQL one publishes nowhere
    /// until a sink is configured.
    pub fn new(store_url: impl Into<String>, account_service_url: impl Into<String>) -> Self {
        let store_url = store_url.into();
        let sink = default_sink(&store_url);
        Self {
            store_url,
            account_service_url: account_service_url.into(),
            account_client: hts_account_client::AccountClientConfig::default(),
            release_retry_interval: Self::DEFAULT_RELEASE_RETRY_INTERVAL,
            orphan_sweep_interval: Self::DEFAULT_ORPHAN_SWEEP_INTERVAL,
            db_pool_size: hts_dbkit::pg::DEFAULT_POOL_SIZE,
            place_lanes: Self::DEFAULT_PLACE_LANES,
            outbox: OutboxConfig::new(sink),
            fault_exit_after_commit: false,
            cache: None,
            init: false,
            pairing_timeout: Self::DEFAULT_PAIRING_TIMEOUT,
        }
    }
}

/// The event log beside a SQLite store (`events.jsonl` in its directory).
pub fn default_event_log(store_url: &str) -> Option<std::path::PathBuf> {
    let path = store_url.strip_prefix("sqlite:")?;
    let path = Path::new(path.strip_prefix("//").unwrap_or(path));
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    Some(dir.join("events.jsonl"))
}

fn default_sink(store_url: &str) -> SinkConfig {
    default_event_log(store_url)
        .map(SinkConfig::File)
        .unwrap_or(SinkConfig::Disabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_stores_log_events_beside_the_database() {
        let c = OrderServiceConfig::new("sqlite:/var/lib/hts/orders.db", "http://a");
        assert_eq!(
            c.outbox.sink,
            SinkConfig::File("/var/lib/hts/events.jsonl".into())
        );
        let c = OrderServiceConfig::new("postgres://h/db", "http://a");
        assert_eq!(c.outbox.sink, SinkConfig::Disabled);
        assert_eq!(c.db_pool_size, 40);
    }

    #[test]
    fn the_orphan_bound_derives_from_the_timeouts() {
        let mut c = OrderServiceConfig::new("sqlite:/x/orders.db", "http://a");
        assert_eq!(c.orphan_grace(), Duration::from_secs(7));
        assert_eq!(c.orphan_bound(), Duration::from_secs(9));
        c.account_client.call_timeout = Duration::from_secs(3);
        assert_eq!(c.orphan_grace(), Duration::from_secs(9));
    }
}
