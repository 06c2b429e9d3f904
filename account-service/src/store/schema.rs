//! The SQLite schema of the ledger (applied by [`hts_dbkit::sqlite::migrate`]).

use hts_dbkit::sqlite::Migration;

/// The kind recorded in the store identity (the same on PostgreSQL).
pub(super) const KIND: &str = "account-store";

/// Ordered migrations; a version is applied at most once per database.
pub(super) const MIGRATIONS: &[Migration] = &[
    (
        1,
        "CREATE TABLE accounts (
        account_id TEXT PRIMARY KEY NOT NULL
     );
     CREATE TABLE balances (
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        asset      TEXT NOT NULL,
        available  INTEGER NOT NULL CHECK (available >= 0),
        reserved   INTEGER NOT NULL CHECK (reserved >= 0),
        PRIMARY KEY (account_id, asset)
     );
     CREATE TABLE reservations (
        reservation_id TEXT PRIMARY KEY NOT NULL,
        account_id     TEXT NOT NULL,
        asset          TEXT NOT NULL,
        amount         INTEGER NOT NULL CHECK (amount > 0),
        status         TEXT NOT NULL CHECK (status IN ('HELD', 'RELEASED')),
        created_at     INTEGER NOT NULL,
        released_at    INTEGER
     );",
    ),
    // Refusals recorded for an order's reservation (REFUSED) and the
    // order's request_id; SQLite changes a CHECK by rebuilding the table.
    (
        2,
        "CREATE TABLE reservations_v2 (
            reservation_id TEXT PRIMARY KEY NOT NULL,
            account_id     TEXT NOT NULL,
            asset          TEXT NOT NULL,
            amount         INTEGER NOT NULL CHECK (amount > 0),
            status         TEXT NOT NULL CHECK (status IN ('HELD', 'RELEASED', 'REFUSED')),
            created_at     INTEGER NOT NULL,
            released_at    INTEGER,
            request_id     TEXT
         );
         INSERT INTO reservations_v2
            (reservation_id, account_id, asset, amount, status, created_at, released_at)
         SELECT reservation_id, account_id, asset, amount, status, created_at, released_at
         FROM reservations;
         DROP TABLE reservations;
         ALTER TABLE reservations_v2 RENAME TO reservations;",
    ),
    // The orphan sweep's listing: HELD reservations of orders by id.
    (
        3,
        "CREATE INDEX reservations_held_orders ON reservations (reservation_id)
         WHERE status = 'HELD' AND request_id IS NOT NULL;",
    ),
];
