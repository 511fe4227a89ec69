//! Per-item errors of the engine.

use umbrald_proto::ErrorCode;

use crate::codec::{CodecError, KfragVerificationError};

/// Why one item (or one policy) could not be re-encrypted. The message is safe to send to the
/// client: it never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ItemError {
    /// The capsule bytes are not a valid capsule encoding.
    #[error("invalid capsule: {0}")]
    InvalidCapsule(CodecError),
    /// The capsule parsed but its equation `s·G = V + h·E` does not hold.
    #[error("invalid capsule: validity check s·G = V + h·E failed")]
    CapsuleCheckFailed,
    /// The kfrag bytes are not a valid kfrag encoding.
    #[error("invalid kfrag: {0}")]
    InvalidKfrag(CodecError),
    /// One of the policy's public keys is not a valid compressed point.
    #[error("invalid {which} public key: {source}")]
    InvalidPublicKey {
        /// Which key: `delegating`, `receiving` or `verifying`.
        which: &'static str,
        /// What is wrong with it.
        source: CodecError,
    },
    /// The kfrag did not verify against the policy's keys.
    #[error("kfrag verification failed: {0}")]
    KfragVerification(KfragVerificationError),
    /// A failure inside the engine, not caused by the input.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl ItemError {
    /// The stable wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidCapsule(_) | Self::CapsuleCheckFailed => ErrorCode::InvalidCapsule,
            Self::InvalidKfrag(_) | Self::InvalidPublicKey { .. } => ErrorCode::InvalidKfrag,
            Self::KfragVerification(_) => ErrorCode::KfragVerificationFailed,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}
