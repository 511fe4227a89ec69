//! Byte-exact codec for umbral-pre 0.11 objects (`default-serialization`, MessagePack).
//!
//! | object | encoding | bytes |
//! |---|---|---|
//! | [`PublicKey`] | SEC1 compressed point | 33 |
//! | [`Capsule`] | `[E, V, s]` | 105 |
//! | [`KeyFrag`] | `[[U], id, key, precursor, [commitment, sig_proxy, sig_receiver, dk?, rk?]]` | 310 |
//! | [`CapsuleFrag`] | `[E1, V1, id, precursor, [E2, V2, U1, U2, z, kfrag_sig]]` | 381 |
//!
//! Decoding is strict: only the canonical encoding umbral-pre writes is accepted, and every
//! point must be a valid compressed, non-identity point (umbral-pre 0.11 itself accepts the
//! identity and uncompressed points in a capsule and then panics; umbrald does not).

mod capsule;
mod cfrag;
mod keys;
mod kfrag;
mod msgpack;

pub use capsule::{Capsule, CapsuleParts};
pub use cfrag::CapsuleFrag;
pub use keys::PublicKey;
pub use kfrag::{KeyFrag, KfragVerificationError, VerifiedKeyFrag};

use k256::Scalar;

use crate::curve::{Affine, CompressedPoint, PointError};
use msgpack::Reader;

/// Why bytes are not a valid umbral-pre object. Every variant names the object and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended inside a field.
    #[error("{what}: truncated at field `{field}`")]
    Truncated {
        /// The object being decoded.
        what: &'static str,
        /// The field being read.
        field: &'static str,
    },
    /// A MessagePack marker of the wrong type.
    #[error(
        "{what}: field `{field}` at byte {offset}: expected {expected}, found marker 0x{found:02x}"
    )]
    WrongType {
        /// The object being decoded.
        what: &'static str,
        /// The field being read.
        field: &'static str,
        /// Byte offset of the marker.
        offset: usize,
        /// The MessagePack type expected.
        expected: &'static str,
        /// The marker byte found.
        found: u8,
    },
    /// An array with the wrong number of elements.
    #[error("{what}: `{field}` has {got} elements, expected {expected}")]
    ArrayLength {
        /// The object being decoded.
        what: &'static str,
        /// The array field.
        field: &'static str,
        /// Expected element count.
        expected: u8,
        /// Element count found.
        got: u8,
    },
    /// A byte-string field with the wrong length.
    #[error("{what}: field `{field}` has {got} bytes, expected {expected}")]
    FieldLength {
        /// The object being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// Expected length.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// Bytes left over after a complete object.
    #[error("{what}: {extra} trailing bytes after the object")]
    TrailingBytes {
        /// The object being decoded.
        what: &'static str,
        /// Number of extra bytes.
        extra: usize,
    },
    /// A point field that is not a valid compressed, non-identity curve point.
    #[error("{what}: field `{field}`: {reason}")]
    InvalidPoint {
        /// The object being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong with the point.
        reason: PointError,
    },
    /// A scalar field not below the group order.
    #[error("{what}: field `{field}` is not a scalar below the group order")]
    ScalarOutOfRange {
        /// The object being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A scalar field that is zero where zero is not allowed.
    #[error("{what}: field `{field}` is zero")]
    ZeroScalar {
        /// The object being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A 64-byte ECDSA signature with `r` or `s` zero or out of range.
    #[error("{what}: field `{field}` is not a valid ECDSA signature encoding")]
    InvalidSignature {
        /// The object being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A kfrag that embeds parameters other than Umbral's standard `U`.
    #[error("KeyFrag: embedded parameter point is not Umbral's U")]
    WrongParameters,
}

/// Reads a compressed point field, returning the point and its canonical bytes.
fn read_point(
    r: &mut Reader<'_>,
    what: &'static str,
    field: &'static str,
) -> Result<(Affine, [u8; 33]), CodecError> {
    let (compressed, canonical) = read_compressed(r, what, field)?;
    let point = compressed
        .decompress_vartime()
        .map_err(|reason| CodecError::InvalidPoint {
            what,
            field,
            reason,
        })?;
    Ok((point, canonical))
}

/// Reads a compressed point field without decompressing it: every encoding error but "not on
/// the curve" is found here.
fn read_compressed(
    r: &mut Reader<'_>,
    what: &'static str,
    field: &'static str,
) -> Result<(CompressedPoint, [u8; 33]), CodecError> {
    let bytes = r.bin(field)?;
    let point = CompressedPoint::parse(bytes).map_err(|reason| CodecError::InvalidPoint {
        what,
        field,
        reason,
    })?;
    let mut canonical = [0u8; 33];
    canonical.copy_from_slice(bytes);
    Ok((point, canonical))
}

/// Reads a 32-byte big-endian non-zero scalar field.
fn read_nonzero_scalar(
    r: &mut Reader<'_>,
    what: &'static str,
    field: &'static str,
) -> Result<Scalar, CodecError> {
    use k256::elliptic_curve::PrimeField;
    let bytes = r.bin_exact::<32>(field)?;
    let scalar: Option<Scalar> = Scalar::from_repr((*bytes).into()).into();
    let scalar = scalar.ok_or(CodecError::ScalarOutOfRange { what, field })?;
    if bool::from(scalar.is_zero()) {
        return Err(CodecError::ZeroScalar { what, field });
    }
    Ok(scalar)
}

/// Reads a 64-byte `r || s` ECDSA signature field.
fn read_signature(
    r: &mut Reader<'_>,
    what: &'static str,
    field: &'static str,
) -> Result<(k256::ecdsa::Signature, [u8; 64]), CodecError> {
    let bytes = r.bin_exact::<64>(field)?;
    let sig = k256::ecdsa::Signature::from_slice(bytes)
        .map_err(|_| CodecError::InvalidSignature { what, field })?;
    Ok((sig, *bytes))
}
