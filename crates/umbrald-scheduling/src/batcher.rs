//! The dynamic batcher's queue: a plain, sans-IO struct.
//!
//! Items from every connection join one bounded queue ordered by priority (higher first), then
//! by arrival. A batch becomes due when the queue holds `max_batch_items` items or when its
//! oldest item has waited `max_queue_delay`, whichever comes first; the caller asks for one only
//! when a worker is free, so items keep accumulating (and batches grow) while all workers are
//! busy. Items whose deadline has passed are never put in a batch: they come back from
//! [`Batcher::take_expired`] so that the caller can answer `deadline_exceeded`. Cancelled items
//! (their request was already answered) are dropped silently.
//!
//! Time is an argument: nothing here reads a clock, spawns a task or sleeps. The scheduler task
//! owns one `Batcher`, calls [`Batcher::next_batch`] when a worker is free and sleeps until
//! [`Batcher::poll_deadline`] otherwise; unit tests drive it with a fake clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// What the batcher needs to know about a queued item.
pub trait QueueEntry {
    /// Scheduling priority: higher is served first.
    fn priority(&self) -> u8;

    /// The instant after which computing this item is pointless, if any.
    fn deadline(&self) -> Option<Instant>;

    /// Whether the item's request has already been answered (deadline or client gone).
    fn is_cancelled(&self) -> bool;
}

/// The batcher's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Most items in one batch (at least 1).
    pub max_batch_items: usize,
    /// Longest time the oldest queued item waits for a batch to fill while a worker is free.
    pub max_queue_delay: Duration,
    /// Most items queued at once; pushes beyond it are refused.
    pub max_queue_items: usize,
}

/// An item taken out of the queue, with the instant it entered it.
#[derive(Debug)]
pub struct Dequeued<T> {
    /// The item.
    pub item: T,
    /// When [`Batcher::push_all`] queued it.
    pub enqueued: Instant,
}

/// The priority-ordered, bounded queue that forms batches.
#[derive(Debug)]
pub struct Batcher<T> {
    config: BatcherConfig,
    /// One FIFO per priority level; `Reverse` makes iteration start at the highest priority.
    levels: BTreeMap<Reverse<u8>, VecDeque<Dequeued<T>>>,
    len: usize,
    expired: Vec<Dequeued<T>>,
}

impl<T: QueueEntry> Batcher<T> {
    /// An empty queue with these limits. A `max_batch_items` of 0 is treated as 1.
    pub fn new(mut config: BatcherConfig) -> Self {
        config.max_batch_items = config.max_batch_items.max(1);
        Self {
            config,
            levels: BTreeMap::new(),
            len: 0,
            expired: Vec::new(),
        }
    }

    /// The limits this queue was built with.
    pub fn config(&self) -> BatcherConfig {
        self.config
    }

    /// Number of items queued, cancelled ones included until a batch or a purge removes them.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues all of `items` at `now`, or none of them when they would not fit under
    /// `max_queue_items` (they come back in `Err`).
    pub fn push_all(&mut self, now: Instant, items: Vec<T>) -> Result<(), Vec<T>> {
        if items.len() > self.config.max_queue_items.saturating_sub(self.len) {
            return Err(items);
        }
        self.len += items.len();
        for item in items {
            self.levels
                .entry(Reverse(item.priority()))
                .or_default()
                .push_back(Dequeued {
                    item,
                    enqueued: now,
                });
        }
        Ok(())
    }

