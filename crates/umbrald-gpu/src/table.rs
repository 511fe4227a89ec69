//! Fixed-base tables for `umb_mul_fixed`: every window's multiples of one public point.

use k256::elliptic_curve::group::Curve;
use k256::ProjectivePoint;
use umbrald_core::curve::{params, Affine};

/// Windows of a table: 64 signed 4-bit digits plus the 0/1 carry digit (`UMB_WINDOWS`).
pub const WINDOWS: usize = 65;
/// Entries per window: `|d| * 16^j * Q` for `|d| = 1..=8` (`UMB_ROW`).
pub const ROW: usize = 8;
/// Words per entry: x then y, 8 little-endian limbs each.
pub const ENTRY_WORDS: usize = 16;

/// Which fixed point a table (and a `umb_mul_fixed` launch) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FixedBase {
    /// Umbral's parameter point `U` ([`params::u_point`]).
    U,
    /// The secp256k1 generator `G`.
    G,
}

impl FixedBase {
    /// The point itself.
    pub fn point(self) -> Affine {
        match self {
            FixedBase::U => params::u_point(),
            // The generator is a valid finite point, so the conversion cannot fail.
            FixedBase::G => Affine::from_k256(&ProjectivePoint::GENERATOR)
                .unwrap_or_else(|| unreachable!("G is finite")),
        }
    }
}

/// `(e + 1) * 16^j * Q` for every window `j < 65` and `e < 8`, in the device layout: entry
/// `(j, e)` at word `(j * 8 + e) * 16`, x limbs then y limbs. 33,280 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct FixedBaseTable {
    words: Vec<u32>,
}

impl std::fmt::Debug for FixedBaseTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBaseTable")
            .field("words", &self.words.len())
            .finish()
    }
}

impl FixedBaseTable {
    /// Builds the table of `base` (public; variable time). Takes a few milliseconds.
    pub fn new(base: FixedBase) -> Self {
        Self::for_point(&base.point())
    }

    /// Builds the table of any finite point `q` (public; variable time).
    pub fn for_point(q: &Affine) -> Self {
        let mut projective = Vec::with_capacity(WINDOWS * ROW);
        let mut window_base = q.to_k256();
        for _ in 0..WINDOWS {
            let mut multiple = window_base;
            for _ in 0..ROW {
                projective.push(multiple);
                multiple += window_base;
            }
            // 16^(j+1) Q = 2 * (8 * 16^j Q): the last entry doubled.
            window_base = projective[projective.len() - 1].double();
        }
        let mut affine = vec![k256::AffinePoint::IDENTITY; projective.len()];
        ProjectivePoint::batch_normalize(&projective, &mut affine);
        let mut words = Vec::with_capacity(WINDOWS * ROW * ENTRY_WORDS);
        for point in &affine {
            // (e + 1) 2^(4j) is never a multiple of the prime order n, so no entry is the identity.
            let p = Affine::from_k256(&ProjectivePoint::from(*point))
                .unwrap_or_else(|| unreachable!("table entries are finite"));
            let (x, y) = p.to_xy_limbs();
            words.extend_from_slice(&x);
            words.extend_from_slice(&y);
        }
        Self { words }
    }

    /// The table as device words.
    pub fn words(&self) -> &[u32] {
        &self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::Scalar;

    #[test]
    fn entries_are_the_right_multiples() {
        let table = FixedBaseTable::new(FixedBase::G);
        assert_eq!(table.words().len(), WINDOWS * ROW * ENTRY_WORDS);
        let sixteen = Scalar::from(16u64);
        for j in [0usize, 1, 2, 63, 64] {
            let window = (0..j).fold(Scalar::ONE, |acc, _| acc * sixteen);
            for e in [0usize, 3, 7] {
                let k = window * Scalar::from((e + 1) as u64);
                let want = Affine::from_k256(&(ProjectivePoint::GENERATOR * k)).expect("finite");
                let at = (j * ROW + e) * ENTRY_WORDS;
                let mut x = [0u32; 8];
                x.copy_from_slice(&table.words()[at..at + 8]);
                assert_eq!(x, want.to_xy_limbs().0, "{j} {e}");
            }
        }
    }
}
