//! A backend that asks for overlapping calls (`EcBackend::overlaps_calls`, as the GPU backend
//! can): the engine issues the capsule check, `mul_pairs` and `mul_u` at once, and the cfrags
//! still verify under umbral-pre. A backend that does not ask gets them one after the other.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{capsule_bytes, check_products_k256, items_for, Policy};
use k256::Scalar;
use umbrald_core::backend::{BackendError, CpuBackend, EcBackend};
use umbrald_core::curve::Affine;
use umbrald_core::Engine;

/// The CPU backend offering the capsule-check products, where each of its three calls waits
/// (up to a generous bound) until the other two are in flight too, and records whether that
/// happened.
struct Rendezvous {
    cpu: CpuBackend,
    overlap: bool,
    /// Calls in `meet` now.
    started: Mutex<usize>,
    cv: Condvar,
    met: AtomicBool,
    calls: AtomicUsize,
}

impl Rendezvous {
    fn new(overlap: bool) -> Self {
        Self {
            cpu: CpuBackend::new(),
            overlap,
            started: Mutex::new(0),
            cv: Condvar::new(),
            met: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        }
    }

    /// Counts this call in and waits for all three to be in flight at the same time; records
    /// if that happened.
    fn meet(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut in_flight = self.started.lock().expect("lock");
        *in_flight += 1;
        if *in_flight >= 3 {
            self.met.store(true, Ordering::Relaxed);
            self.cv.notify_all();
        }
        // Sequential calls never meet: the wait then ends at the bound.
        let wait = if self.overlap {
            Duration::from_secs(20)
        } else {
            Duration::from_millis(1)
        };
        let (mut in_flight, _) = self
            .cv
            .wait_timeout_while(in_flight, wait, |_| !self.met.load(Ordering::Relaxed))
            .expect("lock");
        *in_flight -= 1;
    }
}

impl EcBackend for Rendezvous {
    fn name(&self) -> &'static str {
        "rendezvous"
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        self.meet();
        self.cpu.mul_pairs(bases, scalars)
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        self.meet();
        self.cpu.mul_u(scalars)
    }

    fn capsule_check_products(
        &self,
        es: &[Affine],
        hs: &[Scalar],
        ss: &[Scalar],
    ) -> Option<Vec<[Option<Affine>; 2]>> {
        self.meet();
        Some(check_products_k256(es, hs, ss))
    }

    fn overlaps_calls(&self) -> bool {
        self.overlap
    }
}

/// Re-encrypts a batch of 40 (past the small-batch CPU path) through `backend`; every cfrag
/// must verify and decrypt under umbral-pre.
fn run(backend: Arc<Rendezvous>) {
    let engine = Engine::new(backend.clone());
    let policy = Policy::new(2, 3);
    let kfrag = policy.verified(&engine, 0);
    let encrypted: Vec<_> = (0..40).map(|i| policy.encrypt(&[i as u8; 7])).collect();
    let capsules: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
    let results = engine.reencrypt_batch(&items_for(&capsules, &kfrag));
    for (i, result) in results.iter().enumerate() {
        let cfrag = result.as_ref().expect("good item");
        policy.check_cfrag(&encrypted[i].0, &cfrag.to_bytes());
    }
    assert_eq!(backend.calls.load(Ordering::Relaxed), 3);
}

#[test]
fn overlapping_backend_gets_all_three_calls_at_once() {
    let backend = Arc::new(Rendezvous::new(true));
    run(backend.clone());
    assert!(backend.met.load(Ordering::Relaxed), "calls did not overlap");
}

#[test]
fn other_backends_get_the_calls_one_after_the_other() {
    let backend = Arc::new(Rendezvous::new(false));
    run(backend.clone());
    assert!(!backend.met.load(Ordering::Relaxed), "calls overlapped");
}
