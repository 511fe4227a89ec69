//! Helpers shared by the harness tests: conversions between k256 values and the harness's byte
//! conventions, and the edge-case values every test reuses.
#![allow(dead_code)]

use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::PrimeField;
use k256::{FieldElement, ProjectivePoint, Scalar, U256};
use umbrald_core::curve::Affine;

/// p = 2^256 - 2^32 - 977, big-endian.
pub const P: [u8; 32] = hex32("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f");
/// n, the group order, big-endian.
pub const N: [u8; 32] = hex32("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");

/// A 64-digit hex string as 32 bytes (const, for tables of constants).
pub const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    assert!(b.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not hex"),
    }
}

/// Big-endian subtraction of a small value: x - k (x >= k).
pub fn sub_small(x: [u8; 32], k: u32) -> [u8; 32] {
    let mut out = x;
    let mut borrow = k as u64;
    for byte in out.iter_mut().rev() {
        let v = *byte as u64;
        let d = v as i64 - (borrow & 0xff) as i64;
        borrow >>= 8;
        if d < 0 {
            *byte = (d + 256) as u8;
            borrow += 1;
        } else {
            *byte = d as u8;
        }
    }
    out
}

/// A small value as 32 big-endian bytes.
pub fn small(k: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[24..].copy_from_slice(&k.to_be_bytes());
    out
}

/// 2^bit as 32 big-endian bytes.
pub fn pow2(bit: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[31 - bit / 8] = 1 << (bit % 8);
    out
}

/// A field element (must be below p).
pub fn fe(bytes: &[u8; 32]) -> FieldElement {
    Option::from(FieldElement::from_bytes(&(*bytes).into())).expect("below p")
}

/// A field element's normalized big-endian bytes.
pub fn fe_bytes(x: &FieldElement) -> [u8; 32] {
    x.normalize().to_bytes().into()
}

/// Edge-case field elements (all below p).
pub fn field_edges() -> Vec<[u8; 32]> {
    let mut v = vec![
        small(0),
        small(1),
        small(2),
        small(977),
        small(0xffff_ffff),
        small(1 << 32),
        small(0x1_0000_03d1),
        sub_small(P, 1),
        sub_small(P, 2),
        sub_small(P, 0x3d1),
        sub_small(P, 0xffff_ffff),
        pow2(255),
        pow2(224),
        pow2(128),
        hex32("7fffffffffffffffffffffffffffffffffffffffffffffffffffffff7ffffe17"), // (p-1)/2
        hex32("fffffffffffffffffffffffffffffffffffffffffffffffffffffffe00000000"),
        hex32("00000000000000000000000000000000000000000000000000000000ffffffff"),
        hex32("ffffffff00000000ffffffff00000000ffffffff00000000ffffffff00000000"),
    ];
    v.dedup();
    v
}

/// A scalar from big-endian bytes, reduced mod n.
pub fn scalar(bytes: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(&(*bytes).into())
}

/// A scalar's big-endian bytes.
pub fn scalar_bytes(k: &Scalar) -> [u8; 32] {
    k.to_repr().into()
}

/// Edge-case scalars: 0, 1, small values, n - 1, n - 2d (the values whose last window addition
/// is a doubling), 2^255, and all-ones patterns.
pub fn scalar_edges() -> Vec<[u8; 32]> {
    let mut v: Vec<[u8; 32]> = (0..20).map(small).collect();
    v.push(sub_small(N, 1));
    for d in 1..=16 {
        v.push(sub_small(N, 2 * d));
    }
    v.push(sub_small(N, 15));
    v.push(pow2(255));
    v.push(pow2(4));
    v.push(pow2(252));
    v.push(hex32(
        "8888888888888888888888888888888888888888888888888888888888888888",
    ));
    v.push(hex32(
        "7777777777777777777777777777777777777777777777777777777777777777",
    ));
    v.push(hex32(
        "0fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ));
    v
}

/// `k * G` as a finite affine point (k != 0).
pub fn point(k: &Scalar) -> Affine {
    Affine::from_k256(&(ProjectivePoint::GENERATOR * k)).expect("finite")
}

/// A projective point as harness bytes, `None` for the identity.
pub fn xy(p: &ProjectivePoint) -> Option<[u8; 64]> {
    Affine::from_k256(p).map(|a| a.to_xy_bytes())
}

/// Harness point bytes back to k256.
pub fn from_xy(bytes: &[u8; 64]) -> ProjectivePoint {
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    x.copy_from_slice(&bytes[..32]);
    y.copy_from_slice(&bytes[32..]);
    Affine::from_xy_bytes(&x, &y).expect("on curve").to_k256()
}
pub mod policy;
