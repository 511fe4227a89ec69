//! The secp256k1 base field `GF(p)`, `p = 2²⁵⁶ − 2³² − 977`, on four 64-bit limbs.
//!
//! k256's `FieldElement` (5×52-bit limbs with lazy reduction) is correct and constant time,
//! but its multiplication is an out-of-line call of about 230 instructions and its magnitude
//! bookkeeping forces extra normalizations. The scalar multiplications of the engine spend
//! almost all of their time in field multiplications and squarings, so this module carries its
//! own, inlinable field: schoolbook products on `u128`, reduced with `2²⁵⁶ ≡ 2³² + 977 (mod p)`.
//!
//! Representation: little-endian limbs of a value `< 2²⁵⁶` that is congruent to the element
//! ("weakly reduced": `v` or `v + p`). Every operation accepts and returns weakly reduced
//! values, so there is no magnitude to track; [`Fe::normalize`] gives the canonical `v < p`.
//! Every function is constant time: no branch and no memory index depends on a value.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption};

/// `2²⁵⁶ mod p = 2³² + 977`.
const R: u64 = 0x1_0000_03D1;

/// The modulus `p`, little-endian limbs.
const P: [u64; 4] = [
    0xFFFF_FFFE_FFFF_FC2F,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_FFFF_FFFF,
];

/// An element of the secp256k1 base field (weakly reduced, see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fe(pub(crate) [u64; 4]);

/// `a·b + c + carry` as (low, high) words; never overflows 128 bits.
#[inline(always)]
fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) * (b as u128) + (c as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// `a + b + carry` as (sum, carry out).
#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// `a − b − borrow` as (difference, borrow out ∈ {0, 1}).
#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub((b as u128) + (borrow as u128));
    (t as u64, (t >> 127) as u64)
}

/// Folds a 5-limb value `r + top·2²⁵⁶` (`top < 2⁶³`) into a weakly reduced element.
#[inline(always)]
fn fold(r: [u64; 4], top: u64) -> Fe {
    let x = (top as u128) * (R as u128); // < 2⁹⁷
    let (r0, k) = adc(r[0], x as u64, 0);
    let (r1, k) = adc(r[1], (x >> 64) as u64, k);
    let (r2, k) = adc(r[2], 0, k);
    let (r3, k) = adc(r[3], 0, k);
    // On a carry the wrapped value is below 2⁹⁷, so adding R once more cannot carry out of
    // the low two limbs.
    let (r0, k2) = adc(r0, k * R, 0);
    Fe([r0, r1.wrapping_add(k2), r2, r3])
}

/// Reduces a 512-bit product `t` modulo `p` (weakly).
#[inline(always)]
fn reduce_wide(t: [u64; 8]) -> Fe {
    let (r0, c) = mac(t[4], R, t[0], 0);
    let (r1, c) = mac(t[5], R, t[1], c);
    let (r2, c) = mac(t[6], R, t[2], c);
    let (r3, c) = mac(t[7], R, t[3], c);
    fold([r0, r1, r2, r3], c)
}

impl Fe {
    /// Zero.
    pub const ZERO: Fe = Fe([0, 0, 0, 0]);
    /// One.
    pub const ONE: Fe = Fe([1, 0, 0, 0]);

    /// A small constant.
    pub const fn from_u64(v: u64) -> Fe {
        Fe([v, 0, 0, 0])
    }

