//! Packing batches into the kernels' limb-major word layout and reading results back.
//!
//! Word `w` of item `i` of an `n`-item array lives at `[w * n + i]` (see
//! `kernels/scalar_mul.cuh`), so consecutive GPU threads read consecutive words. Field elements
//! and scalars are eight little-endian 32-bit limbs.

use k256::Scalar;
use umbrald_core::curve::Affine;

/// Words per item of `umb_mul_pairs` input: base (x, y) then two scalars.
pub const PAIR_IN_WORDS: usize = 32;
/// Words per item of `umb_mul_pairs` output: two slots of x, y and an identity flag.
pub const PAIR_OUT_WORDS: usize = 34;
/// Words per item of `umb_mul_fixed` input: one scalar.
pub const FIXED_IN_WORDS: usize = 8;
/// Words per item of `umb_mul_fixed` output: x, y and an identity flag.
pub const FIXED_OUT_WORDS: usize = 17;

/// Why a kernel's output words are not a valid result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A buffer has the wrong number of words for the batch.
    #[error("buffer of {got} words, expected {want}")]
    Length {
        /// Words present.
        got: usize,
        /// Words needed.
        want: usize,
    },
    /// The identity flag of item `0` is neither 0 nor 1.
    #[error("item {0}: identity flag is not 0 or 1")]
    Flag(usize),
    /// Item `0` is not a point on the curve (or a coordinate is not below p).
    #[error("item {0}: result is not a curve point")]
    NotOnCurve(usize),
    /// Item `0` is the identity for a non-zero scalar, or a point for a zero scalar.
    #[error("item {0}: identity flag does not match the scalar")]
    IdentityMismatch(usize),
}

/// Big-endian 32 bytes -> 8 little-endian limbs.
pub fn limbs_from_be(bytes: &[u8; 32]) -> [u32; 8] {
    let mut limbs = [0u32; 8];
    for (i, limb) in limbs.iter_mut().enumerate() {
        let at = 28 - 4 * i;
        *limb = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    }
    limbs
}

/// 8 little-endian limbs -> big-endian 32 bytes.
pub fn limbs_to_be(limbs: &[u32; 8]) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, limb) in limbs.iter().enumerate() {
        let at = 28 - 4 * i;
        bytes[at..at + 4].copy_from_slice(&limb.to_be_bytes());
    }
    bytes
}

/// The x and y limbs of a point (through its byte encoding, whatever the field type).
pub(crate) fn xy_limbs(p: &Affine) -> ([u32; 8], [u32; 8]) {
    let xy = p.to_xy_bytes();
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    x.copy_from_slice(&xy[..32]);
    y.copy_from_slice(&xy[32..]);
    (limbs_from_be(&x), limbs_from_be(&y))
}

fn scalar_limbs(s: &Scalar) -> zeroize::Zeroizing<[u32; 8]> {
    let bytes = zeroize::Zeroizing::new(<[u8; 32]>::from(s.to_bytes()));
    zeroize::Zeroizing::new(limbs_from_be(&bytes))
}

fn put(dst: &mut [u32], n: usize, row: usize, i: usize, limbs: &[u32; 8]) {
    for (w, limb) in limbs.iter().enumerate() {
        dst[(row + w) * n + i] = *limb;
    }
}

fn get(src: &[u32], n: usize, row: usize, i: usize) -> [u32; 8] {
    let mut limbs = [0u32; 8];
    for (w, limb) in limbs.iter_mut().enumerate() {
        *limb = src[(row + w) * n + i];
    }
    limbs
}

fn check_len(got: usize, want: usize) -> Result<(), LayoutError> {
    if got == want {
        Ok(())
    } else {
        Err(LayoutError::Length { got, want })
    }
}

/// Writes a `umb_mul_pairs` input: `dst` must hold exactly `PAIR_IN_WORDS * n` words.
pub fn pack_pairs(
    bases: &[Affine],
    scalars: &[[Scalar; 2]],
    dst: &mut [u32],
) -> Result<(), LayoutError> {
    let n = bases.len();
    check_len(scalars.len(), n)?;
    check_len(dst.len(), PAIR_IN_WORDS * n)?;
    let (points, keys) = dst.split_at_mut(16 * n);
    for (i, (base, pair)) in bases.iter().zip(scalars).enumerate() {
        let (x, y) = xy_limbs(base);
        put(points, n, 0, i, &x);
        put(points, n, 8, i, &y);
        put(keys, n, 0, i, &scalar_limbs(&pair[0]));
        put(keys, n, 8, i, &scalar_limbs(&pair[1]));
    }
    Ok(())
}

