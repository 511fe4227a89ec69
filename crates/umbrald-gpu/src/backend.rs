//! [`GpuBackend`]: the [`EcBackend`] that runs batches on a CUDA device, audits them on the CPU,
//! counts what happened, and reports every failure as a [`BackendError`] so that the engine
//! recomputes that batch on the CPU.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use k256::{ProjectivePoint, Scalar};
use umbrald_core::backend::{
    BackendError, CapsuleInput, CapsuleOutcome, CfragParts, CpuBackend, EcBackend,
};
use umbrald_core::curve::{Affine, CompressedPoint};

use crate::audit;
use crate::device::{self, DeviceInfo};
use crate::error::GpuUnavailable;
use crate::exec::{ExecError, KernelExecutor, Timing};
use crate::options::GpuOptions;
use crate::stats::GpuStats;
use crate::table::FixedBase;

/// The GPU backend. Create it once at start-up with [`GpuBackend::probe`]; when that fails,
/// log the error once and serve with [`CpuBackend`].
///
/// Calls from several threads are serialized on the device (one pipeline per device).
pub struct GpuBackend {
    exec: Box<dyn KernelExecutor>,
    cpu: CpuBackend,
    stats: Arc<GpuStats>,
    audit_samples: usize,
    disable_after: u32,
    failures_in_a_row: AtomicU32,
    info: DeviceInfo,
    overlap_calls: bool,
    cfrag_parts: bool,
    one_call: bool,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackend")
            .field("info", &self.info)
            .field("audit_samples", &self.audit_samples)
            .finish_non_exhaustive()
    }
}

impl GpuBackend {
    /// Looks for a CUDA driver and device, gets the kernels (NVRTC, or `opts.ptx_file`), sets up
    /// streams and buffers, and runs a known-answer self-test.
    ///
    /// Returns [`GpuUnavailable`] — never panics — when there is no driver, no such device, no
    /// NVRTC, or anything fails. Expect several seconds when it succeeds: NVRTC takes about 4 s,
    /// and the driver JIT-compiles the PTX the first time (cached by the driver afterwards).
    pub fn probe(opts: &GpuOptions) -> Result<Self, GpuUnavailable> {
        let (exec, info) = device::probe(opts)?;
        let mut backend = Self::with_executor(Box::new(exec), info, opts);
        backend.self_test().map_err(GpuUnavailable::SelfTest)?;
        if backend.cfrag_parts {
            if let Err(e) = backend.self_test_parts() {
                // The products still serve; only the host finishes the cfrags.
                tracing::warn!(error = %e, "cfrag parts failed the self-test; host finishes");
                backend.cfrag_parts = false;
            }
        }
        if backend.one_call {
            if let Err(e) = backend.self_test_one_call() {
                // The separate calls still serve.
                tracing::warn!(error = %e, "one-call re-encryption failed the self-test; off");
                backend.one_call = false;
            }
        }
        Ok(backend)
    }

    /// A backend on any executor: [`crate::host::HostExecutor`] to run the kernel code on the
    /// CPU, or a test double. Uses `opts.audit_samples` and `opts.disable_after_failures`.
    pub fn with_executor(
        exec: Box<dyn KernelExecutor>,
        info: DeviceInfo,
        opts: &GpuOptions,
    ) -> Self {
        Self {
            exec,
            cpu: CpuBackend::new(),
            stats: Arc::new(GpuStats::default()),
            audit_samples: opts.audit_samples.max(1),
            disable_after: opts.disable_after_failures,
            failures_in_a_row: AtomicU32::new(0),
            info,
            overlap_calls: opts.overlap_calls,
            cfrag_parts: opts.cfrag_parts,
            one_call: opts.one_call,
        }
    }

    /// What the probe found.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The live counters (shared; clone the `Arc` to export them).
    pub fn stats(&self) -> Arc<GpuStats> {
        Arc::clone(&self.stats)
    }

    /// `k[i]·G` for every scalar, on the fixed-base path with the generator's table. Audited
    /// and counted like the trait methods.
    pub fn mul_g(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        self.mul_fixed(FixedBase::G, scalars)
    }

