//! The server's own work per item around the engine, on one GPU-lane part: the engine alone
//! (`Engine::reencrypt_batch` on the part's capsules) against the same part as a worker
//! computes it (`workers::process`: cancellation and deadline checks, the policy lookup, each
//! result handed to its request) and the drop of the part's items afterwards. The curve
//! backend answers at once (`umbrald_benches::InstantBackend`, offering the capsule checks and
//! decompressed points as the GPU backend does), so what is timed is host work only.
//!
//! ```text
//! cargo run --release -p umbrald-server --features mimalloc --example host_part -- --threads 2
//! ```
//!
//! With `--threads N`, N threads each compute their own part at the same time, sharing the
//! engine and the policy, as the lane's host threads do. Times are thread CPU time per item.

use std::sync::{Arc, Barrier};

use clap::Parser;
use cpu_time::ThreadTime;
use umbrald_benches::{InstantBackend, Workload};
use umbrald_core::{Engine, ReencryptItem};
use umbrald_proto::Policy;
use umbrald_server::testing::PreparedBatch;

/// The `umbrald` binary's allocator, when built with `--features mimalloc`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Engine alone against the server's path, per item.
#[derive(Debug, Parser)]
struct Args {
    /// Items in each thread's part.
    #[arg(long, default_value_t = 4096)]
    items: usize,
    /// Items per request.
    #[arg(long, default_value_t = 512)]
    per_request: usize,
    /// Threads computing a part each at the same time.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Rounds (each times the engine alone, then the server's path).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Answer whole cfrags instead of compact ones.
    #[arg(long)]
    whole: bool,
}

/// Thread CPU microseconds per item of one round's three phases.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    engine: f64,
    process: f64,
    finish: f64,
}

fn main() {
    let args = Args::parse();
    let w = Workload::new(args.items);
    let backend = InstantBackend::default()
        .offering_checks(&w.capsules)
        .offering_points(&w.capsules);
    let engine = Arc::new(Engine::new(Arc::new(backend)));
    let [k, d, r, v] = w.policy_bytes.clone();
    let kfrag = engine.verify_policy(&k, &d, &r, &v).expect("policy");
    let policy = Policy {
        kfrag: k,
        delegating_pk: d,
        receiving_pk: r,
        verifying_pk: v,
    };
    let threads = args.threads.max(1);
    let barrier = Barrier::new(threads);
    let rounds: Vec<Vec<Round>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (engine, kfrag, policy, w, args, barrier) =
                    (&engine, &kfrag, &policy, &w, &args, &barrier);
                s.spawn(move || {
                    let items: Vec<ReencryptItem<'_>> = w
                        .capsules
                        .iter()
                        .map(|capsule| ReencryptItem { capsule, kfrag })
                        .collect();
                    let n = items.len() as f64;
                    let per_item = |t: ThreadTime| t.elapsed().as_secs_f64() * 1e6 / n;
                    (0..args.rounds)
                        .map(|_| {
                            barrier.wait();
                            let t = ThreadTime::now();
                            let ok = engine.reencrypt_batch(&items);
                            let engine_us = per_item(t);
                            assert!(ok.iter().all(|r| r.is_ok()), "engine rejected an item");
                            drop(ok);
                            let part = PreparedBatch::new(
                                &w.capsules,
                                policy,
                                args.per_request,
                                !args.whole,
                            );
                            barrier.wait();
                            let t = ThreadTime::now();
                            let computed = part.process(engine);
                            let process_us = per_item(t);
                            let t = ThreadTime::now();
                            let answered = part.finish();
                            let finish_us = per_item(t);
                            assert_eq!((computed, answered), (items.len(), items.len()));
                            Round {
                                engine: engine_us,
                                process: process_us,
                                finish: finish_us,
                            }
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    let all: Vec<Round> = rounds.into_iter().flatten().collect();
    let median = |f: fn(&Round) -> f64| {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2])
    };
    let (e_min, e_med) = median(|r| r.engine);
    let (p_min, p_med) = median(|r| r.process);
    let (f_min, f_med) = median(|r| r.finish);

    println!(
        "{} thread(s) x {} items, {} per request, {} cfrags, {} rounds (us per item, min / median)",
        threads,
        args.items,
        args.per_request,
        if args.whole { "whole" } else { "compact" },
        args.rounds
    );
    println!("  engine alone        {e_min:.3} / {e_med:.3}");
    println!("  worker's process    {p_min:.3} / {p_med:.3}");
    println!(
        "  the server's share  {:.3} (median of process - median of engine)",
        p_med - e_med
    );
    println!("  dropping the items  {f_min:.3} / {f_med:.3}");
}
