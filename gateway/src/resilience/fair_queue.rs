//! [`FairQueue`]: where a request waits, briefly, when every backend is at
//! its limit — and the order in which the freed capacity is handed out.
//!
//! * **Bounded wait.** A request waits at most until its `until` (the
//!   router sets it to a short `max_wait`, and never later than leaves
//!   enough of its deadline to be served); then it is refused, not placed,
//!   with a retry-after hint. Nothing ever sits in this queue past its
//!   deadline.
//! * **Cancels first.** Requests of the priority class (CANCEL, and the
//!   mass cancels and kills that come later) are woken before any other.
//! * **Fair between accounts.** Other requests wait in one FIFO per
//!   account, and freed capacity goes round-robin over the accounts that
//!   wait — deficit-free round robin with a quantum of one request — so an
//!   account pipelining a basket of 5,000 orders gets one slot per turn
//!   like an account sending one, instead of first-come-first-served.
//! * **Bounded memory, no lock-out.** At most `max_per_account` waiters per
//!   account and `max_total` overall; beyond, the request is refused at
//!   once — except the first waiter of an account that has none, which is
//!   always let in (up to [`HARD_CAP`]): a burst that filled the queue can
//!   never lock another account out, and round robin serves that one next.
//!
//! Waking is a hand-off: [`FairQueue::release`] (called whenever a backend
//! call ends) wakes exactly one waiter, who then leases a backend. A waiter
//! woken when nothing was free after all (another request took the slot
//! first) queues again at the head of its account.
//!
//! Hand-written: tokio's `Semaphore` is FIFO over all waiters, which is
//! exactly the first-come-first-served order this must not have.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::time::Instant;

pub use crate::upstream::Class;

/// Most waiters whatever the parameters (memory bound).
pub const HARD_CAP: usize = 1 << 20;

/// How many may wait, decided per request by the router from how much the
/// backends can serve within the wait budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueParams {
    /// Most requests of one account waiting at once.
    pub max_per_account: usize,
    /// Most requests waiting at once.
    pub max_total: usize,
}

/// Why a wait ended without capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCapacity {
    /// The queue (or the account's share of it) is full.
    Full,
    /// `until` came first.
    Expired,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    wake: oneshot::Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    priority: VecDeque<Waiter>,
    by_account: HashMap<Arc<str>, VecDeque<Waiter>>,
    /// Accounts with waiters, in round-robin order.
    ring: VecDeque<Arc<str>>,
    waiting: usize,
}

/// The fair wait queue; see the module documentation.
#[derive(Debug)]
pub struct FairQueue {
    state: Mutex<State>,
    /// Mirror of `State::waiting`, so the request path checks for waiters
    /// without taking the lock.
    waiting: std::sync::atomic::AtomicUsize,
    next_id: AtomicU64,
    expired: AtomicU64,
    full: AtomicU64,
}

/// A place in the queue; dropping it leaves the queue.
#[derive(Debug)]
pub struct Ticket {
    queue: Arc<FairQueue>,
    id: u64,
    account: Option<Arc<str>>,
    woken: Option<oneshot::Receiver<()>>,
}

impl Default for FairQueue {
    fn default() -> FairQueue {
        FairQueue::new()
    }
}

