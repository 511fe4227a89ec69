//! Packing batches into the kernels' limb-major word layout and reading results back.
//!
//! Word `w` of item `i` of an `n`-item array lives at `[w * n + i]` (see
//! `kernels/scalar_mul.cuh`), so consecutive GPU threads read consecutive words. Field elements
//! and scalars are eight little-endian 32-bit limbs.

use std::ops::Range;

use k256::Scalar;
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome, CfragParts, CFRAG_PARTS_LEN};
use umbrald_core::curve::{Affine, CompressedPoint};

/// Words per item of a base point (x, y) in the `umb_mul_pairs` input.
pub const PAIR_BASE_WORDS: usize = 16;
/// Words per item of `umb_mul_pairs` input: base (x, y) then two scalars.
pub const PAIR_IN_WORDS: usize = PAIR_BASE_WORDS + 16;
/// Words per item of `umb_mul_pairs` output: two slots of x, y and an identity flag.
pub const PAIR_OUT_WORDS: usize = 34;
/// Words per item of a `umb_mul_pairs` input for a launch without second products
/// (`second = 0`): the base and the first scalar. The kernel does not read the second
/// scalar's rows then, so they are neither packed nor uploaded.
pub const FIRSTS_IN_WORDS: usize = PAIR_BASE_WORDS + 8;
/// Words per item of the first output slot of `umb_mul_pairs`: the first `17 · n` words of
/// its output, all a launch without second products needs copied back.
pub const FIRSTS_OUT_WORDS: usize = 17;
/// Words per item of `umb_mul_fixed` input: one scalar.
pub const FIXED_IN_WORDS: usize = 8;
/// Words per item of `umb_mul_fixed` output: x, y and an identity flag.
pub const FIXED_OUT_WORDS: usize = 17;
/// Words per item of `umb_decompress` input: x and the parity of y.
pub const DECOMPRESS_IN_WORDS: usize = 9;
/// Words per item of `umb_decompress` output: y and an on-curve flag.
pub const DECOMPRESS_OUT_WORDS: usize = 9;

/// Words per capsule of a kfrag's compressed commitment `U1` in a one-call input: 33 bytes
/// packed little-endian into 9 words.
pub const PARTS_U1_WORDS: usize = 9;
/// Words per capsule of a one-call re-encryption's output (`umb_reenc_finish`), all that
/// comes back: the parts' 197 bytes packed little-endian into 50 words, then a status word
/// (0: a valid capsule whose five products are points on the curve).
pub const PARTS_OUT_WORDS: usize = 51;

/// Words per capsule of a one-call re-encryption's input (`umb_reenc_prep`): `E`'s x and
/// parity (rows 0..9), `V`'s (9..18), `s` (18..26), `rk` (26..34), `t` (34..42) and `U1`'s 33
/// bytes packed as [`PARTS_U1_WORDS`] (42..51).
pub const REENC_IN_WORDS: usize = 51;
/// Row of `s` in the one-call input: rows 18..26 are the `umb_mul_fixed` input for `s·G`.
pub const REENC_S_ROW: usize = 18;
/// Row of `t` in the one-call input: rows 34..42 are the `umb_mul_fixed` input for `t·U`.
pub const REENC_T_ROW: usize = 34;
/// Words per capsule of device scratch input a one-call re-encryption's kernels write
/// (`umb_reenc_prep`): the pair input of `E` and `V`, the `h·E` input (as a pair input of
/// one item) and a status word.
pub const REENC_SCRATCH_IN_WORDS: usize = 2 * PAIR_IN_WORDS + PAIR_IN_WORDS + 1;
/// Words per capsule of device output a one-call re-encryption writes: the pair outputs of
/// `E` and `V`, of `h·E`, `s·G`, `t·U`, then the parts ([`PARTS_OUT_WORDS`]).
pub const REENC_DEVICE_OUT_WORDS: usize =
    2 * PAIR_OUT_WORDS + PAIR_OUT_WORDS + 2 * FIXED_OUT_WORDS + PARTS_OUT_WORDS;
