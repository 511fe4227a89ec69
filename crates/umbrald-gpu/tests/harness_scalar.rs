//! The kernels' scalar recoding and multiplication paths (kernels/scalar.cuh and
//! kernels/scalar_mul.cuh, compiled as host C++) against k256.

mod common;

use common::*;
use k256::{ProjectivePoint, Scalar};
use proptest::prelude::*;
use umbrald_gpu::{host, FixedBase, FixedBaseTable};

fn check_digits(k: &[u8; 32]) {
    let d = host::digits(k);
    assert!(
        d[..64].iter().all(|&x| (-8..=7).contains(&x)),
        "digit range"
    );
    assert!(d[64] == 0 || d[64] == 1, "top digit");
    let sixteen = Scalar::from(16u64);
    let mut acc = Scalar::ZERO;
    for &digit in d.iter().rev() {
        let magnitude = Scalar::from(digit.unsigned_abs() as u64);
        acc = acc * sixteen + if digit < 0 { -magnitude } else { magnitude };
    }
    assert_eq!(
        acc,
        scalar(k),
        "digits of {} do not recompose",
        hex::encode(k)
    );
}

fn check_var(base: &ProjectivePoint, k: &[u8; 32]) {
    let p = xy(base).expect("finite base");
    let want = xy(&(*base * scalar(k)));
    assert_eq!(
        host::mul_var(&p, &scalar(k)),
        want,
        "mul_var k={}",
        hex::encode(k)
    );
}

/// λ, the eigenvalue of the endomorphism: λ·(x, y) = (β·x, y).
fn lambda() -> Scalar {
    scalar(&hex32(
        "5363ad4cc05c30e0a5261c028812645a122e22ea20816678df02967c1b23bd72",
    ))
}

/// The kernel's GLV split: equal to umbrald-core's (the CPU reference), recomposes to `k`, and
/// both halves fit the 128 bits the ladder walks.
fn check_split(k: &Scalar) {
    let (m1, neg1, m2, neg2) = host::glv_split(k);
    let signed = |m: [u8; 16], negative: bool| {
        let mut bytes = [0u8; 32];
        bytes[16..].copy_from_slice(&m);
        let s = scalar(&bytes);
        if negative {
            -s
        } else {
            s
        }
    };
    let (k1, k2) = (signed(m1, neg1), signed(m2, neg2));
    assert_eq!(k1 + k2 * lambda(), *k, "split does not recompose");
    assert_eq!(
        (k1, k2),
        umbrald_core::curve::glv::decompose(k),
        "split differs from the CPU's"
    );
}

fn check_fixed(table: &FixedBaseTable, base: FixedBase, k: &[u8; 32]) {
    let want = xy(&(base.point().to_k256() * scalar(k)));
    assert_eq!(
        host::mul_fixed(table, k),
        want,
        "mul_fixed {base:?} k={}",
        hex::encode(k)
    );
}

#[test]
fn recoding_recomposes_edges() {
    for k in scalar_edges() {
        check_digits(&k);
    }
    check_digits(&[0xff; 32]); // above n: still exact mod n
    check_digits(&N);
}

#[test]
fn glv_split_edges() {
    let mut cases: Vec<Scalar> = scalar_edges().iter().map(scalar).collect();
    for h in [
        "00000000000000000000000000000000ffffffffffffffffffffffffffffffff",
        "0000000000000000000000000000000100000000000000000000000000000000",
        "000000000000000000000000000000003086d221a7d46bcde86c90e49284eb15",
        "0000000000000000000000000000000114ca50f7a8e2f3f657c1108d9d44cfd8",
        "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0",
        "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a1",
    ] {
        cases.push(scalar(&hex32(h)));
    }
    cases.push(lambda());
    cases.push(-lambda());
    cases.push(lambda() + Scalar::ONE);
    for k in &cases {
        check_split(k);
    }
}

#[test]
fn variable_base_edges() {
    let bases = [
        ProjectivePoint::GENERATOR,
        FixedBase::U.point().to_k256(),
        ProjectivePoint::GENERATOR
            * scalar(&hex32(
                "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
            )),
    ];
    for base in &bases {
        for k in scalar_edges() {
            check_var(base, &k);
        }
    }
}

#[test]
fn fixed_base_edges() {
    for base in [FixedBase::G, FixedBase::U] {
        let table = FixedBaseTable::new(base);
        for k in scalar_edges() {
            check_fixed(&table, base, &k);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_variable_base(b in any::<[u8; 32]>(), k in any::<[u8; 32]>()) {
        let base = ProjectivePoint::GENERATOR * scalar(&b);
        prop_assume!(xy(&base).is_some());
        check_digits(&k);
        check_split(&scalar(&k));
        check_var(&base, &k);
    }

    #[test]
    fn random_fixed_base(k in any::<[u8; 32]>()) {
        static TABLES: std::sync::OnceLock<[FixedBaseTable; 2]> = std::sync::OnceLock::new();
        let tables = TABLES.get_or_init(|| {
            [FixedBaseTable::new(FixedBase::G), FixedBaseTable::new(FixedBase::U)]
        });
        check_fixed(&tables[0], FixedBase::G, &k);
        check_fixed(&tables[1], FixedBase::U, &k);
    }
}
