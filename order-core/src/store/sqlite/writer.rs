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

use crate::store::StoreError;

/// Most operations committed by one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Capacity of the queue in front of the writer (backpressure beyond it).
const QUEUE_CAPACITY: usize = 4096;

/// Called after the batch's commit with the commit result.
type Completion = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
/// One queued operation: runs in the open transaction (`None` when the
/// transaction could not be started) and yields its completion.
type Work = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    queue: mpsc::Sender<Work>,
}

impl GroupWriter {
    /// Starts the writer thread owning `conn`. The thread ends when every
    /// handle is dropped.
    pub(crate) fn spawn(conn: Connection, name: &str) -> std::io::Result<Self> {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(conn, rx))?;
        Ok(Self { queue })
    }

    /// Runs `op` in the next batch and returns its result once committed.
    pub(crate) async fn execute<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |conn: Option<&Connection>| {
            // Without a transaction the completion reports the begin failure.
            let result = match conn {
                Some(conn) => in_savepoint(conn, op),
                None => Err(StoreError::WriterClosed),
            };
            Box::new(move |commit: Result<(), &StoreError>| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Commit(e.to_string())),
                };
                // The caller may have gone away; its operation is still durable.
                let _ = reply.send(outcome);
            }) as Completion
        });
        self.queue
            .send(work)
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }
}

/// Runs `op` inside a savepoint, rolling back only its own effects on error.
fn in_savepoint<T>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT op")?;
    match op(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE op")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO op; RELEASE op")?;
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