impl FairQueue {
    /// An empty queue.
    pub fn new() -> FairQueue {
        FairQueue {
            state: Mutex::new(State::default()),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            expired: AtomicU64::new(0),
            full: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether anyone waits (a newcomer of the normal class then queues
    /// behind them instead of taking freed capacity first).
    pub fn has_waiters(&self) -> bool {
        !self.is_empty()
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (waits that expired, requests refused because the queue was full).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.expired.load(Ordering::Relaxed),
            self.full.load(Ordering::Relaxed),
        )
    }

    /// Joins the queue within `params`; `front`: at the head of the
    /// account's FIFO (a waiter woken for nothing re-queues there).
    pub fn join(
        self: &Arc<Self>,
        account: &Arc<str>,
        class: Class,
        front: bool,
        params: QueueParams,
    ) -> Result<Ticket, NoCapacity> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (wake, woken) = oneshot::channel();
        let waiter = Waiter { id, wake };
        let mut s = self.lock();
        if s.waiting >= HARD_CAP {
            self.full.fetch_add(1, Ordering::Relaxed);
            return Err(NoCapacity::Full);
        }
        let over_total = s.waiting >= params.max_total;
        let account_key = match class {
            Class::Priority if over_total => {
                self.full.fetch_add(1, Ordering::Relaxed);
                return Err(NoCapacity::Full);
            }
            Class::Priority => {
                if front {
                    s.priority.push_front(waiter);
                } else {
                    s.priority.push_back(waiter);
                }
                None
            }
            Class::Normal => {
                let fifo = s.by_account.entry(account.clone()).or_default();
                if fifo.len() >= params.max_per_account || (over_total && !fifo.is_empty()) {
                    self.full.fetch_add(1, Ordering::Relaxed);
                    return Err(NoCapacity::Full);
                }
                let was_empty = fifo.is_empty();
                if front {
                    fifo.push_front(waiter);
                } else {
                    fifo.push_back(waiter);
                }
                if was_empty {
                    s.ring.push_back(account.clone());
                }
                Some(account.clone())
            }
        };
        s.waiting += 1;
        self.waiting.store(s.waiting, Ordering::Release);
        Ok(Ticket {
            queue: self.clone(),
            id,
            account: account_key,
            woken: Some(woken),
        })
    }

    /// Capacity was freed: wakes one waiter, the priority class first,
    /// then the next account in round-robin order. Returns whether one was
    /// woken.
    pub fn release(&self) -> bool {
        if !self.has_waiters() {
            return false;
        }
        let mut s = self.lock();
        loop {
            let waiter = if let Some(w) = s.priority.pop_front() {
                w
            } else if let Some(account) = s.ring.pop_front() {
                let Some(fifo) = s.by_account.get_mut(&account) else {
                    continue;
                };
                let Some(w) = fifo.pop_front() else {
                    s.by_account.remove(&account);
                    continue;
                };
                if fifo.is_empty() {
                    s.by_account.remove(&account);
                } else {
                    s.ring.push_back(account);
                }
                w
            } else {
                return false;
            };
            s.waiting -= 1;
            self.waiting.store(s.waiting, Ordering::Release);
            // A waiter that gave up meanwhile cannot take it: try the next.
            if waiter.wake.send(()).is_ok() {
                return true;
            }
        }
    }

    /// Takes waiter `id` out (it left: expired or served otherwise).
    fn remove(&self, id: u64, account: Option<&Arc<str>>) -> bool {
        let mut s = self.lock();
        let removed = match account {
            None => remove_from(&mut s.priority, id),
            Some(a) => {
                let (gone, now_empty) = match s.by_account.get_mut(a) {
                    Some(fifo) => (remove_from(fifo, id), fifo.is_empty()),
                    None => (false, false),
                };
                if now_empty {
                    s.by_account.remove(a);
                    s.ring.retain(|r| r != a);
                }
                gone
            }
        };
        if removed {
            s.waiting -= 1;
            self.waiting.store(s.waiting, Ordering::Release);
        }
        removed
    }
}

fn remove_from(q: &mut VecDeque<Waiter>, id: u64) -> bool {
    match q.iter().position(|w| w.id == id) {
        Some(i) => {
            q.remove(i);
            true
        }
        None => false,
    }
}

impl Ticket {
    /// Waits until woken (capacity was handed to this request: the ticket
    /// is then out of the queue) or `until` (it stays queued: wait again,
    /// or drop it to leave).
    pub async fn wait(&mut self, until: Instant) -> Result<(), NoCapacity> {
        let Some(woken) = self.woken.as_mut() else {
            return Err(NoCapacity::Expired);
        };
        match tokio::time::timeout_at(until, woken).await {
            Ok(Ok(())) => {
                self.id = 0; // already out of the queue
                self.woken = None;
                Ok(())
            }
            Ok(Err(_)) => Err(NoCapacity::Expired),
            Err(_) => Err(NoCapacity::Expired),
        }
    }

