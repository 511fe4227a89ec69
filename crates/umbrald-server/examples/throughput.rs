//! Side-by-side measurement: the engine's in-process throughput against the same engine
//! behind the server, through QUIC on loopback, on the same cores; then single-capsule latency
//! at half of the in-process peak.
//!
//! ```text
//! cargo run --release -p umbrald-server --example throughput -- --workers 2 --seconds 5
//! ```
//!
//! The client load runs in this process too, so on a small machine it competes with the
//! workers for the same cores: the ratio it prints includes that cost.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use umbrald_core::{Engine, ReencryptItem};
use umbrald_server::testing::TestClient;
use umbrald_server::{Config, Server};

/// The `umbrald` binary's allocator, when built with `--features mimalloc`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Engine vs server throughput and latency.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Worker threads (and in-process threads); 0 = one per core.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Core ids to pin the workers to (comma-separated); empty = first N available.
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Items per request (and per in-process batch).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Client connections for the throughput phase.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Requests in flight per connection in the throughput phase.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// Server `max_batch_items`.
    #[arg(long, default_value_t = 128)]
    max_batch_items: usize,
    /// Server `max_queue_delay_us`.
    #[arg(long, default_value_t = 0)]
    max_queue_delay_us: u64,
    /// Server async runtime threads; 0 = the server's default (`Config::io_threads`).
    #[arg(long, default_value_t = 0)]
    io_threads: usize,
    /// Latency-phase load as a fraction of the single-capsule peak.
    #[arg(long, default_value_t = 0.5)]
    load: f64,
    /// Leave the worker threads unpinned (the scheduler may move them between cores).
    #[arg(long)]
    no_pin: bool,
    /// Latency phases to run back to back (each is printed; the median p99 closes the run).
    #[arg(long, default_value_t = 1)]
    latency_runs: usize,
    /// Nice value of the worker threads, applied alike to the in-process threads and the
    /// server's workers (Linux).
    #[arg(long, default_value_t = 10)]
    nice: i32,
    /// Alternating in-process / QUIC rounds (the median ratio is reported; alternation keeps
    /// a noisy neighbour from favouring one side). 0 skips to the latency phase.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Nice value of the load generator's threads (its runtime and the pacing thread; Linux)
    /// during the latency phases only (the peak they are set against is measured at nice 0).
    /// The generator shares the server's cores here; a higher value lets the server's threads
    /// go first, closer to load from another host.
    #[arg(long, default_value_t = 0)]
    client_nice: i32,
    /// Ask for compact cfrags in the throughput phase (`compact_cfrags`: 197 of each cfrag's
    /// 381 bytes; this generator counts the answers without completing them).
    #[arg(long)]
    compact: bool,
}

/// Thread ids of the load generator's runtime threads (Linux), for `set_client_nice`.
static CLIENT_THREADS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

fn register_client_thread() {
    #[cfg(target_os = "linux")]
    if let Ok(mut tids) = CLIENT_THREADS.lock() {
        tids.push(rustix::thread::gettid().as_raw_nonzero().get());
    }
}

/// Sets the nice value of the load generator's runtime threads and of the calling thread
/// (Linux; raising it needs no privilege, lowering it again may not be allowed).
fn set_client_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let mut tids = CLIENT_THREADS.lock().map(|t| t.clone()).unwrap_or_default();
        tids.push(rustix::thread::gettid().as_raw_nonzero().get());
        for tid in tids {
            let pid = rustix::process::Pid::from_raw(tid);
            if let Err(e) = rustix::process::setpriority_process(pid, nice) {
                eprintln!("cannot set the load generator's nice value: {e}");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// CPU time (seconds) spent so far by this process's threads, grouped by thread name: the
/// server's I/O runtime, the load generator's runtime (with the main thread), the workers and
/// everything else (Linux: `/proc/self/task/*/schedstat`; zeros elsewhere).
fn thread_cpu() -> [f64; 4] {
    let mut groups = [0.0; 4];
    #[cfg(target_os = "linux")]
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        let pid = std::process::id().to_string();
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let ns = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0);
            let group = if comm.starts_with("server-io") {
                0
            } else if comm.starts_with("client-io") || task.file_name().to_str() == Some(&pid) {
                1
            } else if comm.starts_with("umbrald-worker") {
                2
            } else {
                3
            };
            groups[group] += ns * 1e-9;
        }
    }
    groups
}

