//! Versioned schema of the PostgreSQL order store.

/// Component name in `schema_migrations`.
pub(crate) const COMPONENT: &str = "order-store";

/// Ordered migrations; each version is applied at most once per database.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE orders (
        order_id           TEXT PRIMARY KEY,
        account_id         TEXT NOT NULL,
        request_id         TEXT NOT NULL,
        symbol             TEXT NOT NULL,
        side               TEXT NOT NULL,
        order_type         TEXT NOT NULL,
        price              BIGINT NOT NULL,
        quantity           BIGINT NOT NULL,
        status             TEXT NOT NULL,
        reservation_id     TEXT NOT NULL,
        created_at_unix_ms BIGINT NOT NULL,
        updated_at_unix_ms BIGINT NOT NULL,
        UNIQUE (account_id, request_id)
     );
     CREATE TABLE idempotency_keys (
        account_id         TEXT NOT NULL,
        request_id         TEXT NOT NULL,
        fingerprint        TEXT NOT NULL,
        response_code      TEXT NOT NULL,
        response_message   TEXT NOT NULL,
        order_id           TEXT NOT NULL,
        created_at_unix_ms BIGINT NOT NULL,
        PRIMARY KEY (account_id, request_id)
     );
     CREATE TABLE pending_releases (
        reservation_id     TEXT PRIMARY KEY,
        account_id         TEXT NOT NULL,
        order_id           TEXT NOT NULL,
        created_at_unix_ms BIGINT NOT NULL
     );
     CREATE TABLE outbox (
        event_id        UUID PRIMARY KEY,
        topic           TEXT NOT NULL,
        key             TEXT NOT NULL,
        event_type      TEXT NOT NULL,
        payload         JSONB NOT NULL,
        status          TEXT NOT NULL DEFAULT 'READY'
                        CHECK (status IN ('READY', 'SENT', 'DLQ')),
        retry_count     INTEGER NOT NULL DEFAULT 0,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        last_attempt_at TIMESTAMPTZ,
        last_error      TEXT
     );
     CREATE INDEX outbox_ready_by_age ON outbox (created_at) WHERE status = 'READY';",
    ),
    // One row per order: the idempotency record only mirrored the order
    // (same key, plus the fingerprint and the stored answer), so its
    // columns move into `orders` and `idempotency_keys` becomes a view of
    // them (for operators and tools that read it).
    (
        2,
        "ALTER TABLE orders
            ADD COLUMN code TEXT NOT NULL DEFAULT '',
            ADD COLUMN message TEXT NOT NULL DEFAULT '',
            ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
         UPDATE orders o SET code = k.response_code, message = k.response_message,
            fingerprint = k.fingerprint
         FROM idempotency_keys k
         WHERE k.account_id = o.account_id AND k.request_id = o.request_id;
         ALTER TABLE orders ALTER COLUMN code DROP DEFAULT,
            ALTER COLUMN message DROP DEFAULT, ALTER COLUMN fingerprint DROP DEFAULT;
         DROP TABLE idempotency_keys;
         CREATE VIEW idempotency_keys AS
            SELECT account_id, request_id, fingerprint, code AS response_code,
                   message AS response_message, order_id, created_at_unix_ms
            FROM orders;",
    ),
];
