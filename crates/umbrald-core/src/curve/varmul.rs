//! Constant-time variable-base scalar multiplication, batched.
//!
//! Each base gets one affine table of odd multiples `1·P, 3·P, …, 31·P` (all tables of a batch
//! share two field inversions). A scalar is split with GLV into two 128-bit halves, each
//! recoded into 26 signed odd 5-bit digits ([`glv::OddDigits`]), so a multiplication is a fixed
//! sequence of 125 doublings and 52 mixed additions, plus two masked corrections. Table entries
//! are chosen by scanning the whole table with masks; signs are applied with conditional
//! selects. No branch and no memory index depends on a scalar bit.
//!
//! Exceptional additions (equal x coordinates) depend only on the scalar's digits, not on the
//! point, and occur with negligible probability for any scalar other than the few tiny values
//! `0, ±1, …`; they are detected with a constant-time flag and those products are recomputed
//! with k256's complete formulas. The recomputation reveals only that such a rare event took
//! place.

use k256::{FieldElement, ProjectivePoint, Scalar};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use super::batch::{normalize_all, normalize_all_finite};
use super::glv::{self, OddDigits, DIGITS, TABLE_SIZE, WINDOW};
use super::{Affine, Jacobian};

/// The odd multiples `(2j+1)·P`, `j = 0..16`, of one base point, in affine form.
pub type OddTable = [Affine; TABLE_SIZE];

/// Builds the odd-multiple tables of many public bases with two shared inversions.
pub fn build_tables(bases: &[Affine]) -> Vec<OddTable> {
    let doubles: Vec<Jacobian> = bases
        .iter()
        .map(|b| Jacobian::from_affine(b).double())
        .collect();
    let doubles = normalize_all_finite(&doubles);
    let mut entries = Vec::with_capacity(bases.len() * TABLE_SIZE);
    for (base, double) in bases.iter().zip(&doubles) {
        let mut current = Jacobian::from_affine(base);
        entries.push(current);
        for _ in 1..TABLE_SIZE {
            // (2j−1)·P + 2·P never has equal x for j ≤ 16 on a prime-order curve.
            current = current.add_affine(double).0;
            entries.push(current);
        }
    }
    let entries = normalize_all_finite(&entries);
    entries
        .chunks_exact(TABLE_SIZE)
        .map(|chunk| {
            let mut table = [chunk[0]; TABLE_SIZE];
            table.copy_from_slice(chunk);
            table
        })
        .collect()
}

/// Returns `digit·Q` where `Q` is the table's base (negated when `negate`), in constant time.
#[inline]
pub(crate) fn select(table: &OddTable, digit: i8, negate: Choice) -> Affine {
    let sign_mask = digit >> 7; // −1 when negative, 0 otherwise
    let abs = ((digit ^ sign_mask) - sign_mask) as u8;
    let index = abs >> 1; // (|d| − 1) / 2 for odd |d|
    let mut out = table[0];
    for (j, entry) in table.iter().enumerate().skip(1) {
        out.conditional_assign(entry, index.ct_eq(&(j as u8)));
    }
    let flip = Choice::from((sign_mask & 1) as u8) ^ negate;
    out.y = FieldElement::conditional_select(&out.y, &out.y.negate(1).normalize_weak(), flip);
    out
}

/// `λ·Q` for an affine `Q`.
#[inline]
pub(crate) fn endo(p: &Affine, beta: &FieldElement) -> Affine {
    Affine {
        x: p.x.mul(beta),
        y: p.y,
    }
}

/// Adds `q` to `acc`, folding an exceptional addition into `flag`.
#[inline]
fn add_into(acc: &mut Jacobian, q: &Affine, flag: &mut Choice) {
    let (sum, exceptional) = acc.add_affine(q);
    *acc = sum;
    *flag |= exceptional;
}