    /// Parses 32 big-endian bytes; `None` (constant time) when the value is not below `p`.
    pub fn from_bytes(bytes: &[u8; 32]) -> CtOption<Fe> {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[start..start + 8]);
            *limb = u64::from_be_bytes(word);
        }
        // In range iff v − p borrows.
        let (_, b) = sbb(limbs[0], P[0], 0);
        let (_, b) = sbb(limbs[1], P[1], b);
        let (_, b) = sbb(limbs[2], P[2], b);
        let (_, b) = sbb(limbs[3], P[3], b);
        CtOption::new(Fe(limbs), Choice::from(b as u8))
    }

    /// Parses eight little-endian 32-bit limbs (the GPU kernels' layout); `None` (constant
    /// time) when the value is not below `p`.
    pub fn from_u32_limbs(words: &[u32; 8]) -> CtOption<Fe> {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            *limb = u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32);
        }
        let (_, b) = sbb(limbs[0], P[0], 0);
        let (_, b) = sbb(limbs[1], P[1], b);
        let (_, b) = sbb(limbs[2], P[2], b);
        let (_, b) = sbb(limbs[3], P[3], b);
        CtOption::new(Fe(limbs), Choice::from(b as u8))
    }

    /// The canonical value as eight little-endian 32-bit limbs.
    pub fn to_u32_limbs(&self) -> [u32; 8] {
        let n = self.normalize();
        let mut out = [0u32; 8];
        for (i, limb) in n.0.iter().enumerate() {
            out[2 * i] = *limb as u32;
            out[2 * i + 1] = (*limb >> 32) as u32;
        }
        out
    }

    /// The canonical 32 big-endian bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let n = self.normalize();
        let mut out = [0u8; 32];
        for (i, limb) in n.0.iter().enumerate() {
            let start = 32 - 8 * (i + 1);
            out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// The canonical representative (`< p`).
    #[inline]
    pub fn normalize(&self) -> Fe {
        // v ≥ p  ⇔  v + R ≥ 2²⁵⁶, and then v − p = (v + R) mod 2²⁵⁶.
        let a = self.0;
        let (w0, c) = adc(a[0], R, 0);
        let (w1, c) = adc(a[1], 0, c);
        let (w2, c) = adc(a[2], 0, c);
        let (w3, c) = adc(a[3], 0, c);
        let mask = 0u64.wrapping_sub(c);
        Fe([
            (w0 & mask) | (a[0] & !mask),
            (w1 & mask) | (a[1] & !mask),
            (w2 & mask) | (a[2] & !mask),
            (w3 & mask) | (a[3] & !mask),
        ])
    }

    /// Whether the element is zero.
    #[inline]
    pub fn is_zero(&self) -> Choice {
        let n = self.normalize().0;
        (n[0] | n[1] | n[2] | n[3]).ct_eq(&0)
    }

    /// Whether this is zero, in variable time: for public values only (points on the wire,
    /// device outputs), where [`Fe::is_zero`]'s optimisation barriers buy nothing.
    #[inline]
    pub fn is_zero_vartime(&self) -> bool {
        self.normalize().0 == [0; 4]
    }

    /// Whether `self == other`, in variable time: for public values only.
    #[inline]
    pub fn eq_vartime(&self, other: &Fe) -> bool {
        self.normalize().0 == other.normalize().0
    }

    /// Whether the canonical representative is odd.
    #[inline]
    pub fn is_odd(&self) -> Choice {
        Choice::from((self.normalize().0[0] & 1) as u8)
    }

    /// `self + rhs`.
    #[inline(always)]
    pub fn add(&self, rhs: &Fe) -> Fe {
        let (a, b) = (self.0, rhs.0);
        let (s0, c) = adc(a[0], b[0], 0);
        let (s1, c) = adc(a[1], b[1], c);
        let (s2, c) = adc(a[2], b[2], c);
        let (s3, c) = adc(a[3], b[3], c);
        fold([s0, s1, s2, s3], c)
    }

    /// `2·self`.
    #[inline(always)]
    pub fn double(&self) -> Fe {
        self.add(self)
    }

    /// `self − rhs`.
    #[inline(always)]
    pub fn sub(&self, rhs: &Fe) -> Fe {
        let (a, b) = (self.0, rhs.0);
        let (d0, k) = sbb(a[0], b[0], 0);
        let (d1, k) = sbb(a[1], b[1], k);
        let (d2, k) = sbb(a[2], b[2], k);
        let (d3, k) = sbb(a[3], b[3], k);
        // A borrow added 2²⁵⁶ ≡ R: take R away again.
        let (d0, k2) = sbb(d0, k * R, 0);
        let (d1, k2) = sbb(d1, 0, k2);
        let (d2, k2) = sbb(d2, 0, k2);
        let (d3, k2) = sbb(d3, 0, k2);
        // A second borrow leaves d ≥ 2²⁵⁶ − R, so this last subtraction cannot borrow.
        Fe([d0.wrapping_sub(k2 * R), d1, d2, d3])
    }

    /// `−self`.
    #[inline(always)]
    pub fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    /// `self·k` for a small `k < 2³²`.
    #[inline(always)]
    pub fn mul_small(&self, k: u32) -> Fe {
        let a = self.0;
        let k = k as u64;
        let (r0, c) = mac(a[0], k, 0, 0);
        let (r1, c) = mac(a[1], k, 0, c);
        let (r2, c) = mac(a[2], k, 0, c);
        let (r3, c) = mac(a[3], k, 0, c);
        fold([r0, r1, r2, r3], c)
    }

    /// `self·rhs`.
    #[inline(always)]
    pub fn mul(&self, rhs: &Fe) -> Fe {
        let (a, b) = (self.0, rhs.0);
        let (t0, c) = mac(a[0], b[0], 0, 0);
        let (t1, c) = mac(a[0], b[1], 0, c);
        let (t2, c) = mac(a[0], b[2], 0, c);
        let (t3, t4) = mac(a[0], b[3], 0, c);

        let (t1, c) = mac(a[1], b[0], t1, 0);
        let (t2, c) = mac(a[1], b[1], t2, c);
        let (t3, c) = mac(a[1], b[2], t3, c);
        let (t4, t5) = mac(a[1], b[3], t4, c);

        let (t2, c) = mac(a[2], b[0], t2, 0);
        let (t3, c) = mac(a[2], b[1], t3, c);
        let (t4, c) = mac(a[2], b[2], t4, c);
        let (t5, t6) = mac(a[2], b[3], t5, c);

        let (t3, c) = mac(a[3], b[0], t3, 0);
        let (t4, c) = mac(a[3], b[1], t4, c);
        let (t5, c) = mac(a[3], b[2], t5, c);
        let (t6, t7) = mac(a[3], b[3], t6, c);

        reduce_wide([t0, t1, t2, t3, t4, t5, t6, t7])
    }

    /// `self²`.
    #[inline(always)]
    pub fn square(&self) -> Fe {
        let a = self.0;
        // Off-diagonal products once …
        let (t1, c) = mac(a[0], a[1], 0, 0);
        let (t2, c) = mac(a[0], a[2], 0, c);
        let (t3, t4) = mac(a[0], a[3], 0, c);
        let (t3, c) = mac(a[1], a[2], t3, 0);
        let (t4, t5) = mac(a[1], a[3], t4, c);
        let (t5, t6) = mac(a[2], a[3], t5, 0);
        // … doubled …
        let t7 = t6 >> 63;
        let t6 = (t6 << 1) | (t5 >> 63);
        let t5 = (t5 << 1) | (t4 >> 63);
        let t4 = (t4 << 1) | (t3 >> 63);
        let t3 = (t3 << 1) | (t2 >> 63);
        let t2 = (t2 << 1) | (t1 >> 63);
        let t1 = t1 << 1;
        // … plus the squares on the diagonal.
        let (t0, c) = mac(a[0], a[0], 0, 0);
        let (t1, k) = adc(t1, c, 0);
        let (lo, hi) = mac(a[1], a[1], 0, 0);
        let (t2, k) = adc(t2, lo, k);
        let (t3, k) = adc(t3, hi, k);
        let (lo, hi) = mac(a[2], a[2], 0, 0);
        let (t4, k) = adc(t4, lo, k);
        let (t5, k) = adc(t5, hi, k);
        let (lo, hi) = mac(a[3], a[3], 0, 0);
        let (t6, k) = adc(t6, lo, k);
        let (t7, _) = adc(t7, hi, k);
        reduce_wide([t0, t1, t2, t3, t4, t5, t6, t7])
    }

    /// `self^(2ⁿ)`.
    #[inline]
    fn square_n(&self, n: usize) -> Fe {
        let mut x = *self;
        for _ in 0..n {
            x = x.square();
        }
        x
    }

    /// `(self^(2²²³ − 1), self^(2²² − 1), self^(2² − 1))`: the shared head of the addition
    /// chains for inversion and square roots (libsecp256k1's chain).
    fn pow_chain_head(&self) -> (Fe, Fe, Fe) {
        let x2 = self.square().mul(self);
        let x3 = x2.square().mul(self);
        let x6 = x3.square_n(3).mul(&x3);
        let x9 = x6.square_n(3).mul(&x3);
        let x11 = x9.square_n(2).mul(&x2);
        let x22 = x11.square_n(11).mul(&x11);
        let x44 = x22.square_n(22).mul(&x22);
        let x88 = x44.square_n(44).mul(&x44);
        let x176 = x88.square_n(88).mul(&x88);
        let x220 = x176.square_n(44).mul(&x44);
        let x223 = x220.square_n(3).mul(&x3);
        (x223, x22, x2)
    }

    /// `self⁻¹` (`self^(p−2)`); zero maps to zero.
    pub fn invert(&self) -> Fe {
        let (x223, x22, x2) = self.pow_chain_head();
        // p − 2 = [223 ones] 0 [22 ones] 0000 1 0 11 0 1
        let t = x223.square_n(23).mul(&x22);
        let t = t.square_n(5).mul(self);
        let t = t.square_n(3).mul(&x2);
        t.square_n(2).mul(self)
    }

    /// A square root (`self^((p+1)/4)`), if one exists.
    pub fn sqrt(&self) -> CtOption<Fe> {
        let (x223, x22, x2) = self.pow_chain_head();
        // (p + 1)/4 = [223 ones] 0 [22 ones] 0000 11 00
        let t = x223.square_n(23).mul(&x22);
        let t = t.square_n(6).mul(&x2);
        let root = t.square_n(2);
        let is_root = root.square().ct_eq(self);
        CtOption::new(root.normalize(), is_root)
    }
}

