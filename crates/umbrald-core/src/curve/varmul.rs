//! Constant-time variable-base scalar multiplication, batched.
//!
//! Each base gets one affine table of odd multiples `1·P, 3·P, …, 31·P` (the tables of a batch
//! share their field inversions). A scalar is split with GLV into two 128-bit halves, each
//! recoded into 26 signed odd 5-bit digits ([`glv::OddDigits`]), so a multiplication is a fixed
//! sequence of 125 doublings and 52 mixed additions, plus two masked corrections. Table entries
//! are chosen by scanning the whole table with masks; signs are applied with conditional
//! selects. No branch and no memory index depends on a scalar bit. Small batches accumulate
//! in Jacobian coordinates; large ones run all products in lockstep in affine coordinates
//! ([`super::lanes`]), sharing one inversion per step.
//!
//! Exceptional additions (equal x coordinates) depend only on the scalar's digits, not on the
//! point, and occur with negligible probability for any scalar other than the few tiny values
//! `0, ±1, …`; they are detected with a constant-time flag and those products are recomputed
//! with k256's complete formulas. The recomputation reveals only that such a rare event took
//! place.

use k256::{ProjectivePoint, Scalar};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use super::batch::{normalize_all, normalize_all_finite};
use super::field::Fe;
use super::glv::{self, OddDigits, DIGITS, TABLE_SIZE, WINDOW};
use super::lanes::{Lanes, MIN_LANES_FIXED, MIN_LANES_VARIABLE};
use super::{fixed, Affine, Jacobian};

/// The odd multiples `(2j+1)·P`, `j = 0..16`, of one base point, in affine form.
pub type OddTable = [Affine; TABLE_SIZE];

/// Builds the odd-multiple tables of many public bases with shared inversions.
pub fn build_tables(bases: &[Affine]) -> Vec<OddTable> {
    let doubles: Vec<Jacobian> = bases
        .iter()
        .map(|b| Jacobian::from_affine(b).double())
        .collect();
    let mut tables: Vec<OddTable> = bases.iter().map(|b| [*b; TABLE_SIZE]).collect();
    if bases.len() >= MIN_LANES_FIXED {
        let doubles = normalize_all_finite(&doubles);
        // Fifteen lockstep affine additions of 2·P, one shared inversion each.
        let mut lanes = Lanes::new(bases);
        for j in 1..TABLE_SIZE {
            lanes.add_all(&doubles, None);
            for (table, point) in tables.iter_mut().zip(lanes.points()) {
                table[j] = point;
            }
        }
        return tables;
    }
    // Small batches: one inversion in all. `2·P = (X, Y, Z)` is affine `(X, Y)` on the
    // isomorphic curve `y² = x³ + 7·Z⁶` reached by `(x, y) ↦ (x·Z², y·Z³)`; the addition
    // formulas do not involve the curve constant, so the odd multiples are built there with
    // mixed additions, and an isomorphic point `(X', Y', Z')` is `(X', Y', Z'·Z)` back on
    // secp256k1.
    let mut entries = Vec::with_capacity(bases.len() * (TABLE_SIZE - 1));
    for (base, double) in bases.iter().zip(&doubles) {
        let z2 = double.z.square();
        let double_iso = Affine {
            x: double.x,
            y: double.y,
        };
        let mut current = Jacobian {
            x: base.x.mul(&z2),
            y: base.y.mul(&z2).mul(&double.z),
            z: Fe::ONE,
        };
        for _ in 1..TABLE_SIZE {
            // (2j−1)·P + 2·P never has equal x for j ≤ 16 on a prime-order curve.
            current = current.add_affine(&double_iso).0;
            entries.push(Jacobian {
                z: current.z.mul(&double.z),
                ..current
            });
        }
    }
    let entries = normalize_all_finite(&entries);
    for (table, chunk) in tables.iter_mut().zip(entries.chunks_exact(TABLE_SIZE - 1)) {
        table[1..].copy_from_slice(chunk);
    }
    tables
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
    out.y = Fe::conditional_select(&out.y, &out.y.neg(), flip);
    out
}

/// `digit·Q` from `Q`'s table (negated when `negate`), indexing the table directly: the
/// variable-time counterpart of [`select`], for public digits only. `digit` is odd.
#[inline]
pub(crate) fn entry_vartime(table: &OddTable, digit: i8, negate: bool) -> Affine {
    let q = table[(digit.unsigned_abs() >> 1) as usize];
    if (digit < 0) != negate {
        q.neg()
    } else {
        q
    }
}

