//! Versioned schema migrations, applied once per database file.

use rusqlite::{params, Connection, TransactionBehavior};

/// One migration: its version (ascending, starting at 1) and its SQL (one or
/// more statements).
pub type Migration = (i64, &'static str);

/// Applies every migration whose version is above the recorded one, in
/// order, inside one `BEGIN IMMEDIATE` transaction, so concurrent processes
/// opening the same file migrate it exactly once. `schema_migrations`
/// records (version, applied_at).
pub fn migrate(conn: &mut Connection, migrations: &[Migration]) -> rusqlite::Result<()> {
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
    for (version, sql) in migrations.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, crate::now_unix_ms()],
        )?;
    }
    tx.commit()
}
