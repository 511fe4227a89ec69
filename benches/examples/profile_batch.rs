//! Runs the engine on a batch repeatedly; for profilers (`valgrind --tool=callgrind`, `perf`).
//!
//! `cargo run --release -p umbrald-benches --example profile_batch -- 64 3 [--host-only [--offload] [--decompress]]`
//!
//! With `--host-only` the curve backend answers every product at once with the generator (the
//! cfrags are then wrong): what remains is the engine's work around the curve arithmetic, the
//! per-item cost a GPU backend leaves on the host. `--offload` also offers the capsule-check
//! products (`EcBackend::capsule_check_products`, computed before the clock starts), as the GPU
//! backend does, instead of leaving the combined check to the host; `--decompress` offers the
//! capsules' points decompressed (`EcBackend::decompress_points`) likewise.

use std::collections::HashMap;
use std::sync::Arc;

use k256::{ProjectivePoint, Scalar};
use umbrald_benches::Workload;
use umbrald_core::backend::{BackendError, EcBackend};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::{Engine, ReencryptItem};

/// Answers every product with the generator, at once; with `check` also the capsule-check
/// products, looked up by `E`'s x coordinate.
struct InstantBackend {
    check: Option<HashMap<[u8; 33], [Option<Affine>; 2]>>,
    points: Option<HashMap<([u8; 32], bool), Affine>>,
}

impl EcBackend for InstantBackend {
    fn name(&self) -> &'static str {
        "instant"
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        _: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        let g = Affine::from_k256(&ProjectivePoint::GENERATOR);
        Ok(vec![[g, g]; bases.len()])
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        Ok(vec![
            Affine::from_k256(&ProjectivePoint::GENERATOR);
            scalars.len()
        ])
    }

    fn capsule_check_products(
        &self,
        es: &[Affine],
        _: &[Scalar],
        _: &[Scalar],
    ) -> Option<Vec<[Option<Affine>; 2]>> {
        let check = self.check.as_ref()?;
        es.iter()
            .map(|e| check.get(&e.to_compressed()).copied())
            .collect()
    }

    fn decompress_points(&self, points: &[CompressedPoint]) -> Option<Vec<Option<Affine>>> {
        let known = self.points.as_ref()?;
        Some(
            points
                .iter()
                .map(|p| known.get(&(p.x.to_bytes(), p.odd)).copied())
                .collect(),
        )
    }
}

/// `E` and `V` of every capsule, decompressed.
fn decompressed(capsules: &[Vec<u8>]) -> HashMap<([u8; 32], bool), Affine> {
    capsules
        .iter()
        .flat_map(|bytes| [&bytes[3..36], &bytes[38..71]])
        .map(|sec1| {
            let c = CompressedPoint::parse(sec1).expect("valid point");
            let p = c.decompress_vartime().expect("on the curve");
            ((c.x.to_bytes(), c.odd), p)
        })
        .collect()
}

/// `[h·E, s·G]` of every capsule, keyed by `E`.
fn check_products(capsules: &[Vec<u8>]) -> HashMap<[u8; 33], [Option<Affine>; 2]> {
    capsules
        .iter()
        .map(|bytes| {
            let c = umbrald_core::Capsule::from_bytes(bytes).expect("capsule");
            let e = c.to_bytes();
            let e_point = Affine::decompress_vartime(&e[3..36]).expect("E");
            let s = <Scalar as k256::elliptic_curve::PrimeField>::from_repr(
                <[u8; 32]>::try_from(&e[73..105]).expect("s").into(),
            )
            .expect("s");
            let he = Affine::from_k256(&(e_point.to_k256() * c.challenge()));
            let sg = Affine::from_k256(&(ProjectivePoint::GENERATOR * s));
            (e_point.to_compressed(), [he, sg])
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let w = Workload::new(n);
    let flags: Vec<String> = args.collect();
    let host_only = flags.iter().any(|a| a == "--host-only");
    let offload = flags.iter().any(|a| a == "--offload");
    let decompress = flags.iter().any(|a| a == "--decompress");
    let engine = if host_only {
        Engine::new(Arc::new(InstantBackend {
            check: offload.then(|| check_products(&w.capsules)),
            points: decompress.then(|| decompressed(&w.capsules)),
        }))
    } else {
        Engine::cpu()
    };
    let [k, d, r, v] = &w.policy_bytes;
    let kfrag = engine.verify_policy(k, d, r, v).expect("policy");
    let items: Vec<ReencryptItem<'_>> = w
        .capsules
        .iter()
        .map(|c| ReencryptItem {
            capsule: c,
            kfrag: &kfrag,
        })
        .collect();
    let start = std::time::Instant::now();
    let mut ok = 0;
    for _ in 0..rounds {
        ok += engine
            .reencrypt_batch(&items)
            .iter()
            .filter(|r| r.is_ok())
            .count();
    }
    let per = start.elapsed() / (rounds * n) as u32;
    let what = if host_only {
        "items (host work only)"
    } else {
        "cfrags"
    };
    println!("{ok} {what}, {per:?} per capsule");
}
