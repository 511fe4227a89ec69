//! The device abstraction under [`crate::GpuBackend`]: something that runs the batch kernels.
//!
//! The CUDA implementation lives in `device`; the host harness (`host::HostExecutor`, feature
//! `host-harness`) runs the same kernel code compiled for the CPU, so the backend's packing,
//! statistics and, behind [`crate::Guarded`], its audit and fault handling are tested on
//! machines without a GPU, and tests can inject faults with their own executor.

use std::time::Duration;

use k256::Scalar;
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome};
use umbrald_core::curve::{Affine, CompressedPoint};

use crate::layout::LayoutError;
use crate::table::FixedBase;

/// Device time spent on one call, as measured by the executor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// Time in kernels.
    pub kernel: Duration,
    /// Time in host-to-device and device-to-host copies.
    pub copy: Duration,
    /// Host CPU time packing inputs into the kernels' layout and reading results back (with
    /// the check of every output point): the calling thread's own CPU time, so time spent
    /// descheduled does not count (nor the helper threads of a read large enough to be split,
    /// `layout::unpack_pairs`).
    pub layout: Duration,
}

impl std::ops::AddAssign for Timing {
    fn add_assign(&mut self, rhs: Timing) {
        self.kernel += rhs.kernel;
        self.copy += rhs.copy;
        self.layout += rhs.layout;
    }
}

/// Why an executor could not produce a batch's results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The CUDA driver reported an error (allocation, copy, launch or a fault in the kernel).
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// The kernel's output words are not valid results.
    #[error("invalid kernel output: {0}")]
    Output(#[from] LayoutError),
    /// The executor cannot take this batch (for example, more items than a launch can index).
    #[error("batch not supported: {0}")]
    Unsupported(&'static str),
    /// The executor's state was poisoned by a panic in another thread.
    #[error("executor state poisoned")]
    Poisoned,
}

/// Results of a pair call: `[a·P, b·P]` per item, `None` for the identity.
pub type PairProducts = Vec<[Option<Affine>; 2]>;
/// Results of a fixed-base call: `k·Q` per item, `None` for the identity.
pub type Products = Vec<Option<Affine>>;

/// Runs the batch kernels. Calls may come from many threads at once.
pub trait KernelExecutor: Send + Sync {
    /// For every `i`: `[scalars[i][0] * bases[i], scalars[i][1] * bases[i]]`, `None` for the
    /// identity. `bases` and `scalars` have the same length.
    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<(PairProducts, Timing), ExecError>;

    /// For every `i`: `[scalars[i] * bases[i], None]`, the pair kernel without its second
    /// products (public scalars: the capsule check's `h·E`). The default runs
    /// [`Self::mul_pairs`] with zero second scalars, which gives the same results.
    fn mul_firsts(
        &self,
        bases: &[Affine],
        scalars: &[Scalar],
    ) -> Result<(PairProducts, Timing), ExecError> {
        self.mul_pairs(bases, &with_zero_seconds(scalars))
    }

    /// For every `i`: `scalars[i] * Q` for the fixed point `base`.
    fn mul_fixed(
        &self,
        base: FixedBase,
        scalars: &[Scalar],
    ) -> Result<(Products, Timing), ExecError>;

    /// For every capsule: its whole re-encryption in one call
    /// ([`umbrald_core::backend::EcBackend::reencrypt_capsules`]): decompression, the
    /// capsule check and the cfrag's parts, with `scalars[j] = [rk, t]`; only the parts and
    /// a status per capsule copied back. Executors without the kernels refuse.
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<(Vec<CapsuleOutcome>, Timing), ExecError> {
        let _ = (capsules, scalars);
        Err(ExecError::Unsupported("no one-call re-encryption kernels"))
    }

    /// For every `i`: the point with `points[i]`'s x and parity, `None` when x is not on the
    /// curve. Executors without the kernel (test doubles) refuse.
    fn decompress(&self, points: &[CompressedPoint]) -> Result<(Products, Timing), ExecError> {
        let _ = points;
        Err(ExecError::Unsupported("no decompression kernel"))
    }
}

/// `[k, 0]` for every `k`: the pair scalars of a [`KernelExecutor::mul_firsts`] call.
pub(crate) fn with_zero_seconds(scalars: &[Scalar]) -> Vec<[Scalar; 2]> {
    scalars.iter().map(|k| [*k, Scalar::ZERO]).collect()
}
