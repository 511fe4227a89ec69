//! The GLV endomorphism of secp256k1 and the constant-time scalar recoding built on it.
//!
//! `λ·(x, y) = (β·x, y)`, so `k·P = k₁·P + k₂·(λP)` with `|k₁|, |k₂| < 2¹²⁸` halves the
//! doublings of a multiplication. The split follows libsecp256k1 / k256 (Gouvêa–Oliveira–López
//! rounding with 384-bit precomputed constants), with every step free of secret-dependent
//! branches and memory indices.

use std::sync::LazyLock;

use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{Scalar, U256};

use super::field::Fe;
use subtle::{Choice, ConditionallySelectable};

/// Window width of the signed odd-digit recoding.
pub const WINDOW: usize = 5;
/// Number of odd multiples in a window table: `1·P, 3·P, …, 31·P`.
pub const TABLE_SIZE: usize = 1 << (WINDOW - 1);
/// Digits of a recoded 128-bit half-scalar.
pub const DIGITS: usize = 26;

fn scalar_from_be(bytes: [u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce(U256::from_be_slice(&bytes))
}

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}

struct Constants {
    minus_lambda: Scalar,
    minus_b1: Scalar,
    minus_b2: Scalar,
    g1: [u64; 4],
    g2: [u64; 4],
    beta: Fe,
}

static CONSTANTS: LazyLock<Constants> = LazyLock::new(|| Constants {
    minus_lambda: scalar_from_be(hex32(
        "ac9c52b33fa3cf1f5ad9e3fd77ed9ba4a880b9fc8ec739c2e0cfc810b51283cf",
    )),
    minus_b1: scalar_from_be(hex32(
        "00000000000000000000000000000000e4437ed6010e88286f547fa90abfe4c3",
    )),
    minus_b2: scalar_from_be(hex32(
        "fffffffffffffffffffffffffffffffe8a280ac50774346dd765cda83db1562c",
    )),
    g1: limbs_le(hex32(
        "3086d221a7d46bcde86c90e49284eb153daa8a1471e8ca7fe893209a45dbb031",
    )),
    g2: limbs_le(hex32(
        "e4437ed6010e88286f547fa90abfe4c4221208ac9df506c61571b4ae8ac47f71",
    )),
    beta: Option::from(Fe::from_bytes(&hex32(
        "7ae96a2b657c07106e64479eac3434e99cf0497512f58995c1396c28719501ee",
    )))
    .unwrap_or(Fe::ZERO),
});

/// `β`, the cube root of unity in the field with `λ·(x, y) = (β·x, y)`.
pub fn beta() -> Fe {
    CONSTANTS.beta
}

fn limbs_le(be: [u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let start = 32 - 8 * (i + 1);
        let mut word = [0u8; 8];
        word.copy_from_slice(&be[start..start + 8]);
        *limb = u64::from_be_bytes(word);
    }
    out
}

/// `round(a·b / 2³⁸⁴)` for 256-bit `a`, `b`; constant time.
fn mul_shift_384(a: &[u64; 4], b: &[u64; 4]) -> Scalar {
    let mut wide = [0u64; 8];
    for i in 0..4 {
        let mut carry: u128 = 0;
        for j in 0..4 {
            let t = (a[i] as u128) * (b[j] as u128) + (wide[i + j] as u128) + carry;
            wide[i + j] = t as u64;
            carry = t >> 64;
        }
        wide[i + 4] = carry as u64;
    }
    // bits 384..512 plus the rounding bit 383
    let round = (wide[5] >> 63) as u128;
    let low = (wide[6] as u128) | ((wide[7] as u128) << 64);
    let (sum, overflow) = low.overflowing_add(round);
    let mut be = [0u8; 32];
    be[15] = overflow as u8;
    be[16..].copy_from_slice(&sum.to_be_bytes());
    scalar_from_be(be)
}

/// Splits `k` into `(r1, r2)` with `r1 + r2·λ ≡ k (mod n)`, each `r` or `−r` below 2¹²⁸.
pub fn decompose(k: &Scalar) -> (Scalar, Scalar) {
    let c = &*CONSTANTS;
    let k_limbs = limbs_le(k.to_bytes().into());
    let c1 = mul_shift_384(&k_limbs, &c.g1) * c.minus_b1;
    let c2 = mul_shift_384(&k_limbs, &c.g2) * c.minus_b2;
    let r2 = c1 + c2;
    let r1 = *k + r2 * c.minus_lambda;
    (r1, r2)
}

