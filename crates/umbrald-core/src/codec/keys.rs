//! Public keys: 33-byte SEC1 compressed points.

use k256::ecdsa::VerifyingKey;

use super::CodecError;
use crate::curve::Affine;

/// A public key as umbral-pre encodes it (`PublicKey::to_compressed_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey {
    bytes: [u8; 33],
    point: Affine,
}

impl PublicKey {
    /// Parses a 33-byte compressed, non-identity point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let point =
            Affine::decompress_vartime(bytes).map_err(|reason| CodecError::InvalidPoint {
                what: "PublicKey",
                field: "key",
                reason,
            })?;
        let mut canonical = [0u8; 33];
        canonical.copy_from_slice(bytes);
        Ok(Self {
            bytes: canonical,
            point,
        })
    }

    /// The 33-byte compressed encoding.
    pub fn as_bytes(&self) -> &[u8; 33] {
        &self.bytes
    }

    /// The point.
    pub fn point(&self) -> &Affine {
        &self.point
    }

    /// The key as an ECDSA verifying key.
    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_sec1_bytes(&self.bytes).ok()
    }
}
