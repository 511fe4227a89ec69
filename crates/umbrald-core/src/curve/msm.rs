//! Variable-time multi-scalar multiplication (Pippenger's bucket method with GLV).
//!
//! Used only on public data: checking the capsule equations `s·G = V + h·E` of a whole batch
//! at once with a random linear combination. The random coefficients are chosen by the
//! verifier and need no secrecy beyond the batch they check.

use k256::Scalar;

use super::glv;
use super::{Affine, Jacobian};

/// `Σ kᵢ·Pᵢ`, or `None` for the identity. Variable time: for public inputs only.
pub fn msm_vartime(points: &[Affine], scalars: &[Scalar]) -> Option<Affine> {
    let beta = glv::beta();
    // Split every scalar with GLV into two signed halves below 2¹²⁸.
    let mut terms: Vec<(Affine, u128)> = Vec::with_capacity(2 * points.len());
    for (p, k) in points.iter().zip(scalars) {
        if k.to_bytes()[..16].iter().all(|&b| b == 0) {
            // Already below 2¹²⁸ (e.g. a random 128-bit coefficient): no split needed.
            let magnitude = glv::low_u128(k);
            if magnitude != 0 {
                terms.push((*p, magnitude));
            }
            continue;
        }
        let (r1, r2) = glv::decompose(k);
        for (r, q) in [
            (r1, *p),
            (
                r2,
                Affine {
                    x: p.x.mul(&beta).normalize(),
                    y: p.y,
                },
            ),
        ] {
            let (magnitude, negative) = glv::half_magnitude_vartime(&r);
            if magnitude != 0 {
                terms.push((if negative { q.neg() } else { q }, magnitude));
            }
        }
    }
    let c = window_bits(terms.len());
    let buckets_len = 1usize << (c - 1);
    let windows = 129usize.div_ceil(c);
    // Signed digits in [−2^(c−1), 2^(c−1)] for every term, least significant window first.
    let digits: Vec<Vec<i32>> = terms
        .iter()
        .map(|(_, k)| signed_digits(*k, c, windows))
        .collect();

    let mut result: Option<Jacobian> = None;
    let mut buckets: Vec<Option<Jacobian>> = vec![None; buckets_len];
    for w in (0..windows).rev() {
        if let Some(r) = result.as_mut() {
            for _ in 0..c {
                *r = r.double();
            }
        }
        buckets.iter_mut().for_each(|b| *b = None);
        for ((point, _), d) in terms.iter().zip(&digits) {
            let d = d[w];
            if d == 0 {
                continue;
            }
            let q = if d < 0 { point.neg() } else { *point };
            let slot = &mut buckets[(d.unsigned_abs() - 1) as usize];
            *slot = add_affine_vartime(slot.as_ref(), &q);
        }
        let mut running: Option<Jacobian> = None;
        let mut total: Option<Jacobian> = None;
        for bucket in buckets.iter().rev() {
            if let Some(b) = bucket {
                running = add_vartime(running.as_ref(), b);
            }
            if let Some(r) = &running {
                total = add_vartime(total.as_ref(), r);
            }
        }
        if let Some(t) = total {
            result = add_vartime(result.as_ref(), &t);
        }
    }
    result.and_then(|r| super::batch::normalize_all(&[r])[0])
}

fn window_bits(terms: usize) -> usize {
    match terms {
        0..=8 => 3,
        9..=32 => 4,
        33..=128 => 6,
        129..=512 => 7,
        513..=2048 => 8,
        _ => 10,
    }
}

fn signed_digits(mut k: u128, c: usize, windows: usize) -> Vec<i32> {
    let radix = 1i64 << c;
    let half = radix / 2;
    let mut carry = 0i64;
    let mut out = Vec::with_capacity(windows);
    for _ in 0..windows {
        let mut d = (k & (radix as u128 - 1)) as i64 + carry;
        k >>= c;
        carry = 0;
        if d > half {
            d -= radix;
            carry = 1;
        }
        out.push(d as i32);
    }
    out
}

/// `a + q` handling every case by branching (variable time).
pub(crate) fn add_affine_vartime(a: Option<&Jacobian>, q: &Affine) -> Option<Jacobian> {
    let Some(a) = a else {
        return Some(Jacobian::from_affine(q));
    };
    let (sum, exceptional) = a.add_affine(q);
    if !bool::from(exceptional) {
        return Some(sum);
    }
    // Equal x: either a = q (double) or a = −q (identity).
    let z2 = a.z.square();
    let s2 = q.y.mul(&z2).mul(&a.z);
    if bool::from(s2.sub(&a.y).is_zero()) {
        Some(a.double())
    } else {
        None
    }
}

/// `a + b` for Jacobian points, handling every case by branching (variable time).
pub(crate) fn add_vartime(a: Option<&Jacobian>, b: &Jacobian) -> Option<Jacobian> {
    let Some(a) = a else { return Some(*b) };
    // add-2007-bl
    let z1z1 = a.z.square();
    let z2z2 = b.z.square();
    let u1 = a.x.mul(&z2z2);
    let u2 = b.x.mul(&z1z1);
    let s1 = a.y.mul(&b.z).mul(&z2z2);
    let s2 = b.y.mul(&a.z).mul(&z1z1);
    let h = u2.sub(&u1);
    let r = s2.sub(&s1);
    if bool::from(h.is_zero()) {
        return if bool::from(r.is_zero()) {
            Some(a.double())
        } else {
            None
        };
    }
    let h2 = h.square();
    let h3 = h2.mul(&h);
    let u1h2 = u1.mul(&h2);
    let x3 = r.square().sub(&h3).sub(&u1h2.double());
    let y3 = r.mul(&u1h2.sub(&x3)).sub(&s1.mul(&h3));
    let z3 = a.z.mul(&b.z).mul(&h);
    Some(Jacobian {
        x: x3,
        y: y3,
        z: z3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;
    use k256::ProjectivePoint;
    use rand::RngCore;

    #[test]
    fn matches_naive_sum() {
        let mut rng = rand::thread_rng();
        for n in [1usize, 2, 5, 40, 300] {
            let points: Vec<Affine> = (0..n)
                .map(|_| {
                    Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::random(&mut rng)))
                        .expect("finite")
                })
                .collect();
            // Full-size scalars and short (< 2¹²⁸) ones, which skip the GLV split.
            let scalars: Vec<Scalar> = (0..n)
                .map(|i| {
                    if i % 3 == 0 {
                        Scalar::from(u64::MAX) * Scalar::from(rng.next_u64())
                    } else {
                        Scalar::random(&mut rng)
                    }
                })
                .collect();
            let want = points
                .iter()
                .zip(&scalars)
                .fold(ProjectivePoint::IDENTITY, |acc, (p, k)| {
                    acc + p.to_k256() * k
                });
            assert_eq!(
                msm_vartime(&points, &scalars),
                Affine::from_k256(&want),
                "n = {n}"
            );
        }
    }

    #[test]
    fn cancelling_terms_give_identity() {
        let p = Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::from(77u64))).expect("p");
        let k = Scalar::from(12345u64);
        assert_eq!(msm_vartime(&[p, p], &[k, -k]), None);
        assert_eq!(msm_vartime(&[p, p.neg()], &[k, k]), None);
    }
}
