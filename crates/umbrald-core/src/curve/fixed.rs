//! Constant-time fixed-base multiplication by Umbral's `U`.
//!
//! With `k = k₁ + k₂·λ` and each half recoded into 26 signed odd 5-bit digits, `k·U` is
//! `Σᵢ d₁ᵢ·(32ⁱU) + λ·Σᵢ d₂ᵢ·(32ⁱU)`: 52 mixed additions and no doublings, with one table of 16
//! odd multiples for each of the 26 positions (26 KiB, built once per process).

use std::sync::LazyLock;

use k256::Scalar;
use subtle::Choice;
use zeroize::Zeroize;

use super::batch::normalize_all;
use super::glv::{self, DIGITS, WINDOW};
use super::varmul::{build_tables, complete_mul, endo, select, OddTable};
use super::{params, Affine, Jacobian};

/// Tables of odd multiples of `32ⁱ·U` for `i = 0..26`.
static U_TABLES: LazyLock<Vec<OddTable>> = LazyLock::new(|| {
    let mut bases = Vec::with_capacity(DIGITS);
    let mut base = params::u_point();
    for _ in 0..DIGITS {
        bases.push(base);
        let mut next = Jacobian::from_affine(&base);
        for _ in 0..WINDOW {
            next = next.double();
        }
        // 32ⁱ·U is never the identity: U has prime order n > 32^26.
        base = normalize_all(&[next])[0].unwrap_or(base);
    }
    build_tables(&bases)
});

/// Forces the table build (call at start-up so the first batch does not pay for it).
pub fn warm_up() {
    LazyLock::force(&U_TABLES);
}

/// `k·U` for every scalar, constant time in the scalars. `None` marks the identity.
pub fn mul_u(scalars: &[Scalar]) -> Vec<Option<Affine>> {
    let tables = &*U_TABLES;
    let beta = glv::beta();
    let mut products = Vec::with_capacity(scalars.len());
    let mut flags = Vec::with_capacity(scalars.len());
    for k in scalars {
        let mut halves = glv::recode(k);
        let [h1, h2] = &halves;
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
        for (half, q) in [
            (h1, params::u_point()),
            (h2, endo(&params::u_point(), &beta)),
        ] {
            let q = Affine::conditional_neg(&q, half.negate);
            let (diff, exc) = acc.add_affine(&q.neg());
            acc = subtle::ConditionallySelectable::conditional_select(&acc, &diff, half.even);
            flag |= exc & half.even;
        }
        for half in halves.iter_mut() {
            half.digits.zeroize();
        }
        products.push(acc);
        flags.push(flag);
    }
    let affine = normalize_all(&products);
    affine
        .into_iter()
        .zip(flags)
        .zip(scalars)
        .map(|((p, flag), k)| {
            if bool::from(flag) {
                complete_mul(&params::u_point(), k)
            } else {
                p
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;

    #[test]
    fn matches_k256() {
        let mut rng = rand::thread_rng();
        let mut scalars: Vec<Scalar> = (0..20).map(|_| Scalar::random(&mut rng)).collect();
        scalars.extend([Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(32u64)]);
        let u = params::u_point().to_k256();
        for (k, got) in scalars.iter().zip(mul_u(&scalars)) {
            assert_eq!(got, Affine::from_k256(&(u * k)), "k = {k:?}");
        }
    }
}
