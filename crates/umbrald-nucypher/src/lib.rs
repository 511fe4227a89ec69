//! NuCypher's re-encryption messages, as nucypher-core 0.16 writes them, for umbrald.
//!
//! A NuCypher client (Bob) sends an Ursula a `ReencryptionRequest` (brand `ReRq`, version 3.0):
//! capsules, the policy's HRAC, the kfrag the publisher encrypted to the Ursula, the publisher's
//! and Bob's verifying keys, and optional conditions and context. The Ursula answers with a
//! `ReencryptionResponse` (brand `ReRs`, version 3.0): one cfrag per capsule and its signature
//! over all capsules and cfrags.
//!
//! This crate is sans-IO, except that [`keyfile`] also reads and writes the key file. It
//! - recognises and parses a request ([`ReencryptionRequest::parse`]) without copying, strictly;
//! - decrypts and authenticates the request's kfrag with the node's keys, once per request
//!   ([`NodeKeys::authorize`]);
//! - builds and signs the response ([`NodeKeys::sign_response`]);
//! - seals the node's secret keys in a passphrase-protected key file ([`keyfile`]);
//! - reads an Ursula's nucypher keystore and derives the node's keys from it ([`keystore`]);
//! - builds requests the way a NuCypher client does, for tests and benchmarks ([`build`]).
//!
//! The re-encryption itself is `umbrald-core`'s engine: the server feeds a request's capsules
//! into the same batches as its native requests.
//!
//! Every wire object is a versioned protocol object: an 8-byte header (4-byte brand, major and
//! minor version as big-endian `u16`) followed by MessagePack as rmp-serde writes it (structs as
//! arrays, byte strings as `bin`).

pub mod build;
pub mod keyfile;
pub mod keystore;
mod msgpack;
mod node;
mod request;
mod response;

use umbrald_core::codec::KfragVerificationError;
use umbrald_core::CodecError;
use umbrald_proto::ErrorCode;

pub use node::{NodeKeys, NodeKeysError};
pub use request::{ReencryptionRequest, REQUEST_BRAND, REQUEST_VERSION};
pub use response::{
    response_signed_message, ReencryptionResponse, RESPONSE_BRAND, RESPONSE_VERSION,
};

/// Length of a protocol object's header: brand, major version, minor version.
pub const HEADER_LEN: usize = 8;

/// Whether `bytes` start like a NuCypher `ReencryptionRequest` (its brand, whatever version).
///
/// A native `umbrald/1` request is a MessagePack map and never starts with these bytes.
pub fn is_reencryption_request(bytes: &[u8]) -> bool {
    bytes.starts_with(&REQUEST_BRAND)
}

/// Why a NuCypher request cannot be served. Every variant maps to a stable `umbrald/1` error
/// code ([`NucypherError::code`]); the message never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NucypherError {
    /// The message is shorter than its header or carries another brand.
    #[error("not a NuCypher {expected} message: {detail}")]
    Header {
        /// The brand that was expected.
        expected: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The brand is right but the version is not one this server speaks.
    #[error(
        "{brand} version {major}.{minor} is not supported; this server speaks {brand} {}.{}",
        supported.0,
        supported.1
    )]
    UnsupportedVersion {
        /// The message's brand.
        brand: &'static str,
        /// Its major version.
        major: u16,
        /// Its minor version.
        minor: u16,
        /// The version this server speaks.
        supported: (u16, u16),
    },
    /// The MessagePack body does not have the shape nucypher-core writes.
    #[error("malformed NuCypher message: field `{field}`: {detail}")]
    Malformed {
        /// The field being read.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A public key in the request is not a compressed secp256k1 point.
    #[error("invalid {which} key: {source}")]
    InvalidKey {
        /// Which key.
        which: &'static str,
        /// Why.
        source: CodecError,
    },
    /// The encrypted kfrag's capsule is not valid.
    #[error("invalid encrypted kfrag: {0}")]
    InvalidEncryptedKfrag(String),
    /// The encrypted kfrag does not decrypt with this node's decrypting key: it was encrypted
    /// for another node (or altered).
    #[error("the encrypted kfrag cannot be decrypted with this node's key (it is addressed to another node, or was altered)")]
    KfragNotForThisNode,
    /// The decrypted kfrag is not an `AuthorizedKeyFrag` or its kfrag does not parse.
    #[error("invalid authorized kfrag: {0}")]
    InvalidAuthorizedKfrag(String),
    /// The publisher's signature over the HRAC and the kfrag does not verify.
    #[error("the publisher's signature over the HRAC and the kfrag does not verify")]
    PublisherSignature,
    /// The kfrag's commitment does not match its key.
    #[error("kfrag verification failed: {0}")]
    KfragVerification(KfragVerificationError),
    /// The request carries conditions; this server does not evaluate conditions yet.
    #[error("the request carries conditions ({0}); condition evaluation is not supported by this server")]
    ConditionsUnsupported(String),
}

impl NucypherError {
    /// The stable `umbrald/1` error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Header { .. } | Self::Malformed { .. } => ErrorCode::Malformed,
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::InvalidKey { .. }
            | Self::InvalidEncryptedKfrag(_)
            | Self::KfragNotForThisNode
            | Self::InvalidAuthorizedKfrag(_) => ErrorCode::InvalidKfrag,
            Self::PublisherSignature | Self::KfragVerification(_) => {
                ErrorCode::KfragVerificationFailed
            }
            Self::ConditionsUnsupported(_) => ErrorCode::ConditionsUnsupported,
        }
    }
}

/// Checks a protocol object's header and returns its body.
pub(crate) fn split_header<'a>(
    bytes: &'a [u8],
    brand: &[u8; 4],
    brand_name: &'static str,
    version: (u16, u16),
) -> Result<&'a [u8], NucypherError> {
    if bytes.len() < HEADER_LEN {
        return Err(NucypherError::Header {
            expected: brand_name,
            detail: format!("{} bytes; the header alone is {HEADER_LEN}", bytes.len()),
        });
    }
    let (header, body) = bytes.split_at(HEADER_LEN);
    if &header[..4] != brand {
        return Err(NucypherError::Header {
            expected: brand_name,
            detail: format!("brand is {:?}", String::from_utf8_lossy(&header[..4])),
        });
    }
    let major = u16::from_be_bytes([header[4], header[5]]);
    let minor = u16::from_be_bytes([header[6], header[7]]);
    // nucypher-core reads older minor versions of its own major version; 3.0 is the only one.
    if (major, minor) != version {
        return Err(NucypherError::UnsupportedVersion {
            brand: brand_name,
            major,
            minor,
            supported: version,
        });
    }
    Ok(body)
}

/// Writes a protocol object's header.
pub(crate) fn write_header(out: &mut Vec<u8>, brand: &[u8; 4], version: (u16, u16)) {
    out.extend_from_slice(brand);
    out.extend_from_slice(&version.0.to_be_bytes());
    out.extend_from_slice(&version.1.to_be_bytes());
}
