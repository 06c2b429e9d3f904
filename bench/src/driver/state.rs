//! Per-connection bookkeeping shared by a connection's sending and receiving sides.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::mix::Kind;
use crate::recorder::{Outcome, Recorder};
use crate::workload::OrderPool;

/// One request handed from the scheduler to a connection.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Position in the schedule; unique in the run (also the correlation id).
    pub seq: u64,
    /// When the schedule says it must be sent.
    pub due: Instant,
    /// What to send (a cancel or query may fall back to a place).
    pub kind: Kind,
    /// Whether it counts (false during warm-up).
    pub measured: bool,
}

/// A request written and not yet answered.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// Due time.
    pub due: Instant,
    /// Send time.
    pub sent: Instant,
    /// What was sent.
    pub kind: Kind,
    /// Whether it counts.
    pub measured: bool,
}

/// Counters every connection bumps, read by the progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests answered (or failed), warm-up included.
    pub done: AtomicU64,
    /// Requests that did not end OK, warm-up included.
    pub failed: AtomicU64,
}

/// What one connection knows: in-flight requests, its placed orders and its measurements.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Requests in flight by seq.
    pub pending: HashMap<u64, Pending>,
    /// Orders this connection placed.
    pub pool: OrderPool,
    /// Its measurements.
    pub recorder: Recorder,
}

/// A connection's state behind a mutex (the sending and receiving sides hold it briefly).
#[derive(Debug, Clone)]
pub struct SharedState {
    inner: Arc<Mutex<ConnState>>,
    progress: Arc<Progress>,
}

impl SharedState {
    /// Fresh state reporting into `progress`.
    pub fn new(progress: Arc<Progress>) -> SharedState {
        SharedState {
            inner: Arc::default(),
            progress,
        }
    }

    /// Locks the state (a poisoned lock is still consistent enough to count).
    pub fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `job` of `kind` was written at `sent`.
    pub fn sent(state: &mut ConnState, job: &Job, kind: Kind, sent: Instant) {
        state.pending.insert(
            job.seq,
            Pending {
                due: job.due,
                sent,
                kind,
                measured: job.measured,
            },
        );
        if job.measured {
            state.recorder.on_send(kind, job.due, sent);
        }
    }

    /// Records the end of request `seq`; returns false if it was no longer pending.
    pub fn finish(&self, state: &mut ConnState, seq: u64, outcome: &Outcome, now: Instant) -> bool {
        let Some(p) = state.pending.remove(&seq) else {
            return false;
        };
        if p.measured {
            state.recorder.on_done(p.kind, outcome, p.due, p.sent, now);
        }
        self.progress.done.fetch_add(1, Ordering::Relaxed);
        if !outcome.is_ok() {
            self.progress.failed.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Fails every pending request with `outcome` (the connection broke).
    pub fn fail_all(&self, outcome: &Outcome) {
        let mut state = self.lock();
        let now = Instant::now();
        let seqs: Vec<u64> = state.pending.keys().copied().collect();
        for seq in seqs {
            self.finish(&mut state, seq, outcome, now);
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Times out every request sent more than `timeout` ago.
    pub fn expire(&self, timeout: Duration) {
        let mut state = self.lock();
        let now = Instant::now();
        let old: Vec<u64> = state
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.sent) >= timeout)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in old {
            self.finish(&mut state, seq, &Outcome::ClientTimeout, now);
        }
    }

    /// A copy of the measurements so far.
    pub fn recorder(&self) -> Recorder {
        self.lock().recorder.clone()
    }
}
