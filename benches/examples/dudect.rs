//! A dudect-style timing test ("dude, is my code constant time?", Reparaz, Balasch and
//! Verbauwhede): each secret-handling operation is timed on two classes of secret inputs, one
//! fixed (a low-weight scalar, where a variable-time scalar multiplication or inversion would
//! finish early) and one random, interleaved at random; Welch's t-test on the two timing
//! distributions looks for a difference. |t| above 5 is evidence of a leak; below it, none was
//! found with this many samples. A second opinion beside the valgrind check
//! (scripts/check-ctime.sh), not a gate: timings on a shared machine are noisy.
//!
//! ```sh
//! cargo run --release -p umbrald-benches --example dudect              # every test once
//! cargo run --release -p umbrald-benches --example dudect -- --continuous reencrypt_rk_t
//! ```
//!
//! `vartime_control` times k256's `invert_vartime`, which is variable time by design: it must
//! show a large |t|, proving the harness can see a leak of that size.

use dudect_bencher::rand::Rng;
use dudect_bencher::{ctbench_main, BenchRng, Class, CtRunner};
use k256::elliptic_curve::ops::Invert;
use k256::elliptic_curve::Field;
use k256::{ProjectivePoint, Scalar};
use std::hint::black_box;
use umbrald_core::backend::CapsuleInput;
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::reencrypt_capsule_on_cpu;
use umbrald_nucypher::NodeKeys;

/// Samples per test (both classes together).
const SAMPLES: usize = 40_000;

/// The fixed class's secret: a scalar with a single set bit, the easiest case for any
/// window-skipping or early-exit implementation.
fn fixed_scalar() -> Scalar {
    Scalar::ONE
}

/// A random scalar from the bench's RNG (seeded per run).
fn random_scalar(rng: &mut BenchRng) -> Scalar {
    Scalar::random(&mut *rng)
}

/// The classes of `SAMPLES` runs, drawn at random so that drift in the machine's speed hits
/// both alike.
fn classes(rng: &mut BenchRng) -> Vec<Class> {
    (0..SAMPLES)
        .map(|_| {
            if rng.gen::<bool>() {
                Class::Left
            } else {
                Class::Right
            }
        })
        .collect()
}

/// A valid capsule (public, the same for every run) and a kfrag commitment.
fn capsule_input(rng: &mut BenchRng) -> CapsuleInput {
    let point = |k: &Scalar| {
        Affine::from_k256(&(ProjectivePoint::GENERATOR * k))
            .map(|p| p.to_compressed())
            .unwrap_or([0; 33])
    };
    let (e, v) = (random_scalar(rng), random_scalar(rng));
    let (e_bytes, v_bytes) = (point(&e), point(&v));
    let h = umbrald_core::hash::capsule_points(&e_bytes, &v_bytes);
    CapsuleInput {
        e: CompressedPoint::parse(&e_bytes).expect("a curve point's encoding parses"),
        v: CompressedPoint::parse(&v_bytes).expect("a curve point's encoding parses"),
        s: v + h * e,
        commitment: point(&random_scalar(rng)),
    }
}

/// The CPU re-encryption of one capsule with the kfrag key `rk` and the proof nonce `t` both
/// secret: fixed low-weight `[1, 1]` against random pairs.
fn reencrypt_rk_t(runner: &mut CtRunner, rng: &mut BenchRng) {
    let input = capsule_input(rng);
    let classes = classes(rng);
    let scalars: Vec<[Scalar; 2]> = classes
        .iter()
        .map(|class| match class {
            Class::Left => [fixed_scalar(), fixed_scalar()],
            Class::Right => [random_scalar(rng), random_scalar(rng)],
        })
        .collect();
    for (class, pair) in classes.into_iter().zip(&scalars) {
        runner.run_one(class, || {
            black_box(reencrypt_capsule_on_cpu(&input, black_box(pair)))
        });
    }
}

/// The node's response signature (ECDSA with the node's signing key, k256): a fixed low-weight
/// key against random keys, over the same message.
fn node_sign(runner: &mut CtRunner, rng: &mut BenchRng) {
    let capsule = [0x02u8; 98];
    let classes = classes(rng);
    let keys: Vec<NodeKeys> = classes
        .iter()
        .map(|class| {
            let signing = match class {
                Class::Left => fixed_scalar(),
                Class::Right => random_scalar(rng),
            };
            NodeKeys::from_be_bytes(
                &random_scalar(rng).to_bytes().into(),
                &signing.to_bytes().into(),
            )
            .expect("non-zero scalars are valid node keys")
        })
        .collect();
    for (class, keys) in classes.into_iter().zip(&keys) {
        runner.run_one(class, || {
            black_box(keys.sign_response(&[&capsule[..]], &[&capsule[..]]))
        });
    }
}

/// A deliberately variable-time operation (k256's `invert_vartime`, a binary GCD): the harness
/// must report a large |t| here.
fn vartime_control(runner: &mut CtRunner, rng: &mut BenchRng) {
    let classes = classes(rng);
    let inputs: Vec<Scalar> = classes
        .iter()
        .map(|class| match class {
            Class::Left => fixed_scalar(),
            Class::Right => random_scalar(rng),
        })
        .collect();
    for (class, x) in classes.into_iter().zip(&inputs) {
        runner.run_one(class, || black_box(black_box(x).invert_vartime()));
    }
}

ctbench_main!(reencrypt_rk_t, node_sign, vartime_control);