    /// Forms the next batch if one is due at `now` and `share_among > 0`.
    ///
    /// A batch is due when the queue holds at least `max_batch_items` items or its oldest item
    /// has waited `max_queue_delay`. Its size is the queue's fair share among `share_among`
    /// workers (rounded up, at least 1), capped at `max_batch_items`: small batches while the
    /// queue is short, so that items do not wait behind one another on one worker while
    /// another could take them, and larger ones as the queue grows.
    /// Items are taken highest priority first, oldest first within a priority. Cancelled items
    /// met on the way are dropped and expired ones set aside for [`Batcher::take_expired`].
    /// Returns `None` when no batch is due (ask again at [`Batcher::poll_deadline`]).
    pub fn next_batch(&mut self, now: Instant, share_among: usize) -> Option<Vec<Dequeued<T>>> {
        if share_among == 0 || !self.is_due(now) {
            return None;
        }
        let share = self.len.div_ceil(share_among);
        self.take_batch(now, share.clamp(1, self.config.max_batch_items))
    }

    /// Forms a batch of at most `max_items` items (at least 1) if one is due at `now`, whatever
    /// `max_batch_items` says: for a consumer whose batches are sized differently (the GPU
    /// worker). Items are taken, and cancelled and expired ones handled, as in
    /// [`Batcher::next_batch`].
    pub fn next_batch_of(&mut self, now: Instant, max_items: usize) -> Option<Vec<Dequeued<T>>> {
        if !self.is_due(now) {
            return None;
        }
        self.take_batch(now, max_items.max(1))
    }