/// Writes a `umb_mul_fixed` input: `dst` must hold exactly `FIXED_IN_WORDS * n` words.
pub fn pack_fixed(scalars: &[Scalar], dst: &mut [u32]) -> Result<(), LayoutError> {
    let n = scalars.len();
    check_len(dst.len(), FIXED_IN_WORDS * n)?;
    for (i, k) in scalars.iter().enumerate() {
        put(dst, n, 0, i, &scalar_limbs(k));
    }
    Ok(())
}

/// Reads output slot `slot` (17 rows starting at row `17 * slot`) of item `i`, checking the
/// flag, the point and that the identity appears exactly for a zero scalar.
fn read_slot(
    src: &[u32],
    n: usize,
    slot: usize,
    i: usize,
    scalar: &Scalar,
) -> Result<Option<Affine>, LayoutError> {
    let row = 17 * slot;
    let flag = src[(row + 16) * n + i];
    let zero_scalar = bool::from(scalar.is_zero());
    match flag {
        1 if zero_scalar => Ok(None),
        0 if !zero_scalar => {
            let x = limbs_to_be(&get(src, n, row, i));
            let y = limbs_to_be(&get(src, n, row + 8, i));
            Affine::from_xy_bytes(&x, &y)
                .map(Some)
                .ok_or(LayoutError::NotOnCurve(i))
        }
        0 | 1 => Err(LayoutError::IdentityMismatch(i)),
        _ => Err(LayoutError::Flag(i)),
    }
}

/// Reads a `umb_mul_pairs` output of `scalars.len()` items into `out` (appending).
///
/// Every point is checked to be on the curve (a few field operations each, catching corrupted
/// words); whether the products are the right ones is the audit's job.
pub fn unpack_pairs(
    src: &[u32],
    scalars: &[[Scalar; 2]],
    out: &mut Vec<[Option<Affine>; 2]>,
) -> Result<(), LayoutError> {
    let n = scalars.len();
    check_len(src.len(), PAIR_OUT_WORDS * n)?;
    out.reserve(n);
    for (i, pair) in scalars.iter().enumerate() {
        out.push([
            read_slot(src, n, 0, i, &pair[0])?,
            read_slot(src, n, 1, i, &pair[1])?,
        ]);
    }
    Ok(())
}

/// Reads a `umb_mul_fixed` output of `scalars.len()` items into `out` (appending).
pub fn unpack_fixed(
    src: &[u32],
    scalars: &[Scalar],
    out: &mut Vec<Option<Affine>>,
) -> Result<(), LayoutError> {
    let n = scalars.len();
    check_len(src.len(), FIXED_OUT_WORDS * n)?;
    out.reserve(n);
    for (i, k) in scalars.iter().enumerate() {
        out.push(read_slot(src, n, 0, i, k)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limbs_round_trip_and_order() {
        let mut bytes = [0u8; 32];
        bytes[31] = 1; // least significant byte
        bytes[0] = 0x80;
        let limbs = limbs_from_be(&bytes);
        assert_eq!(limbs[0], 1);
        assert_eq!(limbs[7], 0x8000_0000);
        assert_eq!(limbs_to_be(&limbs), bytes);
    }

    #[test]
    fn pack_checks_lengths() {
        let mut dst = vec![0u32; 7];
        assert_eq!(
            pack_fixed(&[Scalar::ONE], &mut dst),
            Err(LayoutError::Length { got: 7, want: 8 })
        );
    }

    #[test]
    fn unpack_rejects_bad_flags_and_points() {
        let scalars = [Scalar::ONE];
        let mut out = Vec::new();
        // All zero words: flag 0 for a non-zero scalar, but (0, 0) is not on the curve.
        let words = vec![0u32; FIXED_OUT_WORDS];
        assert_eq!(
            unpack_fixed(&words, &scalars, &mut out),
            Err(LayoutError::NotOnCurve(0))
        );
        let mut words = vec![0u32; FIXED_OUT_WORDS];
        words[16] = 2;
        assert_eq!(
            unpack_fixed(&words, &scalars, &mut out),
            Err(LayoutError::Flag(0))
        );
        words[16] = 1;
        assert_eq!(
            unpack_fixed(&words, &scalars, &mut out),
            Err(LayoutError::IdentityMismatch(0))
        );
        assert_eq!(unpack_fixed(&words, &[Scalar::ZERO], &mut out), Ok(()));
        assert_eq!(out, vec![None]);
    }
}
