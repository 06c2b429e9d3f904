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

/// Planner settings of the stores' sessions: (setting, `options` flag).
///
/// Every statement of the stores looks rows up by key (many keys per
/// batch) and is prepared once per connection. Measured on the durable
/// path (pg_stat_statements, PostgreSQL 15):
/// * with the default plan cache, PostgreSQL kept planning the batch
///   statements on every execution (their array parameters make custom
///   plans look cheaper than the generic one): about 0.4 ms of CPU per
///   ledger write, 0.9 ms per order insert with custom plans forced, the
///   largest cost per order at low rates. `plan_cache_mode` is therefore
///   `force_generic_plan`: one plan per statement and connection;
/// * a generic plan made while a fresh table was nearly empty scanned it
///   sequentially until the next ANALYZE (hundreds of full scans of
///   `reservations` in the first minute of a benchmark). With
///   `enable_seqscan` off, plans use the key indexes even on an empty
///   table; a query without an index to use (pending releases, the outbox
///   totals) still scans;
/// * that scan's plan then costs more than `jit_above_cost`, and compiling
///   it took 90 ms per execution (EXPLAIN ANALYZE of the pending-releases
///   query, run every second): `jit` is off. None of these statements runs
///   long enough to gain from JIT.
pub const PLANNER_OPTIONS: [(&str, &str); 3] = [
    ("plan_cache_mode", "-c plan_cache_mode=force_generic_plan"),
    ("enable_seqscan", "-c enable_seqscan=off"),
    ("jit", "-c jit=off"),
];

/// A pool of at most `size` connections to the database named by `url`.
///
/// `url` is a libpq-style URL or key=value string; several hosts
/// (`postgres://h1:5432,h2:5433/db?target_session_attrs=read-write` or
/// `host=h1,h2 port=5432,5433 …`) are tried in order, so with
/// `target_session_attrs=read-write` a new connection finds the current
/// primary after a failover. Connections are created lazily; broken ones are
/// dropped on return and replaced on demand. Sessions are configured by
/// [`session_config`].
pub fn connect_pool(url: &str, size: usize) -> Result<Pool, PgError> {
    let config = session_config(url)?;
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

/// The session settings of `url` with the stores' defaults: a per-host
/// connect timeout, application name `hts`, TCP keepalives, and planning
/// once per connection with indexes only ([`PLANNER_OPTIONS`], unless the
/// URL's `options` set either of them).
pub fn session_config(url: &str) -> Result<tokio_postgres::Config, PgError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| PgError::Config(e.to_string()))?;
    let given = config.get_options().unwrap_or_default().to_owned();
    let added: Vec<&str> = PLANNER_OPTIONS
        .iter()
        .filter(|(name, _)| !given.contains(name))
        .map(|(_, option)| *option)
        .collect();
    if !added.is_empty() {
        config.options(format!("{given} {}", added.join(" ")).trim());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("hts");
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    Ok(config)
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

    #[test]
    fn sessions_get_the_planner_options_unless_the_url_sets_them() {
        let both = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off";
        let config = session_config("postgres://u@h/db").unwrap();
        assert_eq!(config.get_options(), Some(both));
        let config = session_config("postgres://u@h/db?options=-c%20enable_seqscan%3Don").unwrap();
        assert_eq!(
            config.get_options(),
            Some("-c enable_seqscan=on -c plan_cache_mode=force_generic_plan -c jit=off")
        );
        let config = session_config("postgres://u@h/db?options=-c%20work_mem%3D8MB").unwrap();
        assert_eq!(
            config.get_options(),
            Some(format!("-c work_mem=8MB {both}").as_str())
        );
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
