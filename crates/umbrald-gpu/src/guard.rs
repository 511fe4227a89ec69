//! [`Guarded`]: the one owner of a GPU's health. An [`EcBackend`] around a device backend that
//! never lets a wrong result through: every answer is checked (count; each point on the curve
//! with the identity exactly for zero scalars, unless the device checked that itself), a few
//! random outputs per call are recomputed on the CPU (the audit, [`GpuOptions::audit_samples`]),
//! and a call that fails any of it counts as a fault and is recomputed on the CPU (or, for an
//! offered call, declined, so that the engine takes its own way). After
//! [`GpuOptions::unhealthy_after`] faults in a row the GPU is unhealthy ([`GpuHealth`]): no
//! call reaches it until [`Guarded::replace`] hands it a freshly probed device.
//!
//! What happens is counted ([`GuardSnapshot`]) and reported as it happens to a
//! [`GuardEvents`] (the server's metrics).

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use k256::{ProjectivePoint, Scalar};
use umbrald_core::backend::{BackendError, CapsuleInput, CapsuleOutcome, CpuBackend, EcBackend};
use umbrald_core::curve::{Affine, CompressedPoint};

use crate::audit;
use crate::options::GpuOptions;
use crate::stats::{GpuStats, GpuStatsSnapshot};

/// Calls smaller than this recompute on the calling thread instead of splitting.
const PARALLEL_FALLBACK_MIN: usize = 64;

/// Why a device call's result was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The backend returned an error (launch, copy, driver or device fault) or panicked.
    DeviceError,
    /// The output had the wrong length, a point off the curve, or the identity where it cannot
    /// be.
    InvalidOutput,
    /// A sampled output differed from the CPU's result.
    AuditMismatch,
    /// The GPU was already unhealthy when the call reached it (not counted toward health).
    Unhealthy,
}

impl Fault {
    /// Every fault, in a fixed order.
    pub const ALL: [Fault; 4] = [
        Fault::DeviceError,
        Fault::InvalidOutput,
        Fault::AuditMismatch,
        Fault::Unhealthy,
    ];

    /// The label value: `device_error`, `invalid_output`, `audit_mismatch` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeviceError => "device_error",
            Self::InvalidOutput => "invalid_output",
            Self::AuditMismatch => "audit_mismatch",
            Self::Unhealthy => "unhealthy",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::DeviceError => 0,
            Self::InvalidOutput => 1,
            Self::AuditMismatch => 2,
            Self::Unhealthy => 3,
        }
    }
}

/// A kind of device call, as [`GuardEvents::call`] reports its wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuCall {
    /// Point decompression of the capsules' `E` and `V`.
    Decompress,
    /// The capsule checks' products (`h·E`, `s·G`).
    CapsuleChecks,
    /// The variable-base products (`rk·E`, `rk·V` and the proof's).
    Pairs,
    /// The fixed-base products with `U`.
    Fixed,
    /// Whole capsules re-encrypted in one call.
    OneCall,
}

impl GpuCall {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decompress => "decompress",
            Self::CapsuleChecks => "capsule_checks",
            Self::Pairs => "pairs",
            Self::Fixed => "fixed",
            Self::OneCall => "one_call",
        }
    }
}

/// What a [`Guarded`] reports as it serves, for metrics. Every method does nothing by default.
pub trait GuardEvents: Send + Sync {
    /// A device call of kind `call` took `wall` (rejected calls too).
    fn call(&self, call: GpuCall, wall: Duration) {
        let _ = (call, wall);
    }

    /// `outputs` were recomputed on the CPU by the audit, spending `cpu` of the calling
    /// thread's CPU time.
    fn audited(&self, outputs: u64, cpu: Duration) {
        let _ = (outputs, cpu);
    }

    /// A call's result was not used, for `fault`; the CPU recomputed it.
    fn fault(&self, fault: Fault) {
        let _ = fault;
    }

    /// The GPU turned healthy or unhealthy (and once, healthy, when the guard is made).
    fn health(&self, healthy: bool) {
        let _ = healthy;
    }

