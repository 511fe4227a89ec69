//! GpuBackend end to end without a GPU: the host-compiled kernels stand in for the device
//! (same code, layouts and per-block batch inversion), and fault-injecting executors check the
//! audit, the statistics and the CPU fallback.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::policy::Policy;
use common::*;
use k256::elliptic_curve::Field;
use k256::{ProjectivePoint, Scalar};
use rand::SeedableRng;
use umbrald_core::backend::{BackendError, CpuBackend, EcBackend};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::Engine;
use umbrald_gpu::host::HostExecutor;
use umbrald_gpu::{
    DeviceInfo, ExecError, FixedBase, GpuBackend, GpuOptions, KernelExecutor, PairProducts,
    Products, Timing,
};

fn opts(audit_samples: usize) -> GpuOptions {
    GpuOptions {
        audit_samples,
        ..GpuOptions::default()
    }
}

fn host_backend(audit_samples: usize) -> GpuBackend {
    host_backend_with(&opts(audit_samples))
}

/// The GPU backend on the host-compiled kernels, with these options.
fn host_backend_with(opts: &GpuOptions) -> GpuBackend {
    GpuBackend::with_executor(Box::new(HostExecutor::new()), DeviceInfo::emulated(), opts)
}

/// `gpu`'s pairs for these inputs, checked equal to the CPU backend's.
fn pairs_checked(
    gpu: &GpuBackend,
    bases: &[Affine],
    scalars: &[[Scalar; 2]],
) -> Vec<[Option<Affine>; 2]> {
    let got = gpu.mul_pairs(bases, scalars).expect("host kernels succeed");
    let want = CpuBackend::new().mul_pairs(bases, scalars).expect("cpu");
    assert_eq!(got, want);
    got
}

/// `n` random bases and scalar pairs; every 7th scalar is zero (identity results inside the
/// batch inversion tree), plus 1 and n - 1.
fn batch(n: usize, seed: u64) -> (Vec<Affine>, Vec<[Scalar; 2]>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bases = (0..n).map(|_| point(&Scalar::random(&mut rng))).collect();
    let scalars = (0..n)
        .map(|i| match i % 7 {
            0 => [Scalar::ZERO, Scalar::random(&mut rng)],
            1 => [Scalar::ONE, -Scalar::ONE],
            _ => [Scalar::random(&mut rng), Scalar::random(&mut rng)],
        })
        .collect();
    (bases, scalars)
}

#[test]
fn pairs_match_the_cpu_across_blocks() {
    // 300 items: two full blocks of 128 and a partial one.
    let (bases, scalars) = batch(300, 1);
    let gpu = host_backend(4);
    let got = pairs_checked(&gpu, &bases, &scalars);
    assert!(got[0][0].is_none() && got[0][1].is_some());
    let stats = gpu.stats().snapshot();
    assert_eq!((stats.batches, stats.items, stats.fallbacks), (1, 600, 0));
    assert_eq!(stats.audited, 4);
    assert!(stats.kernel_time > std::time::Duration::ZERO);
}

#[test]
fn fixed_base_matches_the_cpu() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut scalars: Vec<Scalar> = (0..200).map(|_| Scalar::random(&mut rng)).collect();
    scalars[5] = Scalar::ZERO;
    scalars[130] = -Scalar::ONE;
    let gpu = host_backend(2);
    let cpu = CpuBackend::new();
    assert_eq!(
        gpu.mul_u(&scalars).expect("u"),
        cpu.mul_u(&scalars).expect("cpu u")
    );
    let want_g: Vec<Option<Affine>> = scalars
        .iter()
        .map(|k| Affine::from_k256(&(ProjectivePoint::GENERATOR * k)))
        .collect();
    assert_eq!(gpu.mul_g(&scalars).expect("g"), want_g);
    assert_eq!(gpu.stats().snapshot().batches, 2);
}

#[test]
fn self_test_passes_and_empty_or_mismatched_batches_are_handled() {
    let gpu = host_backend(2);
    gpu.self_test().expect("self-test");
    assert_eq!(gpu.mul_pairs(&[], &[]).expect("empty").len(), 0);
    assert_eq!(gpu.mul_u(&[]).expect("empty").len(), 0);
    let (bases, scalars) = batch(2, 3);
    assert!(matches!(
        gpu.mul_pairs(&bases, &scalars[..1]),
        Err(BackendError::Shape(_))
    ));
    assert_eq!(
        gpu.stats().snapshot().batches,
        0,
        "self-test and empty calls are not counted"
    );
}

#[test]
fn cfrags_from_the_host_kernels_verify_under_umbral_pre() {
    let engine = Engine::new(Arc::new(host_backend(2)));
    assert_eq!(engine.backend_name(), "gpu");
    let policy = Policy::new(3, 5);
    assert_eq!(
        policy.round_trip(&engine, b"through the kernel code"),
        b"through the kernel code"
    );
}

