//! The CPU backend: this crate's 4×64-bit field and batched constant-time formulas.

use k256::Scalar;

use super::{BackendError, EcBackend};
use crate::curve::{fixed, varmul, Affine};

/// Runs the batch multiplications on the calling thread. Always available; the fallback for
/// every other backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

impl CpuBackend {
    /// A CPU backend. Builds the fixed-base table of `U` now rather than on the first batch.
    pub fn new() -> Self {
        fixed::warm_up();
        CpuBackend
    }
}

impl EcBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        if bases.len() != scalars.len() {
            return Err(BackendError::Shape("bases and scalars differ in length"));
        }
        Ok(varmul::mul_pairs(bases, scalars))
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        Ok(fixed::mul_u(scalars))
    }
}
