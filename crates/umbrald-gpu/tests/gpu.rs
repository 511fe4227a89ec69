//! Tests that need a CUDA GPU. They are `#[ignore]`d so that machines without one report them as
//! ignored rather than passed; on a GPU machine run
//!
//! ```text
//! cargo test --release -p umbrald-gpu --test gpu -- --ignored --nocapture
//! ```
//!
//! When run, they fail if no usable GPU is found. `UMBRALD_GPU_TEST_MULS` sets the number of
//! random multiplications checked by `gpu_matches_cpu` (default 1,000,000).

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::policy::Policy;
use k256::elliptic_curve::Field;
use k256::{ProjectivePoint, Scalar};
use rand::SeedableRng;
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome, CpuBackend, EcBackend};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::Engine;
use umbrald_gpu::{GpuBackend, GpuOptions, Guarded, NoEvents};

/// The backend under test; `UMBRALD_GPU_TEST_TABLE_SHARED=0` or `1` picks where the
/// variable-base kernel keeps its tables (default: `GpuOptions::default()`'s choice).
fn gpu() -> GpuBackend {
    gpu_with(GpuOptions::default())
}

/// [`gpu`] with these options.
fn gpu_with(mut opts: GpuOptions) -> GpuBackend {
    if let Ok(v) = std::env::var("UMBRALD_GPU_TEST_TABLE_SHARED") {
        opts.table_in_shared = v == "1";
    }
    match GpuBackend::probe(&opts) {
        Ok(gpu) => {
            eprintln!("{}", gpu.info());
            gpu
        }
        Err(why) => panic!("this test needs a usable CUDA GPU: {why}"),
    }
}

/// `gpu` behind a guard with the default options, as the server serves it.
fn guarded(gpu: GpuBackend) -> Arc<Guarded> {
    let stats = Some(gpu.stats());
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
    Arc::new(Guarded::new(
        Arc::new(gpu),
        stats,
        &GpuOptions::default(),
        threads,
        Arc::new(NoEvents),
    ))
}