/// The CPU time of each thread group between two [`thread_cpu`] readings, in microseconds per
/// one of `count` items or requests, as one line.
fn cpu_per(before: [f64; 4], after: [f64; 4], count: u64) -> String {
    let per = |g: usize| (after[g] - before[g]) * 1e6 / count.max(1) as f64;
    format!(
        "server I/O {:.2} us, load generator {:.2} us, workers {:.1} us, other threads {:.1} us",
        per(0),
        per(1),
        per(2),
        per(3)
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    let fx = Arc::new(common::Fixture::new(1, 1, 16));
    let phase = Duration::from_secs_f64(args.seconds);
    println!(
        "workers={workers} batch={} phase={:.1}s",
        args.batch, args.seconds
    );

    // The server gets its own runtime (as under `umbrald serve`); the load generator another,
    // so that client tasks do not queue in front of server tasks.
    let io_threads = match args.io_threads {
        0 => Config::default().io_threads(),
        n => n,
    };
    println!("server I/O threads: {io_threads}");
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        .thread_name("server-io")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client-io")
        .on_thread_start(register_client_thread)
        .enable_all()
        .build()?;
    let mut config = Config::ephemeral(common::data_dir("throughput"), workers);
    config.workers.cores = args.cores.clone();
    config.batcher.max_batch_items = args.max_batch_items;
    config.batcher.max_queue_delay_us = args.max_queue_delay_us;
    config.metrics.enabled = false;
    config.workers.nice = args.nice;
    config.workers.pin = !args.no_pin;
    let server = server_rt.block_on(Server::start(config, None))?;
    client_rt.block_on(async {
        let (addr, fp) = (server.local_addr(), server.cert_fingerprint());

        let (mut engine_rates, mut ratios) = (Vec::new(), Vec::new());
        for round in 1..=args.rounds {
            let engine_rate = in_process(&fx, workers, &args, phase);
            let quic_rate = through_quic(&fx, addr, fp, &args, phase).await?;
            println!(
                "round {round}: in-process {engine_rate:>8.0} items/s   through QUIC \
                 {quic_rate:>8.0} items/s   ratio {:.3}",
                quic_rate / engine_rate
            );
            engine_rates.push(engine_rate);
            ratios.push(quic_rate / engine_rate);
        }
        if args.rounds > 0 {
            println!(
                "median in-process {:.0} items/s; median ratio QUIC/engine: {:.3}",
                median(&mut engine_rates),
                median(&mut ratios)
            );
        }

        // Unloaded round trips: an empty request (QUIC and framing only) and one capsule
        // (plus queue, worker and engine), one at a time.
        let probe = TestClient::connect(addr, fp).await?;
        for items in [0, 1] {
            let req = fx.request_n(1, items);
            let mut hist = Histogram::<u64>::new(3)?;
            for _ in 0..300 {
                let t0 = Instant::now();
                probe.call(&req).await?;
                hist.record((t0.elapsed().as_micros() as u64).max(1))?;
            }
            println!(
                "unloaded round trip, {items} items: p50={:.3} ms p99={:.3} ms",
                ms(hist.value_at_quantile(0.5)),
                ms(hist.value_at_quantile(0.99))
            );
        }
        let engine = Engine::cpu();
        let p = &fx.policies[0];
        let kfrag =
            engine.verify_policy(&p.kfrag, &p.delegating_pk, &p.receiving_pk, &p.verifying_pk)?;
        let mut hist = Histogram::<u64>::new(3)?;
        for _ in 0..1000 {
            let t0 = Instant::now();
            engine.reencrypt_batch(&[ReencryptItem {
                capsule: &fx.capsule_bytes[0],
                kfrag: &kfrag,
            }]);
            hist.record((t0.elapsed().as_micros() as u64).max(1))?;
        }
        // The machine's own noise floor: the same capsule alone, no I/O, no other load.
        println!(
            "engine, one capsule in-process: p50={:.3} ms p99={:.3} ms",
            ms(hist.value_at_quantile(0.5)),
            ms(hist.value_at_quantile(0.99))
        );
        // The other floor: how long one thread takes to wake another, the hop that every
        // request makes several times (stream task -> worker -> stream task, and the packets).
        for (label, [from, to]) in wake_probe_cores() {
            let (p50, p99) = wake_latency(from, to, 2000, Duration::from_micros(500))?;
            println!("thread wake-up {label}: p50={p50:.3} ms p99={p99:.3} ms");
        }

        // Peak rate of single-capsule requests through the server (closed loop, many in
        // flight), then open-loop latency at `load` of that peak.
        let single = Args {
            batch: 1,
            conns: 8,
            inflight: 32,
            ..args.clone()
        };
        let single_peak = through_quic(&fx, addr, fp, &single, phase).await?;
        println!("single-capsule peak through QUIC: {single_peak:.0} req/s");
        let rate = single_peak * args.load;
        let m = server.metrics();
        let snap = |m: &umbrald_server::Metrics| {
            [
                (
                    m.request_seconds.get_sample_sum(),
                    m.request_seconds.get_sample_count(),
                ),
                (
                    m.queue_seconds.get_sample_sum(),
                    m.queue_seconds.get_sample_count(),
                ),
                (
                    m.compute_seconds.get_sample_sum(),
                    m.compute_seconds.get_sample_count(),
                ),
                (
                    m.batch_items.get_sample_sum(),
                    m.batch_items.get_sample_count(),
                ),
            ]
        };
        if args.client_nice != 0 {
            // The latency phase paces its requests from this thread (`block_on`).
            set_client_nice(args.client_nice);
            println!("load generator threads at nice {}", args.client_nice);
        }
        let mut p99s = Vec::new();
        for _ in 0..args.latency_runs.max(1) {
            let before = snap(m);
            let tails_before = [&m.request_seconds, &m.queue_seconds, &m.compute_seconds].map(buckets);
            let cpu_before = thread_cpu();
            let (hist, sent, errors) = latency(&fx, addr, fp, rate, phase).await?;
            println!(
                "CPU per request at this load: {}",
                cpu_per(cpu_before, thread_cpu(), sent)
            );
            let after = snap(m);
            let tails_after = [&m.request_seconds, &m.queue_seconds, &m.compute_seconds].map(buckets);
            let mean = |i: usize| (after[i].0 - before[i].0) / (after[i].1 - before[i].1).max(1) as f64;
            println!(
                "server side, means: request {:.3} ms, queue wait {:.3} ms, batch compute {:.3} ms, \
                 batch size {:.2} items",
                mean(0) * 1e3,
                mean(1) * 1e3,
                mean(2) * 1e3,
                mean(3)
            );
            for (name, (b, a)) in ["request", "queue wait", "batch compute"]
                .iter()
                .zip(tails_before.iter().zip(&tails_after))
            {
                let total = a.last().map_or(0, |x| x.1) - b.last().map_or(0, |x| x.1);
                let over = |bound: f64| {
                    let at = |v: &[(f64, u64)]| v.iter().find(|x| x.0 >= bound).map_or(0, |x| x.1);
                    let within = at(a) - at(b);
                    100.0 * (total - within) as f64 / total.max(1) as f64
                };
                println!(
                    "server side, {name}: {:.2}% over 2 ms, {:.2}% over 5 ms",
                    over(0.002),
                    over(0.005)
                );
            }
            println!(
                "single-capsule at {rate:.0} req/s ({:.0}% of that peak): sent={sent} errors={errors}",
                args.load * 100.0
            );
            println!(
                "latency ms: p50={:.3} p90={:.3} p99={:.3} p99.9={:.3} max={:.3}",
                ms(hist.value_at_quantile(0.5)),
                ms(hist.value_at_quantile(0.9)),
                ms(hist.value_at_quantile(0.99)),
                ms(hist.value_at_quantile(0.999)),
                ms(hist.max()),
            );
            p99s.push(ms(hist.value_at_quantile(0.99)));
        }
        if p99s.len() > 1 {
            println!(
                "p99 over {} latency runs: {:?} ms; median {:.3} ms",
                p99s.len(),
                p99s,
                median(&mut p99s.clone())
            );
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    server_rt.block_on(server.shutdown());
    std::fs::remove_dir_all(common::data_dir("throughput")).ok();
    Ok(())
}

/// A histogram's cumulative bucket counts, `(upper bound, count)`, ending with `+Inf`.
/// The core pairs to probe: one core to itself, and the first two to each other.
fn wake_probe_cores() -> Vec<(&'static str, [core_affinity::CoreId; 2])> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut pairs = Vec::new();
    if let Some(first) = cores.first() {
        pairs.push(("on one core", [*first, *first]));
    }
    if let [a, b, ..] = cores.as_slice() {
        pairs.push(("across two cores", [*a, *b]));
    }
    pairs
}

/// Sends `count` timestamps from a thread on `from` to a thread on `to` that blocks on a
/// crossbeam channel (as the workers do), one every `gap`; returns the p50 and p99, in ms,
/// of the time from send to the receiver running.
fn wake_latency(
    from: core_affinity::CoreId,
    to: core_affinity::CoreId,
    count: usize,
    gap: Duration,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let (tx, rx) = crossbeam_channel::bounded::<Instant>(1);
    let receiver = std::thread::spawn(move || {
        core_affinity::set_for_current(to);
        let mut hist = Histogram::<u64>::new(3).ok()?;
        while let Ok(sent) = rx.recv() {
            let waited = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
            hist.record(waited.max(1)).ok()?;
        }
        Some(hist)
    });
    let sender = std::thread::spawn(move || {
        core_affinity::set_for_current(from);
        for _ in 0..count {
            std::thread::sleep(gap);
            if tx.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    sender.join().map_err(|_| "wake probe sender panicked")?;
    let hist = receiver
        .join()
        .map_err(|_| "wake probe receiver panicked")?
        .ok_or("wake probe histogram")?;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1e6;
    Ok((ms(0.5), ms(0.99)))
}

fn buckets(h: &prometheus::Histogram) -> Vec<(f64, u64)> {
    use prometheus::core::Collector;
    let mut out = Vec::new();
    for family in h.collect() {
        for metric in family.get_metric() {
            let hist = metric.get_histogram();
            for b in hist.get_bucket() {
                out.push((b.upper_bound(), b.cumulative_count()));
            }
            out.push((f64::INFINITY, hist.get_sample_count()));
        }
    }
    out
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `workers` pinned threads calling `reencrypt_batch` on `batch` items for `phase`.
fn in_process(fx: &common::Fixture, workers: usize, args: &Args, phase: Duration) -> f64 {
    let (cores, batch, nice) = (&args.cores, args.batch, args.nice);
    let engine = Arc::new(Engine::cpu());
    let p = &fx.policies[0];
    let kfrag = engine
        .verify_policy(&p.kfrag, &p.delegating_pk, &p.receiving_pk, &p.verifying_pk)
        .expect("policy verifies");
    let available = core_affinity::get_core_ids().unwrap_or_default();
    let pin: Vec<core_affinity::CoreId> = if cores.is_empty() {
        available
    } else {
        cores
            .iter()
            .map(|&id| core_affinity::CoreId { id })
            .collect()
    };
    let capsules: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..batch)
            .map(|i| fx.capsule_bytes[i % fx.capsule_bytes.len()].clone())
            .collect(),
    );
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let (engine, kfrag, capsules) = (engine.clone(), kfrag.clone(), capsules.clone());
            let (done, stop) = (done.clone(), stop.clone());
            let core = (!pin.is_empty()).then(|| pin[i % pin.len()]);
            std::thread::spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                #[cfg(target_os = "linux")]
                if nice != 0 {
                    let tid = rustix::thread::gettid();
                    let _ = rustix::process::setpriority_process(Some(tid), nice);
                }
                #[cfg(not(target_os = "linux"))]
                let _ = nice;
                let items: Vec<ReencryptItem<'_>> = capsules
                    .iter()
                    .map(|c| ReencryptItem {
                        capsule: c,
                        kfrag: &kfrag,
                    })
                    .collect();
                while !stop.load(Ordering::Relaxed) {
                    let out = engine.reencrypt_batch(&items);
                    assert!(out.iter().all(Result::is_ok));
                    done.fetch_add(out.len() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Steady-state rate: completions between two instants after a warm-up.
    std::thread::sleep(WARMUP);
    let (t1, c1) = (Instant::now(), done.load(Ordering::Relaxed));
    std::thread::sleep(phase);
    let (t2, c2) = (Instant::now(), done.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("worker");
    }
    let _ = started;
    (c2 - c1) as f64 / (t2 - t1).as_secs_f64()
}

/// Time given to a phase to reach its steady state before counting.
const WARMUP: Duration = Duration::from_millis(300);

/// Closed-loop clients: `conns` connections with `inflight` requests of `batch` items each.
async fn through_quic(
    fx: &Arc<common::Fixture>,
    addr: std::net::SocketAddr,
    fp: [u8; 32],
    args: &Args,
    phase: Duration,
) -> Result<f64, Box<dyn std::error::Error>> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.conns {
        let client = Arc::new(TestClient::connect(addr, fp).await?);
        for _ in 0..args.inflight {
            let (client, fx, done, stop) = (client.clone(), fx.clone(), done.clone(), stop.clone());
            let mut req = fx.request_n(1, args.batch);
            req.compact_cfrags = args.compact.then_some(true);
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let resp = client.call(&req).await.expect("answered");
                    let ok = resp
                        .results
                        .as_ref()
                        .map_or(0, |r| r.iter().filter(|x| x.error.is_none()).count());
                    assert_eq!(
                        ok,
                        req.items.len(),
                        "all items re-encrypted: {:?}",
                        resp.error
                    );
                    done.fetch_add(ok as u64, Ordering::Relaxed);
                }
            });
        }
    }
    // Steady-state rate: completions between two instants after a warm-up.
    tokio::time::sleep(WARMUP).await;
    let (t1, c1, cpu1) = (Instant::now(), done.load(Ordering::Relaxed), thread_cpu());
    tokio::time::sleep(phase).await;
    let (t2, c2, cpu2) = (Instant::now(), done.load(Ordering::Relaxed), thread_cpu());
    println!(
        "  CPU per item through QUIC (batch {}): {}",
        args.batch,
        cpu_per(cpu1, cpu2, c2 - c1)
    );
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = tasks.join_next().await {
        r?;
    }
    Ok((c2 - c1) as f64 / (t2 - t1).as_secs_f64())
}

/// Open-loop single-capsule requests at `rate` per second over 8 connections.
async fn latency(
    fx: &Arc<common::Fixture>,
    addr: std::net::SocketAddr,
    fp: [u8; 32],
    rate: f64,
    phase: Duration,
) -> Result<(Histogram<u64>, u64, u64), Box<dyn std::error::Error>> {
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(Arc::new(TestClient::connect(addr, fp).await?));
    }
    let before: Vec<quinn::ConnectionStats> =
        clients.iter().map(|c| c.connection().stats()).collect();
    let period = Duration::from_secs_f64(1.0 / rate);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<u64>>();
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let total = (phase.as_secs_f64() * rate) as u64;
    let req = Arc::new(fx.request_n(1, 1));
    for i in 0..total {
        tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
        let (client, req, tx) = (
            clients[i as usize % clients.len()].clone(),
            req.clone(),
            tx.clone(),
        );
        tokio::spawn(async move {
            let t0 = Instant::now();
            let ok = client
                .call(&req)
                .await
                .ok()
                .is_some_and(|r| r.results.is_some_and(|r| r[0].cfrag.is_some()));
            let us = t0.elapsed().as_micros() as u64;
            let _ = tx.send(ok.then_some(us));
        });
    }
    drop(tx);
    let mut hist = Histogram::<u64>::new(3)?;
    let (mut sent, mut errors) = (0, 0);
    while let Some(sample) = rx.recv().await {
        sent += 1;
        match sample {
            Some(us) => hist.record(us.max(1))?,
            None => errors += 1,
        }
    }
    // Datagrams and frames per request, as the client's connections counted them.
    let (mut dg_tx, mut dg_rx, mut acks_tx, mut acks_rx, mut ms_rx) = (0, 0, 0, 0, 0);
    for (c, b) in clients.iter().zip(&before) {
        let a = c.connection().stats();
        dg_tx += a.udp_tx.datagrams - b.udp_tx.datagrams;
        dg_rx += a.udp_rx.datagrams - b.udp_rx.datagrams;
        acks_tx += a.frame_tx.acks - b.frame_tx.acks;
        acks_rx += a.frame_rx.acks - b.frame_rx.acks;
        ms_rx += a.frame_rx.max_streams_bidi - b.frame_rx.max_streams_bidi;
    }
    let per = |x: u64| x as f64 / sent.max(1) as f64;
    println!(
        "per request: client sent {:.2} datagrams ({:.2} ACK frames), received {:.2} \
         ({:.2} ACK frames, {:.2} MAX_STREAMS)",
        per(dg_tx),
        per(acks_tx),
        per(dg_rx),
        per(acks_rx),
        per(ms_rx)
    );
    Ok((hist, sent, errors))
}