/// Status bit of a one-call parts word: the capsule's equation `s·G = V + h·E` fails.
pub const STATUS_CHECK_FAILED: u32 = 4;
/// Status bit of a one-call parts word: `E` or `V` does not decompress.
pub const STATUS_NOT_ON_CURVE: u32 = 8;

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
    /// The parts kernel reports a product of capsule `index` off the curve or the identity
    /// (status bits 1 and 0).
    #[error("capsule {index}: the parts kernel reports status {status:#x}")]
    PartsStatus {
        /// The capsule.
        index: usize,
        /// The kernel's status word.
        status: u32,
    },
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

fn scalar_limbs(s: &Scalar) -> zeroize::Zeroizing<[u32; 8]> {
    let bytes = zeroize::Zeroizing::new(<[u8; 32]>::from(s.to_bytes()));
    zeroize::Zeroizing::new(limbs_from_be(&bytes))
}

/// Fewest items one thread packs or unpacks: below this, spawning costs more than it saves.
const MIN_ITEMS_PER_THREAD: usize = 8192;

/// Items moved between the item-major and the limb-major layout at a time: each of a tile's
/// rows is then read or written as `TILE` consecutive words (a few whole cache lines) instead
/// of one word per item scattered over every row.
const TILE: usize = 64;

/// Contiguous item ranges covering `0..n`, one per thread: up to the available cores, at least
/// [`MIN_ITEMS_PER_THREAD`] items each (one range for small batches).
fn item_ranges(n: usize) -> Vec<Range<usize>> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let parts = cores.min(n / MIN_ITEMS_PER_THREAD).max(1);
    let per = n.div_ceil(parts).max(1);
    (0..n).step_by(per).map(|a| a..n.min(a + per)).collect()
}

