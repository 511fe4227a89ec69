//! Exec: the threads that do the elliptic-curve work.
//!
//! - [`cpu_pool`]: the CPU worker pool, one pinned std thread per configured core.
//! - [`gpu`]: the GPU lane: its worker threads, the guard that audits the device's results,
//!   and the lane state the scheduler reads.
//! - [`host_threads`]: long-lived threads for the parts of a GPU batch.
//! - [`compute`]: one batch through the engine, as every worker runs it.
//! - [`priority`]: pinning and the workers' scheduling priority.
//! - [`backends`]: choosing what serves at start.
//! - `fault` (the `fault-injection` feature only): a test hook that makes a worker panic.
//!
//! Both kinds of worker take [`Batch`]es from a channel and give their [`Slots`] back when
//! done; `dispatch` hands the batches out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use umbrald_scheduling::Dequeued;

use crate::work::WorkItem;

pub(crate) mod backends;
pub(crate) mod compute;
pub(crate) mod cpu_pool;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub(crate) mod gpu;
pub(crate) mod host_threads;
pub(crate) mod priority;

/// A batch on its way to a worker.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The items, with the instants they were queued.
    pub items: Vec<Dequeued<WorkItem>>,
}

/// Worker slots: how many batches the CPU pool can take now. Workers give a slot back (and
/// wake the scheduler) when they finish a batch.
#[derive(Debug)]
pub(crate) struct Slots {
    busy: AtomicUsize,
    capacity: usize,
    notify: Notify,
}

impl Slots {
    /// `capacity` slots, one per worker.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicUsize::new(0),
            capacity,
            notify: Notify::new(),
        })
    }

    /// Slots in all (CPU workers).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots taken now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// The scheduler hands a CPU worker a batch.
    pub fn take(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    /// Called by a worker after a batch: frees its slot and wakes the scheduler.
    pub fn release(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// Wakes the scheduler (the GPU worker finished a batch or became healthy again, or an
    /// alarm fired).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Completes at the next wake-up (or at once when one is pending).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_busy_workers() {
        let s = Slots::new(2);
        assert_eq!((s.capacity(), s.busy()), (2, 0));
        s.take();
        s.take();
        assert_eq!(s.busy(), 2);
        s.release();
        assert_eq!(s.busy(), 1);
    }
}