impl ConstantTimeEq for Fe {
    fn ct_eq(&self, other: &Self) -> Choice {
        let (a, b) = (self.normalize().0, other.normalize().0);
        a[0].ct_eq(&b[0]) & a[1].ct_eq(&b[1]) & a[2].ct_eq(&b[2]) & a[3].ct_eq(&b[3])
    }
}

impl ConditionallySelectable for Fe {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Fe([
            u64::conditional_select(&a.0[0], &b.0[0], choice),
            u64::conditional_select(&a.0[1], &b.0[1], choice),
            u64::conditional_select(&a.0[2], &b.0[2], choice),
            u64::conditional_select(&a.0[3], &b.0[3], choice),
        ])
    }
}

impl PartialEq for Fe {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other))
    }
}

impl Eq for Fe {}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::FieldElement;
    use proptest::prelude::*;
    use std::ops::Add;

    fn k256_of(v: &Fe) -> FieldElement {
        Option::from(FieldElement::from_bytes(&v.to_bytes().into())).expect("canonical")
    }

    fn bytes_of(v: &FieldElement) -> [u8; 32] {
        v.normalize().to_bytes().into()
    }

    /// Any 256-bit pattern, including the weakly reduced range `[p, 2²⁵⁶)`.
    fn any_fe() -> impl Strategy<Value = Fe> {
        prop_oneof![
            any::<[u64; 4]>().prop_map(Fe),
            // Values next to the edges: 0, 1, p − 1, p, p + 1, 2²⁵⁶ − 1, 2²⁵⁶ − R + small.
            (0u64..4, 0usize..6).prop_map(|(d, which)| {
                let edges = [
                    [d, 0, 0, 0],
                    [P[0] - d, P[1], P[2], P[3]],
                    [P[0] + d, P[1], P[2], P[3]],
                    [u64::MAX - d, u64::MAX, u64::MAX, u64::MAX],
                    [R - d, 0, 0, 0],
                    [0, 0, 0, 1u64 << 63 | d],
                ];
                Fe(edges[which])
            }),
        ]
    }

    /// `v + p` when `v` is reduced, `v − p` when it is not, and whether that left 256 bits.
    pub(super) fn other_representative(v: &Fe) -> (Fe, bool) {
        let n = v.normalize();
        if n.0 == v.0 {
            let (w0, c) = adc(v.0[0], P[0], 0);
            let (w1, c) = adc(v.0[1], P[1], c);
            let (w2, c) = adc(v.0[2], P[2], c);
            let (w3, c) = adc(v.0[3], P[3], c);
            (Fe([w0, w1, w2, w3]), c != 0)
        } else {
            (n, false)
        }
    }

    /// k256's element congruent to a (possibly weakly reduced) `Fe`.
    fn reference(v: &Fe) -> FieldElement {
        k256_of(&v.normalize())
    }

    proptest! {
        #[test]
        fn arithmetic_matches_k256(a in any_fe(), b in any_fe(), k in any::<u32>()) {
            let (ra, rb) = (reference(&a), reference(&b));
            prop_assert_eq!(a.mul(&b).to_bytes(), bytes_of(&ra.mul(&rb)));
            prop_assert_eq!(a.square().to_bytes(), bytes_of(&ra.square()));
            prop_assert_eq!(a.add(&b).to_bytes(), bytes_of(&ra.add(&rb)));
            prop_assert_eq!(a.sub(&b).to_bytes(), bytes_of(&ra.add(&rb.negate(1))));
            prop_assert_eq!(a.neg().to_bytes(), bytes_of(&ra.negate(1)));
            prop_assert_eq!(a.double().to_bytes(), bytes_of(&ra.double()));
            let kf = FieldElement::from_u64(k as u64);
            prop_assert_eq!(a.mul_small(k).to_bytes(), bytes_of(&ra.mul(&kf)));
            prop_assert_eq!(bool::from(a.is_zero()), bool::from(ra.normalizes_to_zero()));
            prop_assert_eq!(bool::from(a.is_odd()), bool::from(ra.normalize().is_odd()));
            prop_assert_eq!(a.is_zero_vartime(), bool::from(ra.normalizes_to_zero()));
            // Equality of the residues, whatever the representatives: a against b, against
            // itself and against its other representative (a ± p where it fits in 256 bits).
            prop_assert_eq!(a.eq_vartime(&b), ra.normalize() == rb.normalize());
            prop_assert_eq!(a.eq_vartime(&b), bool::from(a.ct_eq(&b)));
            prop_assert!(a.eq_vartime(&a.normalize()));
            let (other, wrapped) = other_representative(&a);
            if !wrapped {
                prop_assert!(other.eq_vartime(&a) && a.eq_vartime(&other));
            }
        }

        #[test]
        fn invert_and_sqrt_match_k256(a in any_fe()) {
            let ra = reference(&a);
            let want_inv = Option::<FieldElement>::from(ra.invert()).unwrap_or(FieldElement::ZERO);
            prop_assert_eq!(a.invert().to_bytes(), bytes_of(&want_inv));
            let got: Option<Fe> = a.sqrt().into();
            let want: Option<FieldElement> = ra.sqrt().into();
            prop_assert_eq!(got.is_some(), want.is_some());
            if let Some(root) = got {
                prop_assert_eq!(root.square(), a);
            }
        }

        #[test]
        fn bytes_round_trip_and_range_check(bytes in any::<[u8; 32]>()) {
            let ours: Option<Fe> = Fe::from_bytes(&bytes).into();
            let theirs: Option<FieldElement> = FieldElement::from_bytes(&bytes.into()).into();
            prop_assert_eq!(ours.is_some(), theirs.is_some());
            if let Some(v) = ours {
                prop_assert_eq!(v.to_bytes(), bytes);
            }
        }

        /// The GPU layout's limbs say the same as the big-endian bytes, weakly reduced values
        /// included.
        #[test]
        fn u32_limbs_agree_with_bytes(a in any_fe(), words in any::<[u32; 8]>()) {
            let limbs = a.to_u32_limbs();
            let mut from_bytes = [0u32; 8];
            let bytes = a.to_bytes();
            for (i, limb) in from_bytes.iter_mut().enumerate() {
                let at = 28 - 4 * i;
                *limb = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            }
            prop_assert_eq!(limbs, from_bytes);
            let back: Option<Fe> = Fe::from_u32_limbs(&limbs).into();
            prop_assert_eq!(back, Some(a.normalize()));
            let mut be = [0u8; 32];
            for (i, limb) in words.iter().enumerate() {
                let at = 28 - 4 * i;
                be[at..at + 4].copy_from_slice(&limb.to_be_bytes());
            }
            let via_limbs: Option<Fe> = Fe::from_u32_limbs(&words).into();
            let via_bytes: Option<Fe> = Fe::from_bytes(&be).into();
            prop_assert_eq!(via_limbs, via_bytes);
        }
    }

    #[test]
    fn edges() {
        let p_minus_1 = Fe([P[0] - 1, P[1], P[2], P[3]]);
        assert_eq!(p_minus_1.add(&Fe::ONE), Fe::ZERO);
        assert!(bool::from(Fe(P).is_zero()));
        assert_eq!(Fe::ZERO.neg(), Fe::ZERO);
        assert_eq!(p_minus_1.square(), Fe::ONE);
        assert_eq!(Fe::ZERO.invert(), Fe::ZERO);
        let max = Fe([u64::MAX; 4]); // 2²⁵⁶ − 1 ≡ R − 1
        assert_eq!(max, Fe::from_u64(R - 1));
        assert_eq!(max.mul(&max), Fe::from_u64(R - 1).square());
        let p_bytes = Fe(P).0;
        assert!(bool::from(
            Fe::from_bytes(&Fe(p_bytes).to_bytes()).is_some()
        ));
        let mut raw_p = [0u8; 32];
        for (i, limb) in P.iter().enumerate() {
            raw_p[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
        }
        assert!(bool::from(Fe::from_bytes(&raw_p).is_none()));
    }
}
