//! A small pool of read connections used from blocking tasks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::open_connection;
use crate::StoreError;

/// Most idle connections kept for reuse.
pub const MAX_IDLE: usize = 8;

/// Read-only work runs on pooled connections inside `spawn_blocking`, so it
/// never blocks the async runtime nor waits behind the writer thread.
/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct ReadPool {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    /// A pool over the database at `path` (connections opened on demand
    /// with [`open_connection`]; at most [`MAX_IDLE`] kept idle).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `op` on a pooled connection in a blocking task. A connection
    /// that cannot be opened is [`StoreError::Sqlite`], a task that does not
    /// run to completion [`StoreError::ReadTask`].
    pub async fn read<T, E, F>(&self, op: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take().map_err(E::from)?;
            let result = op(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| E::from(StoreError::ReadTask(e.to_string())))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = match self.idle.lock() {
            Ok(mut idle) => idle.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        match pooled {
            Some(conn) => Ok(conn),
            None => Ok(open_connection(&self.path)?),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}
