//! The kernels' point formulas (kernels/point.cuh, compiled as host C++) against k256, in
//! projective form (x z, y z, z) with random Z so that the projective arithmetic is exercised, not
//! only Z = 1.

mod common;

use common::*;
use k256::elliptic_curve::Field;
use k256::{FieldElement, ProjectivePoint, Scalar};
use proptest::prelude::*;
use rand::SeedableRng;
use umbrald_gpu::host;

fn random_z(rng: &mut rand::rngs::StdRng) -> [u8; 32] {
    loop {
        let z = FieldElement::random(&mut *rng);
        if !bool::from(z.normalizes_to_zero()) {
            return fe_bytes(&z);
        }
    }
}

fn random_point(rng: &mut rand::rngs::StdRng) -> ProjectivePoint {
    ProjectivePoint::GENERATOR * Scalar::random(&mut *rng)
}

/// Some bytes for an identity input: the formulas must ignore them.
const JUNK: [u8; 64] = [0x5a; 64];

fn as_input(p: &ProjectivePoint) -> ([u8; 64], bool) {
    match xy(p) {
        Some(bytes) => (bytes, false),
        None => (JUNK, true),
    }
}

fn check_add(p: &ProjectivePoint, q: &ProjectivePoint, rng: &mut rand::rngs::StdRng) {
    let ((pb, p_inf), (qb, q_inf)) = (as_input(p), as_input(q));
    let want = xy(&(p + q));
    let (zp, zq) = (random_z(rng), random_z(rng));
    assert_eq!(
        host::prj_add(&pb, p_inf, &zp, &qb, q_inf, &zq),
        want,
        "prj_add"
    );
    assert_eq!(
        host::prj_add(&pb, p_inf, &small(1), &qb, q_inf, &small(1)),
        want,
        "prj_add z=1"
    );
    assert_eq!(
        host::prj_add_affine(&pb, p_inf, &zp, &qb, q_inf),
        want,
        "prj_add_affine"
    );
}

#[test]
fn doubling_matches_k256() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..32 {
        let p = random_point(&mut rng);
        let (pb, _) = as_input(&p);
        assert_eq!(
            host::prj_dbl(&pb, false, &random_z(&mut rng)),
            xy(&p.double())
        );
    }
    assert_eq!(host::prj_dbl(&JUNK, true, &small(3)), None, "2O = O");
}

#[test]
fn addition_edge_cases() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let o = ProjectivePoint::IDENTITY;
    for _ in 0..8 {
        let p = random_point(&mut rng);
        let q = random_point(&mut rng);
        check_add(&p, &q, &mut rng); // generic
        check_add(&p, &p, &mut rng); // doubling through addition
        check_add(&p, &-p, &mut rng); // equal x, opposite y: O
        check_add(&p, &o, &mut rng); // P + O
        check_add(&o, &p, &mut rng); // O + P
                                     // Equal y, different x: (x, y) and (beta x, y) = lambda P; the raw formula's r is 0.
        let lambda = scalar(&hex32(
            "5363ad4cc05c30e0a5261c028812645a122e22ea20816678df02967c1b23bd72",
        ));
        let lp = p * lambda;
        assert_eq!(
            xy(&lp).map(|b| b[32..].to_vec()),
            xy(&p).map(|b| b[32..].to_vec())
        );
        check_add(&p, &lp, &mut rng);
    }
    check_add(&o, &o, &mut rng);
    let g = ProjectivePoint::GENERATOR;
    check_add(&g, &g, &mut rng);
    check_add(&g, &-g, &mut rng);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_additions_match_k256(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), seed in any::<u64>()) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let p = ProjectivePoint::GENERATOR * scalar(&a);
        let q = ProjectivePoint::GENERATOR * scalar(&b);
        check_add(&p, &q, &mut rng);
    }
}

#[test]
fn decompression_matches_k256() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut points: Vec<ProjectivePoint> = (0..64).map(|_| random_point(&mut rng)).collect();
    points.push(ProjectivePoint::GENERATOR);
    points.push(-ProjectivePoint::GENERATOR);
    for p in &points {
        let bytes = xy(p).expect("finite");
        let (x, y): ([u8; 32], [u8; 32]) = (
            bytes[..32].try_into().expect("x"),
            bytes[32..].try_into().expect("y"),
        );
        let odd = y[31] & 1 == 1;
        assert_eq!(host::decompress(&x, odd), Some(y), "parity of y");
        let neg_y = fe_bytes(&fe(&y).negate(1).normalize());
        assert_eq!(host::decompress(&x, !odd), Some(neg_y), "other parity");
    }
    // x with no point: 5^3 + 7 = 132 is not a square mod p; and x = 0 (7 is not a square).
    assert_eq!(host::decompress(&small(5), false), None);
    assert_eq!(host::decompress(&small(0), true), None);
    // About half of all x are on the curve; every answer must agree with k256.
    for _ in 0..64 {
        let x = fe_bytes(&FieldElement::random(&mut rng));
        let mut sec1 = [0u8; 33];
        sec1[0] = 0x02;
        sec1[1..].copy_from_slice(&x);
        let k256_point = k256::EncodedPoint::from_bytes(sec1).ok().and_then(|e| {
            Option::<k256::AffinePoint>::from(
                <k256::AffinePoint as k256::elliptic_curve::sec1::FromEncodedPoint<
                    k256::Secp256k1,
                >>::from_encoded_point(&e),
            )
        });
        let want = k256_point
            .and_then(|a| xy(&ProjectivePoint::from(a)))
            .map(|b| {
                let y: [u8; 32] = b[32..].try_into().expect("y");
                y
            });
        assert_eq!(host::decompress(&x, false), want, "x = {}", hex::encode(x));
    }
}
