//! Variable-time evaluation of public equations, one capsule at a time.
//!
//! A capsule's equation `s·G = V + h·E` involves only public values, so it may branch and
//! index on them. Small batches check capsules one by one with the routines here: `h·E` with
//! a width-6 wNAF over the GLV halves of `h` (on the same table of odd multiples the
//! constant-time path uses), `s·G` from the generator's fixed-base tables, and the comparison
//! in Jacobian coordinates, so the check needs no field inversion of its own.

use k256::Scalar;

use super::msm::add_affine_vartime;
use super::varmul::{endo, entry_vartime, OddTable};
use super::{fixed, glv, Affine, Jacobian};

/// wNAF width: digits are odd in `[−31, 31]`, matching a table of 16 odd multiples.
const WNAF_WIDTH: usize = 6;
/// Positions of the wNAF of a value below 2¹²⁸ (a final carry can reach position 129).
const WNAF_LEN: usize = 130;

/// Width-6 non-adjacent form of `k`, least significant position first: every non-zero digit
/// is odd with magnitude at most 31, and any two non-zero digits are at least 6 positions
/// apart.
fn wnaf(k: u128) -> [i8; WNAF_LEN] {
    let bits = |at: usize, count: usize| -> u32 {
        if at >= 128 {
            0
        } else {
            ((k >> at) & ((1u128 << count) - 1)) as u32
        }
    };
    let mut out = [0i8; WNAF_LEN];
    let mut carry = 0u32;
    let mut at = 0;
    while at < WNAF_LEN {
        if bits(at, 1) == carry {
            at += 1;
            continue;
        }
        // The window's low bit plus the carry is odd: take it as a signed odd digit.
        let word = bits(at, WNAF_WIDTH) + carry;
        carry = (word >> (WNAF_WIDTH - 1)) & 1;
        out[at] = (word as i32 - ((carry as i32) << WNAF_WIDTH)) as i8;
        at += WNAF_WIDTH;
    }
    debug_assert_eq!(carry, 0, "a 128-bit value fits in {WNAF_LEN} positions");
    out
}

/// `k·P` from `P`'s table of odd multiples; `None` is the identity. Variable time.
pub fn mul_vartime(table: &OddTable, k: &Scalar) -> Option<Jacobian> {
    let beta = glv::beta();
    let (r1, r2) = glv::decompose(k);
    let halves = [r1, r2].map(|r| {
        let (magnitude, negative) = glv::half_magnitude_vartime(&r);
        (wnaf(magnitude), negative)
    });
    let mut acc: Option<Jacobian> = None;
    for at in (0..WNAF_LEN).rev() {
        if let Some(a) = acc.as_mut() {
            *a = a.double();
        }
        for (half, (digits, negative)) in halves.iter().enumerate() {
            let digit = digits[at];
            if digit == 0 {
                continue;
            }
            let mut q = entry_vartime(table, digit, *negative);
            if half == 1 {
                q = endo(&q, &beta);
            }
            acc = add_affine_vartime(acc.as_ref(), &q);
        }
    }
    acc
}

/// Whether two points (`None` = identity) are equal, compared without inversion.
pub fn same_point_vartime(a: Option<&Jacobian>, b: Option<&Jacobian>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let (az2, bz2) = (a.z.square(), b.z.square());
            a.x.mul(&bz2).eq_vartime(&b.x.mul(&az2))
                && a.y.mul(&bz2).mul(&b.z).eq_vartime(&b.y.mul(&az2).mul(&a.z))
        }
        _ => false,
    }
}

/// Whether `p + q == r` for finite `q` (`None` = identity), all in affine coordinates:
/// variable time, public data, two field multiplications in the common case.
///
/// When `p`, `q` and `−r` have three different x coordinates, `p + q == r` exactly when
/// `−r` lies on the line through `p` and `q`: that line meets the curve in `p`, `q` and
/// `−(p + q)` only, and `−r`, a curve point (the [`Affine`] invariant) with another x than
/// `p` and `q`, can only be the third. Coinciding x coordinates (doubling, inverse points,
/// a result equal to `±p` or `±q`) take the Jacobian addition instead. A corrupted `p` or
/// `r` off the curve passes only by landing exactly on that line (a single value for either
/// coordinate of either point), as the addition formulas it replaces assumed curve points too.
pub fn affine_sum_is_vartime(p: Option<&Affine>, q: &Affine, r: Option<&Affine>) -> bool {
    match (p, r) {
        (None, r) => r.is_some_and(|r| r.eq_vartime(q)),
        (Some(p), None) => p.eq_vartime(&q.neg()),
        (Some(p), Some(r))
            if !p.x.eq_vartime(&q.x) && !r.x.eq_vartime(&p.x) && !r.x.eq_vartime(&q.x) =>
        {
            // det[(p − q), (−r − q)] = (p.y − q.y)(r.x − q.x) + (r.y + q.y)(p.x − q.x).
            let cross = p.y.sub(&q.y).mul(&r.x.sub(&q.x));
            let other = r.y.add(&q.y).mul(&p.x.sub(&q.x));
            cross.add(&other).is_zero_vartime()
        }
        (Some(p), Some(r)) => {
            let sum = add_affine_vartime(Some(&Jacobian::from_affine(p)), q);
            same_point_vartime(Some(&Jacobian::from_affine(r)), sum.as_ref())
        }
    }
}

