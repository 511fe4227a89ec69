//! One batch through the engine, as every worker (CPU or GPU host thread) computes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use umbrald_core::{Engine, ItemError, ReencryptItem, VerifiedKeyFrag};
use umbrald_proto::{ErrorCode, ItemResult, Policy};
use umbrald_scheduling::QueueEntry;

use crate::work::{complete_in_runs, WorkItem};

/// Computes one batch and reports every live item's result to its request.
///
/// Cancelled items are skipped; items past their deadline are answered `deadline_exceeded`
/// without work; each distinct policy is verified once per batch; then one
/// `reencrypt_batch` call covers every item whose policy verified. Returns the number of items
/// in that call.
///
/// Many threads run this at once on items that share one policy and its kfrag, so nothing here
/// writes to shared memory per item: the kfrags are borrowed, not reference-counted, per item,
/// and results go to their requests one run of consecutive items at a time.
pub(crate) fn process<'a>(
    engine: &Engine,
    items: impl Iterator<Item = &'a WorkItem>,
    now: Instant,
) -> usize {
    let mut kfrags = PolicyKfrags::default();
    let mut live: Vec<(&WorkItem, usize)> = Vec::new();
    for item in items {
        if item.request.is_cancelled() {
            continue;
        }
        if item.request_deadline_passed(now) {
            item.fail(
                ErrorCode::DeadlineExceeded,
                "deadline passed before computation",
            );
            continue;
        }
        match kfrags.index_of(item, engine) {
            Ok(k) => live.push((item, k)),
            Err(e) => item.complete(item_error(&e)),
        }
    }
    if live.is_empty() {
        return 0;
    }
    let inputs: Vec<ReencryptItem<'_>> = live
        .iter()
        .map(|&(item, k)| ReencryptItem {
            capsule: &item.capsule,
            kfrag: &kfrags.verified[k],
        })
        .collect();
    let mut results = engine.reencrypt_batch(&inputs).into_iter();
    drop(inputs);
    let mut outcomes = live.iter().map(|&(item, _)| {
        let result = match results.next() {
            Some(Ok(cfrag)) if item.request.compact_cfrags() => {
                ItemResult::ok_parts(cfrag.to_parts().to_vec())
            }
            Some(Ok(cfrag)) => ItemResult::ok(cfrag.to_bytes().to_vec()),
            Some(Err(e)) => item_error(&e),
            None => ItemResult::err(ErrorCode::Internal, "engine returned too few results"),
        };
        (item, result)
    });
    complete_in_runs(&mut outcomes);
    live.len()
}

/// The verified kfrags of a batch's policies, each verified once: items sharing an
/// `Arc<Policy>` (all items of a request) share an entry.
#[derive(Default)]
struct PolicyKfrags {
    /// Distinct verified kfrags, indexed by the entries below.
    verified: Vec<Arc<VerifiedKeyFrag>>,
    /// Policy (by address) → index into `verified`, or why it failed.
    by_policy: HashMap<*const Policy, Result<usize, ItemError>>,
}

impl PolicyKfrags {
    fn index_of(&mut self, item: &WorkItem, engine: &Engine) -> Result<usize, ItemError> {
        let verified = &mut self.verified;
        self.by_policy
            .entry(Arc::as_ptr(&item.policy))
            .or_insert_with(|| {
                item.verified_policy(engine).map(|kfrag| {
                    verified.push(kfrag);
                    verified.len() - 1
                })
            })
            .clone()
    }
}

fn item_error(e: &ItemError) -> ItemResult {
    ItemResult::err(e.code(), e.to_string())
}

impl WorkItem {
    fn request_deadline_passed(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| d <= now)
    }
}
