//! Variable-base (and fixed-base) multiplications per second against batch size, through
//! `GpuBackend` behind `Guarded` (packing, launches, copies, unpacking and the audit
//! included), as a Markdown table on stdout.
//!
//! ```text
//! cargo run --release -p umbrald-gpu --example gpu_bench -- [--sizes 1024,65536,...]
//!     [--reps 3] [--chunk 65536] [--ptx FILE] [--device 0] [--host] [--nvrtc-opt OPT]...
//!     [--table-shared | --table-local] [--host-wait block|yield|spin]
//! ```
//!
//! Per call and repetition: kernel and copy time (CUDA events), and the host's layout work
//! (packing, reading back, point checks) and audit on the calling threads.
//!
//! `--host` runs the host-compiled kernels instead of a GPU (to check the program without one;
//! the numbers then mean nothing). Sizes count pairs: each pair is two variable-base
//! products `a·P`, `b·P` sharing one table, as the engine uses them. The CPU backend's rate on
//! one thread is printed for comparison, and so is the engine's per-item cost *outside* the
//! backend (capsule parsing, the check's comparison, hashing, encoding: what a GPU host thread
//! does itself for every item), measured with a backend that answers instantly and offers the
//! capsule-check products and decompressed points as the GPU backend does.
//!
//! A second table gives whole capsules per second through the device by the two ways the
//! engine can use it (`--capsule-sizes 1024,4096,...`): step by step (decompression, the
//! check's `h·E` and `s·G`, the products, `t·U`: four calls) and with `one_call` (one call),
//! each call audited as in the server.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k256::elliptic_curve::Field;
use k256::{ProjectivePoint, Scalar};
use rand::SeedableRng;
use umbrald_benches::{InstantBackend, Workload};
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome, CpuBackend, EcBackend};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::{Engine, ReencryptItem};
use umbrald_gpu::host::HostExecutor;
use umbrald_gpu::{DeviceInfo, GpuBackend, GpuOptions, Guarded, NoEvents};

struct Args {
    sizes: Vec<usize>,
    capsule_sizes: Vec<usize>,
    reps: usize,
    opts: GpuOptions,
    host: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        sizes: vec![
            128, 1024, 4096, 16_384, 32_768, 65_536, 131_072, 262_144, 524_288, 1_048_576,
            2_097_152,
        ],
        capsule_sizes: vec![1024, 4096, 16_384, 65_536],
        reps: 3,
        opts: GpuOptions {
            audit_samples: 1,
            // Every fault shows in the final count; none turns the device off mid-run.
            unhealthy_after: u32::MAX,
            ..GpuOptions::default()
        },
        host: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--sizes" => {
                args.sizes = value()?
                    .split(',')
                    .map(|s| number(s.trim().to_owned()))
                    .collect::<Result<_, _>>()?
            }
            "--capsule-sizes" => {
                args.capsule_sizes = value()?
                    .split(',')
                    .map(|s| number(s.trim().to_owned()))
                    .collect::<Result<_, _>>()?
            }
            "--reps" => args.reps = number(value()?)?.max(1),
            "--chunk" => args.opts.chunk_items = number(value()?)?.max(1),
            "--device" => args.opts.device = number(value()?)?,
            "--ptx" => args.opts.ptx_file = Some(value()?.into()),
            "--nvrtc-opt" => args.opts.nvrtc_options.push(value()?),
            "--host" => args.host = true,
            "--table-shared" => args.opts.table_in_shared = true,
            "--table-local" => args.opts.table_in_shared = false,
            "--host-wait" => args.opts.host_wait = value()?.parse()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// The engine's host work per item as the GPU lane does it: a backend that answers every
