//! Versioned schema of the PostgreSQL ledger.

/// Component name in `schema_migrations`.
pub(crate) const COMPONENT: &str = "account-store";

/// Ordered migrations; each version is applied at most once per database.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE accounts (
        account_id TEXT PRIMARY KEY
     );
     CREATE TABLE balances (
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        asset      TEXT NOT NULL,
        available  BIGINT NOT NULL CHECK (available >= 0),
        reserved   BIGINT NOT NULL CHECK (reserved >= 0),
        PRIMARY KEY (account_id, asset)
     );
     CREATE TABLE reservations (
        reservation_id TEXT PRIMARY KEY,
        account_id     TEXT NOT NULL,
        asset          TEXT NOT NULL,
        amount         BIGINT NOT NULL CHECK (amount > 0),
        status         TEXT NOT NULL CHECK (status IN ('HELD', 'RELEASED')),
        created_at     BIGINT NOT NULL,
        released_at    BIGINT
     );",
    ),
    (
        2,
        "ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
         ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
            CHECK (status IN ('HELD', 'RELEASED', 'REFUSED'));
         ALTER TABLE reservations ADD COLUMN request_id TEXT;",
    ),
    // The check that ends every batch's write statement: a batch whose
    // reads another writer changed must change nothing (see ledger.rs).
    (
        3,
        "CREATE FUNCTION ledger_batch_check(ok boolean) RETURNS boolean
         LANGUAGE plpgsql AS $$
         BEGIN
            IF NOT ok THEN
                RAISE EXCEPTION 'ledger batch raced with another writer; decided again'
                    USING ERRCODE = 'serialization_failure';
            END IF;
            RETURN true;
         END $$;",
    ),
    // The orphan sweep's listing: HELD reservations of orders by id.
    (
        4,
        "CREATE INDEX reservations_held_orders ON reservations (reservation_id)
         WHERE status = 'HELD' AND request_id IS NOT NULL;",
    ),
];