    /// Runs both kernels on edge-case inputs (scalars 0, 1, 2, n−1, n−2 and a random one; bases
    /// G, U and a random point; the pair kernel also without its second products) and compares
    /// every output with the CPU. Not counted in the statistics.
    pub fn self_test(&self) -> Result<(), String> {
        let random = Scalar::generate_vartime(&mut rand::thread_rng());
        let ks = [
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from(2u64),
            -Scalar::ONE,
            -Scalar::from(2u64),
            random,
        ];
        let random_point = Affine::from_k256(&(ProjectivePoint::GENERATOR * random))
            .ok_or("self-test: random point is the identity")?;
        let bases = [FixedBase::G.point(), FixedBase::U.point(), random_point];
        let mut pair_bases = Vec::new();
        let mut pair_scalars = Vec::new();
        for base in &bases {
            for k in ks.chunks(2) {
                pair_bases.push(*base);
                pair_scalars.push([k[0], k[1]]);
            }
        }
        let all: Vec<usize> = (0..pair_bases.len()).collect();
        let (out, _) = self
            .exec
            .mul_pairs(&pair_bases, &pair_scalars)
            .map_err(|e| e.to_string())?;
        audit::check_pairs(&self.cpu, &pair_bases, &pair_scalars, &out, &all)?;
        let firsts: Vec<Scalar> = pair_scalars.iter().map(|k| k[0]).collect();
        let (out, _) = self
            .exec
            .mul_firsts(&pair_bases, &firsts)
            .map_err(|e| e.to_string())?;
        audit::check_firsts(&self.cpu, &pair_bases, &firsts, &out, &all)?;
        let all: Vec<usize> = (0..ks.len()).collect();
        for base in [FixedBase::U, FixedBase::G] {
            let (out, _) = self.exec.mul_fixed(base, &ks).map_err(|e| e.to_string())?;
            audit::check_fixed(&self.cpu, base, &ks, &out, &all)?;
        }
        Ok(())
    }

    fn mul_fixed(
        &self,
        base: FixedBase,
        scalars: &[Scalar],
    ) -> Result<Vec<Option<Affine>>, BackendError> {
        self.call(
            scalars.len(),
            1,
            || self.exec.mul_fixed(base, scalars),
            |out, idx| audit::check_fixed(&self.cpu, base, scalars, out, idx),
        )
    }

    /// `[k·P, None]` for every base `P` and public scalar `k`: the pair kernel without its
    /// second products (one ladder per item instead of two), audited as the pairs `[k, 0]` it
    /// stands for. The capsule check's `h·E`.
    pub fn mul_firsts(
        &self,
        bases: &[Affine],
        scalars: &[Scalar],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        same_length(bases.len(), scalars.len())?;
        self.call(
            bases.len(),
            1,
            || self.exec.mul_firsts(bases, scalars),
            |out, idx| audit::check_firsts(&self.cpu, bases, scalars, out, idx),
        )
    }

    /// Whole cfrags' parts on the device ([`EcBackend::cfrag_parts`]), audited: sampled
    /// capsules are recomputed on the CPU in full (products, hash and `z`). Counted as five
    /// products per capsule.
    pub fn cfrag_parts_checked(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
        commitments: &[[u8; 33]],
    ) -> Result<Vec<CfragParts>, BackendError> {
        same_length(bases.len(), scalars.len())?;
        if bases.len() != 2 * commitments.len() {
            return Err(BackendError::Shape("not two bases per capsule"));
        }
        self.optional_call(
            commitments.len(),
            5,
            || self.exec.cfrag_parts(bases, scalars, commitments),
            |out, idx| audit::check_parts(bases, scalars, commitments, out, idx),
        )
    }

