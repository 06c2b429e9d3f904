//! The failure type of the stores.

use crate::pg::PgError;

/// A failure of a store (never a business outcome).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL names a backend this build does not support.
    #[error("unsupported store url {0:?}: expected sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    /// PostgreSQL reported an error (after retrying transient ones).
    #[error("{0}")]
    Postgres(#[from] PgError),
    /// SQLite reported an error.
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The transaction of the batch this operation belonged to could not be
    /// started or committed; the operation had no effect.
    #[error("transaction failed: {0}")]
    Commit(String),
    /// The writer thread is gone (store shutting down or crashed).
    #[error("store writer is not running")]
    WriterClosed,
    /// A blocking read task failed to run to completion.
    #[error("store read task failed: {0}")]
    ReadTask(String),
    /// The database holds a value this code cannot interpret.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
}