/// Runs `work` on every element of `parts`, on scoped threads when there is more than one.
fn run_parts<P: Send, R: Send>(parts: Vec<P>, work: impl Fn(P) -> R + Sync) -> Vec<R> {
    if parts.len() <= 1 {
        return parts.into_iter().map(work).collect();
    }
    let work = &work;
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|p| s.spawn(move || work(p)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Fills a limb-major matrix of `W` rows and `n` columns: `item(i)` gives item `i`'s `W`
/// words. Items are gathered `TILE` at a time and every row of a tile is written as one run;
/// large batches are filled by several threads, each owning a disjoint column range of every
/// row. The tile is wiped after use (its words may be secret scalars).
fn fill_columns<const W: usize>(
    dst: &mut [u32],
    n: usize,
    item: impl Fn(usize) -> zeroize::Zeroizing<[u32; W]> + Sync,
) {
    if n == 0 {
        return;
    }
    let ranges = item_ranges(n);
    let mut parts: Vec<(Range<usize>, Vec<&mut [u32]>)> =
        ranges.iter().map(|r| (r.clone(), Vec::new())).collect();
    for row in dst.chunks_mut(n) {
        let mut rest = row;
        for (range, rows) in parts.iter_mut() {
            let (head, tail) = rest.split_at_mut(range.len());
            rows.push(head);
            rest = tail;
        }
    }
    run_parts(parts, |(range, mut rows)| {
        let mut tile = zeroize::Zeroizing::new([[0u32; TILE]; W]);
        for start in (0..range.len()).step_by(TILE) {
            let len = TILE.min(range.len() - start);
            for k in 0..len {
                let words = item(range.start + start + k);
                for (row, word) in tile.iter_mut().zip(words.iter()) {
                    row[k] = *word;
                }
            }
            for (dst_row, tile_row) in rows.iter_mut().zip(tile.iter()) {
                dst_row[start..start + len].copy_from_slice(&tile_row[..len]);
            }
        }
    });
}

/// Reads every item of a limb-major matrix of `W` rows and `n = out.len()` columns through
/// `read(i, words)` into `out[i]`. Rows are read `TILE` consecutive words at a time; large
/// batches are read by several threads. On an error `out` is left partly written.
fn read_columns<const W: usize, T: Send>(
    src: &[u32],
    out: &mut [T],
    read: impl Fn(usize, &[u32; W]) -> Result<T, LayoutError> + Sync,
) -> Result<(), LayoutError> {
    let n = out.len();
    if n == 0 {
        return Ok(());
    }
    let ranges = item_ranges(n);
    let mut parts = Vec::with_capacity(ranges.len());
    let mut rest = out;
    for range in ranges {
        let (head, tail) = rest.split_at_mut(range.len());
        parts.push((range, head));
        rest = tail;
    }
    let results = run_parts(parts, |(range, out)| {
        let mut tile = [[0u32; W]; TILE];
        for start in (0..range.len()).step_by(TILE) {
            let len = TILE.min(range.len() - start);
            let first = range.start + start;
            for (w, row) in src.chunks_exact(n).take(W).enumerate() {
                for (item, word) in tile.iter_mut().zip(&row[first..first + len]) {
                    item[w] = *word;
                }
            }
            // Products of secret scalars, but public by design: the cfrag carries them.
            umbrald_core::declassify_in_place(&mut tile[..len]);
            for (k, words) in tile[..len].iter().enumerate() {
                out[start + k] = read(first + k, words)?;
            }
        }
        Ok(())
    });
    results.into_iter().collect()
}

/// Limbs `at..at + 8` of an item's words.
fn limbs_at<const W: usize>(words: &[u32; W], at: usize) -> [u32; 8] {
    let mut limbs = [0u32; 8];
    limbs.copy_from_slice(&words[at..at + 8]);
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
    // Rows 0..16: x, y of the base; rows 16..32: a, b.
    fill_columns::<PAIR_IN_WORDS>(dst, n, |i| {
        let mut words = zeroize::Zeroizing::new([0u32; PAIR_IN_WORDS]);
        base_and_scalar(&mut words[..], &bases[i], &scalars[i][0]);
        words[24..32].copy_from_slice(&*scalar_limbs(&scalars[i][1]));
        words
    });
    Ok(())
}

/// Writes the first `FIRSTS_IN_WORDS * n` words of a `umb_mul_pairs` input for a launch
/// without second products: `dst` must hold exactly that many.
pub fn pack_firsts(
    bases: &[Affine],
    scalars: &[Scalar],
    dst: &mut [u32],
) -> Result<(), LayoutError> {
    let n = bases.len();
    check_len(scalars.len(), n)?;
    check_len(dst.len(), FIRSTS_IN_WORDS * n)?;
    // Rows 0..16: x, y of the base; rows 16..24: a (rows 24..32, b, are not read).
    fill_columns::<FIRSTS_IN_WORDS>(dst, n, |i| {
        let mut words = zeroize::Zeroizing::new([0u32; FIRSTS_IN_WORDS]);
        base_and_scalar(&mut words[..], &bases[i], &scalars[i]);
        words
    });
    Ok(())
}

/// Words 0..16 of an item: the base's x and y; words 16..24: the first scalar.
fn base_and_scalar(words: &mut [u32], base: &Affine, scalar: &Scalar) {
    let (x, y) = base.to_xy_limbs();
    words[..8].copy_from_slice(&x);
    words[8..16].copy_from_slice(&y);
    words[16..24].copy_from_slice(&*scalar_limbs(scalar));
}

/// Writes a `umb_mul_fixed` input: `dst` must hold exactly `FIXED_IN_WORDS * n` words.
pub fn pack_fixed(scalars: &[Scalar], dst: &mut [u32]) -> Result<(), LayoutError> {
    let n = scalars.len();
    check_len(dst.len(), FIXED_IN_WORDS * n)?;
    fill_columns::<FIXED_IN_WORDS>(dst, n, |i| scalar_limbs(&scalars[i]));
    Ok(())
}

/// The x limbs of a compressed point.
fn x_limbs(p: &CompressedPoint) -> [u32; 8] {
    p.x.to_u32_limbs()
}

/// Writes a `umb_decompress` input: `dst` must hold exactly `DECOMPRESS_IN_WORDS * n` words.
pub fn pack_decompress(points: &[CompressedPoint], dst: &mut [u32]) -> Result<(), LayoutError> {
    let n = points.len();
    check_len(dst.len(), DECOMPRESS_IN_WORDS * n)?;
    fill_columns::<DECOMPRESS_IN_WORDS>(dst, n, |i| {
        let mut words = zeroize::Zeroizing::new([0u32; DECOMPRESS_IN_WORDS]);
        words[..8].copy_from_slice(&x_limbs(&points[i]));
        words[8] = u32::from(points[i].odd);
        words
    });
    Ok(())
}

/// Appends `n` default values to `out`, lets `fill` write them, and takes them back off
/// again if it fails.
fn append_with<T: Default + Clone>(
    out: &mut Vec<T>,
    n: usize,
    fill: impl FnOnce(&mut [T]) -> Result<(), LayoutError>,
) -> Result<(), LayoutError> {
    let old = out.len();
    out.resize(old + n, T::default());
    let result = fill(&mut out[old..]);
    if result.is_err() {
        out.truncate(old);
    }
    result
}

/// Reads a `umb_decompress` output into `out` (appending; nothing on error): the point for
/// flag 1 (checked on the curve), `None` for flag 0.
pub fn unpack_decompress(
    src: &[u32],
    points: &[CompressedPoint],
    out: &mut Vec<Option<Affine>>,
) -> Result<(), LayoutError> {
    append_with(out, points.len(), |out| {
        unpack_decompress_into(src, points, out)
    })
}

/// [`unpack_decompress`] into `out`, which must hold one slot per point (partly written on
/// error).
pub fn unpack_decompress_into(
    src: &[u32],
    points: &[CompressedPoint],
    out: &mut [Option<Affine>],
) -> Result<(), LayoutError> {
    let n = points.len();
    check_len(out.len(), n)?;
    check_len(src.len(), DECOMPRESS_OUT_WORDS * n)?;
    read_columns::<DECOMPRESS_OUT_WORDS, _>(src, out, |i, words| match words[8] {
        0 => Ok(None),
        1 => Affine::from_xy_limbs(&x_limbs(&points[i]), &limbs_at(words, 0))
            .map(Some)
            .ok_or(LayoutError::NotOnCurve(i)),
        _ => Err(LayoutError::Flag(i)),
    })
}

/// Reads output slot `slot` (17 words starting at word `17 * slot` of the item's words) of
/// item `i`, checking the flag, the point and that the identity appears exactly for a zero
/// scalar.
fn read_slot<const W: usize>(
    words: &[u32; W],
    slot: usize,
    i: usize,
    scalar: &Scalar,
) -> Result<Option<Affine>, LayoutError> {
    let at = 17 * slot;
    // Whether a secret scalar is zero is public: a zero key or nonce never reaches a cfrag.
    let zero_scalar = umbrald_core::declassify(bool::from(scalar.is_zero()));
    match words[at + 16] {
        1 if zero_scalar => Ok(None),
        0 if !zero_scalar => Affine::from_xy_limbs(&limbs_at(words, at), &limbs_at(words, at + 8))
            .map(Some)
            .ok_or(LayoutError::NotOnCurve(i)),
        0 | 1 => Err(LayoutError::IdentityMismatch(i)),
        _ => Err(LayoutError::Flag(i)),
    }
}

/// Reads a `umb_mul_pairs` output of `scalars.len()` items into `out` (appending; nothing on
/// error). Large batches are read by several threads.
///
/// Every point is checked to be on the curve (a few field operations each, catching corrupted
/// words); whether the products are the right ones is the audit's job.
pub fn unpack_pairs(
    src: &[u32],
    scalars: &[[Scalar; 2]],
    out: &mut Vec<[Option<Affine>; 2]>,
) -> Result<(), LayoutError> {
    append_with(out, scalars.len(), |out| {
        unpack_pairs_into(src, scalars, out)
    })
}

/// [`unpack_pairs`] into `out`, which must hold one slot per item (partly written on error).
pub fn unpack_pairs_into(
    src: &[u32],
    scalars: &[[Scalar; 2]],
    out: &mut [[Option<Affine>; 2]],
) -> Result<(), LayoutError> {
    let n = scalars.len();
    check_len(out.len(), n)?;
    check_len(src.len(), PAIR_OUT_WORDS * n)?;
    read_columns::<PAIR_OUT_WORDS, _>(src, out, |i, words| {
        Ok([
            read_slot(words, 0, i, &scalars[i][0])?,
            read_slot(words, 1, i, &scalars[i][1])?,
        ])
    })
}

/// Reads the first output slot of a `umb_mul_pairs` launch without second products (its
/// first `FIRSTS_OUT_WORDS * n` words) into `out`, which must hold one slot per item: `[a·P,
/// None]`, the second product being the identity of a zero scalar (partly written on error).
pub fn unpack_firsts_into(
    src: &[u32],
    scalars: &[Scalar],
    out: &mut [[Option<Affine>; 2]],
) -> Result<(), LayoutError> {
    let n = scalars.len();
    check_len(out.len(), n)?;
    check_len(src.len(), FIRSTS_OUT_WORDS * n)?;
    read_columns::<FIRSTS_OUT_WORDS, _>(src, out, |i, words| {
        Ok([read_slot(words, 0, i, &scalars[i])?, None])
    })
}

/// Reads a `umb_mul_fixed` output of `scalars.len()` items into `out` (appending).
pub fn unpack_fixed(
    src: &[u32],
    scalars: &[Scalar],
    out: &mut Vec<Option<Affine>>,
) -> Result<(), LayoutError> {
    append_with(out, scalars.len(), |out| {
        unpack_fixed_into(src, scalars, out)
    })
}

/// [`unpack_fixed`] into `out`, which must hold one slot per item (partly written on error).
pub fn unpack_fixed_into(
    src: &[u32],
    scalars: &[Scalar],
    out: &mut [Option<Affine>],
) -> Result<(), LayoutError> {
    let n = scalars.len();
    check_len(out.len(), n)?;
    check_len(src.len(), FIXED_OUT_WORDS * n)?;
    read_columns::<FIXED_OUT_WORDS, _>(src, out, |i, words| read_slot(words, 0, i, &scalars[i]))
}

/// Writes a one-call re-encryption's input (`dst` must hold exactly `REENC_IN_WORDS * c`
/// words for `c = capsules.len()`), with `scalars[j] = [rk, t]`.
pub fn pack_reenc(
    capsules: &[CapsuleInput],
    scalars: &[[Scalar; 2]],
    dst: &mut [u32],
) -> Result<(), LayoutError> {
    let c = capsules.len();
    check_len(scalars.len(), c)?;
    check_len(dst.len(), REENC_IN_WORDS * c)?;
    fill_columns::<REENC_IN_WORDS>(dst, c, |j| {
        let capsule = &capsules[j];
        let mut words = zeroize::Zeroizing::new([0u32; REENC_IN_WORDS]);
        words[..8].copy_from_slice(&x_limbs(&capsule.e));
        words[8] = u32::from(capsule.e.odd);
        words[9..17].copy_from_slice(&x_limbs(&capsule.v));
        words[17] = u32::from(capsule.v.odd);
        words[REENC_S_ROW..REENC_S_ROW + 8].copy_from_slice(&*scalar_limbs(&capsule.s));
        words[26..34].copy_from_slice(&*scalar_limbs(&scalars[j][0]));
        words[REENC_T_ROW..REENC_T_ROW + 8].copy_from_slice(&*scalar_limbs(&scalars[j][1]));
        words[42..].copy_from_slice(&u1_words(&capsule.commitment));
        words
    });
    Ok(())
}

/// A compressed point's 33 bytes packed little-endian into [`PARTS_U1_WORDS`] words.
fn u1_words(point: &[u8; 33]) -> [u32; PARTS_U1_WORDS] {
    let mut bytes = [0u8; 4 * PARTS_U1_WORDS];
    bytes[..33].copy_from_slice(point);
    let mut words = [0u32; PARTS_U1_WORDS];
    for (word, four) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([four[0], four[1], four[2], four[3]]);
    }
    words
}

/// Reads a one-call re-encryption's output into `out`
/// (partly written on error): the parts of a capsule with status 0; `Rejected` for one whose
/// status has only [`STATUS_CHECK_FAILED`] or [`STATUS_NOT_ON_CURVE`]; any other status (an
/// identity or off-curve product: a device fault) fails the call.
pub fn unpack_reenc_into(src: &[u32], out: &mut [CapsuleOutcome]) -> Result<(), LayoutError> {
    let c = out.len();
    check_len(src.len(), PARTS_OUT_WORDS * c)?;
    read_columns::<PARTS_OUT_WORDS, _>(src, out, |index, words| match words[PARTS_OUT_WORDS - 1] {
        0 => Ok(CapsuleOutcome::Parts(parts_of(words))),
        status if status & !(STATUS_CHECK_FAILED | STATUS_NOT_ON_CURVE) == 0 => {
            Ok(CapsuleOutcome::Rejected)
        }
        status => Err(LayoutError::PartsStatus { index, status }),
    })
}

/// The 197 bytes of parts in an output item's first 50 words.
fn parts_of(words: &[u32; PARTS_OUT_WORDS]) -> CfragParts {
    let mut bytes = [0u8; 4 * (PARTS_OUT_WORDS - 1)];
    for (four, word) in bytes.chunks_exact_mut(4).zip(words) {
        four.copy_from_slice(&word.to_le_bytes());
    }
    let mut parts = [0u8; CFRAG_PARTS_LEN];
    parts.copy_from_slice(&bytes[..CFRAG_PARTS_LEN]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8 limbs at rows `row..row + 8` of column `i` of a matrix whose rows are `n` apart.
    fn get(src: &[u32], n: usize, row: usize, i: usize) -> [u32; 8] {
        let mut limbs = [0u32; 8];
        for (w, limb) in limbs.iter_mut().enumerate() {
            *limb = src[(row + w) * n + i];
        }
        limbs
    }

    /// Parts come back as bytes packed little-endian into words, column by column, and a
    /// status word other than a rejection's rejects the call naming the capsule.
    #[test]
    fn parts_are_read_from_words_and_a_bad_status_is_refused() {
        let c = 3;
        let mut src = vec![0u32; PARTS_OUT_WORDS * c];
        for j in 0..c {
            for k in 0..CFRAG_PARTS_LEN {
                let byte = (k as u32 * 7 + j as u32) & 0xff;
                src[(k / 4) * c + j] |= byte << (8 * (k % 4));
            }
        }
        let mut out = vec![CapsuleOutcome::Rejected; c];
        unpack_reenc_into(&src, &mut out).expect("status 0");
        for (j, outcome) in out.iter().enumerate() {
            let CapsuleOutcome::Parts(parts) = outcome else {
                panic!("capsule {j} rejected");
            };
            for (k, byte) in parts.iter().enumerate() {
                assert_eq!(u32::from(*byte), (k as u32 * 7 + j as u32) & 0xff);
            }
        }
        src[(PARTS_OUT_WORDS - 1) * c + 2] = 2;
        assert_eq!(
            unpack_reenc_into(&src, &mut out),
            Err(LayoutError::PartsStatus {
                index: 2,
                status: 2
            })
        );
        assert!(unpack_reenc_into(&src[1..], &mut out).is_err());
    }

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

    /// A batch large enough to be packed and read by several threads lands exactly where the
    /// serial layout puts it, and reads back in order.
    #[test]
    fn parallel_pack_and_unpack_match_the_layout() {
        use k256::ProjectivePoint;
        let n = 3 * MIN_ITEMS_PER_THREAD + 17;
        let points: Vec<Affine> = (1..=64u64)
            .map(|k| Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::from(k))))
            .collect::<Option<_>>()
            .expect("finite");
        let bases: Vec<Affine> = (0..n).map(|i| points[i % 64]).collect();
        let scalars: Vec<[Scalar; 2]> = (0..n as u64)
            .map(|i| [Scalar::from(i), Scalar::from(i + 1)])
            .collect();
        let mut dst = vec![0u32; PAIR_IN_WORDS * n];
        pack_pairs(&bases, &scalars, &mut dst).expect("packs");
        for i in [
            0,
            1,
            MIN_ITEMS_PER_THREAD - 1,
            MIN_ITEMS_PER_THREAD,
            n / 2,
            n - 1,
        ] {
            let (x, y) = bases[i].to_xy_limbs();
            assert_eq!(get(&dst, n, 0, i), x, "x of {i}");
            assert_eq!(get(&dst, n, 8, i), y, "y of {i}");
            assert_eq!(
                get(&dst, n, 16, i),
                *scalar_limbs(&scalars[i][0]),
                "a of {i}"
            );
            assert_eq!(
                get(&dst, n, 24, i),
                *scalar_limbs(&scalars[i][1]),
                "b of {i}"
            );
        }
        // An output with item i's slots holding bases[i] (and the identity for scalar 0).
        let mut words = vec![0u32; PAIR_OUT_WORDS * n];
        for (i, (base, pair)) in bases.iter().zip(&scalars).enumerate() {
            let (x, y) = base.to_xy_limbs();
            for (slot, k) in pair.iter().enumerate() {
                let row = 17 * slot;
                for w in 0..8 {
                    words[(row + w) * n + i] = x[w];
                    words[(row + 8 + w) * n + i] = y[w];
                }
                if bool::from(k.is_zero()) {
                    for w in 0..16 {
                        words[(row + w) * n + i] = 0;
                    }
                    words[(row + 16) * n + i] = 1;
                }
            }
        }
        let mut out = Vec::new();
        unpack_pairs(&words, &scalars, &mut out).expect("reads");
        assert_eq!(out.len(), n);
        assert_eq!(out[0], [None, Some(bases[0])]);
        for i in 1..n {
            assert_eq!(out[i], [Some(bases[i]), Some(bases[i])], "item {i}");
        }
        // Without second products: the first 24 rows of the input, the first 17 of the output.
        let firsts: Vec<Scalar> = scalars.iter().map(|[a, _]| *a).collect();
        let mut first_dst = vec![0u32; FIRSTS_IN_WORDS * n];
        pack_firsts(&bases, &firsts, &mut first_dst).expect("packs");
        assert!(
            first_dst == dst[..FIRSTS_IN_WORDS * n],
            "the pair input's first rows"
        );
        let mut first_out = vec![[None, None]; n];
        unpack_firsts_into(&words[..FIRSTS_OUT_WORDS * n], &firsts, &mut first_out).expect("reads");
        for i in 0..n {
            assert_eq!(first_out[i], [out[i][0], None], "item {i}");
        }
        assert_eq!(
            unpack_firsts_into(&words, &firsts, &mut first_out),
            Err(LayoutError::Length {
                got: PAIR_OUT_WORDS * n,
                want: FIRSTS_OUT_WORDS * n
            })
        );
        // A bad point in the last thread's range fails the whole read.
        words[n - 1] ^= 1;
        let mut out = Vec::new();
        assert_eq!(
            unpack_pairs(&words, &scalars, &mut out),
            Err(LayoutError::NotOnCurve(n - 1))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn unpack_into_checks_the_destination() {
        let words = vec![0u32; FIXED_OUT_WORDS];
        let mut out = [None, None];
        assert_eq!(
            unpack_fixed_into(&words, &[Scalar::ZERO], &mut out),
            Err(LayoutError::Length { got: 2, want: 1 })
        );
        let mut words = words;
        words[16] = 1;
        assert_eq!(
            unpack_fixed_into(&words, &[Scalar::ZERO], &mut out[..1]),
            Ok(())
        );
        assert_eq!(unpack_fixed_into(&[], &[], &mut []), Ok(()));
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
