//! Runs the engine on a batch repeatedly; for profilers (`valgrind --tool=callgrind`, `perf`).
//!
//! `cargo run --release -p umbrald-benches --example profile_batch -- 64 3`

use umbrald_benches::Workload;
use umbrald_core::{Engine, ReencryptItem};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let w = Workload::new(n);
    let engine = Engine::cpu();
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
    println!("{ok} cfrags, {per:?} per capsule");
}
