//! Versioned schema of the PostgreSQL ledger.

/// Component name in `schema_migrations`.
pub(crate) const COMPONENT: &str = "account-store";

/// Ordered migrations; each version is applied at most once per database.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[(
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
)];
