//! Group-committing writer thread.
//!
//! Write operations are queued on a bounded channel together with a oneshot
//! reply. A dedicated thread owns the write connection; it takes everything
//! queued (up to [`MAX_BATCH`]), runs each operation inside its own savepoint
//! of ONE `BEGIN IMMEDIATE` transaction, commits once (one fsync) and only
//! then answers every caller. A caller therefore never sees a result that is
//! not durable, and a failing operation does not affect its batch mates.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// Most operations committed by one transaction.
pub const MAX_BATCH: usize = 256;
/// Capacity of the queue in front of the writer (backpressure beyond it).
pub const QUEUE_CAPACITY: usize = 4096;

/// Called after the batch's commit with the commit result.
type Completion = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
/// One queued operation: runs in the open transaction (`None` when the
/// transaction could not be started) and yields its completion.
type Work = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct GroupWriter {
    queue: mpsc::Sender<Work>,
}

impl GroupWriter {
    /// Starts the writer thread, named `name`, owning `conn`. The thread
    /// ends when every handle is dropped.
    pub fn spawn(conn: Connection, name: &str) -> std::io::Result<Self> {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(conn, rx))?;
        Ok(Self { queue })
    }

    /// Runs `op` in the next batch and returns its result once committed.
    ///
    /// `op` runs inside its own savepoint: on `Err` only its own effects are
    /// rolled back. When the batch's transaction cannot be started or
    /// committed the result is [`StoreError::Commit`] (the operation had no
    /// effect); when the writer is gone, [`StoreError::WriterClosed`].
    /// Waits for queue space when [`QUEUE_CAPACITY`] operations are queued.
    pub async fn execute<T, E, F>(&self, op: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |conn: Option<&Connection>| {
            // Without a transaction the completion reports the begin failure.
            let result = match conn {
                Some(conn) => in_savepoint(conn, op),
                None => Err(E::from(StoreError::WriterClosed)),
            };
            Box::new(move |commit: Result<(), &StoreError>| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(e) => Err(E::from(StoreError::Commit(e.to_string()))),
                };
                // The caller may have gone away; its operation is still durable.
                let _ = reply.send(outcome);
            }) as Completion
        });
        self.queue
            .send(work)
            .await
            .map_err(|_| E::from(StoreError::WriterClosed))?;
        answer
            .await
            .map_err(|_| E::from(StoreError::WriterClosed))?
    }
}

/// Runs `op` inside a savepoint, rolling back only its own effects on error.
fn in_savepoint<T, E: From<StoreError>>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let sql = |sql: &str| {
        conn.execute_batch(sql)
            .map_err(|e| E::from(StoreError::from(e)))
    };
    sql("SAVEPOINT op")?;
    match op(conn) {
        Ok(value) => {
            sql("RELEASE op")?;
            Ok(value)
        }
        Err(e) => {
            sql("ROLLBACK TO op; RELEASE op")?;
            Err(e)
        }
    }
}

/// The writer loop: batch, execute, commit, reply.
fn run(conn: Connection, mut rx: mpsc::Receiver<Work>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        commit_batch(&conn, batch);
    }
}

/// Runs one batch in one `BEGIN IMMEDIATE` transaction, commits it and
/// answers every operation of the batch with the commit result.
fn commit_batch(conn: &Connection, batch: Vec<Work>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = StoreError::from(e);
        tracing::error!(error = %err, "could not start write transaction");
        for work in batch {
            work(None)(Err(&err));
        }
        return;
    }
    let completions: Vec<Completion> = batch.into_iter().map(|work| work(Some(conn))).collect();
    let commit = conn.execute_batch("COMMIT").map_err(StoreError::from);
    if let Err(e) = &commit {
        tracing::error!(error = %e, "batch commit failed; rolling back");
        if let Err(rollback) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %rollback, "rollback after failed commit failed");
        }
    }
    for complete in completions {
        complete(commit.as_ref().map(|_| ()));
    }
}
