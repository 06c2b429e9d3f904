//! [`CorrelationTable`]: requests in flight towards the backends.
//!
//! Every backend call gets a gateway-assigned id; the entry remembers where
//! the answer must go (connection, the client's correlation id, the reply
//! channel). Entries leave the table when the answer arrives, when the
//! deadline passes (the call task completes its own entry either way) and
//! when the client disconnects. The table is bounded: registering beyond
//! capacity fails immediately.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::frame::MsgType;
use crate::writer::Outbound;

/// One request waiting for its backend answer.
#[derive(Debug)]
pub struct Pending {
    /// Connection the request came from.
    pub conn_id: u64,
    /// The client's correlation id, echoed in the response.
    pub client_correlation_id: u64,
    /// Request type (the response carries the same type).
    pub msg_type: MsgType,
    /// Instant after which the answer is TIMEOUT.
    pub deadline: Instant,
    /// The connection's writer.
    pub reply: mpsc::Sender<Outbound>,
}

/// The table is at capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("correlation table is full ({capacity} requests in flight)")]
pub struct TableFull {
    /// The table's capacity.
    pub capacity: usize,
}

/// Bounded map of gateway correlation id → [`Pending`].
#[derive(Debug)]
pub struct CorrelationTable {
    entries: DashMap<u64, Pending>,
    capacity: usize,
    len: AtomicUsize,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

impl CorrelationTable {
    /// An empty table holding at most `capacity` entries.
    pub fn new(capacity: usize) -> CorrelationTable {
        CorrelationTable {
            entries: DashMap::new(),
            capacity,
            len: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds `pending` and returns its gateway correlation id.
    pub fn register(&self, pending: Pending) -> Result<u64, TableFull> {
        // Reserve a slot first so concurrent registrations cannot overshoot.
        let reserved = self
            .len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            });
        if reserved.is_err() {
            return Err(TableFull {
                capacity: self.capacity,
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.entries.insert(id, pending);
        Ok(id)
    }

    /// Removes and returns the entry for `id`. `None` means the client
    /// disconnected meanwhile; that answer is counted as dropped.
    pub fn complete(&self, id: u64) -> Option<Pending> {
        match self.entries.remove(&id) {
            Some((_, p)) => {
                self.len.fetch_sub(1, Ordering::AcqRel);
                Some(p)
            }
            None => {
                self.record_dropped();
                None
            }
        }
    }

    /// Removes the entries `ids` that belong to connection `conn_id`
    /// (ids already completed or owned by another connection are skipped).
    pub fn remove_connection(&self, conn_id: u64, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            if self
                .entries
                .remove_if(&id, |_, p| p.conn_id == conn_id)
                .is_some()
            {
                self.len.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Whether `id` is still waiting for an answer.
    pub fn contains(&self, id: u64) -> bool {
        self.entries.contains_key(&id)
    }

    /// Number of requests in flight.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether no request is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Answers that arrived after their client had gone.
    pub fn dropped_answers(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts one answer that could not be delivered.
    pub fn record_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn pending(conn_id: u64, tx: &mpsc::Sender<Outbound>) -> Pending {
        Pending {
            conn_id,
            client_correlation_id: 7,
            msg_type: MsgType::PlaceOrder,
            deadline: Instant::now(),
            reply: tx.clone(),
        }
    }

    #[tokio::test]
    async fn register_complete() {
        let (tx, _rx) = mpsc::channel(1);
        let t = CorrelationTable::new(4);
        let id = t.register(pending(1, &tx)).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.contains(id));
        let p = t.complete(id).unwrap();
        assert_eq!(p.client_correlation_id, 7);
        assert!(t.is_empty());
        assert!(t.complete(id).is_none());
        assert_eq!(t.dropped_answers(), 1);
    }

    #[tokio::test]
    async fn full_table_rejects_then_recovers() {
        let (tx, _rx) = mpsc::channel(1);
        let t = CorrelationTable::new(2);
        let a = t.register(pending(1, &tx)).unwrap();
        t.register(pending(1, &tx)).unwrap();
        assert_eq!(t.register(pending(1, &tx)), Err(TableFull { capacity: 2 }));
        t.complete(a).unwrap();
        t.register(pending(1, &tx)).unwrap();
        assert_eq!(t.len(), 2);
    }

    #[tokio::test]
    async fn remove_connection_only_touches_own_entries() {
        let (tx, _rx) = mpsc::channel(1);
        let t = CorrelationTable::new(10);
        let a = t.register(pending(1, &tx)).unwrap();
        let b = t.register(pending(2, &tx)).unwrap();
        t.remove_connection(1, [a, b, 999]);
        assert!(!t.contains(a));
        assert!(t.contains(b));
        assert_eq!(t.len(), 1);
        // The late answer for `a` is dropped and counted.
        assert!(t.complete(a).is_none());
        assert_eq!(t.dropped_answers(), 1);
    }

    #[tokio::test]
    async fn million_entries_never_leak() {
        const CAP: usize = 1_000;
        let (tx, _rx) = mpsc::channel(1);
        let t = CorrelationTable::new(CAP);
        let mut rng = rand::thread_rng();
        let mut live: Vec<(u64, u64)> = Vec::with_capacity(CAP);
        let mut full_seen = 0u64;
        let mut dropped_expected = 0u64;
        for i in 0..1_000_000u64 {
            let conn = rng.gen_range(0..16u64);
            match t.register(pending(conn, &tx)) {
                Ok(id) => live.push((id, conn)),
                Err(TableFull { capacity }) => {
                    assert_eq!(capacity, CAP);
                    assert_eq!(t.len(), CAP);
                    full_seen += 1;
                }
            }
            assert!(t.len() <= CAP);
            match rng.gen_range(0..100) {
                // Answer a random request.
                0..=59 if !live.is_empty() => {
                    let (id, _) = live.swap_remove(rng.gen_range(0..live.len()));
                    assert!(t.complete(id).is_some());
                }
                // A random connection disconnects; its answers arrive late.
                60 if i % 7 == 0 => {
                    let gone = rng.gen_range(0..16u64);
                    let (dead, keep): (Vec<_>, Vec<_>) =
                        live.drain(..).partition(|(_, c)| *c == gone);
                    live = keep;
                    t.remove_connection(gone, dead.iter().map(|(id, _)| *id));
                    for (id, _) in dead {
                        assert!(t.complete(id).is_none());
                        dropped_expected += 1;
                    }
                }
                _ => {}
            }
            assert_eq!(t.len(), live.len());
        }
        for (id, _) in live.drain(..) {
            assert!(t.complete(id).is_some());
        }
        assert_eq!(t.len(), 0);
        assert!(t.is_empty());
        assert!(full_seen > 0, "the test should exercise the bound");
        assert_eq!(t.dropped_answers(), dropped_expected);
        assert!(
            t.entries.capacity() < 16 * CAP,
            "map must not grow unbounded"
        );
    }
}
