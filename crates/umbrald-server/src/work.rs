//! The units of work that flow from a request stream through the queue to the workers, and
//! the per-request state that gathers their results.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;
use umbrald_core::{Engine, ItemError, VerifiedKeyFrag};
use umbrald_proto::{ErrorCode, ItemResult, Policy};

use umbrald_scheduling::QueueEntry;

/// One capsule to re-encrypt: what the batcher queues and a worker computes.
#[derive(Debug)]
pub(crate) struct WorkItem {
    /// The capsule bytes as received (parsed on the worker).
    pub capsule: Vec<u8>,
    /// The policy the item names, shared by all items that name it.
    pub policy: Arc<Policy>,
    /// The policy's kfrag when it was authenticated before queueing (NuCypher requests, whose
    /// kfrag is decrypted and checked once per request); `None` for native requests, whose
    /// `policy` the worker verifies.
    pub preverified: Option<Arc<VerifiedKeyFrag>>,
    /// The request this item belongs to.
    pub request: Arc<RequestState>,
    /// The item's position in its request.
    pub index: usize,
    /// Whether this item's outcome was reported (so that dropping it needs no lock).
    reported: AtomicBool,
}

impl QueueEntry for WorkItem {
    fn priority(&self) -> u8 {
        self.request.priority
    }

    fn deadline(&self) -> Option<Instant> {
        self.request.deadline
    }

    fn is_cancelled(&self) -> bool {
        self.request.is_cancelled()
    }
}

/// A safety net: an item dropped before anyone reported its outcome (a path that should not
/// exist) is answered `internal`, so that its request never waits forever. Dropping an item
/// whose outcome was reported is a no-op.
impl Drop for WorkItem {
    fn drop(&mut self) {
        if !*self.reported.get_mut() && !self.request.is_cancelled() {
            self.request.complete(
                self.index,
                ItemResult::err(ErrorCode::Internal, "item lost"),
            );
        }
    }
}

impl WorkItem {
    /// Item `index` of `request`: `capsule` under `policy` (`preverified`: its kfrag, when
    /// authenticated before queueing).
    pub fn new(
        capsule: Vec<u8>,
        policy: Arc<Policy>,
        preverified: Option<Arc<VerifiedKeyFrag>>,
        request: Arc<RequestState>,
        index: usize,
    ) -> Self {
        Self {
            capsule,
            policy,
            preverified,
            request,
            index,
            reported: AtomicBool::new(false),
        }
    }

    /// The item's verified kfrag: the one authenticated before queueing, else `policy`
    /// verified by `engine` (cached there).
    pub fn verified_policy(&self, engine: &Engine) -> Result<Arc<VerifiedKeyFrag>, ItemError> {
        if let Some(kfrag) = &self.preverified {
            return Ok(kfrag.clone());
        }
        let policy = &self.policy;
        engine.verify_policy(
            &policy.kfrag,
            &policy.delegating_pk,
            &policy.receiving_pk,
            &policy.verifying_pk,
        )
    }

    /// Reports this item's outcome to its request.
    pub fn complete(&self, result: ItemResult) {
        self.reported.store(true, Ordering::Relaxed);
        self.request.complete(self.index, result);
    }

    /// Reports a failure of this item.
    pub fn fail(&self, code: ErrorCode, message: &str) {
        self.complete(ItemResult::err(code, message));
    }
}

/// Gathers the results of one request's items, which may be computed in several batches by
/// several workers, and hands them to the waiting stream task when the last one arrives.
#[derive(Debug)]
pub(crate) struct RequestState {
    priority: u8,
    deadline: Option<Instant>,
    compact_cfrags: bool,
    cancelled: AtomicBool,
    remaining: AtomicUsize,
    results: Mutex<Vec<Option<ItemResult>>>,
    done: Mutex<Option<oneshot::Sender<Vec<ItemResult>>>>,
}

impl RequestState {
    /// State for a request of `items` items (at least 1), and the receiver that yields all of
    /// their results, in item order, once every item is complete. `compact_cfrags`: answer
    /// cfrags as their capsule-specific parts ([`ItemResult::ok_parts`]).
    pub fn new(
        items: usize,
        priority: u8,
        deadline: Option<Instant>,
        compact_cfrags: bool,
    ) -> (Arc<Self>, oneshot::Receiver<Vec<ItemResult>>) {
        let (tx, rx) = oneshot::channel();
        let state = Self {
            priority,
            deadline,
            compact_cfrags,
            cancelled: AtomicBool::new(false),
            remaining: AtomicUsize::new(items),
            results: Mutex::new(vec![None; items]),
            done: Mutex::new(Some(tx)),
        };
        (Arc::new(state), rx)
    }

    /// Whether the request asked for cfrags as their capsule-specific parts.
    pub fn compact_cfrags(&self) -> bool {
        self.compact_cfrags
    }

    /// Whether the request was answered already, so its items need no work.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Marks the request answered (deadline passed, client gone): queued items are dropped.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Records item `index`'s result; the last one sends all results to the stream task.
    /// A second result for the same index is ignored.
    pub fn complete(&self, index: usize, result: ItemResult) {
        self.complete_many(std::iter::once((index, result)));
    }