/// Subtracts `q` from `acc` when `when` is set (the odd-recoding correction).
#[inline]
fn correct(acc: &mut Jacobian, q: &Affine, when: Choice, flag: &mut Choice) {
    let (diff, exceptional) = acc.add_affine(&q.neg());
    *acc = Jacobian::conditional_select(acc, &diff, when);
    *flag |= exceptional & when;
}

/// `k·P` from `P`'s table and `k`'s recoding. Returns the product and the exceptional flag.
pub(crate) fn mul_recoded(table: &OddTable, halves: &[OddDigits; 2]) -> (Jacobian, Choice) {
    let beta = glv::beta();
    let [h1, h2] = halves;
    let mut flag = Choice::from(0);
    let top = DIGITS - 1;
    let mut acc = Jacobian::from_affine(&select(table, h1.digits[top], h1.negate));
    add_into(
        &mut acc,
        &endo(&select(table, h2.digits[top], h2.negate), &beta),
        &mut flag,
    );
    for i in (0..top).rev() {
        for _ in 0..WINDOW {
            acc = acc.double();
        }
        add_into(&mut acc, &select(table, h1.digits[i], h1.negate), &mut flag);
        add_into(
            &mut acc,
            &endo(&select(table, h2.digits[i], h2.negate), &beta),
            &mut flag,
        );
    }
    correct(&mut acc, &select(table, 1, h1.negate), h1.even, &mut flag);
    correct(
        &mut acc,
        &endo(&select(table, 1, h2.negate), &beta),
        h2.even,
        &mut flag,
    );
    (acc, flag)
}

/// For every base `P[i]` and scalars `[a, b]`, computes `[a·P[i], b·P[i]]` in constant time
/// with respect to the scalars. `None` marks the identity.
pub fn mul_pairs(bases: &[Affine], scalars: &[[Scalar; 2]]) -> Vec<[Option<Affine>; 2]> {
    let tables = build_tables(bases);
    let mut products = Vec::with_capacity(2 * bases.len());
    let mut flags = Vec::with_capacity(2 * bases.len());
    for (table, pair) in tables.iter().zip(scalars) {
        for k in pair {
            let mut halves = glv::recode(k);
            let (product, flag) = mul_recoded(table, &halves);
            for half in halves.iter_mut() {
                half.digits.zeroize();
            }
            products.push(product);
            flags.push(flag);
        }
    }
    let affine = normalize_all(&products);
    let mut out = Vec::with_capacity(bases.len());
    for (i, (base, pair)) in bases.iter().zip(scalars).enumerate() {
        let mut slot = [affine[2 * i], affine[2 * i + 1]];
        for j in 0..2 {
            if bool::from(flags[2 * i + j]) {
                slot[j] = complete_mul(base, &pair[j]);
            }
        }
        out.push(slot);
    }
    out
}

/// `k·P` with k256's complete (constant-time) formulas: the fallback for exceptional cases.
pub(crate) fn complete_mul(base: &Affine, k: &Scalar) -> Option<Affine> {
    let product: ProjectivePoint = base.to_k256() * k;
    Affine::from_k256(&product)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;

    #[test]
    fn matches_k256_on_random_and_edge_scalars() {
        let mut rng = rand::thread_rng();
        let bases: Vec<Affine> = (0..6)
            .map(|_| {
                Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::random(&mut rng)))
                    .expect("finite")
            })
            .collect();
        let edge = [
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::from(2u64),
            Scalar::from(31u64),
            -Scalar::from(2u64),
        ];
        let scalars: Vec<[Scalar; 2]> = edge
            .iter()
            .map(|e| [*e, Scalar::random(&mut rng)])
            .collect();
        let got = mul_pairs(&bases, &scalars);
        for ((base, pair), result) in bases.iter().zip(&scalars).zip(got) {
            for j in 0..2 {
                let want = Affine::from_k256(&(base.to_k256() * pair[j]));
                assert_eq!(result[j], want, "scalar {:?}", pair[j]);
            }
        }
    }
}
