//! Umbral's domain-separated hashes to scalars, as umbral-pre 0.11 computes them.
//!
//! `SHA-256(len(dst) as u32 BE || dst || inputs…)`, then reduced to a non-zero scalar by
//! `x mod (n − 1) + 1`.

use k256::elliptic_curve::ops::Reduce;
use k256::{NonZeroScalar, Scalar, U256};
use sha2::{Digest, Sha256};

/// A SHA-256 transcript with umbral-pre's domain-separation prefix.
pub struct ScalarDigest(Sha256);

impl ScalarDigest {
    /// Starts a transcript for the domain-separation tag `dst`.
    pub fn new(dst: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update((dst.len() as u32).to_be_bytes());
        h.update(dst);
        Self(h)
    }

    /// Appends bytes (for points: their 33-byte compressed encoding).
    pub fn chain(mut self, bytes: &[u8]) -> Self {
        self.0.update(bytes);
        self
    }

    /// Finishes into a non-zero scalar.
    pub fn finalize(self) -> Scalar {
        let digest = self.0.finalize();
        *<NonZeroScalar as Reduce<U256>>::reduce_bytes(&digest)
    }
}

/// `h = H("CAPSULE_POINTS", E, V)`, the capsule's validity challenge.
pub fn capsule_points(e: &[u8; 33], v: &[u8; 33]) -> Scalar {
    ScalarDigest::new(b"CAPSULE_POINTS")
        .chain(e)
        .chain(v)
        .finalize()
}

/// The Chaum–Pedersen challenge of a cfrag's proof, over nine compressed points in the order
/// `E, E1, E2, V, V1, V2, U, U1, U2`.
pub fn cfrag_verification(points: [&[u8; 33]; 9]) -> Scalar {
    points
        .iter()
        .fold(ScalarDigest::new(b"CFRAG_VERIFICATION"), |d, p| {
            d.chain(&p[..])
        })
        .finalize()
}

/// SHA-256 of a kfrag signature message (what the ECDSA signatures sign).
pub fn signing_digest(message: &[u8]) -> Sha256 {
    Sha256::new_with_prefix(message)
}
