//! Versioned schema migrations, applied once per database.

use tokio_postgres::Client;

use super::PgError;

/// Applies the migrations of `component` whose version is above the
/// recorded one, in order, inside one transaction holding a
/// transaction-level advisory lock: several processes starting at once
/// migrate the database exactly once. `schema_migrations` records
/// (component, version), so several components may share one database.
pub async fn migrate(
    client: &mut Client,
    component: &str,
    migrations: &[(i64, &str)],
) -> Result<(), PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7219401)", &[])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            component  TEXT NOT NULL,
            version    BIGINT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (component, version)
         )",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = $1",
            &[&component],
        )
        .await?
        .get(0);
    for (version, sql) in migrations.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (component, version) VALUES ($1, $2)",
            &[&component, version],
        )
        .await?;
        tracing::info!(component, version, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}
