//! Umbral's public parameters.

use std::sync::LazyLock;

use super::Affine;

/// SEC1 compressed bytes of Umbral's parameter point `U`: umbral-pre 0.11 derives it as
/// `hash_to_curve(data = "POINT_U", dst = "PARAMETERS")` (ExpandMsgXmd, SHA-256). The value is
/// pinned here and checked against umbral-pre's own output in the tests.
pub const U_COMPRESSED: [u8; 33] = [
    0x03, 0x07, 0x93, 0x90, 0xd0, 0xfb, 0xe2, 0x20, 0xfc, 0x34, 0xaa, 0xb8, 0xec, 0xbf, 0x49, 0x09,
    0x80, 0x98, 0x03, 0x68, 0x20, 0xfa, 0xdb, 0x98, 0xc0, 0x31, 0x43, 0xe5, 0x5d, 0xb8, 0xec, 0x73,
    0xcd,
];

static U_POINT: LazyLock<Affine> = LazyLock::new(|| {
    // A constant that is a valid point (checked by `u_decodes` below).
    Affine::decompress_vartime(&U_COMPRESSED).unwrap_or_else(|_| unreachable!("U is valid"))
});

/// Umbral's parameter point `U` (its discrete log to `G` is unknown).
pub fn u_point() -> Affine {
    *U_POINT
}

static GENERATOR: LazyLock<Affine> = LazyLock::new(|| {
    Affine::from_k256(&k256::ProjectivePoint::GENERATOR)
        .unwrap_or_else(|| unreachable!("G is finite"))
});

/// The secp256k1 generator `G`.
pub fn generator() -> Affine {
    *GENERATOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_decodes() {
        assert_eq!(u_point().to_compressed(), U_COMPRESSED);
    }
}