    /// Whole capsules re-encrypted in one device call ([`EcBackend::reencrypt_capsules`]),
    /// audited: sampled capsules re-encrypted in full on the CPU, the same parts or both
    /// rejecting. Counted as seven products per capsule (the five of the parts, `h·E` and
    /// `s·G`).
    pub fn reencrypt_capsules_checked(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<CapsuleOutcome>, BackendError> {
        if capsules.len() != scalars.len() {
            return Err(BackendError::Shape("not one [rk, t] per capsule"));
        }
        self.optional_call(
            capsules.len(),
            7,
            || self.exec.reencrypt_capsules(capsules, scalars),
            |out, idx| audit::check_reenc(capsules, scalars, out, idx),
        )
    }

    /// Runs the one-call path on valid capsules, one with a wrong `s`, one whose `E` and one
    /// whose `V` has no point on the curve, and compares every outcome with the CPU's. Not
    /// counted in the statistics.
    pub fn self_test_one_call(&self) -> Result<(), String> {
        let mut rng = rand::thread_rng();
        let mut capsules = Vec::new();
        let mut scalars = Vec::new();
        for j in 0..6u64 {
            let (e, v) = (
                Scalar::generate_vartime(&mut rng),
                Scalar::generate_vartime(&mut rng),
            );
            let point = |k: &Scalar| {
                Affine::from_k256(&(ProjectivePoint::GENERATOR * k)).ok_or("identity".to_owned())
            };
            let (e_point, v_point) = (point(&e)?, point(&v)?);
            let (e_bytes, v_bytes) = (e_point.to_compressed(), v_point.to_compressed());
            let h = umbrald_core::hash::capsule_points(&e_bytes, &v_bytes);
            let mut s = v + h * e;
            if j == 1 {
                s += Scalar::ONE;
            }
            let compressed = |bytes: &[u8; 33]| {
                CompressedPoint::parse(bytes).map_err(|e| format!("self-test point: {e}"))
            };
            let mut input = CapsuleInput {
                e: compressed(&e_bytes)?,
                v: compressed(&v_bytes)?,
                s,
                commitment: point(&Scalar::generate_vartime(&mut rng))?.to_compressed(),
            };
            // x = 5 has no point on the curve (5³ + 7 = 132 is not a square mod p).
            let mut five = [0u8; 33];
            five[0] = 2;
            five[32] = 5;
            match j {
                2 => input.e = compressed(&five)?,
                3 => input.v = compressed(&five)?,
                _ => {}
            }
            capsules.push(input);
            let rk = match j {
                4 => Scalar::ONE,
                _ => Scalar::generate_vartime(&mut rng),
            };
            scalars.push([rk, -Scalar::ONE - Scalar::from(j)]);
        }
        let all: Vec<usize> = (0..capsules.len()).collect();
        let (out, _) = self
            .exec
            .reencrypt_capsules(&capsules, &scalars)
            .map_err(|e| e.to_string())?;
        if out.len() != capsules.len() {
            return Err("self-test: wrong number of outcomes".to_owned());
        }
        audit::check_reenc(&capsules, &scalars, &out, &all)?;
        let rejected = out
            .iter()
            .filter(|o| **o == CapsuleOutcome::Rejected)
            .count();
        if rejected != 3 {
            return Err(format!("self-test: {rejected} of 3 bad capsules rejected"));
        }
        Ok(())
    }

    /// Runs the cfrag-parts path on a few random capsules (and `rk = 1`, `t = n − 1`) and
    /// compares every byte with the CPU. Not counted in the statistics.
    pub fn self_test_parts(&self) -> Result<(), String> {
        let mut rng = rand::thread_rng();
        let point = |k: Scalar| {
            Affine::from_k256(&(ProjectivePoint::GENERATOR * k)).ok_or("identity".to_owned())
        };
        let mut bases = Vec::new();
        let mut scalars = Vec::new();
        let mut commitments = Vec::new();
        for j in 0..5u64 {
            let (rk, t) = match j {
                0 => (Scalar::ONE, -Scalar::ONE),
                _ => (
                    Scalar::generate_vartime(&mut rng),
                    Scalar::generate_vartime(&mut rng),
                ),
            };
            bases.push(point(Scalar::generate_vartime(&mut rng))?);
            bases.push(point(Scalar::generate_vartime(&mut rng))?);
            scalars.extend([[rk, t]; 2]);
            commitments.push(point(Scalar::generate_vartime(&mut rng))?.to_compressed());
        }
        let all: Vec<usize> = (0..commitments.len()).collect();
        let (out, _) = self
            .exec
            .cfrag_parts(&bases, &scalars, &commitments)
            .map_err(|e| e.to_string())?;
        if out.len() != commitments.len() {
            return Err("self-test: wrong number of cfrag parts".to_owned());
        }
        audit::check_parts(&bases, &scalars, &commitments, &out, &all)
    }

    /// One device call of `items` items: nothing to do for none, refused once the device was
    /// given up, else `run`'s result through [`Self::accept`].
    fn call<T>(
        &self,
        items: usize,
        products_per_item: u64,
        run: impl FnOnce() -> Result<(Vec<T>, Timing), ExecError>,
        audit: impl Fn(&[T], &[usize]) -> Result<(), String>,
    ) -> Result<Vec<T>, BackendError> {
        if let Some(answer) = self.answer_without_call(items) {
            return answer;
        }
        self.accept(run(), items, products_per_item, audit)
    }

    /// The answer of a call that needs no device: empty for no items, refused once the device
    /// was given up; `None` when the device must be called.
    fn answer_without_call<T>(&self, items: usize) -> Option<Result<Vec<T>, BackendError>> {
        if items == 0 {
            return Some(Ok(Vec::new()));
        }
        self.stats.is_disabled().then(|| Err(self.disabled()))
    }

    /// [`Self::call`] for a path whose kernels a module may lack (PTX built before them): the
    /// executor's `Unsupported` is then a refusal, not a fault.
    fn optional_call<T>(
        &self,
        items: usize,
        products_per_item: u64,
        run: impl FnOnce() -> Result<(Vec<T>, Timing), ExecError>,
        audit: impl Fn(&[T], &[usize]) -> Result<(), String>,
    ) -> Result<Vec<T>, BackendError> {
        if let Some(answer) = self.answer_without_call(items) {
            return answer;
        }
        match run() {
            Err(ExecError::Unsupported(why)) => Err(BackendError::Shape(why)),
            result => self.accept(result, items, products_per_item, audit),
        }
    }

    /// Length check, audit and statistics for one call's executor result.
    fn accept<T>(
        &self,
        result: Result<(Vec<T>, Timing), ExecError>,
        items: usize,
        products_per_item: u64,
        audit: impl Fn(&[T], &[usize]) -> Result<(), String>,
    ) -> Result<Vec<T>, BackendError> {
        let (out, timing) = match result {
            Ok(done) if done.0.len() == items => done,
            Ok(done) => {
                return Err(self.fallback(BackendError::Device(format!(
                    "device returned {} results for {items} items",
                    done.0.len()
                ))))
            }
            Err(e) => return Err(self.fallback(BackendError::Device(e.to_string()))),
        };
        let indices = audit::sample_indices(items, self.audit_samples);
        self.stats.record_audited(indices.len() as u64);
        let auditing = cpu_time::ThreadTime::now();
        let verdict = audit(&out, &indices);
        self.stats.record_audit_time(auditing.elapsed());
        if let Err(message) = verdict {
            self.stats.record_audit_failure();
            return Err(self.fallback(BackendError::AuditMismatch(message)));
        }
        self.stats
            .record_success(items as u64 * products_per_item, timing);
        self.failures_in_a_row.store(0, Ordering::Relaxed);
        Ok(out)
    }

    fn fallback(&self, error: BackendError) -> BackendError {
        self.stats.record_fallback();
        tracing::warn!(
            device = %self.info.name,
            error = %error,
            "GPU batch failed; the CPU recomputes it"
        );
        let in_a_row = self
            .failures_in_a_row
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if self.disable_after > 0 && in_a_row >= self.disable_after && self.stats.record_disabled()
        {
            tracing::error!(
                device = %self.info.name,
                failures = in_a_row,
                "GPU backend disabled after repeated failures; the CPU serves from now on"
            );
        }
        error
    }

    /// The answer of every call once the device was given up.
    fn disabled(&self) -> BackendError {
        self.stats.record_fallback();
        BackendError::Device("GPU backend disabled after repeated failures".to_owned())
    }
}

/// `Shape` unless a call has as many scalars as bases.
fn same_length(bases: usize, scalars: usize) -> Result<(), BackendError> {
    if bases == scalars {
        Ok(())
    } else {
        Err(BackendError::Shape("bases and scalars differ in length"))
    }
}

impl EcBackend for GpuBackend {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        same_length(bases.len(), scalars.len())?;
        self.call(
            bases.len(),
            2,
            || self.exec.mul_pairs(bases, scalars),
            |out, idx| audit::check_pairs(&self.cpu, bases, scalars, out, idx),
        )
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        self.mul_fixed(FixedBase::U, scalars)
    }

