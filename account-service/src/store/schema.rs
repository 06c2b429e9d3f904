//! Versioned schema migrations of the ledger.

use rusqlite::{params, Connection, TransactionBehavior};

/// Ordered migrations; a version is applied at most once per database.
const MIGRATIONS: &[(i64, &str)] = &[(
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
)];

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
            params![version, super::now_unix_ms()],
        )?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = super::super::connection::open(&path).unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
    }
}