/// The low 128 bits of a scalar (its whole value when it is below 2¹²⁸).
pub(crate) fn low_u128(s: &Scalar) -> u128 {
    let bytes = s.to_bytes();
    let mut low = [0u8; 16];
    low.copy_from_slice(&bytes[16..]);
    u128::from_be_bytes(low)
}

/// The magnitude of a GLV half (`r` or `−r` is below 2¹²⁸) and whether `r` is negative.
/// Variable time: for public scalars only ([`OddDigits::new`] is the constant-time form).
pub(crate) fn half_magnitude_vartime(r: &Scalar) -> (u128, bool) {
    let negative = bool::from(r.is_high());
    let abs = if negative { -r } else { *r };
    (low_u128(&abs), negative)
}

/// A half-scalar recoded into [`DIGITS`] signed odd digits of [`WINDOW`] bits.
///
/// Holds `k' = Σ dᵢ·2^(5i)` with every `dᵢ` odd in `[−31, 31]`, where `k' = |r| + even` is
/// made odd by adding one to an even `|r|`; `negate` records the sign of `r` and `even`
/// whether the final result must be corrected by subtracting one multiple of the point.
#[derive(Clone, Copy)]
pub struct OddDigits {
    /// Digits, least significant first.
    pub digits: [i8; DIGITS],
    /// Set when the half-scalar is negative: use `−P` instead of `P`.
    pub negate: Choice,
    /// Set when one was added to make the magnitude odd: subtract `±P` at the end.
    pub even: Choice,
}

impl OddDigits {
    /// Recodes one GLV half `r` (with `r` or `−r` below 2¹²⁸) in constant time.
    pub fn new(r: &Scalar) -> Self {
        let negate = r.is_high();
        // `0 − r`, not `−r`: k256's `Neg` (crypto-bigint 0.5's `neg_mod`) compiles to a branch
        // on `r == 0`, `Sub` does not (crates/umbrald-ctime checks this under valgrind).
        let abs = Scalar::conditional_select(r, &(Scalar::ZERO - r), negate);
        let bytes = abs.to_bytes();
        let mut low = [0u8; 16];
        low.copy_from_slice(&bytes[16..]);
        let mut k = u128::from_be_bytes(low);
        let even = (!(k as u8)) & 1;
        // k ≤ 2¹²⁸ − 2 when even, so this cannot overflow.
        k = k.wrapping_add(even as u128);
        let mut digits = [0i8; DIGITS];
        for digit in digits.iter_mut().take(DIGITS - 1) {
            // k odd: d = (k mod 64) − 32 is odd in [−31, 31] and k − d = 2·⌊k/64⌋·32 + 32.
            *digit = ((k & 63) as i8) - 32;
            k = ((k >> 6) << 1) | 1;
        }
        digits[DIGITS - 1] = k as i8;
        OddDigits {
            digits,
            negate,
            even: Choice::from(even),
        }
    }
}

/// Recodes both GLV halves of `k`.
pub fn recode(k: &Scalar) -> [OddDigits; 2] {
    let (r1, r2) = decompose(k);
    [OddDigits::new(&r1), OddDigits::new(&r2)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;

    fn value_of(d: &OddDigits) -> Scalar {
        let mut acc = Scalar::ZERO;
        for &digit in d.digits.iter().rev() {
            acc *= Scalar::from(32u64);
            let mag = Scalar::from(digit.unsigned_abs() as u64);
            acc += if digit < 0 { -mag } else { mag };
        }
        acc -= Scalar::conditional_select(&Scalar::ZERO, &Scalar::ONE, d.even);
        Scalar::conditional_select(&acc, &-acc, d.negate)
    }

    #[test]
    fn decomposition_and_recoding_reconstruct_the_scalar() {
        let lambda = -CONSTANTS.minus_lambda;
        let mut rng = rand::thread_rng();
        let mut cases: Vec<Scalar> = (0..500).map(|_| Scalar::random(&mut rng)).collect();
        cases.extend([Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(2u64)]);
        for k in cases {
            let (r1, r2) = decompose(&k);
            assert_eq!(r1 + r2 * lambda, k);
            let [d1, d2] = recode(&k);
            for d in [&d1, &d2] {
                assert!(d.digits.iter().all(|x| x % 2 != 0 && x.abs() <= 31));
            }
            assert_eq!(value_of(&d1) + value_of(&d2) * lambda, k);
        }
    }
}
