//! A backend that re-encrypts whole capsules in one call (`EcBackend::reencrypt_capsules`, as
//! the GPU backend does): the engine re-checks every capsule it rejects, so a wrong rejection
//! costs time, never a cfrag, and takes the step-by-step calls when it declines. And the CPU
//! reference of a cfrag's parts that such answers are audited against.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{capsule_bytes, items_for, Policy};
use k256::Scalar;
use umbrald_core::backend::{BackendError, CapsuleInput, CapsuleOutcome, CpuBackend, EcBackend};
use umbrald_core::curve::Affine;
use umbrald_core::{cfrag_parts_on_cpu, reencrypt_capsule_on_cpu, Engine, ItemError};

/// The CPU reference equals the parts of the cfrag the CPU engine makes with the same nonce
/// (checked through umbral-pre by the one-call tests below); here its shape: the identity (a zero scalar) gives none.
#[test]
fn cpu_parts_refuse_a_zero_scalar() {
    let g = Affine::from_k256(&k256::ProjectivePoint::GENERATOR).expect("G");
    let u1 = g.to_compressed();
    assert!(cfrag_parts_on_cpu(&g, &g, &[Scalar::ONE, Scalar::from(2u64)], &u1).is_some());
    assert!(cfrag_parts_on_cpu(&g, &g, &[Scalar::ZERO, Scalar::ONE], &u1).is_none());
    assert!(cfrag_parts_on_cpu(&g, &g, &[Scalar::ONE, Scalar::ZERO], &u1).is_none());
}

/// How the one-call backend answers.
#[derive(Clone, Copy, PartialEq)]
enum OneCall {
    /// As the CPU reference does.
    Right,
    /// Every other capsule rejected although valid (a wrong device): re-checked and served.
    RejectsGoodOnes,
    /// Declines: the engine takes the separate calls.
    Declines,
}

/// The CPU backend, plus `reencrypt_capsules` answered with `reencrypt_capsule_on_cpu`.
struct OneCallBackend {
    cpu: CpuBackend,
    answer: OneCall,
    calls: AtomicUsize,
    capsules_seen: AtomicUsize,
}

impl EcBackend for OneCallBackend {
    fn name(&self) -> &'static str {
        "one-call"
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

    fn offers_reencrypt_capsules(&self) -> bool {
        true
    }

    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<CapsuleOutcome>, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.capsules_seen
            .fetch_add(capsules.len(), Ordering::Relaxed);
        assert_eq!(capsules.len(), scalars.len());
        match self.answer {
            OneCall::Declines => Err(BackendError::NotOffered("declined")),
            OneCall::Right => Ok(capsules
                .iter()
                .zip(scalars)
                .map(|(c, k)| reencrypt_capsule_on_cpu(c, k))
                .collect()),
            OneCall::RejectsGoodOnes => Ok(capsules
                .iter()
                .zip(scalars)
                .enumerate()
                .map(|(j, (c, k))| match j % 2 {
                    0 => CapsuleOutcome::Rejected,
                    _ => reencrypt_capsule_on_cpu(c, k),
                })
                .collect()),
        }
    }
}

/// Runs a batch of 9 with `tampered` capsules (s changed) and `off_curve` ones (E's x with no
/// point); returns the backend's calls and the capsules it saw.
fn run_one_call(answer: OneCall, tampered: &[usize], off_curve: &[usize]) -> (usize, usize) {
    let backend = std::sync::Arc::new(OneCallBackend {
        cpu: CpuBackend::new(),
        answer,
        calls: AtomicUsize::new(0),
        capsules_seen: AtomicUsize::new(0),
    });
    let engine = Engine::new(backend.clone());
    let policy = Policy::new(2, 3);
    let kfrag = policy.verified(&engine, 2);
    let encrypted: Vec<_> = (0..9).map(|i| policy.encrypt(&[i as u8; 6])).collect();
    let mut capsules: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
    for &i in tampered {
        capsules[i][104] ^= 1;
    }
    for &i in off_curve {
        // x = 5: 5³ + 7 = 132 is not a square mod p.
        capsules[i][4..36].fill(0);
        capsules[i][35] = 5;
    }
    let results = engine.reencrypt_batch(&items_for(&capsules, &kfrag));
    for (i, result) in results.iter().enumerate() {
        if tampered.contains(&i) {
            assert_eq!(result, &Err(ItemError::CapsuleCheckFailed), "item {i}");
        } else if off_curve.contains(&i) {
            assert!(
                matches!(result, Err(ItemError::InvalidCapsule(e)) if e.to_string().contains("not on the curve")),
                "item {i}: {result:?}"
            );
        } else {
            let cfrag = result.as_ref().expect("good item");
            policy.check_cfrag(&encrypted[i].0, &cfrag.to_bytes());
        }
    }
    (
        backend.calls.load(Ordering::Relaxed),
        backend.capsules_seen.load(Ordering::Relaxed),
    )
}

#[test]
fn one_call_reencrypts_and_rejects_exactly_the_bad_capsules() {
    assert_eq!(run_one_call(OneCall::Right, &[], &[]), (1, 9));
    assert_eq!(run_one_call(OneCall::Right, &[0, 4], &[7]), (1, 9));
    // A backend that rejects valid capsules costs time, never a cfrag.
    assert_eq!(run_one_call(OneCall::RejectsGoodOnes, &[3], &[8]), (1, 9));
    // Declined: the separate calls serve, with the same answers.
    assert_eq!(run_one_call(OneCall::Declines, &[1], &[2]), (1, 9));
}

#[test]
fn unparsable_capsules_never_reach_the_one_call() {
    let backend = std::sync::Arc::new(OneCallBackend {
        cpu: CpuBackend::new(),
        answer: OneCall::Right,
        calls: AtomicUsize::new(0),
        capsules_seen: AtomicUsize::new(0),
    });
    let engine = Engine::new(backend.clone());
    let policy = Policy::new(2, 3);
    let kfrag = policy.verified(&engine, 0);
    let mut capsules: Vec<Vec<u8>> = (0..6)
        .map(|i| capsule_bytes(&policy.encrypt(&[i; 4]).0))
        .collect();
    capsules[1].truncate(50);
    capsules[4] = vec![0xc1];
    let results = engine.reencrypt_batch(&items_for(&capsules, &kfrag));
    assert!(matches!(results[1], Err(ItemError::InvalidCapsule(_))));
    assert!(matches!(results[4], Err(ItemError::InvalidCapsule(_))));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(backend.capsules_seen.load(Ordering::Relaxed), 4);
}
