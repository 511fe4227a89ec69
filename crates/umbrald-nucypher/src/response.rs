//! `ReencryptionResponse` (`ReRs` 3.0): the signed message, building and parsing.

use umbral_pre::{PublicKey, Signature};

use crate::msgpack::{write_array_len, write_bin8, Reader};
use crate::{split_header, write_header, NucypherError};

/// Brand of a `ReencryptionResponse`.
pub const RESPONSE_BRAND: [u8; 4] = *b"ReRs";
/// The `ReencryptionResponse` version nucypher-core 0.16 writes.
pub const RESPONSE_VERSION: (u16, u16) = (3, 0);

/// What the node signs, as nucypher-core defines it: every capsule's MessagePack bytes, then
/// every cfrag's, concatenated in request order.
pub fn response_signed_message<C, F>(capsules: &[C], cfrags: &[F]) -> Vec<u8>
where
    C: AsRef<[u8]>,
    F: AsRef<[u8]>,
{
    let len = capsules.iter().map(|c| c.as_ref().len()).sum::<usize>()
        + cfrags.iter().map(|c| c.as_ref().len()).sum::<usize>();
    let mut message = Vec::with_capacity(len);
    for part in capsules.iter().map(AsRef::as_ref) {
        message.extend_from_slice(part);
    }
    for part in cfrags.iter().map(AsRef::as_ref) {
        message.extend_from_slice(part);
    }
    message
}

/// Encodes a response: header, then `[[cfrag…], signature]` with the signature as 64-byte
/// `r || s`.
pub(crate) fn encode<F: AsRef<[u8]>>(cfrags: &[F], signature: &[u8]) -> Vec<u8> {
    let len = 8 + 5 + cfrags.iter().map(|c| c.as_ref().len()).sum::<usize>() + 2 + 64;
    let mut out = Vec::with_capacity(len);
    write_header(&mut out, &RESPONSE_BRAND, RESPONSE_VERSION);
    write_array_len(&mut out, 2);
    write_array_len(&mut out, cfrags.len());
    for cfrag in cfrags {
        // A cfrag's bytes are its MessagePack encoding already.
        out.extend_from_slice(cfrag.as_ref());
    }
    write_bin8(&mut out, signature);
    out
}

/// A parsed `ReencryptionResponse`, borrowing from the received bytes (for tests and
/// clients; the server only builds responses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencryptionResponse<'a> {
    /// Each cfrag's umbral-pre MessagePack bytes.
    pub cfrags: Vec<&'a [u8]>,
    /// The node's signature, 64-byte `r || s`.
    pub signature: [u8; 64],
}

impl<'a> ReencryptionResponse<'a> {
    /// Parses a whole `ReRs` message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, NucypherError> {
        let body = split_header(
            bytes,
            &RESPONSE_BRAND,
            "ReencryptionResponse",
            RESPONSE_VERSION,
        )?;
        let mut r = Reader::new(body);
        r.array_exact("ReencryptionResponse", 2)?;
        let n = r.array_len("cfrags")?;
        let mut cfrags = Vec::with_capacity(n);
        for _ in 0..n {
            cfrags.push(r.value("cfrags")?);
        }
        let signature = r.bin_exact::<64>("signature")?;
        r.finish("ReencryptionResponse")?;
        Ok(Self { cfrags, signature })
    }

    /// Checks the node's signature the way nucypher-core's `ReencryptionResponse.verify` does
    /// (same count of capsules and cfrags, signature over [`response_signed_message`]). The
    /// cfrags' own proofs are not checked here.
    pub fn verify_signature<C: AsRef<[u8]>>(
        &self,
        capsules: &[C],
        node_verifying_key: &[u8],
    ) -> bool {
        if capsules.len() != self.cfrags.len() {
            return false;
        }
        let (Ok(key), Ok(signature)) = (
            PublicKey::try_from_compressed_bytes(node_verifying_key),
            Signature::try_from_be_bytes(&self.signature),
        ) else {
            return false;
        };
        signature.verify(&key, &response_signed_message(capsules, &self.cfrags))
    }
}
