//! Elliptic-curve backends: the batched scalar multiplications that re-encryption needs.
//!
//! The protocol code in [`crate::engine`] expresses all of its secret-scalar elliptic-curve
//! work as two batch calls per re-encryption batch; a backend performs them. The CPU backend
//! ([`CpuBackend`]) runs on k256 field arithmetic; a GPU backend lives in its own crate and
//! implements the same trait.

mod cpu;

pub use cpu::CpuBackend;

use k256::Scalar;

use crate::curve::{Affine, CompressedPoint};

/// Bytes of a cfrag's capsule-specific parts: `E1, V1, E2, V2, U2` compressed and `z`
/// ([`crate::CapsuleFrag::to_parts`]).
pub const CFRAG_PARTS_LEN: usize = 5 * 33 + 32;

/// One cfrag's capsule-specific parts (`E1, V1, E2, V2, U2` compressed, then `z`), as
/// [`CapsuleOutcome::Parts`] carries them.
pub type CfragParts = [u8; CFRAG_PARTS_LEN];
/// A parsed capsule as [`EcBackend::reencrypt_capsules`] takes it: its points still
/// compressed, its scalar, and the compressed commitment `U1` of the kfrag it is re-encrypted
/// with. All public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapsuleInput {
    /// `E`, compressed (x below p, checked when parsed).
    pub e: CompressedPoint,
    /// `V`, compressed.
    pub v: CompressedPoint,
    /// The capsule's non-zero scalar `s`.
    pub s: Scalar,
    /// The kfrag's compressed commitment `U1`.
    pub commitment: [u8; 33],
}

/// A backend's answer for one capsule of [`EcBackend::reencrypt_capsules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapsuleOutcome {
    /// The capsule is valid: its cfrag's capsule-specific parts.
    Parts(CfragParts),
    /// A point does not decompress or the capsule's equation fails, by the backend's account:
    /// the engine checks the capsule again itself.
    Rejected,
}

/// Why a backend did not answer a call. The engine computes that call's results itself (or
/// takes the step-by-step calls instead of an offered one) on any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend does not offer this call (the default of every optional method), or not
    /// for this input: not a fault.
    #[error("not offered: {0}")]
    NotOffered(&'static str),
    /// Inputs of one call have different lengths.
    #[error("batch shape mismatch: {0}")]
    Shape(&'static str),
    /// The device is missing or failed.
    #[error("device failure: {0}")]
    Device(String),
    /// The device answered, but a sampled output differs from the CPU's (silent corruption).
    #[error("device result failed the CPU audit: {0}")]
    AuditMismatch(String),
}

/// A batch scalar-multiplication engine.
///
/// Every method is one call per batch, never per point, so that a device backend can launch
/// one kernel for the whole batch. Scalars are secrets: implementations must not branch on or
/// index memory by their bits. Outputs are affine and normalized.
///
/// Two paths use it. The step path ([`crate::Engine`] by default): the points' decompression
/// and the capsule check's products (both optional), then [`Self::mul_pairs`] and
/// [`Self::mul_u`]. The one-call path, when a backend offers it: [`Self::reencrypt_capsules`],
/// a whole batch part in one call.
pub trait EcBackend: Send + Sync {
    /// A short name for logs and metrics, e.g. `"cpu"` or `"gpu"`.
    fn name(&self) -> &'static str;

    /// For every base `P[i]` and its two scalars `[a, b] = scalars[i]`, computes
    /// `[a·P[i], b·P[i]]`. Both products share one precomputed table of `P[i]`.
    ///
    /// Bases are public, valid, non-identity points. A scalar may be any value; a zero scalar
    /// gives the identity, which is reported as `None`.
    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError>;

    /// For every scalar `k[i]`, computes `k[i]·U`, where `U` is Umbral's fixed parameter point
    /// ([`crate::curve::params::u_point`]). `None` marks the identity (zero scalar).
    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError>;

    /// The products of the capsule equations `s·G = V + h·E`: for every `i`,
    /// `[h[i]·E[i], s[i]·G]` (`None` for the identity), so that the engine only has to compare
    /// each with `V[i]`. All inputs are public (variable time is fine).
    ///
    /// Not offered by default ([`BackendError::NotOffered`]): the engine then checks the
    /// capsules itself with one combined multi-scalar multiplication on the CPU, the right
    /// choice for the CPU. On any error the engine does the same.
    fn capsule_check_products(
        &self,
        es: &[Affine],
        hs: &[Scalar],
        ss: &[Scalar],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        let _ = (es, hs, ss);
        Err(BackendError::NotOffered("capsule check products"))
    }

    /// Decompresses every point (`None` for an `x` with no point on the curve); public data.
    ///
    /// Not offered by default: the engine takes the square roots on the host. The engine
    /// accepts a returned point only after checking it against its compressed form
    /// ([`crate::curve::CompressedPoint::accepts`]; only `x` and the parity when
    /// [`Self::checks_outputs`]) and decompresses on the host whatever it does not accept, so
    /// a wrong answer costs time, never correctness.
    fn decompress_points(
        &self,
        points: &[CompressedPoint],
    ) -> Result<Vec<Option<Affine>>, BackendError> {
        let _ = points;
        Err(BackendError::NotOffered("point decompression"))
    }

    /// Whether [`Self::reencrypt_capsules`] is offered, so that the engine prepares its
    /// inputs. The default, false.
    fn offers_reencrypt_capsules(&self) -> bool {
        false
    }

    /// A whole re-encryption per capsule in one call: decompress `E` and `V`, check
    /// `s·G = V + h·E`, and for the valid capsules the cfrag's parts as
    /// [`crate::cfrag_parts_on_cpu`] computes them, with `scalars[j] = [rk, t]` (secrets).
    /// For batches of at least four capsules; the engine re-checks every rejected capsule
    /// itself.
    ///
    /// Not offered by default. On any error the engine takes the step-by-step calls.
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<CapsuleOutcome>, BackendError> {
        let _ = (capsules, scalars);
        Err(BackendError::NotOffered("one-call re-encryption"))
    }

    /// Whether this backend has itself checked every point it returns to lie on the curve
    /// (decompressed points included), with the identity exactly for the zero scalars (a
    /// device backend validating the words it copies back), so that a caller guarding it need
    /// not check them again. The default, false, leaves that check to the caller.
    fn checks_outputs(&self) -> bool {
        false
    }
}
