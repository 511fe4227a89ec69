//! Interleaved A/B timing of the full per-capsule path, umbral-pre against umbrald, single
//! thread. Rounds alternate between the two so that a noisy, shared machine slows both alike,
//! and time is the thread's CPU time (time spent descheduled does not count); the median of
//! the per-round ratios is printed.
//!
//! `cargo run --release -p umbrald-benches --example ratio -- 256 15`

use cpu_time::ThreadTime;

use umbral_pre::{DefaultDeserialize, DefaultSerialize};
use umbrald_benches::Workload;
use umbrald_core::{Engine, ReencryptItem};

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let w = Workload::new(n);
    let engine = Engine::cpu();
    let [k, d, r, v] = &w.policy_bytes;
    let kfrag = engine.verify_policy(k, d, r, v).expect("policy");
    let (mut pre_us, mut ours_us, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = ThreadTime::now();
        for bytes in &w.capsules {
            let capsule = umbral_pre::Capsule::from_bytes(bytes).expect("capsule");
            let cfrag = umbral_pre::reencrypt(&capsule, w.kfrag.clone());
            std::hint::black_box(cfrag.to_bytes().expect("cfrag"));
        }
        let pre = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        let start = ThreadTime::now();
        let items: Vec<ReencryptItem<'_>> = w
            .capsules
            .iter()
            .map(|c| ReencryptItem {
                capsule: c,
                kfrag: &kfrag,
            })
            .collect();
        for result in engine.reencrypt_batch(&items) {
            std::hint::black_box(result.expect("cfrag").to_bytes());
        }
        let ours = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        pre_us.push(pre);
        ours_us.push(ours);
        ratios.push(pre / ours);
    }
    println!(
        "batch {n}: umbral-pre {:.1} µs/capsule, umbrald {:.1} µs/capsule, median ratio {:.2}x",
        median(&mut pre_us),
        median(&mut ours_us),
        median(&mut ratios)
    );
}