    fn take_batch(&mut self, now: Instant, target: usize) -> Option<Vec<Dequeued<T>>> {
        let mut batch = Vec::with_capacity(target.min(self.len));
        while batch.len() < target {
            let Some(entry) = self.pop_front() else { break };
            if entry.item.is_cancelled() {
                continue;
            }
            if entry.item.deadline().is_some_and(|d| d <= now) {
                self.expired.push(entry);
                continue;
            }
            batch.push(entry);
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// The instant at which a batch becomes due (possibly already past), or `None` when the
    /// queue is empty. Changes when items are pushed or taken.
    pub fn poll_deadline(&self) -> Option<Instant> {
        let oldest = self.oldest()?;
        if self.len >= self.config.max_batch_items {
            Some(oldest)
        } else {
            Some(oldest + self.config.max_queue_delay)
        }
    }

    /// Removes every cancelled item and sets aside every item expired at `now`. O(queue length):
    /// call it when a request is cancelled, not on every wake-up.
    pub fn purge(&mut self, now: Instant) {
        let mut removed = 0;
        for queue in self.levels.values_mut() {
            let before = queue.len();
            let mut kept = VecDeque::with_capacity(before);
            for entry in queue.drain(..) {
                if entry.item.is_cancelled() {
                    continue;
                }
                if entry.item.deadline().is_some_and(|d| d <= now) {
                    self.expired.push(entry);
                    continue;
                }
                kept.push_back(entry);
            }
            removed += before - kept.len();
            *queue = kept;
        }
        self.levels.retain(|_, q| !q.is_empty());
        self.len -= removed;
    }

    /// Takes the items that [`Batcher::next_batch`] or [`Batcher::purge`] found expired; they
    /// are no longer counted in [`Batcher::len`].
    pub fn take_expired(&mut self) -> Vec<Dequeued<T>> {
        std::mem::take(&mut self.expired)
    }

    /// Empties the queue, highest priority first (used when shutting down).
    pub fn drain(&mut self) -> Vec<Dequeued<T>> {
        let mut all = Vec::with_capacity(self.len);
        while let Some(entry) = self.pop_front() {
            all.push(entry);
        }
        all
    }

    fn is_due(&self, now: Instant) -> bool {
        self.poll_deadline().is_some_and(|due| due <= now)
    }

    fn oldest(&self) -> Option<Instant> {
        self.levels
            .values()
            .filter_map(|q| q.front())
            .map(|e| e.enqueued)
            .min()
    }

    fn pop_front(&mut self) -> Option<Dequeued<T>> {
        let mut level = self.levels.first_entry()?;
        let entry = level.get_mut().pop_front();
        if level.get().is_empty() {
            level.remove();
        }
        if entry.is_some() {
            self.len -= 1;
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[derive(Debug, Clone)]
    struct Job {
        id: u32,
        priority: u8,
        deadline: Option<Instant>,
        cancelled: Rc<Cell<bool>>,
    }

    impl Job {
        fn new(id: u32) -> Self {
            Self {
                id,
                priority: 0,
                deadline: None,
                cancelled: Rc::new(Cell::new(false)),
            }
        }
        fn prio(mut self, p: u8) -> Self {
            self.priority = p;
            self
        }
        fn until(mut self, d: Instant) -> Self {
            self.deadline = Some(d);
            self
        }
    }

    impl QueueEntry for Job {
        fn priority(&self) -> u8 {
            self.priority
        }
        fn deadline(&self) -> Option<Instant> {
            self.deadline
        }
        fn is_cancelled(&self) -> bool {
            self.cancelled.get()
        }
    }

    fn cfg(max_batch: usize, delay_us: u64, max_queue: usize) -> BatcherConfig {
        BatcherConfig {
            max_batch_items: max_batch,
            max_queue_delay: Duration::from_micros(delay_us),
            max_queue_items: max_queue,
        }
    }

    fn ids(batch: &[Dequeued<Job>]) -> Vec<u32> {
        batch.iter().map(|d| d.item.id).collect()
    }

    fn jobs(range: std::ops::Range<u32>) -> Vec<Job> {
        range.map(Job::new).collect()
    }

    #[test]
    fn empty_queue_has_no_deadline_and_no_batch() {
        let t0 = Instant::now();
        let mut b: Batcher<Job> = Batcher::new(cfg(4, 100, 16));
        assert_eq!(b.poll_deadline(), None);
        assert!(b.next_batch(t0, 1).is_none());
    }

    #[test]
    fn partial_batch_waits_for_the_queue_delay() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(4, 100, 16));
        b.push_all(t0, jobs(0..2)).expect("fits");
        let due = t0 + Duration::from_micros(100);
        assert_eq!(b.poll_deadline(), Some(due));
        assert!(b.next_batch(t0 + Duration::from_micros(99), 1).is_none());
        let batch = b.next_batch(due, 1).expect("due after the delay");
        assert_eq!(ids(&batch), vec![0, 1]);
        assert!(b.is_empty());
    }

    #[test]
    fn full_batch_is_due_at_once_and_capped() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(4, 1_000_000, 16));
        b.push_all(t0, jobs(0..6)).expect("fits");
        assert_eq!(b.poll_deadline(), Some(t0));
        let batch = b.next_batch(t0, 1).expect("full batch due");
        assert_eq!(ids(&batch), vec![0, 1, 2, 3]);
        // Two left: not a full batch, so they wait for the delay again.
        assert_eq!(b.len(), 2);
        assert!(b.next_batch(t0, 1).is_none());
        assert_eq!(b.poll_deadline(), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn the_delay_counts_from_the_oldest_item() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(8, 100, 16));
        b.push_all(t0, jobs(0..1)).expect("fits");
        b.push_all(t0 + Duration::from_micros(90), jobs(1..2))
            .expect("fits");
        let batch = b
            .next_batch(t0 + Duration::from_micros(100), 1)
            .expect("oldest waited");
        assert_eq!(ids(&batch), vec![0, 1]);
    }