    /// The device's own time since the last accepted call ([`GpuStats`]), reported after each
    /// accepted call.
    fn device_time(&self, since_last: GpuStatsSnapshot) {
        let _ = since_last;
    }
}

/// A [`GuardEvents`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl GuardEvents for NoEvents {}

/// A GPU's health: healthy until `unhealthy_after` faults in a row, then unhealthy until a new
/// device replaces it. Shared with whoever schedules work for the GPU.
#[derive(Debug)]
pub struct GpuHealth {
    healthy: AtomicBool,
    faults_in_a_row: AtomicU32,
    unhealthy_after: u32,
}

impl GpuHealth {
    fn new(unhealthy_after: u32) -> Self {
        Self {
            healthy: AtomicBool::new(true),
            faults_in_a_row: AtomicU32::new(0),
            unhealthy_after: unhealthy_after.max(1),
        }
    }

    /// Whether the GPU takes calls.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Faults since the last accepted call.
    pub fn faults_in_a_row(&self) -> u32 {
        self.faults_in_a_row.load(Ordering::Relaxed)
    }

    /// Counts a fault; returns the faults in a row and whether this one made the GPU
    /// unhealthy.
    fn fault(&self) -> (u32, bool) {
        let in_a_row = self
            .faults_in_a_row
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let turned = in_a_row >= self.unhealthy_after && self.healthy.swap(false, Ordering::AcqRel);
        (in_a_row, turned)
    }

    fn accepted(&self) {
        self.faults_in_a_row.store(0, Ordering::Relaxed);
    }

    fn restore(&self) {
        self.faults_in_a_row.store(0, Ordering::Relaxed);
        self.healthy.store(true, Ordering::Release);
    }
}

/// [`Guarded`]'s counters at one moment. All but `healthy` only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardSnapshot {
    /// Calls whose result was not used, by [`Fault`] (in the order of [`Fault::ALL`]).
    pub faults: [u64; 4],
    /// Outputs recomputed on the CPU by the audit.
    pub audited: u64,
    /// CPU time of the audit, summed over the calling threads.
    pub audit_time: Duration,
    /// Whether the GPU is healthy now.
    pub healthy: bool,
}

impl GuardSnapshot {
    /// Calls whose result was not used, for `fault`.
    pub fn faults_of(&self, fault: Fault) -> u64 {
        self.faults[fault.index()]
    }

    /// Calls whose result was not used, for any reason.
    pub fn fallbacks(&self) -> u64 {
        self.faults.iter().sum()
    }
}

#[derive(Debug, Default)]
struct Counters {
    faults: [AtomicU64; 4],
    audited: AtomicU64,
    audit_ns: AtomicU64,
}

/// Why a call's answer was not accepted.
type Verdict = Result<(), Fault>;

/// The guarded GPU; see the module documentation. Serve with it as any [`EcBackend`].
pub struct Guarded {
    device: RwLock<Arc<dyn EcBackend>>,
    stats: Mutex<Option<(Arc<GpuStats>, GpuStatsSnapshot)>>,
    cpu: CpuBackend,
    health: Arc<GpuHealth>,
    counters: Counters,
    events: Arc<dyn GuardEvents>,
    audit_samples: usize,
    fallback_threads: usize,
    capsule_checks: bool,
    decompress: bool,
    one_call: bool,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("health", &self.health)
            .field("audit_samples", &self.audit_samples)
            .finish_non_exhaustive()
    }
}

impl Guarded {
    /// Guards `device`, with its counters `stats` when it has them ([`crate::GpuBackend::stats`]).
    /// Of `opts` it uses `audit_samples`, `unhealthy_after`, `capsule_checks`, `decompress`
    /// and `one_call`. `fallback_threads` threads recompute a failed call on the CPU.
    pub fn new(
        device: Arc<dyn EcBackend>,
        stats: Option<Arc<GpuStats>>,
        opts: &GpuOptions,
        fallback_threads: usize,
        events: Arc<dyn GuardEvents>,
    ) -> Self {
        events.health(true);
        Self {
            device: RwLock::new(device),
            stats: Mutex::new(stats.map(with_snapshot)),
            cpu: CpuBackend::new(),
            health: Arc::new(GpuHealth::new(opts.unhealthy_after)),
            counters: Counters::default(),
            events,
            audit_samples: opts.audit_samples.max(1),
            fallback_threads: fallback_threads.max(1),
            capsule_checks: opts.capsule_checks,
            decompress: opts.decompress,
            one_call: opts.one_call,
        }
    }

