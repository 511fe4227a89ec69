//! The GPU lane: a dedicated worker thread that takes batches from the scheduler like the CPU
//! workers do, runs their curve work on a GPU backend, audits every result on the CPU, falls
//! back to the CPU for any batch that fails, marks the GPU unhealthy after repeated faults, and
//! re-probes it later.
//!
//! Pieces:
//! - [`GpuProber`] finds and sets up a GPU ([`cuda_prober`] for the real one; tests inject
//!   their own, e.g. a backend that returns wrong points). It runs at start and for every
//!   re-probe.
//! - [`Guarded`], an [`EcBackend`] around the probed backend: checks every output (length,
//!   identity exactly for zero scalars, points on the curve), recomputes a few random outputs
//!   on the CPU, and on any error or mismatch recomputes the whole call on the CPU (split over
//!   the CPU worker count), so nothing is lost and nothing wrong reaches a client. It counts
//!   everything in [`Metrics`].
//! - `GpuLane`, the state the scheduler reads ([`GpuLane::view`]): batches in flight against
//!   their bound (`[gpu] batches_in_flight`), healthy, the batch size bound, and the measured
//!   [`Rates`] of one CPU worker and of the GPU lane, by which `umbrald_scheduling::plan`
//!   splits the queue between them.
//! - `GpuWorker`, one thread per batch in flight, all serving the same guarded device: with
//!   more than one, a batch's host work (parsing, hashing, encoding) overlaps another batch's
//!   device calls.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use k256::Scalar;
use umbrald_core::backend::{
    BackendError, CapsuleInput, CapsuleOutcome, CfragParts, CpuBackend, EcBackend,
};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::Engine;
use umbrald_gpu::{GpuBackend, GpuOptions, GpuStats, GpuStatsSnapshot};
use umbrald_proto::ErrorCode;

use umbrald_scheduling::{LaneView, Rates};

use super::compute::process;
use super::host_threads::{HostThreads, Job};
use super::{Batch, Slots};
use crate::config::{GpuSection, MAX_GPU_PIPELINES};
use crate::observe::metrics::{FallbackReason, GpuCall, Metrics, ThreadGroup};

/// A GPU found by a [`GpuProber`], ready to serve.
pub struct GpuDevice {
    /// The backend that runs the batch multiplications on the device.
    pub backend: Arc<dyn EcBackend>,
    /// One line for the logs: the device, its memory, the driver, where the kernels came from.
    pub description: String,
    /// The device's counters, for the kernel and copy time metrics (`None`: not measured).
    pub stats: Option<Arc<GpuStats>>,
    /// Items per GPU batch that fill this device (used when `batcher.gpu_max_batch_items` is 0).
    pub batch_items: usize,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("description", &self.description)
            .field("batch_items", &self.batch_items)
            .finish_non_exhaustive()
    }
}

/// Finds and sets up a GPU; `Err` is the reason there is none, in one line. Called at start
/// (for `backend = gpu` or `auto`) and for every re-probe of an unhealthy GPU, from a blocking
/// context (it may take seconds).
pub type GpuProber = Arc<dyn Fn() -> Result<GpuDevice, String> + Send + Sync>;

/// The prober of the CUDA backend: driver, device, kernels (NVRTC or `gpu.ptx_file`),
/// self-test. Never panics; with no driver or device it returns the reason.
pub fn cuda_prober(section: &GpuSection) -> GpuProber {
    let opts = GpuOptions {
        device: section.device,
        ptx_file: section.ptx_file.clone(),
        // The lane audits and decides health itself; the backend's own audit stays as a
        // second line of defence and never disables the device on its own.
        audit_samples: 1,
        disable_after_failures: 0,
        // Each pipeline has its own streams and buffers, so that the host threads' device
        // calls overlap (`Config::gpu_section` resolves 0 to one per host thread, at most 8).
        concurrent_calls: section.tuning.pipelines.clamp(1, MAX_GPU_PIPELINES),
        table_in_shared: section.tuning.table_in_shared,
        overlap_calls: false,
        cfrag_parts: false,
        one_call: section.tuning.one_call,
        host_wait: section.tuning.host_wait,
        ..GpuOptions::default()
    };
    Arc::new(move || {
        let gpu = GpuBackend::probe(&opts).map_err(|e| e.to_string())?;
        Ok(GpuDevice {
            description: gpu.info().to_string(),
            stats: Some(gpu.stats()),
            // One full launch of the pair kernel: two pairs (E and V) per item.
            batch_items: (match gpu.info().launch_items {
                0 => opts.chunk_items,
                n => n,
            } / 2)
                .max(1),
            backend: Arc::new(gpu),
        })
    })
}