    #[test]
    fn no_ready_worker_means_no_batch_and_items_accumulate() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(4, 10, 16));
        b.push_all(t0, jobs(0..3)).expect("fits");
        assert!(b.next_batch(t0 + Duration::from_secs(1), 0).is_none());
        b.push_all(t0 + Duration::from_secs(1), jobs(3..6))
            .expect("fits");
        let batch = b.next_batch(t0 + Duration::from_secs(1), 1).expect("due");
        assert_eq!(ids(&batch), vec![0, 1, 2, 3]);
    }

    #[test]
    fn several_ready_workers_share_the_queue() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(64, 10, 256));
        b.push_all(t0, jobs(0..10)).expect("fits");
        let now = t0 + Duration::from_micros(10);
        let first = b.next_batch(now, 2).expect("due");
        assert_eq!(first.len(), 5);
        let second = b.next_batch(now, 1).expect("still due");
        assert_eq!(ids(&second), vec![5, 6, 7, 8, 9]);
    }

    #[test]
    fn higher_priority_goes_first_fifo_within_a_level() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(3, 0, 16));
        b.push_all(t0, vec![Job::new(0), Job::new(1).prio(5), Job::new(2)])
            .expect("fits");
        b.push_all(t0, vec![Job::new(3).prio(5), Job::new(4).prio(9)])
            .expect("fits");
        let batch = b.next_batch(t0, 1).expect("due");
        assert_eq!(ids(&batch), vec![4, 1, 3]);
        let batch = b.next_batch(t0, 1).expect("due");
        assert_eq!(ids(&batch), vec![0, 2]);
    }

    #[test]
    fn push_beyond_capacity_is_refused_whole() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(4, 10, 5));
        b.push_all(t0, jobs(0..3)).expect("fits");
        let back = b.push_all(t0, jobs(3..6)).expect_err("3 + 3 > 5");
        assert_eq!(back.len(), 3);
        assert_eq!(b.len(), 3);
        b.push_all(t0, jobs(3..5)).expect("3 + 2 fits");
        assert_eq!(b.len(), 5);
    }

    #[test]
    fn expired_items_are_set_aside_not_batched() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(4, 100, 16));
        let soon = t0 + Duration::from_micros(50);
        b.push_all(t0, vec![Job::new(0).until(soon), Job::new(1)])
            .expect("fits");
        let batch = b
            .next_batch(t0 + Duration::from_micros(100), 1)
            .expect("due");
        assert_eq!(ids(&batch), vec![1]);
        let expired = b.take_expired();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].item.id, 0);
        assert!(b.take_expired().is_empty());
    }

    #[test]
    fn cancelled_items_are_dropped() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(4, 0, 16));
        let gone = Job::new(0);
        let flag = gone.cancelled.clone();
        b.push_all(t0, vec![gone, Job::new(1)]).expect("fits");
        flag.set(true);
        let batch = b.next_batch(t0, 1).expect("due");
        assert_eq!(ids(&batch), vec![1]);
        assert!(b.take_expired().is_empty());
        assert!(b.is_empty());
    }

    #[test]
    fn purge_frees_capacity_of_cancelled_and_expired_items() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(4, 1_000, 4));
        let flag = Rc::new(Cell::new(false));
        let mut cancelled = Job::new(0).prio(3);
        cancelled.cancelled = flag.clone();
        let expiring = Job::new(1).until(t0 + Duration::from_micros(5));
        b.push_all(t0, vec![cancelled, expiring, Job::new(2), Job::new(3)])
            .expect("fits");
        assert!(b.push_all(t0, jobs(4..5)).is_err());
        flag.set(true);
        b.purge(t0 + Duration::from_micros(5));
        assert_eq!(b.len(), 2);
        assert_eq!(b.take_expired().len(), 1);
        b.push_all(t0, jobs(4..6)).expect("room again");
        assert_eq!(ids(&b.drain()), vec![2, 3, 4, 5]);
        assert!(b.is_empty());
        assert_eq!(b.poll_deadline(), None);
    }

    #[test]
    fn a_batch_of_only_cancelled_items_is_none_and_empties_the_queue() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(4, 0, 16));
        let job = Job::new(0);
        job.cancelled.set(true);
        b.push_all(t0, vec![job]).expect("fits");
        assert!(b.next_batch(t0, 1).is_none());
        assert!(b.is_empty());
    }

    #[test]
    fn zero_max_batch_is_treated_as_one() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(0, 1_000, 16));
        b.push_all(t0, jobs(0..2)).expect("fits");
        assert_eq!(b.next_batch(t0, 1).map(|v| v.len()), Some(1));
    }
}
