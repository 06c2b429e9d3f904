//! A small pool of read connections used from blocking tasks.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::connection;
use crate::store::StoreError;

/// Most idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// Read-only work runs on pooled connections inside `spawn_blocking`, so it
/// never blocks the async runtime nor waits behind the writer thread.
#[derive(Clone)]
pub(crate) struct ReadPool {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    /// A pool over the database at `path` (connections opened on demand).
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `op` on a pooled connection in a blocking task.
    pub(crate) async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = op(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::ReadTask(e.to_string()))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = match self.idle.lock() {
            Ok(mut idle) => idle.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        match pooled {
            Some(conn) => Ok(conn),
            None => Ok(connection::open(&self.path)?),
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
