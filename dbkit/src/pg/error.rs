//! Errors of the PostgreSQL plumbing.

/// A PostgreSQL failure: configuration, pool or database.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection string could not be parsed.
    #[error("invalid postgres connection string: {0}")]
    Config(String),
    /// The database (or the connection to it) reported an error. Its
    /// message carries the whole cause (server message, or the I/O error of
    /// the connection), so it is not also chained as a source.
    #[error("postgres error: {}", db_detail(.0))]
    Db(tokio_postgres::Error),
    /// No connection could be taken from the pool.
    #[error("postgres pool: {0}")]
    Pool(String),
    /// The retry budget ran out; the last error is attached.
    #[error("postgres still failing after retries for {waited_ms} ms: {last}")]
    RetriesExhausted {
        /// How long the operation was retried.
        waited_ms: u128,
        /// The last transient error.
        last: Box<PgError>,
    },
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Db(e)
    }
}

/// The error with the server's SQLSTATE and message when there is one
/// (`tokio_postgres::Error` alone displays just "db error"), else with its
/// underlying cause ("error connecting to server: Connection refused").
fn db_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", e, db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(db) => PgError::Db(db),
            other => PgError::Pool(other.to_string()),
        }
    }
}

impl PgError {
    /// True when retrying the same operation may succeed: connection lost
    /// or refused, server shutting down or starting, a read-only server
    /// (a demoted primary after a failover), serialization failures and
    /// deadlocks, pool timeouts.
    pub fn is_transient(&self) -> bool {
        match self {
            PgError::Config(_) | PgError::RetriesExhausted { .. } => false,
            PgError::Pool(_) => true,
            PgError::Db(e) => super::retry::is_transient_db(e),
        }
    }

    /// The SQLSTATE code, when the database reported one.
    pub fn sql_state(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            PgError::Db(e) => e.code(),
            _ => None,
        }
    }
}