/// A prober that never finds a GPU (for tests and CPU-only embeddings).
pub fn no_gpu(reason: &'static str) -> GpuProber {
    Arc::new(move || Err(reason.to_owned()))
}

/// Longest wait between re-probes.
const MAX_REPROBE_BACKOFF: Duration = Duration::from_secs(600);
/// Calls smaller than this recompute on the calling thread instead of splitting.
const PARALLEL_FALLBACK_MIN: usize = 64;
/// Smallest part of a GPU batch given to one host thread of the GPU worker.
const MIN_PART_ITEMS: usize = 1024;

/// The GPU lane's state as the scheduler sees it.
#[derive(Debug)]
pub(crate) struct GpuLane {
    in_flight: AtomicUsize,
    max_in_flight: usize,
    healthy: AtomicBool,
    max_items: AtomicUsize,
    cpu_helps: bool,
    /// Measured rates of the CPU workers and the GPU worker.
    pub rates: Arc<Rates>,
}

impl GpuLane {
    /// A healthy, idle lane taking batches of at most `max_items`, at most `max_in_flight` of
    /// them at once; `cpu_helps` lets the CPU workers take work while the GPU is healthy
    /// (`auto`).
    pub fn new(
        max_items: usize,
        max_in_flight: usize,
        cpu_helps: bool,
        rates: Arc<Rates>,
    ) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
            healthy: AtomicBool::new(true),
            max_items: AtomicUsize::new(max_items.max(1)),
            cpu_helps,
            rates,
        })
    }

    /// Most batches in flight at once (one GPU worker thread each).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Batches in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether the GPU is healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Most items in one GPU batch.
    pub fn max_items(&self) -> usize {
        self.max_items.load(Ordering::Relaxed)
    }

    /// The lane as the scheduler's plan sees it now.
    pub fn view(&self) -> LaneView {
        LaneView {
            healthy: self.is_healthy(),
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight,
            max_items: self.max_items(),
            cpu_helps: self.cpu_helps,
            gpu_rate: self.rates.gpu(),
            cpu_worker_rate: self.rates.cpu_worker(),
        }
    }

    /// The scheduler hands a GPU worker a batch.
    pub fn take(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A GPU worker finished its batch.
    pub fn release(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    fn set_healthy(&self, healthy: bool, metrics: &Metrics) {
        self.healthy.store(healthy, Ordering::Release);
        metrics.gpu_healthy.set(i64::from(healthy));
    }
}

/// An [`EcBackend`] around a GPU backend that never lets a wrong result through: every call is
/// checked and audited, and recomputed on the CPU when anything is off.
pub(crate) struct Guarded {
    inner: RwLock<Arc<dyn EcBackend>>,
    stats: Mutex<Option<(Arc<GpuStats>, GpuStatsSnapshot)>>,
    cpu: CpuBackend,
    lane: Arc<GpuLane>,
    metrics: Arc<Metrics>,
    audit_samples: usize,
    unhealthy_after: u32,
    faults_in_a_row: AtomicU32,
    faults: AtomicU64,
    fallback_threads: usize,
    /// `[gpu] capsule_checks`: offer the device's capsule-check products to the engine.
    capsule_checks: bool,
    /// `[gpu] decompress`: offer the device's point decompression to the engine.
    decompress: bool,
    /// `[gpu] overlap_calls`: ask the engine to issue independent calls at once.
    overlap_calls: bool,
    /// `[gpu] cfrag_parts`: offer whole cfrags' parts from the device to the engine.
    cfrag_parts: bool,
    /// `[gpu] one_call`: offer whole capsules re-encrypted in one device call.
    one_call: bool,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("audit_samples", &self.audit_samples)
            .field("unhealthy_after", &self.unhealthy_after)
            .finish_non_exhaustive()
    }
}

/// Why a call's result was not accepted.
type Verdict = Result<(), FallbackReason>;

