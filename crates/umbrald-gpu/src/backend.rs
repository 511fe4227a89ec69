//! [`GpuBackend`]: the [`EcBackend`] that runs batches on a CUDA device, validates every
//! output it copies back, counts what the device did, and reports every failure as a
//! [`BackendError`]. [`crate::Guarded`] audits its answers, counts its faults and decides its
//! health.

use std::sync::Arc;

use k256::{ProjectivePoint, Scalar};
use umbrald_core::backend::{BackendError, CapsuleInput, CapsuleOutcome, CpuBackend, EcBackend};
use umbrald_core::curve::{Affine, CompressedPoint};

use crate::audit;
use crate::device::{self, DeviceInfo};
use crate::error::GpuUnavailable;
use crate::exec::{ExecError, KernelExecutor, Timing};
use crate::options::GpuOptions;
use crate::stats::GpuStats;
use crate::table::FixedBase;

/// The GPU backend. Create it once at start-up with [`GpuBackend::probe`] and serve through
/// [`crate::Guarded`]; when the probe fails, log the error once and serve with [`CpuBackend`].
///
/// Calls from several threads run on the device at once up to
/// [`GpuOptions::concurrent_calls`]; the others wait for a free pipeline.
pub struct GpuBackend {
    exec: Box<dyn KernelExecutor>,
    cpu: CpuBackend,
    stats: Arc<GpuStats>,
    info: DeviceInfo,
    one_call: bool,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackend")
            .field("info", &self.info)
            .field("one_call", &self.one_call)
            .finish_non_exhaustive()
    }
}

impl GpuBackend {
    /// Looks for a CUDA driver and device, gets the kernels (NVRTC, or `opts.ptx_file`), sets up
    /// streams and buffers, and runs a known-answer self-test.
    ///
    /// Returns [`GpuUnavailable`] — never panics — when there is no driver, no such device, no
    /// NVRTC, or anything fails. Expect several seconds when it succeeds: NVRTC compiles the
    /// kernels, and the driver JIT-compiles the PTX the first time (cached by the driver
    /// afterwards).
    pub fn probe(opts: &GpuOptions) -> Result<Self, GpuUnavailable> {
        let (exec, info) = device::probe(opts)?;
        let mut backend = Self::with_executor(Box::new(exec), info, opts);
        backend.self_test().map_err(GpuUnavailable::SelfTest)?;
        if backend.one_call {
            if let Err(e) = backend.self_test_one_call() {
                // The step-by-step calls still serve.
                tracing::warn!(error = %e, "one-call re-encryption failed the self-test; off");
                backend.one_call = false;
            }
        }
        Ok(backend)
    }

    /// A backend on any executor: the host harness's (feature `host-harness`) to run the
    /// kernel code on the CPU, or a test double. Of `opts` it uses `one_call`.
    pub fn with_executor(
        exec: Box<dyn KernelExecutor>,
        info: DeviceInfo,
        opts: &GpuOptions,
    ) -> Self {
        Self {
            exec,
            cpu: CpuBackend::new(),
            stats: Arc::new(GpuStats::default()),
            info,
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

    /// `k[i]·G` for every scalar, on the fixed-base path with the generator's table. Counted
    /// like the trait methods.
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
        self.call(scalars.len(), 1, || self.exec.mul_fixed(base, scalars))
    }

    /// `[k·P, None]` for every base `P` and public scalar `k`: the pair kernel without its
    /// second products (one ladder per item instead of two). The capsule check's `h·E`.
    pub fn mul_firsts(
        &self,
        bases: &[Affine],
        scalars: &[Scalar],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        same_length(bases.len(), scalars.len())?;
        self.call(bases.len(), 1, || self.exec.mul_firsts(bases, scalars))
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

    /// One device call of `items` items: nothing to do for none, else `run`'s result through
    /// [`Self::accept`].
    fn call<T>(
        &self,
        items: usize,
        products_per_item: u64,
        run: impl FnOnce() -> Result<(Vec<T>, Timing), ExecError>,
    ) -> Result<Vec<T>, BackendError> {
        if items == 0 {
            return Ok(Vec::new());
        }
        self.accept(run(), items, products_per_item)
    }

    /// [`Self::call`] for a path whose kernels a module may lack (PTX built before them): the
    /// executor's `Unsupported` is then [`BackendError::NotOffered`], not a device failure.
    fn optional_call<T>(
        &self,
        items: usize,
        products_per_item: u64,
        run: impl FnOnce() -> Result<(Vec<T>, Timing), ExecError>,
    ) -> Result<Vec<T>, BackendError> {
        if items == 0 {
            return Ok(Vec::new());
        }
        match run() {
            Err(ExecError::Unsupported(why)) => Err(BackendError::NotOffered(why)),
            result => self.accept(result, items, products_per_item),
        }
    }

    /// Length check and statistics for one call's executor result: a driver error, an invalid
    /// output or a wrong count is a [`BackendError::Device`].
    fn accept<T>(
        &self,
        result: Result<(Vec<T>, Timing), ExecError>,
        items: usize,
        products_per_item: u64,
    ) -> Result<Vec<T>, BackendError> {
        match result {
            Ok((out, timing)) if out.len() == items => {
                self.stats
                    .record_success(items as u64 * products_per_item, timing);
                Ok(out)
            }
            Ok((out, _)) => Err(BackendError::Device(format!(
                "device returned {} results for {items} items",
                out.len()
            ))),
            Err(e) => Err(BackendError::Device(e.to_string())),
        }
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
        self.call(bases.len(), 2, || self.exec.mul_pairs(bases, scalars))
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        self.mul_fixed(FixedBase::U, scalars)
    }

    /// `h·E` on the pair kernel without its second ladder ([`KernelExecutor::mul_firsts`]) and
    /// `s·G` on the fixed-base kernel, one call after the other.
    fn capsule_check_products(
        &self,
        es: &[Affine],
        hs: &[Scalar],
        ss: &[Scalar],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        same_length(es.len(), ss.len())?;
        let he = self.mul_firsts(es, hs)?;
        let sg = self.mul_g(ss)?;
        Ok(he.into_iter().zip(sg).map(|([h, _], s)| [h, s]).collect())
    }

    fn offers_reencrypt_capsules(&self) -> bool {
        self.one_call
    }

    /// The one-call kernels, when `one_call` is on and passed the start-up self-test. Counted
    /// as seven products per capsule (the five of the parts, `h·E` and `s·G`).
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<CapsuleOutcome>, BackendError> {
        if !self.one_call {
            return Err(BackendError::NotOffered("one_call is off"));
        }
        if capsules.len() != scalars.len() {
            return Err(BackendError::Shape("not one [rk, t] per capsule"));
        }
        self.optional_call(capsules.len(), 7, || {
            self.exec.reencrypt_capsules(capsules, scalars)
        })
    }

    /// True: unpacking a kernel's output rejects any point off the curve and any identity flag
    /// that does not match its scalar (`layout::unpack_pairs`, `layout::unpack_fixed`), and
    /// any decompressed point off the curve (`layout::unpack_decompress`).
    fn checks_outputs(&self) -> bool {
        true
    }

    /// The decompression kernel (one square root per point). The engine checks every answer
    /// against the compressed point and decompresses on the host what it rejects.
    fn decompress_points(
        &self,
        points: &[CompressedPoint],
    ) -> Result<Vec<Option<Affine>>, BackendError> {
        self.optional_call(points.len(), 0, || self.exec.decompress(points))
    }
}
