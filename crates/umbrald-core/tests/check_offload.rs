//! The capsule check and the point decompression with a backend that offers them
//! (`EcBackend::capsule_check_products`, `EcBackend::decompress_points`, as the GPU backend
//! does): bad capsules are still rejected, good ones still verify under umbral-pre, and wrong
//! answers from the backend never reject a good capsule nor accept a bad one.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{capsule_bytes, check_products_k256, items_for, Policy};
use k256::{ProjectivePoint, Scalar};
use umbrald_core::backend::{BackendError, CpuBackend, EcBackend};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::{Engine, ItemError};

/// What the test backend does with the check products.
#[derive(Clone, Copy, PartialEq)]
enum Offer {
    /// Correct `h·E` and `s·G`.
    Correct,
    /// `s·G` replaced by `G` for every capsule: every comparison fails.
    Wrong,
    /// One result too few.
    Short,
}

/// The CPU backend, plus the check products computed with k256 and decompression.
struct Offering {
    cpu: CpuBackend,
    offer: Offer,
    decompress: Option<Offer>,
    calls: AtomicUsize,
    decompress_calls: AtomicUsize,
    /// What `checks_outputs` claims (the engine then skips its own on-curve check of the
    /// decompressed points, not the comparison of `x` and the parity).
    checks_outputs: bool,
}

impl EcBackend for Offering {
    fn name(&self) -> &'static str {
        "offering"
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        self.cpu.mul_pairs(bases, scalars)
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        self.cpu.mul_u(scalars)
    }

    fn capsule_check_products(
        &self,
        es: &[Affine],
        hs: &[Scalar],
        ss: &[Scalar],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut out = check_products_k256(es, hs, ss);
        if self.offer == Offer::Wrong {
            let g = Affine::from_k256(&ProjectivePoint::GENERATOR);
            out.iter_mut().for_each(|[_, sg]| *sg = g);
        }
        if self.offer == Offer::Short {
            out.pop();
        }
        Ok(out)
    }

    fn decompress_points(
        &self,
        points: &[CompressedPoint],
    ) -> Result<Vec<Option<Affine>>, BackendError> {
        let offer = self
            .decompress
            .ok_or(BackendError::NotOffered("decompression"))?;
        self.decompress_calls.fetch_add(1, Ordering::Relaxed);
        let mut out: Vec<Option<Affine>> = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let right = p.decompress_vartime().ok();
                match offer {
                    // Every other answer wrong: the negation (wrong parity), or nothing.
                    Offer::Wrong if i % 2 == 0 => right.map(|q| q.neg()),
                    Offer::Wrong => None,
                    _ => right,
                }
            })
            .collect();
        if offer == Offer::Short {
            out.pop();
        }
        Ok(out)
    }

    fn checks_outputs(&self) -> bool {
        self.checks_outputs
    }
}

fn run(offer: Offer, size: usize, bad: &[usize]) -> usize {
    run_with(offer, None, size, bad).0
}

/// Runs a batch; returns the calls of the check products and of the decompression.
fn run_with(offer: Offer, decompress: Option<Offer>, size: usize, bad: &[usize]) -> (usize, usize) {
    run_on(offering(offer, decompress, false), size, bad)
}

fn offering(offer: Offer, decompress: Option<Offer>, checks_outputs: bool) -> Arc<Offering> {
    Arc::new(Offering {
        cpu: CpuBackend::new(),
        offer,
        decompress,
        calls: AtomicUsize::new(0),
        decompress_calls: AtomicUsize::new(0),
        checks_outputs,
    })
}

/// [`run_with`] on a given backend.
fn run_on(backend: Arc<Offering>, size: usize, bad: &[usize]) -> (usize, usize) {
    let engine = Engine::new(backend.clone());
    let policy = Policy::new(2, 3);
    let kfrag = policy.verified(&engine, 0);
    let encrypted: Vec<_> = (0..size).map(|i| policy.encrypt(&[i as u8; 9])).collect();
    let mut capsules: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
    for &i in bad {
        capsules[i][104] ^= 1; // s tampered: the equation fails
    }
    let items = items_for(&capsules, &kfrag);
    let results = engine.reencrypt_batch(&items);
    for (i, result) in results.iter().enumerate() {
        if bad.contains(&i) {
            assert_eq!(result, &Err(ItemError::CapsuleCheckFailed), "item {i}");
        } else {
            let cfrag = result.as_ref().expect("good item");
            policy.check_cfrag(&encrypted[i].0, &cfrag.to_bytes());
        }
    }
    (
        backend.calls.load(Ordering::Relaxed),
        backend.decompress_calls.load(Ordering::Relaxed),
    )
}

#[test]
fn offered_products_check_every_capsule() {
    assert_eq!(run(Offer::Correct, 9, &[]), 1);
    assert_eq!(run(Offer::Correct, 9, &[0, 4, 8]), 1);
    assert_eq!(run(Offer::Correct, 5, &[0, 1, 2, 3, 4]), 1);
}

#[test]
fn wrong_or_short_products_never_reject_a_good_capsule() {
    assert_eq!(run(Offer::Wrong, 8, &[]), 1);
    assert_eq!(run(Offer::Wrong, 8, &[3]), 1);
    assert_eq!(run(Offer::Short, 8, &[2, 7]), 1);
}

#[test]
fn offered_decompression_right_or_wrong_gives_the_same_cfrags() {
    for decompress in [Offer::Correct, Offer::Wrong, Offer::Short] {
        assert_eq!(run_with(Offer::Correct, Some(decompress), 9, &[]), (1, 1));
        assert_eq!(run_with(Offer::Wrong, Some(decompress), 8, &[0, 5]), (1, 1));
    }
}

/// A backend that checks its outputs is spared only the on-curve check: answers of the wrong
/// parity (or none) are still decompressed on the host.
#[test]
fn checked_decompression_is_still_compared_with_the_compressed_points() {
    for decompress in [Offer::Correct, Offer::Wrong, Offer::Short] {
        let backend = offering(Offer::Correct, Some(decompress), true);
        assert_eq!(run_on(backend, 9, &[1, 6]), (1, 1));
    }
}

#[test]
fn points_off_the_curve_are_rejected_with_offered_decompression() {
    let backend = offering(Offer::Correct, Some(Offer::Correct), false);
    let engine = Engine::new(backend.clone());
    let policy = Policy::new(2, 3);
    let kfrag = policy.verified(&engine, 0);
    let mut capsules: Vec<Vec<u8>> = (0..6)
        .map(|i| capsule_bytes(&policy.encrypt(&[i; 3]).0))
        .collect();
    // Item 2: E's x replaced by one with no point on the curve (x = 5: 5³ + 7 = 132 is not a
    // square mod p).
    capsules[2][4..36].fill(0);
    capsules[2][35] = 5;
    let items = items_for(&capsules, &kfrag);
    let results = engine.reencrypt_batch(&items);
    assert!(
        matches!(&results[2], Err(ItemError::InvalidCapsule(e)) if e.to_string().contains("not on the curve")),
        "{:?}",
        results[2]
    );
    assert!(results.iter().enumerate().all(|(i, r)| i == 2 || r.is_ok()));
    assert_eq!(backend.decompress_calls.load(Ordering::Relaxed), 1);
}

#[test]
fn small_batches_keep_the_cpu_check() {
    // Below the combined-check size the products are not asked for.
    assert_eq!(run(Offer::Correct, 3, &[1]), 0);
}
