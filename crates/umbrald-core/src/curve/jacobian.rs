//! Jacobian coordinates `(X, Y, Z)` ↦ `(X/Z², Y/Z³)` for `y² = x³ + 7`.
//!
//! The formulas are the incomplete ones (they assume distinct, finite inputs). Instead of
//! branching on the exceptional cases, every addition reports them through a [`Choice`] so
//! that a caller can detect, in constant time, a result that must be recomputed with complete
//! formulas. For the scalar multiplications in this crate the exceptional cases depend on the
//! scalar alone and occur with negligible probability (see [`super::varmul`]).
//!
//! Coordinates are weakly reduced field elements ([`Fe`]); affine outputs are normalized.

use super::field::Fe;
use subtle::{Choice, ConditionallySelectable};

use super::Affine;

/// A point in Jacobian coordinates. `Z = 0` is never produced by the formulas below on
/// non-exceptional inputs; it is not used as a representation of the identity.
#[derive(Clone, Copy, Debug)]
pub struct Jacobian {
    /// X coordinate.
    pub x: Fe,
    /// Y coordinate.
    pub y: Fe,
    /// Z coordinate.
    pub z: Fe,
}

impl Jacobian {
    /// Lifts an affine point (`Z = 1`).
    #[inline]
    pub fn from_affine(p: &Affine) -> Self {
        Jacobian {
            x: p.x,
            y: p.y,
            z: Fe::ONE,
        }
    }

    /// `2·self`. 3M + 4S. Never exceptional on secp256k1 (no points of order 2).
    #[inline]
    pub fn double(&self) -> Self {
        let a = self.x.square(); // X²
        let b = self.y.square(); // Y²
        let c = b.square(); // Y⁴
        let d = self.x.mul(&b).mul_small(4); // 4·X·Y²
        let e = a.mul_small(3); // 3·X²
        let f = e.square(); // 9·X⁴
        let x3 = f.sub(&d.double()); // F − 2D
        let y3 = e.mul(&d.sub(&x3)).sub(&c.mul_small(8)); // E·(D − X3) − 8C
        let z3 = self.y.mul(&self.z).double(); // 2·Y·Z
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `self + q` for an affine `q`. 8M + 3S.
    ///
    /// Returns the sum and a flag that is set when the inputs had equal x coordinates
    /// (`self = ±q`), in which case the sum is meaningless and must not be used.
    #[inline]
    pub fn add_affine(&self, q: &Affine) -> (Self, Choice) {
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&z1z1).mul(&self.z);
        let h = u2.sub(&self.x); // U2 − X1
        let r = s2.sub(&self.y); // S2 − Y1
        let exceptional = h.is_zero();
        let h2 = h.square();
        let h3 = h2.mul(&h);
        let u1h2 = self.x.mul(&h2);
        let x3 = r.square().sub(&h3).sub(&u1h2.double()); // R² − H³ − 2·U1·H²
        let y3 = r.mul(&u1h2.sub(&x3)).sub(&self.y.mul(&h3)); // R·(U1H² − X3) − Y1·H³
        let z3 = self.z.mul(&h);
        (
            Jacobian {
                x: x3,
                y: y3,
                z: z3,
            },
            exceptional,
        )
    }

    /// The affine point for a known inverse `zinv = 1/Z`.
    #[inline]
    pub fn to_affine_with_zinv(&self, zinv: &Fe) -> Affine {
        let zinv2 = zinv.square();
        let zinv3 = zinv2.mul(zinv);
        Affine {
            x: self.x.mul(&zinv2).normalize(),
            y: self.y.mul(&zinv3).normalize(),
        }
    }
}

impl ConditionallySelectable for Jacobian {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Jacobian {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
            z: Fe::conditional_select(&a.z, &b.z, choice),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::{ProjectivePoint, Scalar};

    fn affine_of(k: u64) -> Affine {
        Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::from(k))).expect("finite")
    }

    fn normalize(p: &Jacobian) -> Affine {
        let zinv = p.z.invert();
        p.to_affine_with_zinv(&zinv)
    }

    #[test]
    fn double_and_add_match_k256() {
        let p = Jacobian::from_affine(&affine_of(5));
        assert_eq!(normalize(&p.double()), affine_of(10));
        let (sum, exc) = p.double().add_affine(&affine_of(3));
        assert!(!bool::from(exc));
        assert_eq!(normalize(&sum), affine_of(13));
        // Non-trivial Z on both paths.
        let q = p.double().double();
        let (sum, _) = q.add_affine(&affine_of(7));
        assert_eq!(normalize(&sum.double()), affine_of(54));
    }

    #[test]
    fn equal_x_is_flagged() {
        let p = Jacobian::from_affine(&affine_of(9)).double(); // 18·G with Z ≠ 1
        assert!(bool::from(p.add_affine(&affine_of(18)).1));
        assert!(bool::from(p.add_affine(&affine_of(18).neg()).1));
        assert!(!bool::from(p.add_affine(&affine_of(17)).1));
    }
}
