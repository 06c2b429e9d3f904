//! SQLite plumbing.
//!
//! WAL mode with `synchronous=FULL`; all writes go through one
//! group-committing writer thread per handle and use `BEGIN IMMEDIATE`, so
//! several processes may share one database file. Reads use separate pooled
//! connections in blocking tasks.
//!
//! * [`url`] — `sqlite:PATH` URLs.
//! * [`connection`] — opening a connection with the durability settings.
//! * [`migrate`](mod@migrate) — versioned, once-only schema migrations.
//! * [`identity`](mod@identity) — the start-up checks: integrity, store
//!   identity, schema version.
//! * [`writer`] — the group-committing writer thread.
//! * [`read_pool`] — pooled read connections.
//! * [`SqliteDb`] — all of the above behind one handle.
//!
//! Operations are closures over a [`rusqlite::Connection`] returning
//! `Result<T, E>` for any error type `E: From<StoreError>` (usually
//! [`StoreError`] itself), so each store keeps its own queries.

pub mod connection;
pub mod identity;
pub mod migrate;
pub mod read_pool;
pub mod url;
pub mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode};

use crate::identity::{OpenMode, StoreIdentity};
use crate::StoreError;

pub use connection::open_connection;
pub use migrate::{migrate, Migration};
pub use read_pool::ReadPool;
pub use url::sqlite_path;
pub use writer::GroupWriter;

/// A SQLite database opened for a store: one group-committing writer thread
/// and a pool of read connections. Cheap to clone and shareable across
/// tasks; the writer thread ends when every clone is dropped.
#[derive(Clone)]
pub struct SqliteDb {
    writer: GroupWriter,
    reads: ReadPool,
    identity: Option<StoreIdentity>,
}

impl SqliteDb {
    /// Opens the database named by `url` (`sqlite:PATH`), creating it if
    /// needed, applies the pending `migrations` and starts the writer thread
    /// named `writer_name`. Blocking: call from `spawn_blocking` or before
    /// the runtime gets busy.
    ///
    /// Fails with [`StoreError::UnsupportedUrl`] for any other URL, and
    /// with [`StoreError::Commit`] when the writer thread cannot start.
    pub fn open(
        url: &str,
        writer_name: &str,
        migrations: &[Migration],
    ) -> Result<Self, StoreError> {
        let path = sqlite_path(url)?;
        Self::open_path(path, writer_name, migrations)
    }

    /// [`SqliteDb::open`] for a file path rather than a URL.
    pub fn open_path(
        path: PathBuf,
        writer_name: &str,
        migrations: &[Migration],
    ) -> Result<Self, StoreError> {
        let (conn, _) = open_and_migrate(&path, migrations, None)?;
        Self::start(conn, path, writer_name, None)
    }

