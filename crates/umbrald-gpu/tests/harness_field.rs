//! The kernels' field arithmetic (kernels/field.cuh, compiled as host C++) against k256.

mod common;

use std::ops::Add;

use common::*;
use proptest::prelude::*;
use umbrald_gpu::host;

fn check_all(a: &[u8; 32], b: &[u8; 32]) {
    let (x, y) = (fe(a), fe(b));
    // The small constants the point formulas use, and the largest allowed.
    for c in [0u16, 1, 21, 168, u16::MAX] {
        let mut cb = [0u8; 32];
        cb[30..].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            host::fe_mul_small(a, c),
            fe_bytes(&x.mul(&fe(&cb))),
            "mul_small {} {c}",
            hex::encode(a)
        );
    }
    assert_eq!(
        host::fe_mul(a, b),
        fe_bytes(&x.mul(&y)),
        "mul {} {}",
        hex::encode(a),
        hex::encode(b)
    );
    assert_eq!(
        host::fe_add(a, b),
        fe_bytes(&x.add(&y)),
        "add {} {}",
        hex::encode(a),
        hex::encode(b)
    );
    assert_eq!(
        host::fe_sub(a, b),
        fe_bytes(&x.add(&y.negate(1))),
        "sub {} {}",
        hex::encode(a),
        hex::encode(b)
    );
    assert_eq!(
        host::fe_sqr(a),
        fe_bytes(&x.square()),
        "sqr {}",
        hex::encode(a)
    );
    assert_eq!(
        host::fe_neg(a),
        fe_bytes(&x.negate(1)),
        "neg {}",
        hex::encode(a)
    );
    let inv = Option::<k256::FieldElement>::from(x.invert())
        .map(|v| fe_bytes(&v))
        .unwrap_or([0; 32]);
    assert_eq!(host::fe_inv(a), inv, "inv {}", hex::encode(a));
}

#[test]
fn edge_cases_pairwise() {
    let edges = field_edges();
    for a in &edges {
        for b in &edges {
            check_all(a, b);
        }
    }
}

#[test]
fn inverse_of_zero_is_zero_and_products_with_inverse_are_one() {
    assert_eq!(host::fe_inv(&small(0)), small(0));
    for a in field_edges().iter().filter(|a| **a != small(0)) {
        assert_eq!(
            host::fe_mul(a, &host::fe_inv(a)),
            small(1),
            "{}",
            hex::encode(a)
        );
    }
}

#[test]
fn loads_reduce_values_at_or_above_p() {
    assert_eq!(host::fe_reduce(&P), small(0));
    assert_eq!(host::fe_reduce(&sub_small(P, 1)), sub_small(P, 1));
    let p_plus_5 = {
        let mut v = P;
        v[31] += 5; // 0x2f + 5: no carry
        v
    };
    assert_eq!(host::fe_reduce(&p_plus_5), small(5));
    // 2^256 - 1 = p + 2^32 + 976
    assert_eq!(host::fe_reduce(&[0xff; 32]), small(0x1_0000_03d0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_inputs_match_k256(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        // Values at or above p have probability 2^-224: reduce them like the harness does.
        let (a, b) = (host::fe_reduce(&a), host::fe_reduce(&b));
        check_all(&a, &b);
    }

    #[test]
    fn random_against_edges(a in any::<[u8; 32]>(), edge in 0usize..18) {
        let a = host::fe_reduce(&a);
        let edges = field_edges();
        let e = edges[edge % edges.len()];
        check_all(&a, &e);
        check_all(&e, &a);
    }
}
