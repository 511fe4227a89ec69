//! Umbral's domain-separated hashes to scalars, as umbral-pre 0.11 computes them.
//!
//! `SHA-256(len(dst) as u32 BE || dst || inputs…)`, then reduced to a non-zero scalar by
//! `x mod (n − 1) + 1`.

use k256::elliptic_curve::ops::Reduce;
use k256::{NonZeroScalar, Scalar, U256};
use sha2::{Digest, Sha256};

/// Domain-separation tag of a capsule's validity challenge.
const CAPSULE_DST: &[u8] = b"CAPSULE_POINTS";
/// Domain-separation tag of a cfrag proof's challenge.
const CFRAG_DST: &[u8] = b"CFRAG_VERIFICATION";

/// Reduces a SHA-256 digest to a non-zero scalar, `x mod (n − 1) + 1`.
fn reduce(digest: &[u8; 32]) -> Scalar {
    *<NonZeroScalar as Reduce<U256>>::reduce_bytes(digest.into())
}

/// `SHA-256(len(dst) as u32 BE || dst || points…)` reduced to a non-zero scalar, hashed as
/// one contiguous `N`-byte message on the stack (`N = 4 + dst.len() + 33 · points.len()`):
/// whole blocks go straight to the compression function, with no state moved or buffered
/// per point.
fn hash_points<const N: usize>(dst: &[u8], points: &[&[u8; 33]]) -> Scalar {
    debug_assert_eq!(N, 4 + dst.len() + 33 * points.len());
    let mut message = [0u8; N];
    let (len, rest) = message.split_at_mut(4);
    len.copy_from_slice(&(dst.len() as u32).to_be_bytes());
    let (tag, body) = rest.split_at_mut(dst.len());
    tag.copy_from_slice(dst);
    for (slot, point) in body.chunks_exact_mut(33).zip(points) {
        slot.copy_from_slice(&point[..]);
    }
    reduce(&Sha256::digest(message).into())
}

/// `h = H("CAPSULE_POINTS", E, V)`, the capsule's validity challenge.
pub fn capsule_points(e: &[u8; 33], v: &[u8; 33]) -> Scalar {
    const N: usize = 4 + CAPSULE_DST.len() + 2 * 33;
    hash_points::<N>(CAPSULE_DST, &[e, v])
}

/// The Chaum–Pedersen challenge of a cfrag's proof, over nine compressed points in the order
/// `E, E1, E2, V, V1, V2, U, U1, U2`.
pub fn cfrag_verification(points: [&[u8; 33]; 9]) -> Scalar {
    const N: usize = 4 + CFRAG_DST.len() + 9 * 33;
    hash_points::<N>(CFRAG_DST, &points)
}

/// SHA-256 of a kfrag signature message (what the ECDSA signatures sign).
pub fn signing_digest(message: &[u8]) -> Sha256 {
    Sha256::new_with_prefix(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same hash fed piece by piece to an incremental SHA-256.
    fn incremental(dst: &[u8], points: &[[u8; 33]]) -> Scalar {
        let mut h = Sha256::new();
        h.update((dst.len() as u32).to_be_bytes());
        h.update(dst);
        for p in points {
            h.update(p);
        }
        reduce(&h.finalize().into())
    }

    #[test]
    fn contiguous_messages_hash_as_the_transcript() {
        let points: Vec<[u8; 33]> = (0..9u8).map(|i| [i.wrapping_mul(37) ^ 0x5a; 33]).collect();
        let refs: [&[u8; 33]; 9] = std::array::from_fn(|i| &points[i]);
        assert_eq!(cfrag_verification(refs), incremental(CFRAG_DST, &points));
        assert_eq!(
            capsule_points(&points[0], &points[1]),
            incremental(CAPSULE_DST, &points[..2])
        );
        assert_ne!(
            capsule_points(&points[1], &points[0]),
            capsule_points(&points[0], &points[1])
        );
    }
}