impl Guarded {
    /// Guards `device`. `fallback_threads` threads recompute a failed call on the CPU.
    pub fn new(
        device: &GpuDevice,
        lane: Arc<GpuLane>,
        metrics: Arc<Metrics>,
        section: &GpuSection,
        fallback_threads: usize,
    ) -> Self {
        Self {
            inner: RwLock::new(Arc::clone(&device.backend)),
            stats: Mutex::new(device.stats.as_ref().map(|s| (Arc::clone(s), s.snapshot()))),
            cpu: CpuBackend::new(),
            lane,
            metrics,
            audit_samples: section.audit_samples.max(1),
            unhealthy_after: section.unhealthy_after.max(1),
            faults_in_a_row: AtomicU32::new(0),
            faults: AtomicU64::new(0),
            fallback_threads: fallback_threads.max(1),
            capsule_checks: section.tuning.capsule_checks,
            decompress: section.tuning.decompress,
            overlap_calls: false,
            cfrag_parts: false,
            one_call: section.tuning.one_call,
        }
    }

    /// Calls that fell back to the CPU so far.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// Serves with a freshly probed device from now on.
    fn replace(&self, device: &GpuDevice) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&device.backend);
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) =
            device.stats.as_ref().map(|s| (Arc::clone(s), s.snapshot()));
        self.faults_in_a_row.store(0, Ordering::Relaxed);
    }

    /// Drops the device's backend (so that a broken CUDA context is released before a
    /// re-probe); calls go to the CPU until [`Guarded::replace`].
    fn release_device(&self) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(CpuBackend);
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn backend(&self) -> Arc<dyn EcBackend> {
        Arc::clone(&self.inner.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn accepted(&self) {
        self.faults_in_a_row.store(0, Ordering::Relaxed);
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((live, last)) = stats.as_mut() {
            let now = live.snapshot();
            let kernel = now.kernel_time.saturating_sub(last.kernel_time);
            let copy = now.copy_time.saturating_sub(last.copy_time);
            let layout = now.layout_time.saturating_sub(last.layout_time);
            let audit = now.audit_time.saturating_sub(last.audit_time);
            self.metrics.gpu_kernel_seconds.inc_by(kernel.as_secs_f64());
            self.metrics.gpu_copy_seconds.inc_by(copy.as_secs_f64());
            self.metrics.gpu_layout_seconds.inc_by(layout.as_secs_f64());
            self.metrics.gpu_audit_seconds.inc_by(audit.as_secs_f64());
            *last = now;
        }
    }

    fn fault(&self, reason: FallbackReason, detail: &str) {
        self.metrics.gpu_fallback(reason);
        if reason == FallbackReason::AuditMismatch {
            self.metrics.gpu_audit_failures.inc();
        }
        self.faults.fetch_add(1, Ordering::Relaxed);
        let in_a_row = self
            .faults_in_a_row
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        // `detail` names indices and driver errors, never scalars or points.
        tracing::warn!(
            reason = reason.as_str(),
            detail,
            in_a_row,
            "GPU batch failed; recomputed on the CPU"
        );
        if in_a_row >= self.unhealthy_after && self.lane.is_healthy() {
            self.lane.set_healthy(false, &self.metrics);
            tracing::error!(
                faults_in_a_row = in_a_row,
                "GPU marked unhealthy; the CPU serves until a re-probe succeeds"
            );
        }
    }

    /// Checks the outputs' count and (with `each_point`: when the backend has not) every
    /// output's shape, then audits a few of them against the CPU.
    fn check_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
        out: &[[Option<Affine>; 2]],
        each_point: bool,
    ) -> Verdict {
        if out.len() != bases.len() {
            return Err(FallbackReason::InvalidOutput);
        }
        if each_point {
            for (k, products) in scalars.iter().zip(out) {
                for (k, p) in k.iter().zip(products) {
                    if !plausible(k, p) {
                        return Err(FallbackReason::InvalidOutput);
                    }
                }
            }
        }
        for i in self.sample(out.len()) {
            let want = self
                .cpu
                .mul_pairs(&bases[i..=i], &scalars[i..=i])
                .map_err(|_| FallbackReason::AuditMismatch)?;
            if want.first() != out.get(i) {
                return Err(FallbackReason::AuditMismatch);
            }
        }
        Ok(())
    }

    fn check_u(&self, scalars: &[Scalar], out: &[Option<Affine>], each_point: bool) -> Verdict {
        if out.len() != scalars.len() {
            return Err(FallbackReason::InvalidOutput);
        }
        if each_point && !scalars.iter().zip(out).all(|(k, p)| plausible(k, p)) {
            return Err(FallbackReason::InvalidOutput);
        }
        for i in self.sample(out.len()) {
            let want = self
                .cpu
                .mul_u(&scalars[i..=i])
                .map_err(|_| FallbackReason::AuditMismatch)?;
            if want.first() != out.get(i) {
                return Err(FallbackReason::AuditMismatch);
            }
        }
        Ok(())
    }

    /// One call of an offer the engine may decline (`None`), while the GPU is healthy: timed,
    /// a panic taken as a decline, the answer `check`ed (a rejection is a fault, and `None`).
    fn offered_call<T>(
        &self,
        call: GpuCall,
        run: impl FnOnce(&dyn EcBackend) -> Option<T>,
        check: impl FnOnce(&T) -> Verdict,
    ) -> Option<T> {
        if !self.lane.is_healthy() {
            return None;
        }
        let backend = self.backend();
        let verdict = self.timed(call, || {
            let out = catch_unwind(AssertUnwindSafe(|| run(backend.as_ref())))
                .ok()
                .flatten()?;
            Some(check(&out).map(|()| out))
        })?;
        match verdict {
            Ok(out) => {
                self.accepted();
                Some(out)
            }
            Err(reason) => {
                self.fault(reason, call.as_str());
                None
            }
        }
    }

    /// Checks a cfrag-parts answer's count, then recomputes a few capsules' parts in full on
    /// the CPU.
    fn check_parts(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
        commitments: &[[u8; 33]],
        out: &[CfragParts],
    ) -> Verdict {
        if out.len() != commitments.len() || bases.len() != 2 * out.len() {
            return Err(FallbackReason::InvalidOutput);
        }
        for j in self.sample(out.len()) {
            let want = umbrald_core::cfrag_parts_on_cpu(
                &bases[2 * j],
                &bases[2 * j + 1],
                &scalars[2 * j],
                &commitments[j],
            );
            if want.as_ref() != out.get(j) {
                return Err(FallbackReason::AuditMismatch);
            }
        }
        Ok(())
    }

    /// Checks a one-call answer's count, then re-encrypts a few capsules in full on the CPU.
    fn check_one_call(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
        out: &[CapsuleOutcome],
    ) -> Verdict {
        if out.len() != capsules.len() || scalars.len() != capsules.len() {
            return Err(FallbackReason::InvalidOutput);
        }
        for j in self.sample(out.len()) {
            if umbrald_core::reencrypt_capsule_on_cpu(&capsules[j], &scalars[j]) != out[j] {
                return Err(FallbackReason::AuditMismatch);
            }
        }
        Ok(())
    }

    /// Fresh random indices for this call's audit, counted.
    /// Runs one device call of kind `call` and records its wall time.
    fn timed<T>(&self, call: GpuCall, run: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = run();
        self.metrics.gpu_call(call, started.elapsed().as_secs_f64());
        out
    }

    fn sample(&self, n: usize) -> Vec<usize> {
        let k = self.audit_samples.min(n);
        self.metrics.gpu_audited.inc_by(k as u64);
        rand::seq::index::sample(&mut rand::thread_rng(), n, k).into_vec()
    }

    /// The CPU's answer for a whole call, split over the fallback threads.
    fn cpu_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        let threads = self
            .fallback_threads
            .min(bases.len() / PARALLEL_FALLBACK_MIN)
            .max(1);
        if threads == 1 {
            return self.cpu.mul_pairs(bases, scalars);
        }
        let chunk = bases.len().div_ceil(threads);
        let cpu = self.cpu;
        std::thread::scope(|s| {
            let parts: Vec<_> = bases
                .chunks(chunk)
                .zip(scalars.chunks(chunk))
                .map(|(b, k)| s.spawn(move || cpu.mul_pairs(b, k)))
                .collect();
            let mut out = Vec::with_capacity(bases.len());
            for part in parts {
                match part.join() {
                    Ok(done) => out.extend(done?),
                    Err(_) => return Err(BackendError::Device("CPU fallback panicked".into())),
                }
            }
            Ok(out)
        })
    }

    fn cpu_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        let threads = self
            .fallback_threads
            .min(scalars.len() / PARALLEL_FALLBACK_MIN)
            .max(1);
        if threads == 1 {
            return self.cpu.mul_u(scalars);
        }
        let chunk = scalars.len().div_ceil(threads);
        let cpu = self.cpu;
        std::thread::scope(|s| {
            let parts: Vec<_> = scalars
                .chunks(chunk)
                .map(|k| s.spawn(move || cpu.mul_u(k)))
                .collect();
            let mut out = Vec::with_capacity(scalars.len());
            for part in parts {
                match part.join() {
                    Ok(done) => out.extend(done?),
                    Err(_) => return Err(BackendError::Device("CPU fallback panicked".into())),
                }
            }
            Ok(out)
        })
    }
}

