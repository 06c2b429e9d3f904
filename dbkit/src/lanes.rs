//! Per-key lanes of batched work: the group commit of the durable path.
//!
//! Work items are routed to one of `n` lanes by a stable hash of their key
//! (the account id): items that touch the same rows (an account's balance,
//! its orders) always share a lane, so batches of different lanes never
//! wait on each other's row locks. Each lane runs **at most one batch at a
//! time**. A lane that is idle starts a batch with the first item at once
//! (a single order at low load never waits for a batch to fill); whatever
//! queued while a batch ran forms the next batch, up to `max_batch` items,
//! so the batch size follows the load by itself, with no timer.
//!
//! Items of one lane are handed to the handler in the order they were
//! submitted, so a handler can decide them as if they had come one at a
//! time in that order.
//!
//! Hand-written because no crate of the ecosystem we use offers keyed
//! lanes with one batch in flight and an immediate start (tower's `buffer`
//! serialises but does not batch; batching crates flush on a timer, which
//! would make a lone order wait). It is a bounded tokio mpsc queue and one
//! task per lane.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// Items queued per lane before submitters wait (back-pressure).
pub const LANE_QUEUE: usize = 8192;

/// The future a [`Lanes`] handler returns for one batch.
pub type BatchFuture<R> = Pin<Box<dyn Future<Output = Vec<R>> + Send>>;

/// The lane of `key` among `lanes` lanes (FNV-1a, stable across processes
/// and builds, so every service maps an account to the same lane number).
pub fn lane_of(key: &str, lanes: usize) -> usize {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    // The remainder is below `lanes`, so it fits in usize.
    (hash % lanes.max(1) as u64) as usize
}

/// The lane task is gone (its handler panicked or the runtime is shutting
/// down): the item was not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("batch lane closed")]
pub struct LaneClosed;

struct Queued<T, R> {
    item: T,
    reply: oneshot::Sender<R>,
}

/// Handle to running lanes; cheap to clone. The lane tasks end when every
/// handle is dropped and their queues are empty.
pub struct Lanes<T, R> {
    queues: Arc<Vec<mpsc::Sender<Queued<T, R>>>>,
}