/// product at once and offers the capsule-check products and decompressed points (computed
/// beforehand), so what is timed is parsing, the comparisons, hashing and encoding. Best of
/// three rounds over `items` distinct capsules.
fn engine_overhead(items: usize) -> Result<f64, String> {
    let w = Workload::new(items);
    let backend = InstantBackend::default()
        .offering_checks(&w.capsules)
        .offering_points(&w.capsules);
    let engine = Engine::new(std::sync::Arc::new(backend));
    let [k, d, r, v] = &w.policy_bytes;
    let verified = engine
        .verify_policy(k, d, r, v)
        .map_err(|e| e.to_string())?;
    let batch: Vec<ReencryptItem<'_>> = w
        .capsules
        .iter()
        .map(|capsule| ReencryptItem {
            capsule,
            kfrag: &verified,
        })
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let out = engine.reencrypt_batch(&batch);
        best = best.min(t.elapsed().as_secs_f64());
        // The instant products make wrong cfrags, but every capsule must pass its check.
        if out
            .iter()
            .any(|r| matches!(r, Err(umbrald_core::ItemError::CapsuleCheckFailed)))
        {
            return Err("a capsule failed its check".to_owned());
        }
    }
    Ok(best / items as f64)
}

/// A batch of valid capsules as the device paths take them.
struct CapsuleBatch {
    inputs: Vec<CapsuleInput>,
    /// `[rk, t]` of each.
    scalars: Vec<[Scalar; 2]>,
    /// Each capsule's challenge `h = H(E, V)`.
    challenges: Vec<Scalar>,
}

/// `n` valid capsules, cycling through 256 distinct ones (the device's cost does not depend
/// on which), each with its own `[rk, t]`.
fn capsule_inputs(n: usize, rng: &mut rand::rngs::StdRng) -> CapsuleBatch {
    let point = |k: &Scalar| {
        Affine::from_k256(&(ProjectivePoint::GENERATOR * k))
            .unwrap_or_else(|| unreachable!("a random multiple of G is finite"))
    };
    let distinct: Vec<(CapsuleInput, Scalar)> = (0..256)
        .map(|_| {
            let (e, v) = (Scalar::random(&mut *rng), Scalar::random(&mut *rng));
            let (e_bytes, v_bytes) = (point(&e).to_compressed(), point(&v).to_compressed());
            let h = umbrald_core::hash::capsule_points(&e_bytes, &v_bytes);
            let parse = |b: &[u8; 33]| {
                CompressedPoint::parse(b).unwrap_or_else(|_| unreachable!("a valid encoding"))
            };
            let input = CapsuleInput {
                e: parse(&e_bytes),
                v: parse(&v_bytes),
                s: v + h * e,
                commitment: point(&Scalar::random(&mut *rng)).to_compressed(),
            };
            (input, h)
        })
        .collect();
    let picked = |j: usize| distinct[j % distinct.len()];
    CapsuleBatch {
        inputs: (0..n).map(|j| picked(j).0).collect(),
        scalars: (0..n)
            .map(|_| [Scalar::random(&mut *rng), Scalar::random(&mut *rng)])
            .collect(),
        challenges: (0..n).map(|j| picked(j).1).collect(),
    }
}

