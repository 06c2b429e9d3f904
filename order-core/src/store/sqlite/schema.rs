//! The SQLite schema of the order store (applied by
//! [`hts_dbkit::sqlite::migrate`]).

use hts_dbkit::sqlite::Migration;

/// The kind recorded in the store identity (the same on PostgreSQL).
pub(super) const KIND: &str = "order-store";

/// Ordered migrations; a version is applied at most once per database.
pub(super) const MIGRATIONS: &[Migration] = &[
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