    /// `h·E` on the pair kernel without its second ladder ([`KernelExecutor::mul_firsts`]) and
    /// `s·G` on the fixed-base kernel. Both calls are audited like any other; on any failure
    /// the engine checks on the CPU.
    fn capsule_check_products(
        &self,
        es: &[Affine],
        hs: &[Scalar],
        ss: &[Scalar],
    ) -> Option<Vec<[Option<Affine>; 2]>> {
        if es.len() != hs.len() || es.len() != ss.len() {
            return None;
        }
        let (he, sg) = if self.overlap_calls {
            // Two device calls at once (each on its own pipeline) instead of one after the other.
            std::thread::scope(|s| {
                let sg = s.spawn(|| self.mul_g(ss));
                let he = self.mul_firsts(es, hs);
                (
                    he,
                    sg.join()
                        .unwrap_or_else(|_| Err(BackendError::Device("panic".into()))),
                )
            })
        } else {
            (self.mul_firsts(es, hs), self.mul_g(ss))
        };
        let (he, sg) = (he.ok()?, sg.ok()?);
        Some(he.into_iter().zip(sg).map(|([h, _], s)| [h, s]).collect())
    }

    fn overlaps_calls(&self) -> bool {
        self.overlap_calls
    }

    fn offers_cfrag_parts(&self) -> bool {
        self.cfrag_parts
    }

