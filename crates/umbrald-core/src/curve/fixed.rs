//! Constant-time fixed-base multiplication by Umbral's `U` and by the generator `G`.
//!
//! With `k = k₁ + k₂·λ` and each half recoded into 26 signed odd 5-bit digits, `k·B` is
//! `Σᵢ d₁ᵢ·(32ⁱB) + λ·Σᵢ d₂ᵢ·(32ⁱB)`: 52 mixed additions and no doublings, with one table of 16
//! odd multiples for each of the 26 positions (26 KiB per base, built once per process).

use std::sync::LazyLock;

use k256::Scalar;
use subtle::{Choice, ConditionallySelectable};
use zeroize::Zeroize;

use super::batch::normalize_all;
use super::glv::{self, OddDigits, DIGITS, WINDOW};
use super::lanes::{Lanes, MIN_LANES_FIXED};
use super::msm::add_affine_vartime;
use super::varmul::{build_tables, complete_mul, endo, entry_vartime, select, OddTable};
use super::{params, Affine, Jacobian};

/// A fixed base point with its tables of odd multiples of `32ⁱ·B` for `i = 0..26`.
struct FixedBase {
    base: Affine,
    tables: Vec<OddTable>,
}

impl FixedBase {
    fn new(base: Affine) -> Self {
        let mut bases = Vec::with_capacity(DIGITS);
        let mut current = base;
        for _ in 0..DIGITS {
            bases.push(current);
            let mut next = Jacobian::from_affine(&current);
            for _ in 0..WINDOW {
                next = next.double();
            }
            // 32ⁱ·B is never the identity: B has prime order n > 32^26.
            current = normalize_all(&[next])[0].unwrap_or(current);
        }
        FixedBase {
            base,
            tables: build_tables(&bases),
        }
    }
}

static U_BASE: LazyLock<FixedBase> = LazyLock::new(|| FixedBase::new(params::u_point()));
static G_BASE: LazyLock<FixedBase> = LazyLock::new(|| FixedBase::new(params::generator()));

/// Forces the table builds (call at start-up so the first batch does not pay for them).
pub fn warm_up() {
    LazyLock::force(&U_BASE);
    LazyLock::force(&G_BASE);
}

/// `k·G` for every scalar, constant time in the scalars. `None` marks the identity.
pub fn mul_g(scalars: &[Scalar]) -> Vec<Option<Affine>> {
    mul_fixed(&G_BASE, scalars)
}

/// `k·U` for every scalar, constant time in the scalars. `None` marks the identity.
///
/// Large batches run in lockstep with affine arithmetic ([`Lanes`]), small ones in Jacobian
/// coordinates with one shared inversion.
pub fn mul_u(scalars: &[Scalar]) -> Vec<Option<Affine>> {
    mul_fixed(&U_BASE, scalars)
}

/// `k·G` in Jacobian coordinates, for a public `k` (variable time: the table entries are
/// indexed by `k`'s digits directly). `None` is the identity.
pub fn mul_g_vartime(k: &Scalar) -> Option<Jacobian> {
    let fixed = &*G_BASE;
    let beta = glv::beta();
    let mut acc: Option<Jacobian> = None;
    for (half, digits) in glv::recode(k).iter().enumerate() {
        let negative = bool::from(digits.negate);
        let position_terms = digits
            .digits
            .iter()
            .enumerate()
            .map(|(i, &d)| entry_vartime(&fixed.tables[i], d, negative));
        // The odd-recoding correction: subtract ±B where the half was even.
        let correction = bool::from(digits.even).then(|| {
            if negative {
                fixed.base
            } else {
                fixed.base.neg()
            }
        });
        for q in position_terms.chain(correction) {
            let q = if half == 1 { endo(&q, &beta) } else { q };
            acc = add_affine_vartime(acc.as_ref(), &q);
        }
    }
    acc
}

/// `k·U` in Jacobian coordinates, constant time in `k`, with the flag of an exceptional
/// addition (then the product is meaningless: use [`mul_u`] for that scalar instead).
pub(crate) fn mul_u_jacobian(k: &Scalar) -> (Jacobian, Choice) {
    let mut halves = glv::recode(k);
    let out = mul_fixed_jacobian(&U_BASE, &halves);
    for half in halves.iter_mut() {
        half.digits.zeroize();
    }
    out
}