/// `λ·Q` for an affine `Q`.
#[inline]
pub(crate) fn endo(p: &Affine, beta: &Fe) -> Affine {
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
///
/// Large batches run all products in lockstep with affine arithmetic ([`Lanes`]); small ones
/// use Jacobian coordinates and one shared inversion at the end.
pub fn mul_pairs(bases: &[Affine], scalars: &[[Scalar; 2]]) -> Vec<[Option<Affine>; 2]> {
    let tables = build_tables(bases);
    if 2 * bases.len() < MIN_LANES_VARIABLE {
        let tables: Vec<&OddTable> = tables.iter().collect();
        return mul_pairs_and_u_on_tables(&tables, scalars, &[]).0;
    }
    let mut recodings: Vec<[OddDigits; 2]> = scalars.iter().flatten().map(glv::recode).collect();
    let lane_tables: Vec<&OddTable> = tables.iter().flat_map(|t| [t, t]).collect();
    let results = mul_lanes(&lane_tables, &recodings);
    for halves in recodings.iter_mut() {
        for half in halves.iter_mut() {
            half.digits.zeroize();
        }
    }
    let mut out = Vec::with_capacity(bases.len());
    for (i, (base, pair)) in bases.iter().zip(scalars).enumerate() {
        let mut slot = [results[2 * i].0, results[2 * i + 1].0];
        for j in 0..2 {
            // Public by design: only that a (negligibly rare) exceptional addition took place.
            if bool::from(crate::declassify(results[2 * i + j].1)) {
                slot[j] = complete_mul(base, &pair[j]);
            }
        }
        out.push(slot);
    }
    out
}

/// The Jacobian (small-batch) form of [`mul_pairs`] plus [`fixed::mul_u`], on tables the caller built
/// (and may have used for public checks): for every `tables[i]` (the table of `Pᵢ`) and
/// `scalars[i] = [a, b]`, returns `[a·Pᵢ, b·Pᵢ]`, and `k·U` for every `u_scalars` entry. All
/// products are normalized with one shared inversion. Constant time in the scalars, as
/// [`mul_pairs`].
pub fn mul_pairs_and_u_on_tables(
    tables: &[&OddTable],
    scalars: &[[Scalar; 2]],
    u_scalars: &[Scalar],
) -> (Vec<[Option<Affine>; 2]>, Vec<Option<Affine>>) {
    let mut products = Vec::with_capacity(2 * tables.len() + u_scalars.len());
    let mut flags = Vec::with_capacity(products.capacity());
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
    for k in u_scalars {
        let (product, flag) = fixed::mul_u_jacobian(k);
        products.push(product);
        flags.push(flag);
    }
    let affine = normalize_all(&products);
    let pick = |at: usize, base: &dyn Fn() -> Option<Affine>| {
        // Public by design: only that a (negligibly rare) exceptional addition took place.
        if bool::from(crate::declassify(flags[at])) {
            base()
        } else {
            affine[at]
        }
    };
    let pairs = tables
        .iter()
        .zip(scalars)
        .enumerate()
        .map(|(i, (table, pair))| {
            [0, 1].map(|j| pick(2 * i + j, &|| complete_mul(&table[0], &pair[j])))
        })
        .collect();
    let offset = 2 * tables.len();
    let us = u_scalars
        .iter()
        .enumerate()
        .map(|(i, k)| pick(offset + i, &|| fixed::mul_u(std::slice::from_ref(k))[0]))
        .collect();
    (pairs, us)
}

/// Runs `kᵢ·Pᵢ` for every lane (table of `Pᵢ`, recoding of `kᵢ`) in lockstep, affine.
/// Returns each product (`None` never occurs on this path; exceptional lanes are flagged).
fn mul_lanes(tables: &[&OddTable], recodings: &[[OddDigits; 2]]) -> Vec<(Option<Affine>, Choice)> {
    let beta = glv::beta();
    let top = DIGITS - 1;
    let pick = |digit: usize, half: usize, q: &mut Vec<Affine>| {
        q.clear();
        q.extend(tables.iter().zip(recodings).map(|(table, halves)| {
            let h = &halves[half];
            let p = select(table, h.digits[digit], h.negate);
            if half == 0 {
                p
            } else {
                endo(&p, &beta)
            }
        }));
    };
    let mut q = Vec::with_capacity(tables.len());
    pick(top, 0, &mut q);
    let mut lanes = Lanes::new(&q);
    pick(top, 1, &mut q);
    lanes.add_all(&q, None);
    for i in (0..top).rev() {
        lanes.double_n(WINDOW);
        pick(i, 0, &mut q);
        lanes.add_all(&q, None);
        pick(i, 1, &mut q);
        lanes.add_all(&q, None);
    }
    // Odd-recoding corrections: subtract ±P (resp. ±λP) where the half was even.
    for half in 0..2 {
        q.clear();
        q.extend(tables.iter().zip(recodings).map(|(table, halves)| {
            let p = select(table, 1, halves[half].negate).neg();
            if half == 0 {
                p
            } else {
                endo(&p, &beta)
            }
        }));
        let when: Vec<Choice> = recodings.iter().map(|h| h[half].even).collect();
        lanes.add_all(&q, Some(&when));
    }
    lanes
        .finish()
        .into_iter()
        .map(|(p, flag)| (Some(p), flag))
        .collect()
}

/// `k·P` for a single base, constant time in `k`. `None` marks the identity.
pub fn mul(base: &Affine, k: &Scalar) -> Option<Affine> {
    let tables = build_tables(std::slice::from_ref(base));
    let mut halves = glv::recode(k);
    let (product, flag) = mul_recoded(&tables[0], &halves);
    for half in halves.iter_mut() {
        half.digits.zeroize();
    }
    if bool::from(flag) {
        complete_mul(base, k)
    } else {
        normalize_all(&[product])[0]
    }
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

    fn check(bases_len: usize) {
        let mut rng = rand::thread_rng();
        let bases: Vec<Affine> = (0..bases_len)
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
        let scalars: Vec<[Scalar; 2]> = (0..bases_len)
            .map(|i| match edge.get(i) {
                Some(e) => [*e, Scalar::random(&mut rng)],
                None => [Scalar::random(&mut rng), Scalar::random(&mut rng)],
            })
            .collect();
        let got = mul_pairs(&bases, &scalars);
        for ((base, pair), result) in bases.iter().zip(&scalars).zip(got) {
            for j in 0..2 {
                let want = Affine::from_k256(&(base.to_k256() * pair[j]));
                assert_eq!(result[j], want, "scalar {:?}", pair[j]);
            }
        }
    }

    #[test]
    fn single_product_matches_k256() {
        let mut rng = rand::thread_rng();
        let base = Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::random(&mut rng)))
            .expect("finite");
        for k in [
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::random(&mut rng),
        ] {
            assert_eq!(mul(&base, &k), Affine::from_k256(&(base.to_k256() * k)));
        }
    }

    #[test]
    fn pairs_and_u_on_shared_tables_match_k256_on_edge_scalars() {
        let mut rng = rand::thread_rng();
        let bases: Vec<Affine> = (0..3)
            .map(|_| {
                Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::random(&mut rng)))
                    .expect("finite")
            })
            .collect();
        let tables = build_tables(&bases);
        let table_refs: Vec<&OddTable> = tables.iter().collect();
        let scalars = [
            [Scalar::ZERO, Scalar::ONE],
            [-Scalar::ONE, Scalar::from(2u64)],
            [Scalar::random(&mut rng), -Scalar::from(31u64)],
        ];
        let u_scalars = [Scalar::ZERO, -Scalar::ONE, Scalar::random(&mut rng)];
        let (pairs, us) = mul_pairs_and_u_on_tables(&table_refs, &scalars, &u_scalars);
        for ((base, pair), got) in bases.iter().zip(&scalars).zip(&pairs) {
            for j in 0..2 {
                let want = Affine::from_k256(&(base.to_k256() * pair[j]));
                assert_eq!(got[j], want, "scalar {:?}", pair[j]);
            }
        }
        let u = super::super::params::u_point().to_k256();
        for (k, got) in u_scalars.iter().zip(us) {
            assert_eq!(got, Affine::from_k256(&(u * k)), "u scalar {k:?}");
        }
    }

    #[test]
    fn matches_k256_on_random_and_edge_scalars_jacobian_path() {
        // 12 products: fewer than MIN_LANES_VARIABLE.
        check(6);
    }

    #[test]
    fn matches_k256_on_random_and_edge_scalars_lane_path() {
        // 2·MIN_LANES_VARIABLE products.
        check(MIN_LANES_VARIABLE);
    }
}
