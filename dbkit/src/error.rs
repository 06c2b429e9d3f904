//! The failure type of the stores.

use crate::pg::PgError;

/// A failure of a store (never a business outcome).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL names a backend this build does not support.
    #[error("unsupported store url {0:?}: expected sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    /// PostgreSQL reported an error (after retrying transient ones).
    #[error(transparent)]
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
    /// The store's database does not exist and the store was not opened
    /// with [`crate::identity::OpenMode::Init`].
    #[error(
        "store {store} does not exist. If this is a new installation, start with --init to \
         create new stores; otherwise restore it from backup (a new store would lose every \
         order and the idempotency of re-sent requests)"
    )]
    Missing {
        /// The file or database (password redacted).
        store: String,
    },
    /// The database exists but holds no store identity: emptied, replaced
    /// or never initialised.
    #[error(
        "store {store} is empty or was not initialised by hts ({detail}): it may have been \
         emptied or replaced. Restore it from backup, or start with --init to create new \
         stores (every order and idempotency record would be lost)"
    )]
    Uninitialised {
        /// The file or database (password redacted).
        store: String,
        /// What was found instead.
        detail: String,
    },
    /// The database holds a store of another kind (the files were swapped).
    #[error(
        "store {store} holds an {found}, not an {expected}: the store files were swapped. \
         Put each file back in its place (or restore from backup)"
    )]
    WrongKind {
        /// The file or database (password redacted).
        store: String,
        /// The kind this process expected.
        expected: String,
        /// The kind recorded in the store.
        found: String,
    },
    /// The database failed its integrity check or is not a database.
    #[error("store {store} is damaged: {detail}. Restore it from backup")]
    Damaged {
        /// The file or database (password redacted).
        store: String,
        /// What the check reported.
        detail: String,
    },
    /// The database could not be opened or written (permissions, path,
    /// connection).
    #[error("cannot open store {store}: {detail} ({hint})")]
    Unopenable {
        /// The file or database (password redacted).
        store: String,
        /// The underlying error.
        detail: String,
        /// What to check.
        hint: &'static str,
    },
    /// The database was migrated by a newer build.
    #[error(
        "store {store} has schema version {found}, newer than this build supports ({supported}): \
         run the newer build or restore a matching backup"
    )]
    SchemaTooNew {
        /// The file or database (password redacted).
        store: String,
        /// The version recorded in the store.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The store was paired with another peer store than the one reached.
    #[error("{0}")]
    PeerMismatch(Box<PeerMismatch>),
}

/// Details of [`StoreError::PeerMismatch`].
#[derive(Debug, thiserror::Error)]
#[error(
    "store {store} was paired with {peer_kind} {recorded}, but the {peer_kind} reached at \
     {peer_location} is {actual}: one of the two stores was swapped or restored from \
     another installation. Restore the matching pair from backup; refusing to serve \
     (orders and reservations would no longer match)"
)]
pub struct PeerMismatch {
    /// The store that recorded the pairing.
    pub store: String,
    /// What the peer is (`account store`).
    pub peer_kind: String,
    /// Where the peer was reached.
    pub peer_location: String,
    /// The peer identity recorded in the store.
    pub recorded: String,
    /// The peer identity reached now.
    pub actual: String,
}
