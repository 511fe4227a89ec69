//! secp256k1 point arithmetic for the batched engine.
//!
//! k256 gives us complete projective formulas and scalars; what it cannot do is batch, and its
//! field multiplication is not inlined. This module holds the pieces the batched engine needs:
//! an inlinable 4×64-bit base field ([`field`]), affine points with SEC1 (de)compression,
//! Jacobian formulas for `a = 0`,
//! Montgomery batch inversion, the GLV endomorphism split, constant-time variable-base and
//! fixed-base multiplication, and a variable-time multi-scalar multiplication for checking
//! public equations.
//!
//! Naming follows k256: anything variable-time says so (`*_vartime`) and is used on public
//! data only.

mod affine;
pub mod batch;
pub mod field;
pub mod fixed;
pub mod glv;
mod jacobian;
pub mod lanes;
pub mod msm;
pub mod params;
pub mod varmul;
pub mod verify;

pub use affine::{Affine, CompressedPoint, PointError};
pub use jacobian::Jacobian;
