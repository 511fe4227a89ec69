//! Montgomery's trick: `n` field inversions for the price of one inversion and `3(n−1)`
//! multiplications.

use super::field::Fe;
use subtle::{Choice, ConditionallySelectable};

use super::{Affine, Jacobian};

/// Replaces every element of `values` by its inverse, with one field inversion in total.
///
/// Zero elements are left as zero (their inverse does not exist) and do not disturb the
/// others; the returned vector flags them. Constant time in the values: the zero test is a
/// [`Choice`] and the substitution a conditional select.
pub fn invert_all(values: &mut [Fe]) -> Vec<Choice> {
    let zero_flags: Vec<Choice> = values.iter().map(|v| v.is_zero()).collect();
    for (v, zero) in values.iter_mut().zip(&zero_flags) {
        *v = Fe::conditional_select(v, &Fe::ONE, *zero);
    }
    // prefix[i] = v[0]·…·v[i−1]
    let mut prefix = Vec::with_capacity(values.len());
    let mut acc = Fe::ONE;
    for v in values.iter() {
        prefix.push(acc);
        acc = acc.mul(v);
    }
    // Every factor is non-zero, so the product is invertible.
    let mut inv = acc.invert();
    for (v, before) in values.iter_mut().zip(prefix).rev() {
        let next_inv = inv.mul(v);
        *v = inv.mul(&before);
        inv = next_inv;
    }
    for (v, zero) in values.iter_mut().zip(&zero_flags) {
        *v = Fe::conditional_select(v, &Fe::ZERO, *zero);
    }
    zero_flags
}

/// Converts Jacobian points to affine with one shared inversion. A point whose `Z` is zero
/// maps to `None`.
pub fn normalize_all(points: &[Jacobian]) -> Vec<Option<Affine>> {
    let mut zs: Vec<Fe> = points.iter().map(|p| p.z).collect();
    let zero_flags = invert_all(&mut zs);
    points
        .iter()
        .zip(zs)
        .zip(zero_flags)
        .map(|((p, zinv), zero)| {
            // Public by design: the identity comes only from a zero scalar, and is answered
            // with an error.
            (!bool::from(crate::declassify(zero))).then(|| p.to_affine_with_zinv(&zinv))
        })
        .collect()
}

/// Like [`normalize_all`] for points known to be finite (public table entries).
pub(crate) fn normalize_all_finite(points: &[Jacobian]) -> Vec<Affine> {
    let mut zs: Vec<Fe> = points.iter().map(|p| p.z).collect();
    invert_all(&mut zs);
    points
        .iter()
        .zip(zs)
        .map(|(p, zinv)| p.to_affine_with_zinv(&zinv))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_every_element_and_skips_zeros() {
        let originals: Vec<Fe> = [3u64, 0, 5, 7, 0, 11]
            .iter()
            .map(|&v| Fe::from_u64(v))
            .collect();
        let mut values = originals.clone();
        let zeros = invert_all(&mut values);
        for ((orig, inv), zero) in originals.iter().zip(&values).zip(zeros) {
            if bool::from(zero) {
                assert!(bool::from(inv.is_zero()));
            } else {
                assert_eq!(orig.mul(inv), Fe::ONE);
            }
        }
    }
}
