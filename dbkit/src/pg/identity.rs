//! Start-up checks of a PostgreSQL store: the store identity of its
//! component in `store_meta` and its schema version
//! (see [`crate::identity`]).

use std::time::Duration;

use tokio_postgres::Client;

use super::RetryPolicy;

use crate::identity::{OpenMode, StoreIdentity};
use crate::StoreError;

/// Retries of the first contact at start: a database that cannot be
/// reached is reported within about a second (a service manager restarts
/// the process), not after the full retry budget of serving.
pub const START_RETRY: RetryPolicy = RetryPolicy {
    budget: Duration::from_millis(1000),
    initial_backoff: Duration::from_millis(20),
    max_backoff: Duration::from_millis(250),
};

/// Opens `component`'s store at start, the same way for every component:
/// waits for a first connection of `pool` at most [`START_RETRY`], checks
/// the store identity and schema version ([`ensure_identity`], against the
/// newest of `migrations`), then applies pending `migrations` (retried
/// under `retry`). `url` names the store in errors (redacted).
pub async fn open_store(
    pool: &super::Pool,
    url: &str,
    component: &str,
    migrations: &[(i64, &str)],
    mode: OpenMode,
    retry: RetryPolicy,
) -> Result<StoreIdentity, StoreError> {
    let location = crate::redact_url(url);
    let supported = migrations.iter().map(|(v, _)| *v).max().unwrap_or(0);
    let identity = {
        let mut client = super::retry_transient(START_RETRY, || async {
            Ok::<_, super::PgError>(pool.get().await?)
        })
        .await?;
        ensure_identity(&mut client, &location, component, mode, supported).await?
    };
    super::retry_transient(retry, || async {
        let mut client = pool.get().await?;
        super::migrate(&mut client, component, migrations).await
    })
    .await?;
    Ok(identity)
}

/// One row per component: several components may share a database.
const META_TABLE: &str = "CREATE TABLE IF NOT EXISTS store_meta (
    component  TEXT PRIMARY KEY,
    store_id   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    peer_id    TEXT
)";

/// Reads the identity of `component` in the database named `store`
/// (redacted URL), creating it in [`OpenMode::Init`] when the component has
/// no migrations yet, and always for a component that predates identities
/// (migrated, no identity). Refuses a database where the component was
/// never initialised in [`OpenMode::Existing`] ([`StoreError::Uninitialised`])
/// and a schema newer than `supported_version`. Runs in one transaction
/// under the migrations' advisory lock, so processes starting at once agree
/// on one identity.
pub async fn ensure_identity(
    client: &mut Client,
    store: &str,
    component: &str,
    mode: OpenMode,
    supported_version: i64,
) -> Result<StoreIdentity, StoreError> {
    let tx = client.transaction().await.map_err(super::PgError::from)?;
    let q = async {
        tx.execute("SELECT pg_advisory_xact_lock(7219401)", &[])
            .await?;
        let present: (bool, bool) = {
            let row = tx
                .query_one(
                    "SELECT to_regclass('store_meta') IS NOT NULL,
                            to_regclass('schema_migrations') IS NOT NULL",
                    &[],
                )
                .await?;
            (row.get(0), row.get(1))
        };
        let existing = if present.0 {
            tx.query_opt(
                "SELECT store_id, peer_id FROM store_meta WHERE component = $1",
                &[&component],
            )
            .await?
            .map(|row| StoreIdentity {
                store_id: row.get(0),
                kind: component.to_owned(),
                peer_id: row.get(1),
            })
        } else {
            None
        };
        let version: i64 = if present.1 {
            tx.query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations WHERE component = $1",
                &[&component],
            )
            .await?
            .get(0)
        } else {
            0
        };
        Ok::<_, tokio_postgres::Error>((existing, version))
    };
    let (existing, version) = q.await.map_err(super::PgError::from)?;
    if version > supported_version {
        return Err(StoreError::SchemaTooNew {
            store: store.to_owned(),
            found: version,
            supported: supported_version,
        });
    }
    let identity = match existing {
        Some(identity) => identity,
        None => {
            if version > 0 {
                tracing::info!(
                    store,
                    component,
                    "store predates store identities; assigning one"
                );
            } else if mode == OpenMode::Existing {
                return Err(StoreError::Uninitialised {
                    store: store.to_owned(),
                    detail: format!("the database holds no {component}"),
                });
            }
            let identity = StoreIdentity::generate(component);
            let created = async {
                tx.batch_execute(META_TABLE).await?;
                tx.execute(
                    "INSERT INTO store_meta (component, store_id) VALUES ($1, $2)",
                    &[&component, &identity.store_id],
                )
                .await
            };
            created.await.map_err(super::PgError::from)?;
            identity
        }
    };
    tx.commit().await.map_err(super::PgError::from)?;
    Ok(identity)
}

/// Records `peer_id` as the peer of `component` unless one is recorded.
pub async fn record_peer(
    client: &Client,
    component: &str,
    peer_id: &str,
) -> Result<(), super::PgError> {
    client
        .execute(
            "UPDATE store_meta SET peer_id = $2 WHERE component = $1 AND peer_id IS NULL",
            &[&component, &peer_id],
        )
        .await?;
    Ok(())
}
