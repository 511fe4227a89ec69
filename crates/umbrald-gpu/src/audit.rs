//! The per-call correctness audit: a few random outputs recomputed on the CPU.
//!
//! Every output is already checked to be a curve point (and the identity exactly for a zero
//! scalar) when it is unpacked; the audit catches results that are valid points but the wrong
//! ones. Indices are drawn fresh for every call, so a fault that hits a fixed fraction `f` of
//! outputs escapes `k` samples with probability `(1 - f)^k` per call, and a persistent fault is
//! caught within a few calls.

use k256::{ProjectivePoint, Scalar};
use rand::seq::index::sample;
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome, CpuBackend, EcBackend};
use umbrald_core::curve::Affine;

use crate::table::FixedBase;

/// Up to `k` distinct random indices below `n`.
pub(crate) fn sample_indices(n: usize, k: usize) -> Vec<usize> {
    sample(&mut rand::thread_rng(), n, k.min(n)).into_vec()
}

/// Checks `out[i]` against the CPU for every `i` in `indices`.
pub(crate) fn check_pairs(
    cpu: &CpuBackend,
    bases: &[Affine],
    scalars: &[[Scalar; 2]],
    out: &[[Option<Affine>; 2]],
    indices: &[usize],
) -> Result<(), String> {
    for &i in indices {
        let want = cpu
            .mul_pairs(&bases[i..=i], &scalars[i..=i])
            .map_err(|e| format!("audit: CPU reference failed: {e}"))?;
        if want.first() != Some(&out[i]) {
            return Err(format!("audit: pair {i} differs from the CPU result"));
        }
    }
    Ok(())
}

/// Checks `out[i] == [scalars[i] * bases[i], None]` (the pair `[k, 0]`) for every `i` in
/// `indices`.
pub(crate) fn check_firsts(
    cpu: &CpuBackend,
    bases: &[Affine],
    scalars: &[Scalar],
    out: &[[Option<Affine>; 2]],
    indices: &[usize],
) -> Result<(), String> {
    for &i in indices {
        let want = cpu
            .mul_pairs(&bases[i..=i], &[[scalars[i], Scalar::ZERO]])
            .map_err(|e| format!("audit: CPU reference failed: {e}"))?;
        if want.first() != Some(&out[i]) {
            return Err(format!("audit: product {i} differs from the CPU result"));
        }
    }
    Ok(())
}

/// Checks `out[i] == scalars[i] * base` for every `i` in `indices`.
pub(crate) fn check_fixed(
    cpu: &CpuBackend,
    base: FixedBase,
    scalars: &[Scalar],
    out: &[Option<Affine>],
    indices: &[usize],
) -> Result<(), String> {
    for &i in indices {
        let want = match base {
            FixedBase::U => cpu
                .mul_u(&scalars[i..=i])
                .map_err(|e| format!("audit: CPU reference failed: {e}"))?
                .first()
                .copied()
                .flatten(),
            FixedBase::G => Affine::from_k256(&(ProjectivePoint::GENERATOR * scalars[i])),
        };
        if want != out[i] {
            return Err(format!("audit: item {i} differs from the CPU result"));
        }
    }
    Ok(())
}

/// Checks every capsule `j` in `indices` of a one-call re-encryption against the CPU's
/// whole re-encryption of it (`umbrald_core::reencrypt_capsule_on_cpu`): the same parts, or
/// both rejecting.
pub(crate) fn check_reenc(
    capsules: &[CapsuleInput],
    scalars: &[[Scalar; 2]],
    out: &[CapsuleOutcome],
    indices: &[usize],
) -> Result<(), String> {
    for &j in indices {
        if umbrald_core::reencrypt_capsule_on_cpu(&capsules[j], &scalars[j]) != out[j] {
            return Err(format!(
                "audit: capsule {j}'s outcome differs from the CPU's"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_distinct_and_bounded() {
        for (n, k) in [(0, 3), (1, 3), (5, 5), (100, 3)] {
            let mut idx = sample_indices(n, k);
            assert_eq!(idx.len(), k.min(n));
            assert!(idx.iter().all(|&i| i < n));
            idx.sort_unstable();
            idx.dedup();
            assert_eq!(idx.len(), k.min(n));
        }
    }
}