    /// Opens the store of `kind` at `url` (`sqlite:PATH`) after the
    /// start-up checks, applies the pending `migrations` and starts the
    /// writer thread. Blocking.
    ///
    /// In [`OpenMode::Existing`] a missing file is [`StoreError::Missing`]
    /// (it is not created), an empty one or one without the store identity
    /// [`StoreError::Uninitialised`]. Either mode refuses a file that is not
    /// a database or fails `PRAGMA quick_check` ([`StoreError::Damaged`]),
    /// one holding another kind of store ([`StoreError::WrongKind`]), a
    /// schema newer than `migrations` ([`StoreError::SchemaTooNew`]) and a
    /// file or directory it cannot write ([`StoreError::Unopenable`]). Each
    /// error names the file.
    pub fn open_store(
        url: &str,
        writer_name: &str,
        migrations: &[Migration],
        kind: &str,
        mode: OpenMode,
    ) -> Result<Self, StoreError> {
        let path = sqlite_path(url)?;
        let store = path.display().to_string();
        if mode == OpenMode::Existing {
            match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Missing { store })
                }
                Err(e) => {
                    return Err(StoreError::Unopenable {
                        store,
                        detail: e.to_string(),
                        hint: "check the path and its permissions",
                    })
                }
                Ok(meta) if meta.len() == 0 => {
                    return Err(StoreError::Uninitialised {
                        store,
                        detail: "the file is empty (0 bytes)".to_owned(),
                    })
                }
                Ok(_) => {}
            }
        }
        let (conn, identity) = open_and_migrate(&path, migrations, Some((kind, mode)))?;
        Self::start(conn, path, writer_name, identity)
    }

    fn start(
        conn: Connection,
        path: PathBuf,
        writer_name: &str,
        identity: Option<StoreIdentity>,
    ) -> Result<Self, StoreError> {
        let writer = GroupWriter::spawn(conn, writer_name)
            .map_err(|e| StoreError::Commit(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            writer,
            reads: ReadPool::new(path),
            identity,
        })
    }

    /// The identity read at open ([`SqliteDb::open_store`]); `None` for a
    /// database opened without the start-up checks.
    pub fn identity(&self) -> Option<&StoreIdentity> {
        self.identity.as_ref()
    }

    /// Records `peer_id` as the peer store of this one unless a peer is
    /// already recorded (see [`crate::identity::check_peer`]).
    pub async fn record_peer(&self, peer_id: &str) -> Result<(), StoreError> {
        let peer_id = peer_id.to_owned();
        self.write(move |conn| Ok::<_, StoreError>(identity::record_peer(conn, &peer_id)?))
            .await
    }

    /// Runs `op` in the next group-committed batch and returns its result
    /// once committed (see [`GroupWriter::execute`]).
    pub async fn write<T, E, F>(&self, op: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.writer.execute(op).await
    }

    /// Runs the read-only `op` on a pooled connection in a blocking task
    /// (see [`ReadPool::read`]).
    pub async fn read<T, E, F>(&self, op: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.reads.read(op).await
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        self.reads.path()
    }
}

#[cfg(test)]
mod tests;

/// Longest time [`open_and_migrate`] keeps retrying a busy database.
const OPEN_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(15);

/// Opens the write connection and applies `migrations`, retrying while the
/// file is busy or locked; with `checks` (kind, mode), first runs the
/// start-up checks of [`identity`](mod@identity).
///
/// Needed because several processes (or several stores in one process, as in
/// `hts demo`) may open one file at the same moment, and SQLite answers some
/// of those races with SQLITE_BUSY at once instead of waiting out its busy
/// timeout: switching the journal mode to WAL while another connection does
/// the same, or WAL recovery after a crash. Every step is idempotent
/// (`CREATE TABLE IF NOT EXISTS`, versioned migrations in an immediate
/// transaction), so starting over is safe.
fn open_and_migrate(
    path: &Path,
    migrations: &[Migration],
    checks: Option<(&str, OpenMode)>,
) -> Result<(Connection, Option<StoreIdentity>), StoreError> {
    let store = path.display().to_string();
    let supported = migrations.iter().map(|(v, _)| *v).max().unwrap_or(0);
    let deadline = std::time::Instant::now() + OPEN_RETRY_BUDGET;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        let attempt = open_connection(path)
            .map_err(StoreError::from)
            .and_then(|mut conn| {
                let identity = match checks {
                    Some((kind, mode)) => {
                        identity::quick_check(&conn, &store)?;
                        Some(identity::ensure_identity(
                            &mut conn, &store, kind, mode, supported,
                        )?)
                    }
                    None => None,
                };
                migrate(&mut conn, migrations)?;
                Ok((conn, identity))
            });
        match attempt {
            Ok(opened) => return Ok(opened),
            Err(StoreError::Sqlite(e)) if is_busy(&e) && std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, path = %path.display(), "database busy while opening; retrying");
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(250));
            }
            Err(StoreError::Sqlite(e)) if checks.is_some() => {
                return Err(identity::open_failure(&store, e))
            }
            Err(e) => return Err(e),
        }
    }
}
/// True for SQLITE_BUSY and SQLITE_LOCKED (in any extended form).
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked)
    )
}