    fn offers_reencrypt_capsules(&self) -> bool {
        self.one_call
    }

    /// [`GpuBackend::reencrypt_capsules_checked`] when `one_call` is on; `None` (the engine
    /// then takes the separate calls) when it is off or the call failed.
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Option<Vec<CapsuleOutcome>> {
        if !self.one_call {
            return None;
        }
        self.reencrypt_capsules_checked(capsules, scalars).ok()
    }

    /// [`GpuBackend::cfrag_parts_checked`] when `cfrag_parts` is on; `None` (the engine then
    /// runs the products and finishes on the host) when it is off or the call failed.
    fn cfrag_parts(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
        commitments: &[[u8; 33]],
    ) -> Option<Vec<CfragParts>> {
        if !self.cfrag_parts {
            return None;
        }
        self.cfrag_parts_checked(bases, scalars, commitments).ok()
    }

    /// True: unpacking a kernel's output rejects any point off the curve and any identity flag
    /// that does not match its scalar (`layout::unpack_pairs`, `layout::unpack_fixed`), and
    /// any decompressed point off the curve (`layout::unpack_decompress`).
    fn checks_outputs(&self) -> bool {
        true
    }

    /// The decompression kernel (one square root per point). No audit: the engine checks every
    /// answer against the compressed point and decompresses on the host what it rejects.
    fn decompress_points(&self, points: &[CompressedPoint]) -> Option<Vec<Option<Affine>>> {
        if points.is_empty() || self.stats.is_disabled() {
            return None;
        }
        match self.exec.decompress(points) {
            Ok((out, timing)) if out.len() == points.len() => {
                self.stats.record_success(0, timing);
                Some(out)
            }
            Ok(_) => {
                self.fallback(BackendError::Device("short decompression result".into()));
                None
            }
            Err(ExecError::Unsupported(_)) => None,
            Err(e) => {
                self.fallback(BackendError::Device(e.to_string()));
                None
            }
        }
    }
}