/// Whether `s·G == V + h·E`, given `E`'s table of odd multiples. Variable time: public data
/// only.
pub fn capsule_equation_vartime(e_table: &OddTable, v: &Affine, s: &Scalar, h: &Scalar) -> bool {
    let lhs = fixed::mul_g_vartime(s);
    let he = mul_vartime(e_table, h);
    let rhs = add_affine_vartime(he.as_ref(), v);
    same_point_vartime(lhs.as_ref(), rhs.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::varmul::build_tables;
    use k256::elliptic_curve::{Field, PrimeField};
    use k256::ProjectivePoint;
    use proptest::prelude::*;

    fn to_affine(p: Option<&Jacobian>) -> Option<Affine> {
        p.and_then(|p| crate::curve::batch::normalize_all(&[*p])[0])
    }

    fn wnaf_value(digits: &[i8; WNAF_LEN]) -> i128 {
        // Σ dᵢ·2ⁱ modulo 2¹²⁸ (the wNAF of a 128-bit value equals it exactly).
        digits.iter().enumerate().rev().fold(0i128, |acc, (_, d)| {
            acc.wrapping_mul(2).wrapping_add(*d as i128)
        })
    }

    fn check_wnaf(k: u128) {
        let digits = wnaf(k);
        let mut last: Option<usize> = None;
        for (at, d) in digits.iter().enumerate() {
            if *d != 0 {
                assert!(d % 2 != 0 && d.abs() <= 31, "digit {d} at {at}");
                if let Some(prev) = last {
                    assert!(at - prev >= WNAF_WIDTH, "digits at {prev} and {at}");
                }
                last = Some(at);
            }
        }
        // Modular reconstruction (mod 2¹²⁸) plus the explicit top positions.
        assert_eq!(wnaf_value(&digits) as u128, k);
    }

    #[test]
    fn wnaf_edge_values() {
        for k in [
            0u128,
            1,
            31,
            32,
            33,
            63,
            64,
            u128::MAX,
            u128::MAX - 1,
            1 << 127,
            (1 << 127) - 1,
            0x5555_5555_5555_5555_5555_5555_5555_5555,
        ] {
            check_wnaf(k);
        }
    }

    #[test]
    fn mul_vartime_matches_k256_on_edge_scalars() {
        let mut rng = rand::thread_rng();
        let p = ProjectivePoint::GENERATOR * Scalar::random(&mut rng);
        let base = Affine::from_k256(&p).expect("finite");
        let table = &build_tables(&[base])[0];
        for k in [
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::from(2u64),
            Scalar::from(31u64),
            Scalar::from(32u64),
            -Scalar::from(32u64),
            Scalar::random(&mut rng),
        ] {
            let got = to_affine(mul_vartime(table, &k).as_ref());
            assert_eq!(got, Affine::from_k256(&(p * k)), "k = {k:?}");
        }
    }

    #[test]
    fn same_point_compares_projective_representations() {
        let p =
            Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::from(7u64))).expect("finite");
        let a = Jacobian::from_affine(&p).double();
        let z = crate::curve::field::Fe::from_u64(12345);
        let (z2, z3) = (z.square(), z.square().mul(&z));
        let b = Jacobian {
            x: a.x.mul(&z2),
            y: a.y.mul(&z3),
            z: a.z.mul(&z),
        };
        assert!(same_point_vartime(Some(&a), Some(&b)));
        let minus_b = Jacobian { y: b.y.neg(), ..b };
        assert!(!same_point_vartime(Some(&a), Some(&minus_b)));
        assert!(!same_point_vartime(Some(&a), None));
        assert!(same_point_vartime(None, None));
    }

    /// `k·G` as an affine point (`None` for the identity).
    fn g_times(k: Scalar) -> Option<Affine> {
        Affine::from_k256(&(ProjectivePoint::GENERATOR * k))
    }

    /// `affine_sum_is_vartime(a·G, b·G, c·G)` against k256's `a + b == c`.
    fn sum_agrees(a: Scalar, b: Scalar, c: Scalar) -> Result<(), TestCaseError> {
        let q = g_times(b).expect("b is not zero");
        let got = affine_sum_is_vartime(g_times(a).as_ref(), &q, g_times(c).as_ref());
        prop_assert_eq!(got, a + b == c, "a = {:?}, b = {:?}, c = {:?}", a, b, c);
        Ok(())
    }

    #[test]
    fn affine_sum_handles_every_coinciding_x() {
        let mut rng = rand::thread_rng();
        let (a, b) = (Scalar::random(&mut rng), Scalar::random(&mut rng));
        // λ·P shares P's y and has another x; -P shares its x.
        let lambda_bytes: [u8; 32] =
            hex::decode("5363ad4cc05c30e0a5261c028812645a122e22ea20816678df02967c1b23bd72")
                .expect("hex")
                .try_into()
                .expect("32 bytes");
        let lambda = Option::<Scalar>::from(Scalar::from_repr(lambda_bytes.into())).expect("λ");
        let cases = [
            (a, b, a + b),
            (a, b, a + b + Scalar::ONE),
            (a, a, a + a),         // doubling
            (a, a, a),             // p == q, r == p
            (-a, a, Scalar::ZERO), // p == −q, r the identity
            (-a, a, a),            // p == −q, r finite
            (Scalar::ZERO, a, a),
            (Scalar::ZERO, a, -a),
            (a, b, a),  // r == p
            (a, b, -a), // r == −p
            (a, b, b),  // r == q
            (a, b, -b), // r == −q
            (a, b, Scalar::ZERO),
            (a, -a - a, -a),          // a + (−2a) == −a: r == −p and the sum is right
            (a, b, lambda * (a + b)), // same y as the sum, another x
        ];
        for (a, b, c) in cases {
            sum_agrees(a, b, c).expect("agrees with k256");
        }
    }

    proptest! {
        #[test]
        fn wnaf_reconstructs(k in any::<u128>()) {
            check_wnaf(k);
        }

        #[test]
        fn mul_vartime_matches_k256(seed in any::<[u8; 32]>(), k in any::<[u8; 32]>()) {
            let base_scalar = Option::<Scalar>::from(
                <Scalar as k256::elliptic_curve::PrimeField>::from_repr(seed.into()),
            )
            .unwrap_or(Scalar::ONE);
            let k = Option::<Scalar>::from(
                <Scalar as k256::elliptic_curve::PrimeField>::from_repr(k.into()),
            )
            .unwrap_or(Scalar::ZERO);
            let p = ProjectivePoint::GENERATOR * base_scalar;
            prop_assume!(p != ProjectivePoint::IDENTITY);
            let base = Affine::from_k256(&p).expect("finite");
            let table = &build_tables(&[base])[0];
            let got = to_affine(mul_vartime(table, &k).as_ref());
            prop_assert_eq!(got, Affine::from_k256(&(p * k)));
            let g = to_affine(fixed::mul_g_vartime(&k).as_ref());
            prop_assert_eq!(g, Affine::from_k256(&(ProjectivePoint::GENERATOR * k)));
        }

        #[test]
        fn affine_sum_matches_k256(a in any::<u64>(), b in 1u64.., flip in any::<bool>(), delta in any::<u8>()) {
            let mut rng = rand::thread_rng();
            let (a, b) = (Scalar::from(a) * Scalar::random(&mut rng), Scalar::from(b));
            let c = if flip { a + b } else { a + b + Scalar::from(u64::from(delta)) };
            sum_agrees(a, b, c)?;
        }

        #[test]
        fn capsule_equation_accepts_valid_and_rejects_tampered(
            e in 1u64.., r in 1u64.., h in any::<u64>(), delta in 1u64..
        ) {
            // V = r·G and E = e·G; s = r + h·e makes s·G = V + h·E.
            let (e, r, h) = (Scalar::from(e), Scalar::from(r), Scalar::from(h));
            let ep = Affine::from_k256(&(ProjectivePoint::GENERATOR * e)).expect("finite");
            let vp = Affine::from_k256(&(ProjectivePoint::GENERATOR * r)).expect("finite");
            let table = &build_tables(&[ep])[0];
            let s = r + h * e;
            prop_assert!(capsule_equation_vartime(table, &vp, &s, &h));
            prop_assert!(!capsule_equation_vartime(table, &vp, &(s + Scalar::from(delta)), &h));
            prop_assert!(!capsule_equation_vartime(table, &vp.neg(), &s, &h));
        }
    }
}