/// Runs `f` over `items` split across all CPU cores, concatenating the results in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| f(c))).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_matches_cpu() {
    let muls: usize = std::env::var("UMBRALD_GPU_TEST_MULS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let pairs = muls.div_ceil(2);
    let gpu = gpu();
    let cpu = CpuBackend::new();

    let seeds: Vec<u64> = (0..pairs as u64).collect();
    let inputs = parallel(&seeds, |chunk| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(chunk[0] ^ 0x5eed);
        chunk
            .iter()
            .map(|i| {
                let base = ProjectivePoint::GENERATOR * Scalar::random(&mut rng);
                let k = match i % 1000 {
                    0 => [Scalar::ZERO, Scalar::ONE],
                    1 => [-Scalar::ONE, -Scalar::from(2u64)],
                    _ => [Scalar::random(&mut rng), Scalar::random(&mut rng)],
                };
                (Affine::from_k256(&base).expect("finite"), k)
            })
            .collect()
    });
    let (bases, scalars): (Vec<Affine>, Vec<[Scalar; 2]>) = inputs.into_iter().unzip();

    let start = Instant::now();
    let got = gpu.mul_pairs(&bases, &scalars).expect("GPU batch");
    let gpu_time = start.elapsed();
    let indexed: Vec<usize> = (0..pairs).collect();
    let want = parallel(&indexed, |chunk| {
        let (lo, hi) = (chunk[0], chunk[chunk.len() - 1] + 1);
        cpu.mul_pairs(&bases[lo..hi], &scalars[lo..hi])
            .expect("CPU")
    });
    let wrong = got.iter().zip(&want).filter(|(g, w)| g != w).count();
    let stats = gpu.stats().snapshot();
    eprintln!(
        "{} multiplications: {:.3} s wall ({:.2} M/s), kernel {:.3} s, copies {:.3} s",
        2 * pairs,
        gpu_time.as_secs_f64(),
        2.0 * pairs as f64 / gpu_time.as_secs_f64() / 1e6,
        stats.kernel_time.as_secs_f64(),
        stats.copy_time.as_secs_f64(),
    );
    assert_eq!(wrong, 0, "{wrong} of {pairs} pairs differ from the CPU");

    let ks: Vec<Scalar> = scalars.iter().take(100_000).map(|k| k[0]).collect();
    let start = Instant::now();
    let got_u = gpu.mul_u(&ks).expect("GPU mul_u");
    eprintln!(
        "{} fixed-base (U): {:.3} s",
        ks.len(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(got_u, parallel(&ks, |c| cpu.mul_u(c).expect("CPU u")));
    let got_g = gpu.mul_g(&ks).expect("GPU mul_g");
    let want_g = parallel(&ks, |c| {
        c.iter()
            .map(|k| Affine::from_k256(&(ProjectivePoint::GENERATOR * k)))
            .collect()
    });
    assert_eq!(got_g, want_g);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_cfrags_verify_under_umbral_pre() {
    let device = gpu();
    let stats = device.stats();
    let gpu = guarded(device);
    let engine = Engine::new(gpu.clone());
    for (threshold, shares) in [(1, 1), (3, 5), (10, 20)] {
        let policy = Policy::new(threshold, shares);
        assert_eq!(policy.round_trip(&engine, b"from the GPU"), b"from the GPU");
    }
    let stats = stats.snapshot();
    // The cfrags came from the device, not from the CPU fallback.
    assert!(stats.batches >= 6, "{stats:?}");
    assert_eq!(gpu.snapshot().fallbacks(), 0, "{:?}", gpu.snapshot());
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_capsule_checks_reject_exactly_the_tampered_capsules() {
    let device = gpu_with(GpuOptions {
        one_call: false,
        ..GpuOptions::default()
    });
    let stats = device.stats();
    let gpu = guarded(device);
    let engine = Engine::new(gpu.clone());
    let policy = Policy::new(2, 3);
    assert!(policy.rejects_tampered_capsules(&engine, 300, &[0, 129, 299]));
    let stats = stats.snapshot();
    // Check products (pairs and s·G) and the re-encryption itself ran on the device.
    assert!(stats.batches >= 4, "{stats:?}");
    assert_eq!(gpu.snapshot().fallbacks(), 0, "{:?}", gpu.snapshot());
}

/// `one_call`: whole capsules re-encrypted in one device call equal the CPU's, bad capsules
/// (wrong `s`, `E` or `V` off the curve) rejected exactly; through the engine the cfrags
/// verify under umbral-pre and exactly the tampered capsules are refused.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_one_call_matches_the_cpu() {
    let gpu = gpu();
    assert!(
        gpu.offers_reencrypt_capsules(),
        "the one-call kernels failed their self-test"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0ca1);
    let mut five = [0u8; 33];
    five[0] = 2;
    five[32] = 5; // no point on the curve has x = 5
    let off_curve = CompressedPoint::parse(&five).expect("well-formed");
    let capsules = 20_000;
    let mut inputs = Vec::with_capacity(capsules);
    let mut scalars = Vec::with_capacity(capsules);
    for j in 0..capsules {
        let (e, v) = (Scalar::random(&mut rng), Scalar::random(&mut rng));
        let point = |k: &Scalar| {
            Affine::from_k256(&(ProjectivePoint::GENERATOR * k))
                .expect("finite")
                .to_compressed()
        };
        let (e_bytes, v_bytes) = (point(&e), point(&v));
        let h = umbrald_core::hash::capsule_points(&e_bytes, &v_bytes);
        let mut input = CapsuleInput {
            e: CompressedPoint::parse(&e_bytes).expect("E"),
            v: CompressedPoint::parse(&v_bytes).expect("V"),
            s: v + h * e,
            commitment: point(&Scalar::random(&mut rng)),
        };
        match j % 1000 {
            7 => input.s += Scalar::ONE,
            8 => input.e = off_curve,
            9 => input.v = off_curve,
            _ => {}
        }
        inputs.push(input);
        scalars.push([Scalar::random(&mut rng), Scalar::random(&mut rng)]);
    }
    let start = Instant::now();
    let got = gpu
        .reencrypt_capsules(&inputs, &scalars)
        .expect("GPU one call");
    eprintln!(
        "{capsules} capsules in one call: {:.3} s",
        start.elapsed().as_secs_f64()
    );
    let indices: Vec<usize> = (0..capsules).collect();
    let want = parallel(&indices, |chunk| {
        chunk
            .iter()
            .map(|&j| umbrald_core::reencrypt_capsule_on_cpu(&inputs[j], &scalars[j]))
            .collect()
    });
    let wrong = got.iter().zip(&want).filter(|(g, w)| g != w).count();
    assert_eq!(
        wrong, 0,
        "{wrong} of {capsules} outcomes differ from the CPU"
    );
    let rejected = got
        .iter()
        .filter(|o| **o == CapsuleOutcome::Rejected)
        .count();
    assert_eq!(rejected, 3 * capsules / 1000);
    let gpu = guarded(gpu);
    let engine = Engine::new(gpu.clone());
    for (threshold, shares) in [(3, 5), (10, 20)] {
        let policy = Policy::new(threshold, shares);
        assert_eq!(policy.round_trip(&engine, b"one GPU call"), b"one GPU call");
    }
    let policy = Policy::new(2, 3);
    assert!(policy.rejects_tampered_capsules(&engine, 300, &[0, 129, 299]));
    assert_eq!(gpu.snapshot().fallbacks(), 0, "{:?}", gpu.snapshot());
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_decompression_matches_the_cpu() {
    let gpu = gpu();
    let seeds: Vec<u64> = (0..100_000).collect();
    let points: Vec<CompressedPoint> = parallel(&seeds, |chunk| {
        chunk
            .iter()
            .map(|&i| {
                let k = Scalar::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                let p = Affine::from_k256(&(ProjectivePoint::GENERATOR * k)).expect("finite");
                CompressedPoint::parse(&p.to_compressed()).expect("valid encoding")
            })
            .collect()
    });
    let got = gpu.decompress_points(&points).expect("offered");
    let want = parallel(&points, |chunk| {
        chunk.iter().map(|p| p.decompress_vartime().ok()).collect()
    });
    assert_eq!(got, want);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_probe_reports_the_device_and_passes_self_test() {
    let gpu = gpu();
    assert!(!gpu.info().name.is_empty());
    assert!(gpu.info().compute_capability.0 >= 7);
    gpu.self_test().expect("self-test");
}
