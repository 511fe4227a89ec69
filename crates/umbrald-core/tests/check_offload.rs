//! The capsule check with a backend that offers the equations' products
//! (`EcBackend::capsule_check_products`, as the GPU backend does): bad capsules are still
//! rejected, good ones still verify under umbral-pre, and wrong products from the backend never
//! reject a good capsule (the engine re-checks what the comparison rejects on the CPU).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{capsule_bytes, Policy};
use k256::{ProjectivePoint, Scalar};
use umbrald_core::backend::{BackendError, CpuBackend, EcBackend};
use umbrald_core::curve::Affine;
use umbrald_core::{Engine, ItemError, ReencryptItem};

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

/// The CPU backend, plus the check products computed with k256.
struct Offering {
    cpu: CpuBackend,
    offer: Offer,
    calls: AtomicUsize,
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
    ) -> Option<Vec<[Option<Affine>; 2]>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut out: Vec<[Option<Affine>; 2]> = es
            .iter()
            .zip(hs.iter().zip(ss))
            .map(|(e, (h, s))| {
                let he = Affine::from_k256(&(e.to_k256() * h));
                let sg = match self.offer {
                    Offer::Wrong => Affine::from_k256(&ProjectivePoint::GENERATOR),
                    _ => Affine::from_k256(&(ProjectivePoint::GENERATOR * s)),
                };
                [he, sg]
            })
            .collect();
        if self.offer == Offer::Short {
            out.pop();
        }
        Some(out)
    }
}

fn run(offer: Offer, size: usize, bad: &[usize]) -> usize {
    let backend = Arc::new(Offering {
        cpu: CpuBackend::new(),
        offer,
        calls: AtomicUsize::new(0),
    });
    let engine = Engine::new(backend.clone());
    let policy = Policy::new(2, 3);
    let kfrag = policy.verified(&engine, 0);
    let encrypted: Vec<_> = (0..size).map(|i| policy.encrypt(&[i as u8; 9])).collect();
    let mut capsules: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
    for &i in bad {
        capsules[i][104] ^= 1; // s tampered: the equation fails
    }
    let items: Vec<ReencryptItem<'_>> = capsules
        .iter()
        .map(|c| ReencryptItem {
            capsule: c,
            kfrag: &kfrag,
        })
        .collect();
    let results = engine.reencrypt_batch(&items);
    for (i, result) in results.iter().enumerate() {
        if bad.contains(&i) {
            assert_eq!(result, &Err(ItemError::CapsuleCheckFailed), "item {i}");
        } else {
            let cfrag = result.as_ref().expect("good item");
            policy.check_cfrag(&encrypted[i].0, &cfrag.to_bytes());
        }
    }
    backend.calls.load(Ordering::Relaxed)
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
fn small_batches_keep_the_cpu_check() {
    // Below the combined-check size the products are not asked for.
    assert_eq!(run(Offer::Correct, 3, &[1]), 0);
}