/// A product can be right: the identity exactly for a zero scalar, else a point on the curve.
/// (Whether a scalar is zero is revealed by the result anyway.)
fn plausible(k: &Scalar, p: &Option<Affine>) -> bool {
    match p {
        None => bool::from(k.is_zero()),
        Some(p) => !bool::from(k.is_zero()) && p.is_on_curve(),
    }
}

/// Runs a device call, turning a panic in the CUDA libraries into a device error.
fn guarded_call<T>(call: impl FnOnce() -> Result<T, BackendError>) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(BackendError::Device("GPU backend panicked".to_owned())))
}

fn reason_of(e: &BackendError) -> FallbackReason {
    match e {
        BackendError::AuditMismatch(_) => FallbackReason::AuditMismatch,
        _ => FallbackReason::DeviceError,
    }
}

impl EcBackend for Guarded {
    fn name(&self) -> &'static str {
        "gpu"
    }

    /// The GPU's capsule-check products while it is healthy; otherwise (or on a panic) none,
    /// and the engine checks on the CPU. Wrong products cannot reject a good capsule: the
    /// engine re-checks on the CPU every capsule the comparison rejects.
    fn capsule_check_products(
        &self,
        es: &[Affine],
        hs: &[Scalar],
        ss: &[Scalar],
    ) -> Option<Vec<[Option<Affine>; 2]>> {
        if !self.capsule_checks || es.is_empty() || !self.lane.is_healthy() {
            return None;
        }
        self.timed(GpuCall::CapsuleChecks, || {
            catch_unwind(AssertUnwindSafe(|| {
                self.backend().capsule_check_products(es, hs, ss)
            }))
            .ok()
            .flatten()
        })
    }

    fn overlaps_calls(&self) -> bool {
        self.overlap_calls
    }

    fn offers_cfrag_parts(&self) -> bool {
        self.cfrag_parts && self.backend().offers_cfrag_parts()
    }

    fn offers_reencrypt_capsules(&self) -> bool {
        self.one_call && self.backend().offers_reencrypt_capsules()
    }

    /// The device's one-call re-encryption while it is healthy, audited here too: sampled
    /// capsules re-encrypted in full on the CPU (the same parts, or both rejecting; a
    /// mismatch is a fault). `None` (the engine then takes the separate calls, through this
    /// guard) when off, unhealthy, declined by the backend or rejected.
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Option<Vec<CapsuleOutcome>> {
        if !self.one_call || capsules.is_empty() {
            return None;
        }
        self.offered_call(
            GpuCall::OneCall,
            |backend| backend.reencrypt_capsules(capsules, scalars),
            |out| self.check_one_call(capsules, scalars, out),
        )
    }

    /// The device's cfrag parts while it is healthy, audited here too: sampled capsules are
    /// recomputed in full on the CPU (a mismatch is a fault, as for any call). `None` (the
    /// engine then runs the products, through this guard) when off, unhealthy, declined by
    /// the backend or rejected.
    fn cfrag_parts(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
        commitments: &[[u8; 33]],
    ) -> Option<Vec<CfragParts>> {
        if !self.cfrag_parts || commitments.is_empty() {
            return None;
        }
        self.offered_call(
            GpuCall::CfragParts,
            |backend| backend.cfrag_parts(bases, scalars, commitments),
            |out| self.check_parts(bases, scalars, commitments, out),
        )
    }

    /// Whether the GPU backend checks its outputs: what this guard returns from `mul_pairs`
    /// and `mul_u` is checked either way (here when the backend does not), but decompressed
    /// points are passed on as the backend gave them.
    fn checks_outputs(&self) -> bool {
        self.backend().checks_outputs()
    }

    /// The GPU's decompression while it is healthy and `[gpu] decompress` is on; the engine
    /// checks every point it gets and decompresses the rest on the CPU.
    fn decompress_points(&self, points: &[CompressedPoint]) -> Option<Vec<Option<Affine>>> {
        if !self.decompress || points.is_empty() || !self.lane.is_healthy() {
            return None;
        }
        self.timed(GpuCall::Decompress, || {
            catch_unwind(AssertUnwindSafe(|| {
                self.backend().decompress_points(points)
            }))
            .ok()
            .flatten()
        })
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        if bases.len() != scalars.len() {
            return Err(BackendError::Shape("bases and scalars differ in length"));
        }
        if bases.is_empty() {
            return Ok(Vec::new());
        }
        if !self.lane.is_healthy() {
            self.metrics.gpu_fallback(FallbackReason::Unhealthy);
            self.faults.fetch_add(1, Ordering::Relaxed);
            return self.cpu_pairs(bases, scalars);
        }
        let backend = self.backend();
        let verdict = self.timed(GpuCall::Pairs, || {
            match guarded_call(|| backend.mul_pairs(bases, scalars)) {
                Ok(out) => {
                    match self.check_pairs(bases, scalars, &out, !backend.checks_outputs()) {
                        Ok(()) => Ok(out),
                        Err(reason) => Err((reason, "result rejected by the check")),
                    }
                }
                Err(e) => Err((reason_of(&e), "backend error")),
            }
        });
        match verdict {
            Ok(out) => {
                self.accepted();
                Ok(out)
            }
            Err((reason, detail)) => {
                self.fault(reason, detail);
                self.cpu_pairs(bases, scalars)
            }
        }
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        if scalars.is_empty() {
            return Ok(Vec::new());
        }
        if !self.lane.is_healthy() {
            self.metrics.gpu_fallback(FallbackReason::Unhealthy);
            self.faults.fetch_add(1, Ordering::Relaxed);
            return self.cpu_u(scalars);
        }
        let backend = self.backend();
        let verdict = self.timed(GpuCall::Fixed, || {
            match guarded_call(|| backend.mul_u(scalars)) {
                Ok(out) => match self.check_u(scalars, &out, !backend.checks_outputs()) {
                    Ok(()) => Ok(out),
                    Err(reason) => Err((reason, "result rejected by the check")),
                },
                Err(e) => Err((reason_of(&e), "backend error")),
            }
        });
        match verdict {
            Ok(out) => {
                self.accepted();
                Ok(out)
            }
            Err((reason, detail)) => {
                self.fault(reason, detail);
                self.cpu_u(scalars)
            }
        }
    }
}

