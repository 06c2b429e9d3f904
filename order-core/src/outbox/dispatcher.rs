//! The fast path: events committed by this process are published at once.
//!
//! Stores hand each committed event to [`AfterCommit`], which puts it on a
//! bounded queue (an event that does not fit stays READY for the recovery
//! job: nothing is lost, only delayed). The dispatcher takes up to
//! `batch_size` events or whatever arrived within `flush_interval`,
//! publishes them, and marks the published rows SENT; failed ones get their
//! retry count incremented. On shutdown it drains the queue first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};

use super::sink::EventSink;
use super::store::OutboxStore;
use super::OutboxEvent;
use crate::fault::CommitFault;

/// Publish batches in flight at once.
const CONCURRENT_BATCHES: u32 = 4;

/// The hook stores call after each commit with the events it committed.
#[derive(Clone, Debug, Default)]
pub struct AfterCommit {
    queue: Option<mpsc::Sender<OutboxEvent>>,
    fault: CommitFault,
}

impl AfterCommit {
    /// A hook that drops events (they stay READY for recovery).
    pub fn none() -> Self {
        Self::default()
    }

    /// Runs `fault` after every commit that produced events, before they
    /// are queued (see [`CommitFault`]).
    pub fn with_fault(mut self, fault: CommitFault) -> Self {
        self.fault = fault;
        self
    }

    /// Hands committed events to the fast path (never blocks).
    pub fn committed(&self, events: Vec<OutboxEvent>) {
        if events.is_empty() {
            return;
        }
        self.fault.committed();
        let Some(queue) = &self.queue else { return };
        for event in events {
            if let Err(e) = queue.try_send(event) {
                tracing::debug!(error = %e, "fast-path queue full; recovery will publish");
            }
        }
    }
}

/// Settings of the fast path.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Most events per publish.
    pub batch_size: usize,
    /// Longest wait to fill a batch.
    pub flush_interval: Duration,
    /// Queue capacity.
    pub queue_capacity: usize,
}

/// Handle of a running dispatcher.
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    /// Creates the queue and its hook; [`Dispatcher::start`] consumes it.
    pub fn channel(settings: DispatchSettings) -> (AfterCommit, mpsc::Receiver<OutboxEvent>) {
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        (
            AfterCommit {
                queue: Some(tx),
                fault: CommitFault::default(),
            },
            rx,
        )
    }

    /// Starts publishing events from `queue` to `sink`, recording outcomes
    /// in `store`.
    pub fn start<S: OutboxStore + ?Sized + 'static>(
        queue: mpsc::Receiver<OutboxEvent>,
        store: Arc<S>,
        sink: Arc<dyn EventSink>,
        settings: DispatchSettings,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(queue, stopped, store, sink, settings));
        Self { stop, task }
    }

    /// Publishes everything still queued, waits for outstanding publishes
    /// and the sink's flush, then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "outbox dispatcher task failed");
        }
    }
}

async fn run<S: OutboxStore + ?Sized + 'static>(
    mut queue: mpsc::Receiver<OutboxEvent>,
    mut stopped: watch::Receiver<bool>,
    store: Arc<S>,
    sink: Arc<dyn EventSink>,
    settings: DispatchSettings,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_BATCHES as usize));
    let batch_size = settings.batch_size.max(1);
    loop {
        let first = tokio::select! {
            biased;
            _ = stopped.changed() => None,
            event = queue.recv() => event,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + settings.flush_interval;
        while batch.len() < batch_size {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(event)) => batch.push(event),
                Ok(None) | Err(_) => break,
            }
        }
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (store, sink) = (Arc::clone(&store), Arc::clone(&sink));
        tokio::spawn(async move {
            publish_batch(&*store, &*sink, batch).await;
            drop(slot);
        });
    }
    // Shutdown: drain what is queued, then wait for in-flight batches.
    let mut rest = Vec::new();
    while let Ok(event) = queue.try_recv() {
        rest.push(event);
    }
    for chunk in rest.chunks(batch_size) {
        publish_batch(&*store, &*sink, chunk.to_vec()).await;
    }
    if slots.acquire_many(CONCURRENT_BATCHES).await.is_err() {
        tracing::error!("outbox dispatcher semaphore closed");
    }
    sink.flush().await;
    tracing::info!(drained = rest.len(), "outbox dispatcher stopped");
}

/// Publishes one batch and records SENT / failures.
pub(crate) async fn publish_batch<S: OutboxStore + ?Sized>(
    store: &S,
    sink: &dyn EventSink,
    batch: Vec<OutboxEvent>,
) {
    let results = sink.publish(&batch).await;
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    for (event, result) in batch.iter().zip(results) {
        match result {
            Ok(()) => sent.push(event.event_id),
            Err(e) => failed.push((event.event_id, e.0)),
        }
    }
    if !sent.is_empty() {
        if let Err(e) = store.mark_sent(&sent).await {
            // Published but still READY: recovery republishes (same event id).
            tracing::warn!(error = %e, count = sent.len(), "could not mark events SENT");
        }
    }
    if !failed.is_empty() {
        tracing::warn!(count = failed.len(), error = %failed[0].1, "event publish failed");
        if let Err(e) = store.record_failures(&failed).await {
            tracing::warn!(error = %e, "could not record publish failures");
        }
    }
}