    /// Records several items' results under one lock (see [`RequestState::complete`]).
    pub fn complete_many(&self, results: impl IntoIterator<Item = (usize, ItemResult)>) {
        let mut filled = 0;
        {
            let mut slots = lock(&self.results);
            for (index, result) in results {
                if let Some(slot @ None) = slots.get_mut(index) {
                    *slot = Some(result);
                    filled += 1;
                }
            }
        }
        if filled > 0 && self.remaining.fetch_sub(filled, Ordering::AcqRel) == filled {
            let results: Vec<ItemResult> = std::mem::take(&mut *lock(&self.results))
                .into_iter()
                .map(|r| r.unwrap_or_else(|| ItemResult::err(ErrorCode::Internal, "lost item")))
                .collect();
            if let Some(tx) = lock(&self.done).take() {
                // The stream task may have given up (deadline, shutdown): nothing to do then.
                let _ = tx.send(results);
            }
        }
    }
}

/// Reports each item's result to its request, one lock per run of consecutive items of the
/// same request (a request's items are queued together, so a batch holds few long runs).
pub(crate) fn complete_in_runs<'a>(
    outcomes: &mut impl Iterator<Item = (&'a WorkItem, ItemResult)>,
) {
    let mut outcomes = outcomes.peekable();
    while let Some((first, result)) = outcomes.next() {
        let request = &first.request;
        first.reported.store(true, Ordering::Relaxed);
        let same_request = std::iter::from_fn(|| {
            let (item, result) =
                outcomes.next_if(|(next, _)| Arc::ptr_eq(&next.request, request))?;
            item.reported.store(true, Ordering::Relaxed);
            Some((item.index, result))
        });
        request.complete_many(std::iter::once((first.index, result)).chain(same_request));
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the data is a plain
/// result list, valid at every point).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_arrive_in_item_order_after_the_last_completion() {
        let (state, mut rx) = RequestState::new(3, 0, None, false);
        state.complete(2, ItemResult::ok(vec![2]));
        state.complete(0, ItemResult::ok(vec![0]));
        assert!(rx.try_recv().is_err(), "not complete yet");
        state.complete(0, ItemResult::ok(vec![9])); // duplicate: ignored
        state.complete(7, ItemResult::ok(vec![9])); // out of range: ignored
        assert!(rx.try_recv().is_err(), "still not complete");
        state.complete(1, ItemResult::err(ErrorCode::InvalidCapsule, "bad"));
        let results = rx.try_recv().expect("complete");
        assert_eq!(results[0], ItemResult::ok(vec![0]));
        assert_eq!(
            results[1].error.as_ref().map(|e| e.code.as_str()),
            Some("invalid_capsule")
        );
        assert_eq!(results[2], ItemResult::ok(vec![2]));
    }

    /// A policy with no keys (the tests here never verify it).
    fn empty_policy() -> Arc<Policy> {
        Arc::new(Policy {
            kfrag: vec![],
            delegating_pk: vec![],
            receiving_pk: vec![],
            verifying_pk: vec![],
        })
    }

    /// Results handed over in runs reach the right request and slot, whatever the order of the
    /// items: runs of one request, interleaved requests, a request split by another.
    #[test]
    fn results_in_runs_reach_their_requests_in_item_order() {
        let policy = empty_policy();
        let (a, mut rx_a) = RequestState::new(3, 0, None, false);
        let (b, mut rx_b) = RequestState::new(3, 0, None, false);
        let item = |r: &Arc<RequestState>, index| {
            WorkItem::new(vec![], policy.clone(), None, r.clone(), index)
        };
        let items = [
            item(&a, 2),
            item(&a, 0),
            item(&b, 1),
            item(&a, 1),
            item(&b, 0),
            item(&b, 2),
        ];
        let mut outcomes = items.iter().map(|w| {
            let tag = if Arc::ptr_eq(&w.request, &a) { 10 } else { 20 };
            (w, ItemResult::ok(vec![tag + w.index as u8]))
        });
        complete_in_runs(&mut outcomes);
        let got_a = rx_a.try_recv().expect("request a complete");
        let got_b = rx_b.try_recv().expect("request b complete");
        let want = |tag: u8| {
            (0..3)
                .map(|i| ItemResult::ok(vec![tag + i]))
                .collect::<Vec<_>>()
        };
        assert_eq!((got_a, got_b), (want(10), want(20)));
        // Every item was reported: dropping them answers nothing twice (and takes no lock).
        assert!(items.iter().all(|w| w.reported.load(Ordering::Relaxed)));
    }

    #[test]
    fn cancel_is_visible_to_queue_entries() {
        let (state, _rx) = RequestState::new(1, 4, None, false);
        let policy = empty_policy();
        let item = WorkItem::new(vec![], policy, None, state.clone(), 0);
        assert_eq!(item.priority(), 4);
        assert!(!item.is_cancelled());
        state.cancel();
        assert!(item.is_cancelled());
    }
}
