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
    assert_eq!(host::mul_var(&p, k), want, "mul_var k={}", hex::encode(k));
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