#[test]
fn capsule_check_products_match_k256() {
    for overlap_calls in [false, true] {
        let gpu = host_backend_with(&GpuOptions {
            overlap_calls,
            ..opts(1)
        });
        assert_eq!(gpu.overlaps_calls(), overlap_calls);
        check_products_of(&gpu);
    }
}

/// `h·E` and `s·G` from `gpu` equal k256's, `s = 0` included; mismatched lengths are refused.
fn check_products_of(gpu: &GpuBackend) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let es: Vec<Affine> = (0..5).map(|_| point(&Scalar::random(&mut rng))).collect();
    let hs: Vec<Scalar> = (0..5).map(|_| Scalar::random(&mut rng)).collect();
    let mut ss: Vec<Scalar> = (0..5).map(|_| Scalar::random(&mut rng)).collect();
    ss[2] = Scalar::ZERO;
    let out = gpu.capsule_check_products(&es, &hs, &ss).expect("offered");
    for i in 0..5 {
        assert_eq!(
            out[i][0],
            Affine::from_k256(&(es[i].to_k256() * hs[i])),
            "h·E {i}"
        );
        assert_eq!(
            out[i][1],
            Affine::from_k256(&(ProjectivePoint::GENERATOR * ss[i])),
            "s·G {i}"
        );
    }
    assert!(gpu.capsule_check_products(&es, &hs[..4], &ss).is_none());
}

#[test]
fn decompression_through_the_backend_matches_the_cpu() {
    let gpu = host_backend(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut points: Vec<CompressedPoint> = (0..150)
        .map(|_| {
            let p = point(&Scalar::random(&mut rng));
            CompressedPoint::parse(&p.to_compressed()).expect("valid encoding")
        })
        .collect();
    // x = 5 has no point.
    let mut off_curve = [0u8; 33];
    off_curve[0] = 0x03;
    off_curve[32] = 5;
    points.push(CompressedPoint::parse(&off_curve).expect("valid encoding"));
    let out = gpu.decompress_points(&points).expect("offered");
    assert_eq!(out.len(), points.len());
    for (p, got) in points.iter().zip(&out) {
        assert_eq!(*got, p.decompress_vartime().ok());
    }
    assert_eq!(out[150], None);
}

#[test]
fn tampered_capsules_are_rejected_through_the_kernel_check() {
    let engine = Engine::new(Arc::new(host_backend(1)));
    let policy = Policy::new(2, 3);
    assert!(policy.rejects_tampered_capsules(&engine, 6, &[1, 4]));
}

// ---------------------------------------------------------------------------- fault injection

/// What a faulty executor does to the results of the host kernels.
#[derive(Clone, Copy)]
enum Fault {
    /// Swap the two products of item `0` (valid points, wrong answers).
    SwapPair(usize),
    /// Replace item `0` of a fixed-base batch by its negation.
    NegateFixed(usize),
    /// Fail like a driver error.
    Driver,
    /// Return one result too few.
    Short,
    /// Fail like a driver error on the 1st, 3rd, 5th... call; succeed otherwise.
    EveryOther,
}

struct Faulty {
    inner: HostExecutor,
    fault: Fault,
    calls: AtomicUsize,
}

impl Faulty {
    fn backend(fault: Fault, audit_samples: usize) -> GpuBackend {
        let exec = Faulty {
            inner: HostExecutor::new(),
            fault,
            calls: AtomicUsize::new(0),
        };
        GpuBackend::with_executor(Box::new(exec), DeviceInfo::emulated(), &opts(audit_samples))
    }
}

impl KernelExecutor for Faulty {
    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<(PairProducts, Timing), ExecError> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let (mut out, timing) = self.inner.mul_pairs(bases, scalars)?;
        match self.fault {
            Fault::EveryOther if call % 2 == 0 => {
                return Err(ExecError::Driver("CUDA_ERROR_LAUNCH_TIMEOUT".into()))
            }
            Fault::SwapPair(i) => out[i].swap(0, 1),
            Fault::Driver => return Err(ExecError::Driver("CUDA_ERROR_ILLEGAL_ADDRESS".into())),
            Fault::Short => {
                out.pop();
            }
            Fault::NegateFixed(_) | Fault::EveryOther => {}
        }
        Ok((out, timing))
    }

    fn mul_fixed(
        &self,
        base: FixedBase,
        scalars: &[Scalar],
    ) -> Result<(Products, Timing), ExecError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (mut out, timing) = self.inner.mul_fixed(base, scalars)?;
        match self.fault {
            Fault::NegateFixed(i) => out[i] = out[i].map(|p| p.neg()),
            Fault::Driver => return Err(ExecError::Driver("CUDA_ERROR_LAUNCH_FAILED".into())),
            Fault::Short => {
                out.pop();
            }
            Fault::SwapPair(_) | Fault::EveryOther => {}
        }
        Ok((out, timing))
    }
}

