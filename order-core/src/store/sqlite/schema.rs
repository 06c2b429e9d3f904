//! Versioned schema migrations of the order store.

use rusqlite::{params, Connection, TransactionBehavior};

use super::now_unix_ms;

/// Ordered migrations; a version is applied at most once per database.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE orders (
        order_id           TEXT PRIMARY KEY NOT NULL,
        account_id         TEXT NOT NULL,
        request_id         TEXT NOT NULL,
        symbol             TEXT NOT NULL,
        side               TEXT NOT NULL,
        order_type         TEXT NOT NULL,
        price              INTEGER NOT NULL,
        quantity           INTEGER NOT NULL,
        status             TEXT NOT NULL,
        code               TEXT NOT NULL,
        message            TEXT NOT NULL,
        fingerprint        TEXT NOT NULL,
        reservation_id     TEXT NOT NULL,
        created_at_unix_ms INTEGER NOT NULL,
        updated_at_unix_ms INTEGER NOT NULL,
        UNIQUE (account_id, request_id)
     );
     CREATE TABLE pending_releases (
        reservation_id     TEXT PRIMARY KEY NOT NULL,
        account_id         TEXT NOT NULL,
        order_id           TEXT NOT NULL,
        created_at_unix_ms INTEGER NOT NULL
     );",
    ),
    (
        2,
        "CREATE TABLE outbox (
        event_id                TEXT PRIMARY KEY NOT NULL,
        topic                   TEXT NOT NULL,
        key                     TEXT NOT NULL,
        event_type              TEXT NOT NULL,
        payload                 TEXT NOT NULL,
        status                  TEXT NOT NULL CHECK (status IN ('READY', 'SENT', 'DLQ')),
        retry_count             INTEGER NOT NULL,
        created_at_unix_ms      INTEGER NOT NULL,
        last_attempt_at_unix_ms INTEGER,
        last_error              TEXT,
        claimed_until_unix_ms   INTEGER
     );
     CREATE INDEX outbox_ready_by_age ON outbox (status, created_at_unix_ms);",
    ),
];

/// Applies every pending migration inside one `BEGIN IMMEDIATE` transaction,
/// so concurrent processes opening the same file migrate it exactly once.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY NOT NULL,
            applied_at INTEGER NOT NULL
         );",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, now_unix_ms()],
        )?;
    }
    tx.commit()
}