/// `k·B` for every scalar.
fn mul_fixed(fixed: &FixedBase, scalars: &[Scalar]) -> Vec<Option<Affine>> {
    let mut recodings: Vec<[OddDigits; 2]> = scalars.iter().map(glv::recode).collect();
    let results = if recodings.len() >= MIN_LANES_FIXED {
        mul_fixed_lanes(fixed, &recodings)
    } else {
        let (products, flags): (Vec<Jacobian>, Vec<Choice>) = recodings
            .iter()
            .map(|halves| mul_fixed_jacobian(fixed, halves))
            .unzip();
        normalize_all(&products).into_iter().zip(flags).collect()
    };
    for halves in recodings.iter_mut() {
        for half in halves.iter_mut() {
            half.digits.zeroize();
        }
    }
    results
        .into_iter()
        .zip(scalars)
        .map(|((p, flag), k)| {
            // Public by design: only that a (negligibly rare) exceptional addition took place.
            if bool::from(crate::declassify(flag)) {
                complete_mul(&fixed.base, k)
            } else {
                p
            }
        })
        .collect()
}

/// One `k·B` in Jacobian coordinates: the product and its exceptional flag.
fn mul_fixed_jacobian(fixed: &FixedBase, halves: &[OddDigits; 2]) -> (Jacobian, Choice) {
    let tables = &fixed.tables;
    let beta = glv::beta();
    let [h1, h2] = halves;
    let mut flag = Choice::from(0);
    let top = DIGITS - 1;
    let mut acc = Jacobian::from_affine(&select(&tables[top], h1.digits[top], h1.negate));
    for i in (0..DIGITS).rev() {
        if i != top {
            let (sum, exc) = acc.add_affine(&select(&tables[i], h1.digits[i], h1.negate));
            acc = sum;
            flag |= exc;
        }
        let q = endo(&select(&tables[i], h2.digits[i], h2.negate), &beta);
        let (sum, exc) = acc.add_affine(&q);
        acc = sum;
        flag |= exc;
    }
    for (half, q) in [(h1, fixed.base), (h2, endo(&fixed.base, &beta))] {
        let q = Affine::conditional_neg(&q, half.negate);
        let (diff, exc) = acc.add_affine(&q.neg());
        acc = Jacobian::conditional_select(&acc, &diff, half.even);
        flag |= exc & half.even;
    }
    (acc, flag)
}

/// Every `k·B` in lockstep with affine arithmetic.
fn mul_fixed_lanes(
    fixed: &FixedBase,
    recodings: &[[OddDigits; 2]],
) -> Vec<(Option<Affine>, Choice)> {
    let tables = &fixed.tables;
    let beta = glv::beta();
    let top = DIGITS - 1;
    let pick = |digit: usize, half: usize, q: &mut Vec<Affine>| {
        q.clear();
        q.extend(recodings.iter().map(|halves| {
            let h = &halves[half];
            let p = select(&tables[digit], h.digits[digit], h.negate);
            if half == 0 {
                p
            } else {
                endo(&p, &beta)
            }
        }));
    };
    let mut q = Vec::with_capacity(recodings.len());
    pick(top, 0, &mut q);
    let mut lanes = Lanes::new(&q);
    for i in (0..DIGITS).rev() {
        if i != top {
            pick(i, 0, &mut q);
            lanes.add_all(&q, None);
        }
        pick(i, 1, &mut q);
        lanes.add_all(&q, None);
    }
    for (half, base) in [(0, fixed.base), (1, endo(&fixed.base, &beta))] {
        q.clear();
        q.extend(
            recodings
                .iter()
                .map(|h| Affine::conditional_neg(&base, h[half].negate).neg()),
        );
        let when: Vec<Choice> = recodings.iter().map(|h| h[half].even).collect();
        lanes.add_all(&q, Some(&when));
    }
    lanes
        .finish()
        .into_iter()
        .map(|(p, flag)| (Some(p), flag))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;

    #[test]
    fn matches_k256() {
        let mut rng = rand::thread_rng();
        for count in [5usize, 60] {
            let mut scalars: Vec<Scalar> = (0..count).map(|_| Scalar::random(&mut rng)).collect();
            scalars.extend([Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(32u64)]);
            let u = params::u_point().to_k256();
            for (k, got) in scalars.iter().zip(mul_u(&scalars)) {
                assert_eq!(got, Affine::from_k256(&(u * k)), "k = {k:?}");
            }
            for (k, got) in scalars.iter().zip(mul_g(&scalars)) {
                let want = k256::ProjectivePoint::GENERATOR * k;
                assert_eq!(got, Affine::from_k256(&want), "k = {k:?}");
            }
        }
    }
}
