//! Database plumbing shared by the HTS stores (orders and accounts).
//!
//! * [`pg`] — PostgreSQL: a pool from a (multi-host) connection string,
//!   transient-error retries, versioned migrations.
//! * [`sqlite`] — SQLite: `sqlite:PATH` URLs, connections with the
//!   durability settings of the stores, a group-committing writer thread,
//!   a pool of read connections and versioned migrations.
//! * [`lanes`] — per-key lanes of batched work (one batch in flight per
//!   lane, batch size following the load): the group commit of the
//!   durable order path.
//! * [`redis`] — a fred Redis client for caches (single server or
//!   Sentinel by URL, bounded commands, background reconnects).
//! * [`identity`] — store identity and pairing, checked at start.
//! * [`StoreError`] — the failure type of a store built on either.
//! * [`redact_url`] — a connection URL without its password, for logs.
//!
//! Store-specific SQL (schemas, queries) stays with each store.
//!
//! Features: `stores` ([`pg`], [`sqlite`], [`StoreError`], [`now_unix_ms`])
//! and `redis` ([`redis`]), both on by default; [`redact_url`] is always
//! built. The gateway takes only `redis`, so it compiles neither the
//! PostgreSQL client nor SQLite.
#![deny(missing_docs)]

#[cfg(feature = "stores")]
pub mod error;
#[cfg(feature = "stores")]
pub mod identity;
#[cfg(feature = "stores")]
pub mod lanes;
#[cfg(feature = "stores")]
pub mod pg;
pub mod redact;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "stores")]
pub mod sqlite;

#[cfg(feature = "stores")]
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(feature = "stores")]
pub use error::StoreError;
pub use redact::redact_url;

#[cfg(feature = "stores")]
/// Wall-clock time in Unix epoch milliseconds (0 if the clock is before
/// 1970), as the stores record it.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
