//! GpuBackend end to end without a GPU: the host-compiled kernels stand in for the device
//! (same code, layouts and per-block batch inversion), and fault-injecting executors behind
//! `Guarded` check the audit, the fault counts, the health and the CPU fallback.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::policy::Policy;
use common::*;
use k256::elliptic_curve::Field;
use k256::{ProjectivePoint, Scalar};
use rand::SeedableRng;
use umbrald_core::backend::{
    BackendError, CapsuleInput, CapsuleOutcome, CpuBackend, EcBackend, CFRAG_PARTS_LEN,
};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::{reencrypt_capsule_on_cpu, Engine};
use umbrald_gpu::host::HostExecutor;
use umbrald_gpu::{
    DeviceInfo, ExecError, Fault as Reason, FixedBase, GpuBackend, GpuOptions, Guarded,
    KernelExecutor, NoEvents, PairProducts, Products, Timing,
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

/// `device` behind a guard with these options (one fallback thread, no events).
fn guard(device: GpuBackend, opts: &GpuOptions) -> Guarded {
    let stats = Some(device.stats());
    Guarded::new(Arc::new(device), stats, opts, 1, Arc::new(NoEvents))
}

/// The host-compiled kernels behind a guard auditing `audit_samples` outputs per call.
fn guarded_host(audit_samples: usize) -> (Guarded, Arc<umbrald_gpu::GpuStats>) {
    let device = host_backend(audit_samples);
    let stats = device.stats();
    (guard(device, &opts(audit_samples)), stats)
}

/// `gpu`'s pairs for these inputs, checked equal to the CPU backend's.
fn pairs_checked(
    gpu: &dyn EcBackend,
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
    let (gpu, stats) = guarded_host(4);
    let got = pairs_checked(&gpu, &bases, &scalars);
    assert!(got[0][0].is_none() && got[0][1].is_some());
    let stats = stats.snapshot();
    assert_eq!((stats.batches, stats.items), (1, 600));
    assert!(stats.kernel_time > std::time::Duration::ZERO);
    let guarded = gpu.snapshot();
    assert_eq!((guarded.fallbacks(), guarded.audited), (0, 4));
    assert!(guarded.healthy);
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
    let engine = Engine::new(Arc::new(guarded_host(2).0));
    assert_eq!(engine.backend_name(), "gpu");
    let policy = Policy::new(3, 5);
    assert_eq!(
        policy.round_trip(&engine, b"through the kernel code"),
        b"through the kernel code"
    );
}

#[test]
fn capsule_check_products_match_k256() {
    check_products_of(&host_backend(1));
    let (gpu, _) = guarded_host(1);
    check_products_of(&gpu);
    let snapshot = gpu.snapshot();
    assert_eq!(
        (snapshot.fallbacks(), snapshot.audited),
        (0, 1),
        "{snapshot:?}"
    );
}

/// `h·E` and `s·G` from `gpu` equal k256's, `s = 0` included; mismatched lengths are refused.
fn check_products_of(gpu: &dyn EcBackend) {
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
    assert!(gpu.capsule_check_products(&es, &hs[..4], &ss).is_err());
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
    let engine = Engine::new(Arc::new(guarded_host(1).0));
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
    /// A guarded device with this fault, auditing `audit_samples` outputs per call.
    fn backend(fault: Fault, audit_samples: usize) -> Guarded {
        Self::backend_with(fault, &opts(audit_samples))
    }

    fn backend_with(fault: Fault, opts: &GpuOptions) -> Guarded {
        let exec = Faulty {
            inner: HostExecutor::new(),
            fault,
            calls: AtomicUsize::new(0),
        };
        guard(
            GpuBackend::with_executor(Box::new(exec), DeviceInfo::emulated(), opts),
            opts,
        )
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

    /// Capsule `i`'s outcome wrong for `SwapPair(i)` (a byte of `z`, or accepted when it
    /// should be rejected) and `NegateFixed(i)` (rejected when valid).
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<(Vec<CapsuleOutcome>, Timing), ExecError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (mut out, timing) = self.inner.reencrypt_capsules(capsules, scalars)?;
        match self.fault {
            Fault::SwapPair(i) => {
                out[i] = match out[i] {
                    CapsuleOutcome::Parts(mut parts) => {
                        parts[CFRAG_PARTS_LEN - 1] ^= 1;
                        CapsuleOutcome::Parts(parts)
                    }
                    CapsuleOutcome::Rejected => CapsuleOutcome::Parts([2; CFRAG_PARTS_LEN]),
                }
            }
            Fault::NegateFixed(i) => out[i] = CapsuleOutcome::Rejected,
            Fault::Driver => return Err(ExecError::Driver("CUDA_ERROR_ILLEGAL_ADDRESS".into())),
            Fault::Short => {
                out.pop();
            }
            Fault::EveryOther => {}
        }
        Ok((out, timing))
    }
}

/// The host kernels, counting the calls of each kind (the counters shared with the test).
#[derive(Default)]
struct Counting {
    inner: HostExecutor,
    pairs: Arc<AtomicUsize>,
    one_call: Arc<AtomicUsize>,
    others: Arc<AtomicUsize>,
}

impl KernelExecutor for Counting {
    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<(PairProducts, Timing), ExecError> {
        self.pairs.fetch_add(1, Ordering::Relaxed);
        self.inner.mul_pairs(bases, scalars)
    }

    /// The capsule checks' `h·E`, counted with the fixed-base calls and the decompression.
    fn mul_firsts(
        &self,
        bases: &[Affine],
        scalars: &[Scalar],
    ) -> Result<(PairProducts, Timing), ExecError> {
        self.others.fetch_add(1, Ordering::Relaxed);
        self.inner.mul_firsts(bases, scalars)
    }

    fn decompress(&self, points: &[CompressedPoint]) -> Result<(Products, Timing), ExecError> {
        self.others.fetch_add(1, Ordering::Relaxed);
        self.inner.decompress(points)
    }

    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<(Vec<CapsuleOutcome>, Timing), ExecError> {
        self.one_call.fetch_add(1, Ordering::Relaxed);
        self.inner.reencrypt_capsules(capsules, scalars)
    }

    fn mul_fixed(
        &self,
        base: FixedBase,
        scalars: &[Scalar],
    ) -> Result<(Products, Timing), ExecError> {
        self.others.fetch_add(1, Ordering::Relaxed);
        self.inner.mul_fixed(base, scalars)
    }
}

/// An executor without the one-call kernels (the default method): the guard declines without
/// counting a fault, so an old PTX file cannot make the device unhealthy.
#[test]
fn an_executor_without_the_one_call_kernels_is_not_a_fault() {
    let exec = Shared(Arc::new(Faulty {
        inner: HostExecutor::new(),
        fault: Fault::EveryOther,
        calls: AtomicUsize::new(0),
    }));
    let opts = GpuOptions {
        unhealthy_after: 1,
        ..opts(1)
    };
    let gpu = guard(
        GpuBackend::with_executor(Box::new(exec), DeviceInfo::emulated(), &opts),
        &opts,
    );
    let (capsules, scalars) = one_call_inputs(4, 13, &[]);
    for _ in 0..3 {
        assert!(matches!(
            gpu.reencrypt_capsules(&capsules, &scalars),
            Err(BackendError::NotOffered(_))
        ));
    }
    let snapshot = gpu.snapshot();
    assert_eq!((snapshot.fallbacks(), snapshot.healthy), (0, true));
}

/// `c` capsules' one-call inputs, every one valid except `bad`: (index, what) with what 0 = a
/// wrong `s`, 1 = `E` off the curve, 2 = `V` off the curve.
fn one_call_inputs(
    c: usize,
    seed: u64,
    bad: &[(usize, u8)],
) -> (Vec<CapsuleInput>, Vec<[Scalar; 2]>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut five = [0u8; 33];
    five[0] = 3;
    five[32] = 5; // 5³ + 7 = 132 is not a square mod p
    let off_curve = CompressedPoint::parse(&five).expect("well-formed");
    let mut capsules = Vec::new();
    let mut scalars = Vec::new();
    for j in 0..c {
        let (e, v) = (Scalar::random(&mut rng), Scalar::random(&mut rng));
        let (e_bytes, v_bytes) = (point(&e).to_compressed(), point(&v).to_compressed());
        let h = umbrald_core::hash::capsule_points(&e_bytes, &v_bytes);
        let mut input = CapsuleInput {
            e: CompressedPoint::parse(&e_bytes).expect("E"),
            v: CompressedPoint::parse(&v_bytes).expect("V"),
            s: v + h * e,
            commitment: point(&Scalar::random(&mut rng)).to_compressed(),
        };
        match bad.iter().find(|(i, _)| *i == j).map(|(_, what)| *what) {
            Some(0) => input.s += Scalar::ONE,
            Some(1) => input.e = off_curve,
            Some(2) => input.v = off_curve,
            _ => {}
        }
        capsules.push(input);
        scalars.push([Scalar::random(&mut rng), Scalar::random(&mut rng)]);
    }
    (capsules, scalars)
}

#[test]
fn one_call_matches_the_cpu_with_bad_capsules_among_good_ones() {
    let bad = [(0, 0), (5, 1), (129, 2), (77, 0)];
    let (capsules, scalars) = one_call_inputs(130, 21, &bad);
    let device = host_backend(2);
    device.self_test_one_call().expect("one-call self-test");
    assert!(device.offers_reencrypt_capsules(), "on by default");
    let (gpu, stats) = guarded_host(2);
    let got = gpu
        .reencrypt_capsules(&capsules, &scalars)
        .expect("host kernels succeed");
    for (j, outcome) in got.iter().enumerate() {
        assert_eq!(
            *outcome,
            reencrypt_capsule_on_cpu(&capsules[j], &scalars[j]),
            "{j}"
        );
        let rejected = bad.iter().any(|(i, _)| *i == j);
        assert_eq!(
            *outcome == CapsuleOutcome::Rejected,
            rejected,
            "capsule {j}"
        );
    }
    let stats = stats.snapshot();
    assert_eq!((stats.batches, stats.items), (1, 910));
    let snapshot = gpu.snapshot();
    assert_eq!((snapshot.fallbacks(), snapshot.audited), (0, 2));
    let off = host_backend_with(&GpuOptions {
        one_call: false,
        ..opts(2)
    });
    assert!(!off.offers_reencrypt_capsules());
    assert!(matches!(
        off.reencrypt_capsules(&capsules, &scalars),
        Err(BackendError::NotOffered(_))
    ));
}

#[test]
fn cfrags_from_one_host_call_verify_and_tampered_capsules_are_rejected() {
    let exec = Counting::default();
    let (one_call, others, pairs) = (
        exec.one_call.clone(),
        exec.others.clone(),
        exec.pairs.clone(),
    );
    let gpu = Arc::new(guard(
        GpuBackend::with_executor(Box::new(exec), DeviceInfo::emulated(), &opts(2)),
        &opts(2),
    ));
    assert!(gpu.offers_reencrypt_capsules());
    let engine = Engine::new(gpu.clone());
    let policy = Policy::new(3, 5);
    // Five capsules of a round trip in one batch: the one call serves it alone.
    assert_eq!(policy.round_trip(&engine, b"one call"), b"one call");
    assert_eq!(one_call.load(Ordering::Relaxed), 1);
    assert_eq!(
        others.load(Ordering::Relaxed) + pairs.load(Ordering::Relaxed),
        0
    );
    // Tampered capsules: rejected by the device, checked again on the host, refused.
    assert!(policy.rejects_tampered_capsules(&engine, 7, &[0, 3]));
    assert_eq!(gpu.snapshot().fallbacks(), 0, "{:?}", gpu.snapshot());
}

#[test]
fn wrong_one_call_outcomes_are_caught_and_the_engine_loses_nothing() {
    let (capsules, scalars) = one_call_inputs(6, 22, &[(2, 0)]);
    each_fault_fails_the_call_once(
        &[
            (Fault::SwapPair(4), 1),
            (Fault::SwapPair(2), 1),
            (Fault::NegateFixed(1), 1),
            (Fault::Driver, 0),
            (Fault::Short, 0),
        ],
        |gpu| gpu.reencrypt_capsules(&capsules, &scalars).is_err(),
    );
    for fault in [Fault::SwapPair(0), Fault::NegateFixed(1), Fault::Driver] {
        round_trips_despite_the_device(Faulty::backend(fault, 64), Policy::new(4, 6));
    }
}

#[test]
fn audit_catches_wrong_products() {
    let (bases, scalars) = batch(20, 4);
    // Auditing every item makes detection certain; the CPU's products are returned instead.
    let gpu = Faulty::backend(Fault::SwapPair(9), 20);
    let got = gpu.mul_pairs(&bases, &scalars).expect("the CPU answers");
    assert_eq!(
        got,
        CpuBackend::new().mul_pairs(&bases, &scalars).expect("cpu")
    );
    let snapshot = gpu.snapshot();
    assert_eq!(
        (
            snapshot.fallbacks(),
            snapshot.faults_of(Reason::AuditMismatch)
        ),
        (1, 1)
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let ks: Vec<Scalar> = (0..10).map(|_| Scalar::random(&mut rng)).collect();
    let gpu = Faulty::backend(Fault::NegateFixed(3), 10);
    let got = gpu.mul_u(&ks).expect("the CPU answers");
    assert_eq!(got, CpuBackend::new().mul_u(&ks).expect("cpu"));
    assert_eq!(gpu.snapshot().faults_of(Reason::AuditMismatch), 1);
}

#[test]
fn sampled_audit_catches_a_persistent_fault_within_a_few_calls() {
    // One bad item in 8 and 2 samples per call: escapes a call with probability 49/64, so 60
    // calls all passing has probability about 1e-7. A call whose audit catches it is answered
    // by the CPU.
    let (bases, scalars) = batch(8, 6);
    let right = CpuBackend::new().mul_pairs(&bases, &scalars).expect("cpu");
    let gpu = Faulty::backend(Fault::SwapPair(2), 2);
    let caught = (0..60).any(|_| {
        let got = gpu.mul_pairs(&bases, &scalars).expect("answered");
        let caught = gpu.snapshot().faults_of(Reason::AuditMismatch) > 0;
        if caught {
            assert_eq!(got, right, "the CPU's products");
        }
        caught
    });
    assert!(caught);
}

#[test]
fn driver_errors_and_short_results_fall_back() {
    let (bases, scalars) = batch(4, 7);
    let cpu = CpuBackend::new();
    for fault in [Fault::Driver, Fault::Short] {
        let exec = Faulty {
            inner: HostExecutor::new(),
            fault,
            calls: AtomicUsize::new(0),
        };
        let device = GpuBackend::with_executor(Box::new(exec), DeviceInfo::emulated(), &opts(2));
        // The device itself reports both as device errors.
        assert!(matches!(
            device.mul_pairs(&bases, &scalars),
            Err(BackendError::Device(_))
        ));
        assert!(matches!(
            device.mul_u(&[Scalar::ONE]),
            Err(BackendError::Device(_))
        ));
        let stats = device.stats();
        let gpu = guard(device, &opts(2));
        assert_eq!(
            gpu.mul_pairs(&bases, &scalars).expect("the CPU answers"),
            cpu.mul_pairs(&bases, &scalars).expect("cpu")
        );
        assert_eq!(
            gpu.mul_u(&[Scalar::ONE]).expect("the CPU answers"),
            cpu.mul_u(&[Scalar::ONE]).expect("cpu")
        );
        let snapshot = gpu.snapshot();
        assert_eq!(
            (
                snapshot.faults_of(Reason::DeviceError),
                snapshot.faults_of(Reason::AuditMismatch),
                stats.snapshot().batches
            ),
            (2, 0, 0)
        );
    }
}

#[test]
fn engine_loses_nothing_when_the_device_is_wrong() {
    // Every device result is rejected (the audit sees the swapped pair or the driver error);
    // the guard recomputes on the CPU and the cfrags still verify and decrypt.
    for fault in [Fault::SwapPair(0), Fault::Driver] {
        round_trips_despite_the_device(Faulty::backend(fault, 64), Policy::new(2, 3));
    }
}

/// For every fault and the audit failures it must count: `fails` (a call on a guarded device
/// auditing every one of six capsules) is refused, as one fallback.
fn each_fault_fails_the_call_once(faults: &[(Fault, u64)], fails: impl Fn(&Guarded) -> bool) {
    for &(fault, audit_failures) in faults {
        let gpu = Faulty::backend(fault, 6);
        assert!(fails(&gpu));
        let snapshot = gpu.snapshot();
        assert_eq!(
            (
                snapshot.fallbacks(),
                snapshot.faults_of(Reason::AuditMismatch)
            ),
            (1, audit_failures)
        );
    }
}

/// An engine on `gpu`, whose device is wrong: a message still decrypts through `policy`'s
/// cfrags, and the guard fell back at least once.
fn round_trips_despite_the_device(gpu: Guarded, policy: Policy) {
    let gpu = Arc::new(gpu);
    let engine = Engine::new(gpu.clone());
    assert_eq!(policy.round_trip(&engine, b"fallback"), b"fallback");
    assert!(gpu.snapshot().fallbacks() >= 1);
}

#[test]
fn repeated_faults_make_the_gpu_unhealthy_and_success_resets_the_count() {
    let (bases, scalars) = batch(2, 8);
    let right = CpuBackend::new().mul_pairs(&bases, &scalars).expect("cpu");
    let exec = Arc::new(Faulty {
        inner: HostExecutor::new(),
        fault: Fault::Driver,
        calls: AtomicUsize::new(0),
    });
    let opts = GpuOptions {
        unhealthy_after: 3,
        ..GpuOptions::default()
    };
    let device = GpuBackend::with_executor(
        Box::new(Shared(exec.clone())),
        DeviceInfo::emulated(),
        &opts,
    );
    let gpu = guard(device, &opts);
    let health = gpu.health();
    for _ in 0..5 {
        assert_eq!(
            gpu.mul_pairs(&bases, &scalars).expect("the CPU answers"),
            right
        );
    }
    let snapshot = gpu.snapshot();
    assert!(!snapshot.healthy && !health.is_healthy());
    assert_eq!(snapshot.faults_of(Reason::DeviceError), 3);
    assert_eq!(snapshot.faults_of(Reason::Unhealthy), 2);
    assert_eq!(snapshot.fallbacks(), 5);
    assert_eq!(
        exec.calls.load(Ordering::Relaxed),
        3,
        "no device calls once unhealthy"
    );
    // A replacement device makes it healthy again.
    gpu.replace(Arc::new(host_backend(1)), None);
    assert!(health.is_healthy());
    assert_eq!(gpu.mul_pairs(&bases, &scalars).expect("answered"), right);
    assert_eq!(gpu.snapshot().fallbacks(), 5, "the new device served");

    // Faults that are not consecutive do not make it unhealthy: every other call fails, 4 in
    // all.
    let flaky = Faulty {
        inner: HostExecutor::new(),
        fault: Fault::EveryOther,
        calls: AtomicUsize::new(0),
    };
    let gpu = guard(
        GpuBackend::with_executor(Box::new(flaky), DeviceInfo::emulated(), &opts),
        &opts,
    );
    let faulted: Vec<bool> = (0..8)
        .map(|_| {
            let before = gpu.faults();
            assert_eq!(gpu.mul_pairs(&bases, &scalars).expect("answered"), right);
            gpu.faults() > before
        })
        .collect();
    assert_eq!(
        faulted,
        [true, false, true, false, true, false, true, false]
    );
    assert_eq!(gpu.snapshot().fallbacks(), 4);
    assert!(gpu.is_healthy());
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
