//! secp256k1 point arithmetic on top of k256's field elements.
//!
//! k256 gives us a constant-time field (`FieldElement`, 5×52-bit limbs) and complete
//! projective formulas; what it cannot do is batch. This module holds the pieces the batched
//! engine needs: affine points with SEC1 (de)compression, Jacobian formulas for `a = 0`,
//! Montgomery batch inversion, the GLV endomorphism split, constant-time variable-base and
//! fixed-base multiplication, and a variable-time multi-scalar multiplication for checking
//! public equations.
//!
//! Naming follows k256: anything variable-time says so (`*_vartime`) and is used on public
//! data only.

mod affine;
pub mod batch;
pub mod fixed;
pub mod glv;
mod jacobian;
pub mod msm;
pub mod params;
pub mod varmul;

pub use affine::{Affine, PointError};
pub use jacobian::Jacobian;