    /// Leaves the queue for good after waiting in vain.
    pub fn expire(self) {
        self.queue.expired.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.id == 0 {
            return;
        }
        if !self.queue.remove(self.id, self.account.as_ref()) {
            // Woken but never used (it left first): pass the capacity on.
            if let Some(mut woken) = self.woken.take() {
                if woken.try_recv().is_ok() {
                    self.queue.release();
                }
            } else {
                self.queue.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn queue() -> Arc<FairQueue> {
        Arc::new(FairQueue::new())
    }

    const P: QueueParams = QueueParams {
        max_per_account: 3,
        max_total: 5,
    };

    fn acc(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn woken(t: &mut Ticket) -> bool {
        t.woken.as_mut().is_some_and(|w| w.try_recv().is_ok())
    }

    #[tokio::test]
    async fn capacity_goes_to_cancels_first_then_round_robin_over_accounts() {
        let q = queue();
        let (burst, quiet) = (acc("BURST"), acc("QUIET"));
        let mut b1 = q.join(&burst, Class::Normal, false, P).unwrap();
        let mut b2 = q.join(&burst, Class::Normal, false, P).unwrap();
        let mut b3 = q.join(&burst, Class::Normal, false, P).unwrap();
        let mut q1 = q.join(&quiet, Class::Normal, false, P).unwrap();
        let mut cancel = q.join(&burst, Class::Priority, false, P).unwrap();
        let mut order = Vec::new();
        while q.release() {
            for (name, t) in [
                ("cancel", &mut cancel),
                ("b1", &mut b1),
                ("b2", &mut b2),
                ("b3", &mut b3),
                ("q1", &mut q1),
            ] {
                if woken(t) {
                    order.push(name);
                }
            }
        }
        // The quiet account's one order is served second, not after the
        // burst account's basket.
        assert_eq!(order, ["cancel", "b1", "q1", "b2", "b3"]);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_woken_waiter_that_requeues_goes_first_in_its_account() {
        let q = queue();
        let a = acc("A");
        let mut first = q.join(&a, Class::Normal, false, P).unwrap();
        let mut second = q.join(&a, Class::Normal, false, P).unwrap();
        assert!(q.release());
        assert!(woken(&mut first));
        // Woken for nothing (another request took the slot): back in front.
        first.id = 0;
        let mut again = q.join(&a, Class::Normal, true, P).unwrap();
        assert!(q.release());
        assert!(woken(&mut again));
        assert!(!woken(&mut second));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_are_bounded_and_so_is_the_queue() {
        let q = queue();
        let a = acc("A");
        let t1 = q.join(&a, Class::Normal, false, P).unwrap();
        let _t2 = q.join(&a, Class::Normal, false, P).unwrap();
        let _t3 = q.join(&a, Class::Normal, false, P).unwrap();
        assert_eq!(
            q.join(&a, Class::Normal, false, P).unwrap_err(),
            NoCapacity::Full,
            "the account's share is full"
        );
        let _b = q.join(&acc("B"), Class::Normal, false, P).unwrap();
        let _c = q.join(&acc("C"), Class::Priority, false, P).unwrap();
        assert_eq!(
            q.join(&acc("B"), Class::Normal, false, P).unwrap_err(),
            NoCapacity::Full,
            "the queue is full"
        );
        assert_eq!(
            q.join(&acc("E"), Class::Priority, false, P).unwrap_err(),
            NoCapacity::Full
        );
        // An account with nobody waiting is never locked out.
        let _d = q.join(&acc("D"), Class::Normal, false, P).unwrap();
        let start = Instant::now();
        let until = start + Duration::from_millis(7);
        let mut t1 = t1;
        assert_eq!(t1.wait(until).await.unwrap_err(), NoCapacity::Expired);
        assert_eq!(Instant::now(), until, "waited exactly until `until`");
        assert_eq!(q.len(), 6, "still queued after a wait in vain");
        t1.expire();
        assert_eq!(q.len(), 5, "the expired waiter left the queue");
        assert_eq!(q.counts(), (1, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_left_passes_its_wake_on() {
        let q = queue();
        let (a, b) = (acc("A"), acc("B"));
        let gone = q.join(&a, Class::Normal, false, P).unwrap();
        let stays = q.join(&b, Class::Normal, false, P).unwrap();
        drop(gone);
        assert_eq!(q.len(), 1);
        assert!(q.release());
        let until = Instant::now() + Duration::from_millis(5);
        let mut stays = stays;
        assert!(stays.wait(until).await.is_ok());
        assert!(!q.release(), "nobody left");
    }
}
