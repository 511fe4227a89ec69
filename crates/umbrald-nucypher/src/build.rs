//! Building NuCypher messages from the client side (the publisher's encrypted kfrag and Bob's
//! request), byte-compatible with nucypher-core 0.16. umbrald's own tests and benchmarks use
//! it to speak NuCypher without nucypher-core.

use umbral_pre::{encrypt, DefaultSerialize, EncryptionError, PublicKey, Signer};
use zeroize::Zeroizing;

use crate::msgpack::{write_array_len, write_bin8};
use crate::request::{REQUEST_BRAND, REQUEST_VERSION};
use crate::write_header;

/// An encrypted kfrag: its Umbral capsule (MessagePack) and DEM ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedKfrag {
    /// The capsule's umbral-pre MessagePack bytes.
    pub capsule: Vec<u8>,
    /// The ciphertext of the `AuthorizedKeyFrag`.
    pub ciphertext: Vec<u8>,
}

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Umbral encryption failed.
    #[error("encryption failed: {0}")]
    Encrypt(EncryptionError),
    /// An umbral object could not be serialized.
    #[error("cannot serialize: {0}")]
    Serialize(String),
}

/// What the publisher does for each node: signs `hrac || kfrag` and encrypts the resulting
/// `AuthorizedKeyFrag` (brand `AKFr` 3.0) to the node's decrypting key. `kfrag` is the
/// umbral-pre MessagePack encoding of the (unverified) kfrag.
pub fn encrypt_kfrag(
    publisher: &Signer,
    node_decrypting_key: &PublicKey,
    hrac: &[u8; 16],
    kfrag: &[u8],
) -> Result<EncryptedKfrag, BuildError> {
    let mut message = Zeroizing::new(Vec::with_capacity(16 + kfrag.len()));
    message.extend_from_slice(hrac);
    message.extend_from_slice(kfrag);
    let signature = publisher.sign(&message);
    let mut authorized = Zeroizing::new(Vec::with_capacity(8 + 3 + 64 + kfrag.len()));
    write_header(&mut authorized, b"AKFr", (3, 0));
    write_array_len(&mut authorized, 2);
    write_bin8(&mut authorized, &signature.to_be_bytes());
    authorized.extend_from_slice(kfrag);
    let (capsule, ciphertext) =
        encrypt(node_decrypting_key, &authorized).map_err(BuildError::Encrypt)?;
    Ok(EncryptedKfrag {
        capsule: capsule
            .to_bytes()
            .map_err(|e| BuildError::Serialize(e.to_string()))?
            .into_vec(),
        ciphertext: ciphertext.into_vec(),
    })
}

/// A `ReencryptionRequest` (`ReRq` 3.0) with no conditions and no context.
pub fn encode_request<C: AsRef<[u8]>>(
    capsules: &[C],
    hrac: &[u8; 16],
    encrypted_kfrag: &EncryptedKfrag,
    publisher_verifying_key: &[u8; 33],
    bob_verifying_key: &[u8; 33],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + capsules.len() * 105 + encrypted_kfrag.ciphertext.len());
    write_header(&mut out, &REQUEST_BRAND, REQUEST_VERSION);
    write_array_len(&mut out, 7);
    write_array_len(&mut out, capsules.len());
    for capsule in capsules {
        out.extend_from_slice(capsule.as_ref());
    }
    write_bin8(&mut out, hrac);
    write_array_len(&mut out, 2);
    out.extend_from_slice(&encrypted_kfrag.capsule);
    write_bin(&mut out, &encrypted_kfrag.ciphertext);
    write_bin8(&mut out, publisher_verifying_key);
    write_bin8(&mut out, bob_verifying_key);
    out.push(0xc0); // conditions: nil
    out.push(0xc0); // context: nil
    out
}

/// A MessagePack `bin` of any length.
fn write_bin(out: &mut Vec<u8>, bytes: &[u8]) {
    if let Ok(len) = u8::try_from(bytes.len()) {
        out.extend_from_slice(&[0xc4, len]);
    } else if let Ok(len) = u16::try_from(bytes.len()) {
        out.push(0xc5);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}
