//! Building a connection pool from a connection string.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::PgError;

/// Default number of pooled connections per process.
pub const DEFAULT_POOL_SIZE: usize = 40;
/// Per-host connect timeout when the string sets none: a dead host must not
/// hold up trying the next one of a multi-host string.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a free pooled connection or a new one.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// True for `postgres://…`, `postgresql://…` and key=value strings
/// starting with `host=`.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("host=")
}

/// A pool of at most `size` connections to the database named by `url`.
///
/// `url` is a libpq-style URL or key=value string; several hosts
/// (`postgres://h1:5432,h2:5433/db?target_session_attrs=read-write` or
/// `host=h1,h2 port=5432,5433 …`) are tried in order, so with
/// `target_session_attrs=read-write` a new connection finds the current
/// primary after a failover. Connections are created lazily; broken ones are
/// dropped on return and replaced on demand.
pub fn connect_pool(url: &str, size: usize) -> Result<Pool, PgError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| PgError::Config(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("hts");
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|e| PgError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_postgres_urls() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://u@h1:1,h2:2/db"));
        assert!(is_postgres_url("host=a,b port=1,2 dbname=x"));
        assert!(!is_postgres_url("sqlite:/tmp/x.db"));
    }

    #[tokio::test]
    async fn multi_host_strings_parse_and_bad_ones_are_rejected() {
        assert!(connect_pool(
            "postgres://u@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write",
            4
        )
        .is_ok());
        assert!(matches!(
            connect_pool("postgres://u@h/db?target_session_attrs=nonsense", 4),
            Err(PgError::Config(_))
        ));
    }
}