impl<T, R> Clone for Lanes<T, R> {
    fn clone(&self) -> Self {
        Self {
            queues: Arc::clone(&self.queues),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Lanes<T, R> {
    /// Starts `lanes` lane tasks (at least one). `handler(lane, batch)` must
    /// answer every item of `batch`, in order: its result has the batch's
    /// length (missing answers are reported to their submitters as
    /// [`LaneClosed`]). Must run inside a Tokio runtime.
    pub fn start<H>(lanes: usize, max_batch: usize, handler: H) -> Self
    where
        H: Fn(usize, Vec<T>) -> BatchFuture<R> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        let queues = (0..lanes.max(1))
            .map(|lane| {
                let (tx, rx) = mpsc::channel(LANE_QUEUE);
                tokio::spawn(run_lane(lane, rx, max_batch.max(1), Arc::clone(&handler)));
                tx
            })
            .collect();
        Self {
            queues: Arc::new(queues),
        }
    }

    /// Number of lanes.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Always false: there is at least one lane.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Queues `item` on the lane of `key` and waits for its answer.
    ///
    /// Cancel-safe in the way the durable path needs: once this future has
    /// queued the item (its first poll that finds queue space), the item is
    /// processed whether or not the future is then dropped.
    pub async fn submit(&self, key: &str, item: T) -> Result<R, LaneClosed> {
        let lane = lane_of(key, self.queues.len());
        self.submit_to(lane, item).await
    }

    /// [`Lanes::submit`] to lane number `lane` (modulo the lane count).
    pub async fn submit_to(&self, lane: usize, item: T) -> Result<R, LaneClosed> {
        let (reply, answer) = oneshot::channel();
        self.queues[lane % self.queues.len()]
            .send(Queued { item, reply })
            .await
            .map_err(|_| LaneClosed)?;
        answer.await.map_err(|_| LaneClosed)
    }
}

async fn run_lane<T, R, H>(
    lane: usize,
    mut rx: mpsc::Receiver<Queued<T, R>>,
    max_batch: usize,
    handler: Arc<H>,
) where
    H: Fn(usize, Vec<T>) -> BatchFuture<R> + Send + Sync + 'static,
{
    let mut queued = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut queued, max_batch).await > 0 {
        let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) =
            queued.drain(..).map(|q| (q.item, q.reply)).unzip();
        let answers = handler(lane, items).await;
        if answers.len() != replies.len() {
            tracing::error!(
                lane,
                expected = replies.len(),
                got = answers.len(),
                "batch handler answered a different number of items"
            );
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A submitter that went away still had its item processed.
            let _ = reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn lanes_are_stable_and_spread() {
        assert_eq!(lane_of("ACC-0001", 4), lane_of("ACC-0001", 4));
        assert_eq!(lane_of("anything", 1), 0);
        assert_eq!(lane_of("anything", 0), 0);
        let mut used = [0usize; 4];
        for n in 1..=1000 {
            used[lane_of(&format!("ACC-{n:04}"), 4)] += 1;
        }
        assert!(used.iter().all(|&c| c > 150), "{used:?}");
        // Pinned values: other processes compute the same lanes.
        assert_eq!(
            lane_of("", 1_000_003),
            (0xcbf2_9ce4_8422_2325u64 % 1_000_003) as usize
        );
    }

    #[tokio::test]
    async fn a_lone_item_is_processed_at_once_and_answers_keep_their_order() {
        let lanes: Lanes<u32, u32> = Lanes::start(2, 8, |_, batch| {
            Box::pin(async move { batch.iter().map(|x| x * 10).collect() })
        });
        let answer = tokio::time::timeout(Duration::from_secs(5), lanes.submit("a", 4))
            .await
            .expect("a lone item must not wait for a batch");
        assert_eq!(answer, Ok(40));
    }

    #[tokio::test]
    async fn one_batch_in_flight_per_lane_and_batches_grow_with_load() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (f, s) = (Arc::clone(&in_flight), Arc::clone(&sizes));
        let lanes: Lanes<u32, u32> = Lanes::start(1, 64, move |_, batch| {
            let (f, s) = (Arc::clone(&f), Arc::clone(&s));
            Box::pin(async move {
                assert_eq!(
                    f.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two batches in one lane"
                );
                s.lock().unwrap().push(batch.len());
                tokio::time::sleep(Duration::from_millis(20)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                batch
            })
        });
        let calls: Vec<_> = (0..100)
            .map(|i| {
                let lanes = lanes.clone();
                tokio::spawn(async move { lanes.submit("same", i).await })
            })
            .collect();
        for (i, call) in futures_join(calls.into_iter())
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(call, Ok(i as u32));
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(sizes.len() < 100, "items were batched: {sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 64), "{sizes:?}");
    }

    #[tokio::test]
    async fn a_dropped_submitter_still_has_its_item_processed() {
        let seen = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&seen);
        let lanes: Lanes<u32, ()> = Lanes::start(1, 8, move |_, batch| {
            let s = Arc::clone(&s);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                s.fetch_add(batch.len(), Ordering::SeqCst);
                vec![(); batch.len()]
            })
        });
        let call = lanes.submit("k", 1);
        assert!(tokio::time::timeout(Duration::from_millis(5), call)
            .await
            .is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_short_answer_is_reported_as_closed() {
        let lanes: Lanes<u32, u32> = Lanes::start(1, 8, |_, _| Box::pin(async { Vec::new() }));
        assert_eq!(lanes.submit("k", 1).await, Err(LaneClosed));
    }

    async fn futures_join<T: Send + 'static>(
        handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}
