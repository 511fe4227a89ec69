//! Runs the engine on a batch repeatedly; for profilers (`valgrind --tool=callgrind`, `perf`).
//!
//! `cargo run --release -p umbrald-benches --example profile_batch -- 64 3 [--host-only [--offload] [--decompress] [--one-call]]`
//!
//! With `--host-only` the curve backend answers every product at once with the generator (the
//! cfrags are then wrong): what remains is the engine's work around the curve arithmetic, the
//! per-item cost a GPU backend leaves on the host. `--offload` also offers the capsule-check
//! products (`EcBackend::capsule_check_products`, computed before the clock starts), as the GPU
//! backend does, instead of leaving the combined check to the host; `--decompress` offers the
//! capsules' points decompressed (`EcBackend::decompress_points`) likewise;
//! `--one-call` offers whole capsules in one call (`EcBackend::reencrypt_capsules`, `one_call`).

use std::sync::Arc;

use umbrald_benches::{InstantBackend, Workload};
use umbrald_core::{Engine, ReencryptItem};

/// The allocator of the `umbrald` binary, when built with `--features mimalloc`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let w = Workload::new(n);
    let flags: Vec<String> = args.collect();
    let host_only = flags.iter().any(|a| a == "--host-only");
    let offload = flags.iter().any(|a| a == "--offload");
    let decompress = flags.iter().any(|a| a == "--decompress");
    let one_call = flags.iter().any(|a| a == "--one-call");
    let engine = if host_only {
        let mut backend = InstantBackend::default();
        if offload {
            backend = backend.offering_checks(&w.capsules);
        }
        if decompress {
            backend = backend.offering_points(&w.capsules);
        }
        if one_call {
            backend = backend.offering_one_call();
        }
        Engine::new(Arc::new(backend))
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