/// One batch of capsules through the device by each of the engine's two ways; the wall time
/// of each, or the first failure.
fn capsule_walls(gpu: &Guarded, batch: &CapsuleBatch, n: usize) -> Result<[Duration; 2], String> {
    let (capsules, scalars, hs) = (
        &batch.inputs[..n],
        &batch.scalars[..n],
        &batch.challenges[..n],
    );
    let fail = |what: &str| format!("{n} capsules: {what} failed");
    let points: Vec<CompressedPoint> = capsules.iter().flat_map(|c| [c.e, c.v]).collect();
    let ss: Vec<Scalar> = capsules.iter().map(|c| c.s).collect();
    let pairs: Vec<[Scalar; 2]> = scalars.iter().flat_map(|k| [*k, *k]).collect();
    let nonces: Vec<Scalar> = scalars.iter().map(|k| k[1]).collect();
    let t = Instant::now();
    let points = gpu
        .decompress_points(&points)
        .map_err(|_| fail("decompression"))?;
    let bases: Vec<Affine> = points
        .into_iter()
        .map(|p| p.ok_or_else(|| fail("a point")))
        .collect::<Result<_, _>>()?;
    let es: Vec<Affine> = bases.iter().step_by(2).copied().collect();
    gpu.capsule_check_products(&es, hs, &ss)
        .map_err(|_| fail("the check"))?;
    gpu.mul_pairs(&bases, &pairs)
        .map_err(|_| fail("products"))?;
    gpu.mul_u(&nonces).map_err(|_| fail("t·U"))?;
    let steps = t.elapsed();
    let t = Instant::now();
    let outcomes = gpu
        .reencrypt_capsules(capsules, scalars)
        .map_err(|_| fail("one call"))?;
    let one_call = t.elapsed();
    if outcomes.contains(&CapsuleOutcome::Rejected) {
        return Err(fail("a valid capsule's one call"));
    }
    Ok([steps, one_call])
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("gpu_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let device = if args.host {
        GpuBackend::with_executor(
            Box::new(HostExecutor::new()),
            DeviceInfo::emulated(),
            &args.opts,
        )
    } else {
        match GpuBackend::probe(&args.opts) {
            Ok(gpu) => gpu,
            Err(e) => {
                eprintln!("gpu_bench: no usable GPU: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    println!("device: {}", device.info());
    let device = Arc::new(device);
    let gpu = Guarded::new(
        device.clone(),
        Some(device.stats()),
        &args.opts,
        1,
        Arc::new(NoEvents),
    );
    println!(
        "variable-base tables in {} memory",
        if args.opts.table_in_shared {
            "shared (UMB_TABLE_SHARED=1)"
        } else {
            "local"
        }
    );
    println!("host threads wait for the device: {}", args.opts.host_wait);
    if !args.opts.nvrtc_options.is_empty() {
        println!("NVRTC options: {}", args.opts.nvrtc_options.join(" "));
    }
    println!(
        "probe (driver, kernels, tables, self-test): {:.2} s; chunk_items {}",
        started.elapsed().as_secs_f64(),
        args.opts.chunk_items
    );

    // A pool of distinct random bases, reused cyclically: the kernels' cost does not depend on
    // which point it is, and making a million points on the CPU would dominate the run.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let pool: Vec<Affine> = (0..1024)
        .map(|_| {
            Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::random(&mut rng)))
                .unwrap_or_else(|| unreachable!("a random multiple of G is finite"))
        })
        .collect();
    let max = args.sizes.iter().copied().max().unwrap_or(0);
    let bases: Vec<Affine> = (0..max).map(|i| pool[i % pool.len()]).collect();
    let scalars: Vec<[Scalar; 2]> = (0..max)
        .map(|_| [Scalar::random(&mut rng), Scalar::random(&mut rng)])
        .collect();
    let singles: Vec<Scalar> = scalars.iter().map(|k| k[0]).collect();
    // The capsule check's h·E both ways: a pair call with zero second scalars (before) and a
    // call without the second ladder (mul_firsts).
    let zero_seconds: Vec<[Scalar; 2]> = singles.iter().map(|k| [*k, Scalar::ZERO]).collect();

    let cpu = CpuBackend::new();
    let n_cpu = 256.min(max.max(1));
    let t = Instant::now();
    let _ = cpu.mul_pairs(&bases[..n_cpu], &scalars[..n_cpu]);
    let cpu_rate = 2.0 * n_cpu as f64 / t.elapsed().as_secs_f64();
    println!(
        "CPU backend, one thread: {:.0} variable-base products/s",
        cpu_rate
    );
    match engine_overhead(4096) {
        Ok(per_item) => println!(
            "engine outside the backend, one thread, checks and decompression offered as \
             the GPU lane does: {:.2} us per item ({:.0} items/s)",
            per_item * 1e6,
            1.0 / per_item
        ),
        Err(e) => println!("engine overhead not measured: {e}"),
    }
    println!();
    println!("| pairs | products | best wall (ms) | products/s (best) | median wall (ms) | kernel ms | copy ms | layout ms | audit ms | fixed-base U /s | h·E as pairs [h, 0] /s | h·E first only /s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");

    // Warm-up: the first launch pays for module loading and lazy allocations.
    if let Err(e) = gpu.mul_pairs(&bases[..max.min(1024)], &scalars[..max.min(1024)]) {
        eprintln!("gpu_bench: warm-up failed: {e}");
        return ExitCode::FAILURE;
    }
    for &n in &args.sizes {
        let mut walls = Vec::with_capacity(args.reps);
        let (before, audit_before) = (device.stats().snapshot(), gpu.snapshot().audit_time);
        for _ in 0..args.reps {
            let t = Instant::now();
            if let Err(e) = gpu.mul_pairs(&bases[..n], &scalars[..n]) {
                eprintln!("gpu_bench: {n} pairs failed: {e}");
                return ExitCode::FAILURE;
            }
            walls.push(t.elapsed());
        }
        let (after, audit_after) = (device.stats().snapshot(), gpu.snapshot().audit_time);
        let rate = |call: &dyn Fn() -> bool| {
            let t = Instant::now();
            let ok = call();
            let secs = t.elapsed().as_secs_f64();
            if ok {
                format!("{:.0}", n as f64 / secs)
            } else {
                "failed".to_owned()
            }
        };
        let fixed = rate(&|| gpu.mul_u(&singles[..n]).is_ok());
        let he_pairs = rate(&|| gpu.mul_pairs(&bases[..n], &zero_seconds[..n]).is_ok());
        let he_firsts = rate(&|| device.mul_firsts(&bases[..n], &singles[..n]).is_ok());
        walls.sort_unstable();
        let best = walls[0];
        let median = walls[walls.len() / 2];
        let per_rep = |d: Duration| d.as_secs_f64() * 1e3 / args.reps as f64;
        println!(
            "| {n} | {} | {:.3} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {fixed} | {he_pairs} | {he_firsts} |",
            2 * n,
            best.as_secs_f64() * 1e3,
            2.0 * n as f64 / best.as_secs_f64(),
            median.as_secs_f64() * 1e3,
            per_rep(after.kernel_time.saturating_sub(before.kernel_time)),
            per_rep(after.copy_time.saturating_sub(before.copy_time)),
            per_rep(after.layout_time.saturating_sub(before.layout_time)),
            per_rep(audit_after.saturating_sub(audit_before)),
        );
    }
    println!();
    println!(
        "Whole capsules through the device (best of {} each; every call audited):",
        args.reps
    );
    println!();
    println!("| capsules | step by step, 4 calls (ms) | capsules/s | one_call (ms) | capsules/s | one_call / step by step |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let max_capsules = args.capsule_sizes.iter().copied().max().unwrap_or(0);
    let batch = capsule_inputs(max_capsules, &mut rng);
    for &n in &args.capsule_sizes {
        let mut best = [Duration::MAX; 2];
        for _ in 0..args.reps {
            match capsule_walls(&gpu, &batch, n) {
                Ok(walls) => {
                    for (b, w) in best.iter_mut().zip(walls) {
                        *b = (*b).min(w);
                    }
                }
                Err(e) => {
                    eprintln!("gpu_bench: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let [steps, one] = best.map(|d| d.as_secs_f64());
        println!(
            "| {n} | {:.3} | {:.0} | {:.3} | {:.0} | {:.2} |",
            steps * 1e3,
            n as f64 / steps,
            one * 1e3,
            n as f64 / one,
            steps / one,
        );
    }
    let stats = gpu.snapshot();
    println!();
    println!(
        "fallbacks {}, audit failures {}, audited outputs {}",
        stats.fallbacks(),
        stats.faults_of(umbrald_gpu::Fault::AuditMismatch),
        stats.audited
    );
    if stats.fallbacks() > 0 {
        eprintln!("gpu_bench: the device failed some calls (see the log above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