    /// The GPU's health, to share with a scheduler.
    pub fn health(&self) -> Arc<GpuHealth> {
        Arc::clone(&self.health)
    }

    /// Whether the GPU takes calls.
    pub fn is_healthy(&self) -> bool {
        self.health.is_healthy()
    }

    /// Calls whose result was not used so far, for any reason.
    pub fn faults(&self) -> u64 {
        self.snapshot().fallbacks()
    }

    /// The counters now.
    pub fn snapshot(&self) -> GuardSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GuardSnapshot {
            faults: [0, 1, 2, 3].map(|i| load(&self.counters.faults[i])),
            audited: load(&self.counters.audited),
            audit_time: Duration::from_nanos(load(&self.counters.audit_ns)),
            healthy: self.health.is_healthy(),
        }
    }

    /// Serves with a freshly probed device from now on: healthy again.
    pub fn replace(&self, device: Arc<dyn EcBackend>, stats: Option<Arc<GpuStats>>) {
        *self.device.write().unwrap_or_else(|p| p.into_inner()) = device;
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = stats.map(with_snapshot);
        self.health.restore();
        self.events.health(true);
    }

    /// Drops the device (so that a broken CUDA context is released before a re-probe); calls
    /// go to the CPU until [`Guarded::replace`].
    pub fn release_device(&self) {
        *self.device.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(CpuBackend);
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn device(&self) -> Arc<dyn EcBackend> {
        Arc::clone(&self.device.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn accepted(&self) {
        self.health.accepted();
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((live, last)) = stats.as_mut() {
            let now = live.snapshot();
            self.events.device_time(now.since(last));
            *last = now;
        }
    }

    fn fault(&self, fault: Fault, detail: &str) {
        self.count(fault);
        let (in_a_row, turned_unhealthy) = self.health.fault();
        // `detail` names calls and driver errors, never scalars or points.
        tracing::warn!(
            reason = fault.as_str(),
            detail,
            in_a_row,
            "GPU batch failed; recomputed on the CPU"
        );
        if turned_unhealthy {
            self.events.health(false);
            tracing::error!(
                faults_in_a_row = in_a_row,
                "GPU marked unhealthy; the CPU serves until a re-probe succeeds"
            );
        }
    }

    fn count(&self, fault: Fault) {
        self.counters.faults[fault.index()].fetch_add(1, Ordering::Relaxed);
        self.events.fault(fault);
    }

    /// Runs one device call of kind `call` and reports its wall time.
    fn timed<T>(&self, call: GpuCall, run: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = run();
        self.events.call(call, started.elapsed());
        out
    }

    /// Fresh random indices for this call's audit, with the audit itself run on them and its
    /// CPU time counted.
    fn audit(&self, n: usize, check: impl FnOnce(&[usize]) -> Verdict) -> Verdict {
        let indices = audit::sample_indices(n, self.audit_samples);
        let started = cpu_time::ThreadTime::try_now().ok();
        let verdict = check(&indices);
        let spent = started.map(|t| t.elapsed()).unwrap_or_default();
        self.counters
            .audited
            .fetch_add(indices.len() as u64, Ordering::Relaxed);
        self.counters.audit_ns.fetch_add(
            u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.events.audited(indices.len() as u64, spent);
        verdict
    }

    /// One call the engine can do without (an offer): declined while the GPU is unhealthy or
    /// when the device declines; timed; a device error, a panic or a rejected answer is a
    /// fault, and the call is declined.
    fn offered_call<T>(
        &self,
        call: GpuCall,
        run: impl FnOnce(&dyn EcBackend) -> Result<T, BackendError>,
        check: impl FnOnce(&T) -> Verdict,
    ) -> Result<T, BackendError> {
        if !self.health.is_healthy() {
            return Err(BackendError::NotOffered("the GPU is unhealthy"));
        }
        let device = self.device();
        let answer = self.timed(call, || {
            catch_unwind(AssertUnwindSafe(|| run(device.as_ref())))
                .unwrap_or_else(|_| Err(BackendError::Device("backend panicked".into())))
                .map(|out| {
                    let verdict = check(&out);
                    (out, verdict)
                })
        });
        let fault = match answer {
            Ok((out, Ok(()))) => {
                self.accepted();
                return Ok(out);
            }
            Ok((_, Err(fault))) => fault,
            Err(declined @ (BackendError::NotOffered(_) | BackendError::Shape(_))) => {
                return Err(declined);
            }
            Err(e) => fault_of(&e),
        };
        self.fault(fault, call.as_str());
        Err(BackendError::Device(format!(
            "{} call rejected; the engine takes its own way",
            call.as_str()
        )))
    }

    /// One call the engine needs: on the device while the GPU is healthy, timed and checked;
    /// on the CPU (split over the fallback threads) when it is unhealthy or the answer is
    /// rejected.
    fn required_call<T>(
        &self,
        call: GpuCall,
        run: impl FnOnce(&dyn EcBackend) -> Result<Vec<T>, BackendError>,
        check: impl FnOnce(&[T], bool) -> Verdict,
        on_cpu: impl FnOnce() -> Result<Vec<T>, BackendError>,
    ) -> Result<Vec<T>, BackendError> {
        if !self.health.is_healthy() {
            self.count(Fault::Unhealthy);
            return on_cpu();
        }
        let device = self.device();
        let verdict = self.timed(call, || {
            match catch_unwind(AssertUnwindSafe(|| run(device.as_ref()))) {
                Ok(Ok(out)) => match check(&out, !device.checks_outputs()) {
                    Ok(()) => Ok(out),
                    Err(fault) => Err((fault, "result rejected by the check")),
                },
                Ok(Err(e)) => Err((fault_of(&e), "backend error")),
                Err(_) => Err((Fault::DeviceError, "backend panicked")),
            }
        });
        match verdict {
            Ok(out) => {
                self.accepted();
                Ok(out)
            }
            Err((fault, detail)) => {
                self.fault(fault, detail);
                on_cpu()
            }
        }
    }

    /// Checks a pair call's count and (with `each_point`) every output's shape, then audits a
    /// few of them against the CPU.
    fn check_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
        out: &[[Option<Affine>; 2]],
        each_point: bool,
    ) -> Verdict {
        if out.len() != bases.len() {
            return Err(Fault::InvalidOutput);
        }
        let plausible_pair = |(k, products): (&[Scalar; 2], &[Option<Affine>; 2])| {
            k.iter().zip(products).all(|(k, p)| plausible(k, p))
        };
        if each_point && !scalars.iter().zip(out).all(plausible_pair) {
            return Err(Fault::InvalidOutput);
        }
        self.audit(out.len(), |indices| {
            audit::check_pairs(&self.cpu, bases, scalars, out, indices)
                .map_err(|_| Fault::AuditMismatch)
        })
    }

    fn check_u(&self, scalars: &[Scalar], out: &[Option<Affine>], each_point: bool) -> Verdict {
        if out.len() != scalars.len() {
            return Err(Fault::InvalidOutput);
        }
        if each_point && !scalars.iter().zip(out).all(|(k, p)| plausible(k, p)) {
            return Err(Fault::InvalidOutput);
        }
        self.audit(out.len(), |indices| {
            audit::check_fixed(&self.cpu, crate::FixedBase::U, scalars, out, indices)
                .map_err(|_| Fault::AuditMismatch)
        })
    }

    /// Checks the capsule-check products' count, then audits a few capsules' `h·E` and `s·G`.
    fn check_products(
        &self,
        es: &[Affine],
        hs: &[Scalar],
        ss: &[Scalar],
        out: &[[Option<Affine>; 2]],
    ) -> Verdict {
        if out.len() != es.len() || hs.len() != es.len() || ss.len() != es.len() {
            return Err(Fault::InvalidOutput);
        }
        self.audit(out.len(), |indices| {
            for &i in indices {
                let he = self
                    .cpu
                    .mul_pairs(&es[i..=i], &[[hs[i], Scalar::ZERO]])
                    .map_err(|_| Fault::AuditMismatch)?;
                let sg = Affine::from_k256(&(ProjectivePoint::GENERATOR * ss[i]));
                if he.first().map(|p| p[0]) != Some(out[i][0]) || sg != out[i][1] {
                    return Err(Fault::AuditMismatch);
                }
            }
            Ok(())
        })
    }

    /// Checks a one-call answer's count, then re-encrypts a few capsules in full on the CPU.
    fn check_one_call(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
        out: &[CapsuleOutcome],
    ) -> Verdict {
        if out.len() != capsules.len() || scalars.len() != capsules.len() {
            return Err(Fault::InvalidOutput);
        }
        self.audit(out.len(), |indices| {
            audit::check_reenc(capsules, scalars, out, indices).map_err(|_| Fault::AuditMismatch)
        })
    }

    /// The CPU's answer for a whole call of `len` items, `run` on parts of the index range
    /// split over the fallback threads.
    fn on_cpu<T: Send>(
        &self,
        len: usize,
        run: impl Fn(Range<usize>) -> Result<Vec<T>, BackendError> + Sync,
    ) -> Result<Vec<T>, BackendError> {
        let threads = self
            .fallback_threads
            .min(len / PARALLEL_FALLBACK_MIN)
            .max(1);
        if threads == 1 {
            return run(0..len);
        }
        let chunk = len.div_ceil(threads);
        let run = &run;
        std::thread::scope(|s| {
            let parts: Vec<_> = (0..len)
                .step_by(chunk)
                .map(|from| s.spawn(move || run(from..(from + chunk).min(len))))
                .collect();
            let mut out = Vec::with_capacity(len);
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

fn fault_of(e: &BackendError) -> Fault {
    match e {
        BackendError::AuditMismatch(_) => Fault::AuditMismatch,
        _ => Fault::DeviceError,
    }
}

fn with_snapshot(stats: Arc<GpuStats>) -> (Arc<GpuStats>, GpuStatsSnapshot) {
    let now = stats.snapshot();
    (stats, now)
}

impl EcBackend for Guarded {
    fn name(&self) -> &'static str {
        "gpu"
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
        self.required_call(
            GpuCall::Pairs,
            |device| device.mul_pairs(bases, scalars),
            |out, each_point| self.check_pairs(bases, scalars, out, each_point),
            || {
                self.on_cpu(bases.len(), |part| {
                    self.cpu.mul_pairs(&bases[part.clone()], &scalars[part])
                })
            },
        )
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        if scalars.is_empty() {
            return Ok(Vec::new());
        }
        self.required_call(
            GpuCall::Fixed,
            |device| device.mul_u(scalars),
            |out, each_point| self.check_u(scalars, out, each_point),
            || self.on_cpu(scalars.len(), |part| self.cpu.mul_u(&scalars[part])),
        )
    }

    /// The GPU's capsule-check products while it is healthy and `capsule_checks` is on,
    /// audited like any other call; otherwise declined, and the engine checks on the CPU.
    /// Wrong products cannot reject a good capsule: the engine re-checks on the CPU every
    /// capsule the comparison rejects.
    fn capsule_check_products(
        &self,
        es: &[Affine],
        hs: &[Scalar],
        ss: &[Scalar],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        if !self.capsule_checks || es.is_empty() {
            return Err(BackendError::NotOffered("capsule_checks is off"));
        }
        self.offered_call(
            GpuCall::CapsuleChecks,
            |device| device.capsule_check_products(es, hs, ss),
            |out| self.check_products(es, hs, ss, out),
        )
    }

    /// The GPU's decompression while it is healthy and `decompress` is on. No audit: the
    /// engine checks every point it gets and decompresses the rest on the CPU.
    fn decompress_points(
        &self,
        points: &[CompressedPoint],
    ) -> Result<Vec<Option<Affine>>, BackendError> {
        if !self.decompress || points.is_empty() {
            return Err(BackendError::NotOffered("decompress is off"));
        }
        self.offered_call(
            GpuCall::Decompress,
            |device| device.decompress_points(points),
            |out| {
                if out.len() == points.len() {
                    Ok(())
                } else {
                    Err(Fault::InvalidOutput)
                }
            },
        )
    }

    fn offers_reencrypt_capsules(&self) -> bool {
        self.one_call && self.device().offers_reencrypt_capsules()
    }

    /// The device's one-call re-encryption while it is healthy, audited: sampled capsules
    /// re-encrypted in full on the CPU (the same parts, or both rejecting). Declined (the
    /// engine then takes the step-by-step calls, through this guard) when off, unhealthy,
    /// declined by the device or rejected.
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<CapsuleOutcome>, BackendError> {
        if !self.one_call || capsules.is_empty() {
            return Err(BackendError::NotOffered("one_call is off"));
        }
        self.offered_call(
            GpuCall::OneCall,
            |device| device.reencrypt_capsules(capsules, scalars),
            |out| self.check_one_call(capsules, scalars, out),
        )
    }

    /// Whether the device checks its outputs: what this guard returns from `mul_pairs` and
    /// `mul_u` is checked either way (here when the device does not), but decompressed points
    /// are passed on as the device gave them.
    fn checks_outputs(&self) -> bool {
        self.device().checks_outputs()
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

    /// The per-point check is skipped only for a device that did it itself, and the audit
    /// still stands behind it: either way the wrong products never leave, for different
    /// recorded reasons.
    #[test]
    fn the_point_check_is_skipped_only_for_devices_that_check_their_outputs() {
        let base = Affine::from_k256(&ProjectivePoint::GENERATOR).expect("finite");
        let scalars = [[Scalar::ONE, Scalar::from(2u64)]];
        let right = CpuBackend::new().mul_pairs(&[base], &scalars).expect("cpu");
        for (claims_checked, fault) in [(false, Fault::InvalidOutput), (true, Fault::AuditMismatch)]
        {
            let guard = Guarded::new(
                Arc::new(OffCurve { claims_checked }),
                None,
                &GpuOptions::default(),
                1,
                Arc::new(NoEvents),
            );
            let got = guard.mul_pairs(&[base], &scalars).expect("the CPU answers");
            assert_eq!(got, right, "claims_checked = {claims_checked}");
            let snapshot = guard.snapshot();
            assert_eq!(snapshot.faults_of(fault), 1, "{snapshot:?}");
            assert_eq!(snapshot.fallbacks(), 1, "{snapshot:?}");
        }
    }

    #[test]
    fn plausibility_ties_identity_to_zero_scalars() {
        let g = Affine::from_k256(&ProjectivePoint::GENERATOR).expect("G");
        assert!(plausible(&Scalar::ZERO, &None));
        assert!(!plausible(&Scalar::ZERO, &Some(g)));
        assert!(plausible(&Scalar::ONE, &Some(g)));
        assert!(!plausible(&Scalar::ONE, &None));
    }

    #[test]
    fn faults_in_a_row_turn_the_gpu_unhealthy_and_a_replacement_restores_it() {
        let health = GpuHealth::new(3);
        assert_eq!(health.fault(), (1, false));
        health.accepted();
        assert_eq!(health.fault(), (1, false));
        assert_eq!(health.fault(), (2, false));
        assert!(health.is_healthy());
        assert_eq!(health.fault(), (3, true));
        assert!(!health.is_healthy());
        assert_eq!(health.fault(), (4, false), "turns unhealthy once");
        health.restore();
        assert!(health.is_healthy());
        assert_eq!(health.faults_in_a_row(), 0);
    }
}
