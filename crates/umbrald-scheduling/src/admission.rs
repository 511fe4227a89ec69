//! Admission: whether a request's items fit in the queue, decided at once by the stream task
//! without a round trip to the scheduler.
//!
//! An atomic count of queued items is reserved by the stream task before it submits and
//! released by the scheduler when items leave the queue; a request that does not fit is
//! answered `overloaded`. The count is never below the batcher's length, so the batcher itself
//! never overflows.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items queued or on their way into the queue, against the queue's capacity.
#[derive(Debug)]
pub struct Admission {
    queued: AtomicUsize,
    capacity: usize,
}

impl Admission {
    /// An empty queue of `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self::with_queued(0, capacity)
    }

    /// A queue already holding `queued` items (tests).
    pub fn with_queued(queued: usize, capacity: usize) -> Self {
        Self {
            queued: AtomicUsize::new(queued),
            capacity,
        }
    }

    /// Reserves room for `n` items, all or none: `false` when they do not fit now.
    pub fn try_reserve(&self, n: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                q.checked_add(n).filter(|total| *total <= self.capacity)
            })
            .is_ok()
    }

    /// Gives back the room of `n` items that left the queue (or never entered it).
    pub fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    /// Items counted now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_all_or_nothing_and_bounded() {
        let a = Admission::new(10);
        assert!(a.try_reserve(6));
        assert!(!a.try_reserve(5));
        assert!(a.try_reserve(4));
        assert!(!a.try_reserve(1));
        a.release(3);
        assert!(a.try_reserve(3));
        assert_eq!(a.queued(), 10);
        assert!(!a.try_reserve(usize::MAX), "no overflow");
    }
}
