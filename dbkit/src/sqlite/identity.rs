//! Start-up checks of a SQLite store: integrity (`PRAGMA quick_check`), the
//! store identity in `store_meta` and the schema version
//! (see [`crate::identity`]).

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use crate::identity::{OpenMode, StoreIdentity};
use crate::StoreError;

/// The one-row table holding the identity (`id` is always 1).
const META_TABLE: &str = "CREATE TABLE IF NOT EXISTS store_meta (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    store_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    peer_id    TEXT
)";

/// Runs `PRAGMA quick_check` and fails with [`StoreError::Damaged`] unless
/// it answers `ok`.
pub fn quick_check(conn: &Connection, store: &str) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("PRAGMA quick_check(5)")?;
    let findings: Vec<String> = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    if findings.len() == 1 && findings[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Damaged {
        store: store.to_owned(),
        detail: format!(
            "integrity check failed: {}",
            findings.join("; ").replace('\n', "; ")
        ),
    })
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Reads the identity of the store, creating it when allowed: in
/// [`OpenMode::Init`] for a database without any table, and always for a
/// store that predates identities (it has applied migrations but no
/// `store_meta`). Refuses a database of another kind, one without an
/// identity in [`OpenMode::Existing`], and a schema newer than
/// `supported_version`. One immediate transaction, so processes opening the
/// file at once agree on one identity.
pub fn ensure_identity(
    conn: &mut Connection,
    store: &str,
    kind: &str,
    mode: OpenMode,
    supported_version: i64,
) -> Result<StoreIdentity, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing = if table_exists(&tx, "store_meta")? {
        tx.query_row(
            "SELECT store_id, kind, peer_id FROM store_meta WHERE id = 1",
            [],
            |row| {
                Ok(StoreIdentity {
                    store_id: row.get(0)?,
                    kind: row.get(1)?,
                    peer_id: row.get(2)?,
                })
            },
        )
        .optional()?
    } else {
        None
    };
    let version: i64 = if table_exists(&tx, "schema_migrations")? {
        tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )?
    } else {
        0
    };
    let identity = match existing {
        Some(identity) if identity.kind != kind => {
            return Err(StoreError::WrongKind {
                store: store.to_owned(),
                expected: kind.to_owned(),
                found: identity.kind,
            })
        }
        Some(identity) => identity,
        None => {
            let tables: i64 = tx.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )?;
            if version > 0 {
                tracing::info!(store, "store predates store identities; assigning one");
            } else if mode == OpenMode::Existing || tables > 0 {
                let detail = if tables == 0 {
                    "no tables".to_owned()
                } else {
                    format!("{tables} tables but no store identity")
                };
                return Err(StoreError::Uninitialised {
                    store: store.to_owned(),
                    detail,
                });
            }
            let identity = StoreIdentity::generate(kind);
            tx.execute_batch(META_TABLE)?;
            tx.execute(
                "INSERT INTO store_meta (id, store_id, kind, created_at) VALUES (1, ?1, ?2, ?3)",
                params![identity.store_id, identity.kind, crate::now_unix_ms()],
            )?;
            identity
        }
    };
    if version > supported_version {
        return Err(StoreError::SchemaTooNew {
            store: store.to_owned(),
            found: version,
            supported: supported_version,
        });
    }
    tx.commit()?;
    Ok(identity)
}

/// Records `peer_id` as the peer of the store unless one is recorded.
pub fn record_peer(conn: &Connection, peer_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE store_meta SET peer_id = ?1 WHERE id = 1 AND peer_id IS NULL",
        [peer_id],
    )?;
    Ok(())
}

/// Turns a SQLite failure met while opening `store` into an error naming
/// the store, the cause and what to check.
pub fn open_failure(store: &str, e: rusqlite::Error) -> StoreError {
    let code = e.sqlite_error_code();
    let detail = e.to_string();
    match code {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => StoreError::Damaged {
            store: store.to_owned(),
            detail,
        },
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::PermissionDenied) => StoreError::Unopenable {
            store: store.to_owned(),
            detail,
            hint: "check that the file and its directory exist and are writable by this user \
                       (SQLite also creates -wal and -shm files beside it)",
        },
        _ => StoreError::Unopenable {
            store: store.to_owned(),
            detail,
            hint: "see the SQLite error above",
        },
    }
}