/// One GPU worker thread (of `[gpu] batches_in_flight`), serving one batch at a time.
pub(crate) struct GpuWorker {
    guard: Arc<Guarded>,
    /// Held by the one worker that re-probes an unhealthy GPU; the others wait for batches.
    reprobing: Arc<Mutex<()>>,
    engine: Arc<Engine>,
    /// The threads that compute the parts of a batch split over `host_threads`.
    host: HostThreads,
    rx: Receiver<Batch>,
    slots: Arc<Slots>,
    lane: Arc<GpuLane>,
    metrics: Arc<Metrics>,
    prober: GpuProber,
    reprobe_after: Duration,
    host_threads: usize,
}

/// Into how many parts (one host thread and one device call each) the GPU worker splits a
/// batch of `items`: parts of at least [`MIN_PART_ITEMS`], at most `threads`.
pub(crate) fn parts_for(items: usize, threads: usize) -> usize {
    threads.min(items / MIN_PART_ITEMS).max(1)
}

impl GpuWorker {
    /// Starts the GPU workers, one thread per batch the lane lets in flight
    /// ([`GpuLane::max_in_flight`]), all serving `device` through one guard with batches from
    /// `rx`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        device: &GpuDevice,
        section: &GpuSection,
        lane: Arc<GpuLane>,
        rx: Receiver<Batch>,
        slots: Arc<Slots>,
        metrics: Arc<Metrics>,
        prober: GpuProber,
        fallback_threads: usize,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let guard = Arc::new(Guarded::new(
            device,
            lane.clone(),
            metrics.clone(),
            section,
            fallback_threads,
        ));
        lane.set_healthy(true, &metrics);
        metrics.set_lane_rate("gpu", lane.rates.gpu());
        let reprobing = Arc::new(Mutex::new(()));
        (0..lane.max_in_flight())
            .map(|i| {
                let host_threads = section.tuning.host_threads.max(1);
                // Parts run on these; a batch of one part runs on the worker thread itself.
                let host = HostThreads::start(
                    if host_threads > 1 { host_threads } else { 0 },
                    &format!("umbrald-gpu-{i}"),
                )?;
                let worker = GpuWorker {
                    engine: Arc::new(Engine::new(guard.clone())),
                    host,
                    guard: guard.clone(),
                    reprobing: reprobing.clone(),
                    rx: rx.clone(),
                    slots: slots.clone(),
                    lane: lane.clone(),
                    metrics: metrics.clone(),
                    prober: prober.clone(),
                    reprobe_after: Duration::from_millis(section.reprobe_after_ms.max(1)),
                    host_threads,
                };
                std::thread::Builder::new()
                    .name(format!("umbrald-gpu-{i}"))
                    .spawn(move || worker.run())
            })
            .collect()
    }

    fn run(self) {
        let mut backoff = self.reprobe_after;
        loop {
            if self.lane.is_healthy() {
                match self.rx.recv() {
                    Ok(batch) => self.serve(batch),
                    Err(_) => break,
                }
                backoff = self.reprobe_after;
                if !self.lane.is_healthy() {
                    // Let go of the device now; the CPU serves meanwhile.
                    self.guard.release_device();
                }
                continue;
            }
            match self.rx.recv_timeout(backoff) {
                // Only a batch handed over just before the GPU turned unhealthy: the guard
                // computes it on the CPU.
                Ok(batch) => self.serve(batch),
                Err(RecvTimeoutError::Timeout) => {
                    if !self.reprobe() {
                        backoff = (backoff * 2).min(MAX_REPROBE_BACKOFF);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        tracing::debug!("GPU worker stopped");
    }

    /// Probes the GPU again; on success the lane is healthy and takes work again. While
    /// another worker probes, this one does nothing and reports success (its wait is not
    /// lengthened).
    fn reprobe(&self) -> bool {
        let Ok(_probing) = self.reprobing.try_lock() else {
            return true;
        };
        if self.lane.is_healthy() {
            return true;
        }
        let started = Instant::now();
        let found = match catch_unwind(AssertUnwindSafe(|| (self.prober)())) {
            Ok(found) => found,
            Err(_) => Err("the prober panicked".to_owned()),
        };
        match found {
            Ok(device) => {
                self.guard.replace(&device);
                self.metrics.gpu_reprobe(true);
                self.lane.set_healthy(true, &self.metrics);
                tracing::info!(
                    device = %device.description,
                    seconds = started.elapsed().as_secs_f64(),
                    "GPU re-probed and healthy again"
                );
                self.slots.wake();
                true
            }
            Err(reason) => {
                self.metrics.gpu_reprobe(false);
                tracing::warn!(%reason, "GPU re-probe failed; the CPU keeps serving");
                false
            }
        }
    }

    fn serve(&self, batch: Batch) {
        let started = Instant::now();
        let n = batch.items.len();
        self.metrics.batch_items.observe(n as f64);
        let faults_before = self.guard.faults();
        let parts = parts_for(n, self.host_threads);
        let batch = Arc::new(batch);
        // Each part is one engine call (one device call): the parts' parsing, checks and
        // encoding run on the host threads while the device serves another part.
        let chunk = n.div_ceil(parts).max(1);
        let jobs: Vec<Job> = (0..n)
            .step_by(chunk)
            .map(|from| {
                let (batch, engine, metrics) =
                    (batch.clone(), self.engine.clone(), self.metrics.clone());
                Box::new(move || {
                    let _cpu = metrics.thread_cpu(ThreadGroup::GpuHost);
                    let items = &batch.items[from..(from + chunk).min(batch.items.len())];
                    process(&engine, items.iter().map(|d| &d.item), started)
                }) as Job
            })
            .collect();
        let jobs_sent = jobs.len();
        let counts = self.host.run_all(jobs);
        let outcome: Option<usize> = (counts.len() == jobs_sent).then(|| counts.into_iter().sum());
        let computed = outcome.unwrap_or_else(|| {
            tracing::error!(items = n, "GPU batch computation panicked");
            // Items already answered keep their result; the rest are answered here.
            for entry in &batch.items {
                entry.item.fail(ErrorCode::Internal, "internal error");
            }
            0
        });
        let elapsed = started.elapsed();
        self.metrics.compute_seconds.observe(elapsed.as_secs_f64());
        self.metrics.inflight_batches.dec();
        // The lane's rate, not this batch's: batches in flight together share the device.
        let concurrent = self.lane.in_flight().max(1);
        drop(batch);
        self.lane.release();
        self.slots.wake();
        if computed > 0 && self.guard.faults() == faults_before {
            self.metrics.gpu_batches.inc();
            self.metrics.gpu_items.inc_by(computed as u64);
            let rate = self.lane.rates.record_gpu(computed * concurrent, elapsed);
            self.metrics.set_lane_rate("gpu", rate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every product with a point off the curve; says whether it checked its outputs.
    struct OffCurve {
        claims_checked: bool,
    }

    impl EcBackend for OffCurve {
        fn name(&self) -> &'static str {
            "off-curve"
        }

        fn mul_pairs(
            &self,
            bases: &[Affine],
            _: &[[Scalar; 2]],
        ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
            let bad = Affine {
                y: bases[0].y.add(&umbrald_core::curve::field::Fe::ONE),
                ..bases[0]
            };
            Ok(vec![[Some(bad), Some(bad)]; bases.len()])
        }

        fn mul_u(&self, _: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
            Err(BackendError::Device("not used".into()))
        }

        fn checks_outputs(&self) -> bool {
            self.claims_checked
        }
    }

    /// The per-point check is skipped only for a backend that did it itself, and the audit
    /// still stands behind it: either way the wrong products never leave, for different
    /// recorded reasons.
    #[test]
    fn the_point_check_is_skipped_only_for_backends_that_check_their_outputs() {
        let base = Affine::from_k256(&k256::ProjectivePoint::GENERATOR).expect("finite");
        let scalars = [[Scalar::ONE, Scalar::from(2u64)]];
        let right = CpuBackend::new().mul_pairs(&[base], &scalars).expect("cpu");
        for (claims_checked, reason) in [(false, "invalid_output"), (true, "audit_mismatch")] {
            let device = GpuDevice {
                backend: Arc::new(OffCurve { claims_checked }),
                description: "off-curve".into(),
                stats: None,
                batch_items: 16,
            };
            let metrics = Arc::new(Metrics::new());
            let lane = GpuLane::new(16, 1, false, Arc::default());
            let guard = Guarded::new(&device, lane, metrics.clone(), &GpuSection::default(), 1);
            let got = guard.mul_pairs(&[base], &scalars).expect("the CPU answers");
            assert_eq!(got, right, "claims_checked = {claims_checked}");
            let text = metrics.encode();
            let line = format!("umbrald_gpu_fallbacks_total{{reason=\"{reason}\"}} 1");
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn batches_split_into_parts_of_at_least_min_items() {
        assert_eq!(parts_for(10, 4), 1);
        assert_eq!(parts_for(MIN_PART_ITEMS * 2 - 1, 4), 1);
        assert_eq!(parts_for(MIN_PART_ITEMS * 2, 4), 2);
        assert_eq!(parts_for(MIN_PART_ITEMS * 100, 4), 4);
        assert_eq!(parts_for(MIN_PART_ITEMS * 100, 1), 1);
        assert_eq!(parts_for(0, 4), 1);
    }

    #[test]
    fn plausibility_ties_identity_to_zero_scalars() {
        let g = Affine::from_k256(&k256::ProjectivePoint::GENERATOR).expect("G");
        assert!(plausible(&Scalar::ZERO, &None));
        assert!(!plausible(&Scalar::ZERO, &Some(g)));
        assert!(plausible(&Scalar::ONE, &Some(g)));
        assert!(!plausible(&Scalar::ONE, &None));
    }
}