#[test]
fn audit_catches_wrong_products() {
    let (bases, scalars) = batch(20, 4);
    // Auditing every item makes detection certain.
    let gpu = Faulty::backend(Fault::SwapPair(9), 20);
    let err = gpu
        .mul_pairs(&bases, &scalars)
        .expect_err("audit must fail");
    assert!(
        matches!(err, BackendError::AuditMismatch(ref m) if m.contains("pair 9")),
        "{err}"
    );
    let stats = gpu.stats().snapshot();
    assert_eq!(
        (stats.batches, stats.fallbacks, stats.audit_failures),
        (0, 1, 1)
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let ks: Vec<Scalar> = (0..10).map(|_| Scalar::random(&mut rng)).collect();
    let gpu = Faulty::backend(Fault::NegateFixed(3), 10);
    assert!(gpu.mul_u(&ks).is_err());
    assert_eq!(gpu.stats().snapshot().audit_failures, 1);
}

#[test]
fn sampled_audit_catches_a_persistent_fault_within_a_few_calls() {
    // One bad item in 8 and 2 samples per call: escapes a call with probability 49/64, so 60
    // calls all passing has probability about 1e-7.
    let (bases, scalars) = batch(8, 6);
    let gpu = Faulty::backend(Fault::SwapPair(2), 2);
    let caught = (0..60).any(|_| gpu.mul_pairs(&bases, &scalars).is_err());
    assert!(caught);
    assert!(gpu.stats().snapshot().audit_failures >= 1);
}

#[test]
fn driver_errors_and_short_results_fall_back() {
    let (bases, scalars) = batch(4, 7);
    for fault in [Fault::Driver, Fault::Short] {
        let gpu = Faulty::backend(fault, 2);
        assert!(matches!(
            gpu.mul_pairs(&bases, &scalars),
            Err(BackendError::Device(_))
        ));
        assert!(matches!(
            gpu.mul_u(&[Scalar::ONE]),
            Err(BackendError::Device(_))
        ));
        let stats = gpu.stats().snapshot();
        assert_eq!(
            (stats.fallbacks, stats.audit_failures, stats.batches),
            (2, 0, 0)
        );
    }
}

#[test]
fn engine_loses_nothing_when_the_device_is_wrong() {
    // Every device result is rejected (the audit sees the swapped pair or the driver error);
    // the engine recomputes on the CPU and the cfrags still verify and decrypt.
    for fault in [Fault::SwapPair(0), Fault::Driver] {
        let gpu = Arc::new(Faulty::backend(fault, 64));
        let stats = gpu.stats();
        let engine = Engine::new(gpu);
        let policy = Policy::new(2, 3);
        assert_eq!(policy.round_trip(&engine, b"fallback"), b"fallback");
        assert!(stats.snapshot().fallbacks >= 1);
    }
}

#[test]
fn repeated_failures_disable_the_device_and_success_resets_the_count() {
    let (bases, scalars) = batch(2, 8);
    let exec = Faulty {
        inner: HostExecutor::new(),
        fault: Fault::Driver,
        calls: AtomicUsize::new(0),
    };
    let exec = Arc::new(exec);
    let opts = GpuOptions {
        disable_after_failures: 3,
        ..GpuOptions::default()
    };
    let gpu = GpuBackend::with_executor(
        Box::new(Shared(exec.clone())),
        DeviceInfo::emulated(),
        &opts,
    );
    for _ in 0..5 {
        assert!(gpu.mul_pairs(&bases, &scalars).is_err());
    }
    let stats = gpu.stats().snapshot();
    assert!(stats.disabled);
    assert_eq!(stats.fallbacks, 5);
    assert_eq!(
        exec.calls.load(Ordering::Relaxed),
        3,
        "no device calls once disabled"
    );

    // Failures that are not consecutive do not disable it: every other call fails, 4 in all.
    let flaky = Faulty {
        inner: HostExecutor::new(),
        fault: Fault::EveryOther,
        calls: AtomicUsize::new(0),
    };
    let gpu = GpuBackend::with_executor(Box::new(flaky), DeviceInfo::emulated(), &opts);
    let results: Vec<bool> = (0..8)
        .map(|_| gpu.mul_pairs(&bases, &scalars).is_ok())
        .collect();
    assert_eq!(
        results,
        [false, true, false, true, false, true, false, true]
    );
    assert_eq!(gpu.stats().snapshot().fallbacks, 4);
    assert!(!gpu.stats().snapshot().disabled);
}

/// Shares one executor between a test and a backend, to count its calls.
struct Shared(Arc<Faulty>);

impl KernelExecutor for Shared {
    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<(PairProducts, Timing), ExecError> {
        self.0.mul_pairs(bases, scalars)
    }

    fn mul_fixed(
        &self,
        base: FixedBase,
        scalars: &[Scalar],
    ) -> Result<(Products, Timing), ExecError> {
        self.0.mul_fixed(base, scalars)
    }
}
