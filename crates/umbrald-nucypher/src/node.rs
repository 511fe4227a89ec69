//! The node's (Ursula's) two key pairs and the per-request work done with them: opening the
//! encrypted kfrag and signing the response.

use umbral_pre::{decrypt_original, DefaultDeserialize, SecretKey, Signature, Signer};
use umbrald_core::{Capsule, KeyFrag, PublicKey, VerifiedKeyFrag};
use zeroize::Zeroizing;

use crate::msgpack::Reader;
use crate::request::ReencryptionRequest;
use crate::{response, split_header, NucypherError};

/// Brand of the `AuthorizedKeyFrag` inside an encrypted kfrag.
const AKFR_BRAND: [u8; 4] = *b"AKFr";
/// The `AuthorizedKeyFrag` version nucypher-core 0.16 writes.
const AKFR_VERSION: (u16, u16) = (3, 0);

/// Why node keys cannot be built from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeKeysError {
    /// A secret key is zero or not below the curve order.
    #[error("the {0} secret key is not a non-zero scalar below the curve order")]
    InvalidSecretKey(&'static str),
}

/// A node's secret keys: the decrypting key (publishers encrypt kfrags to its public key) and
/// the signing key (the node signs its responses). Both are umbral-pre secret keys, zeroized on
/// drop; `Debug` shows only the public keys.
#[derive(Clone)]
pub struct NodeKeys {
    decrypting: SecretKey,
    signing: SecretKey,
    signer: Signer,
    decrypting_pk: [u8; 33],
    verifying_pk: [u8; 33],
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field("decrypting_public_key", &hex::encode(self.decrypting_pk))
            .field("verifying_public_key", &hex::encode(self.verifying_pk))
            .finish_non_exhaustive()
    }
}

fn compressed(key: &SecretKey) -> [u8; 33] {
    let mut out = [0u8; 33];
    out.copy_from_slice(&key.public_key().to_compressed_bytes());
    out
}

/// Builds an umbral-pre secret key from 32 big-endian bytes.
fn secret_key(bytes: &[u8; 32], which: &'static str) -> Result<SecretKey, NodeKeysError> {
    // umbral-pre builds keys only from its own zeroizing box, which has no public constructor:
    // take a throwaway key's box and overwrite its bytes.
    let mut boxed = SecretKey::random().to_be_bytes();
    boxed.as_mut_secret().copy_from_slice(bytes);
    SecretKey::try_from_be_bytes(&boxed).map_err(|_| NodeKeysError::InvalidSecretKey(which))
}

impl NodeKeys {
    /// Fresh random keys.
    pub fn random() -> Self {
        Self::from_secret_keys(SecretKey::random(), SecretKey::random())
    }

    /// Keys from the two secret scalars, 32 bytes big-endian each (umbral-pre's
    /// `SecretKey::to_be_bytes`).
    pub fn from_be_bytes(decrypting: &[u8; 32], signing: &[u8; 32]) -> Result<Self, NodeKeysError> {
        Ok(Self::from_secret_keys(
            secret_key(decrypting, "decrypting")?,
            secret_key(signing, "signing")?,
        ))
    }

    fn from_secret_keys(decrypting: SecretKey, signing: SecretKey) -> Self {
        Self {
            decrypting_pk: compressed(&decrypting),
            verifying_pk: compressed(&signing),
            signer: Signer::new(signing.clone()),
            decrypting,
            signing,
        }
    }

    /// The two secret scalars, decrypting then signing, 32 bytes big-endian each. For sealing
    /// into a key file; zeroized when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(self.decrypting.to_be_bytes().as_secret());
        out[32..].copy_from_slice(self.signing.to_be_bytes().as_secret());
        out
    }

    /// The public key publishers encrypt kfrags to (33-byte compressed point).
    pub fn decrypting_public_key(&self) -> &[u8; 33] {
        &self.decrypting_pk
    }

    /// The public key that verifies this node's responses (33-byte compressed point).
    pub fn verifying_public_key(&self) -> &[u8; 33] {
        &self.verifying_pk
    }

    /// A request's fixed cost, paid once per request: refuses conditions, checks the keys,
    /// decrypts the encrypted kfrag with the decrypting key, checks the publisher's signature
    /// over the HRAC and the kfrag, and checks the kfrag's commitment.
    ///
    /// The kfrag's own signatures are not checked: they cover the policy's delegating key and
    /// Bob's encrypting key, which a NuCypher request does not carry (nucypher-core's Ursula
    /// skips them for the same reason). The publisher's signature is what authorises the kfrag.
    pub fn authorize(
        &self,
        request: &ReencryptionRequest<'_>,
    ) -> Result<VerifiedKeyFrag, NucypherError> {
        request.check_no_conditions()?;
        let publisher =
            PublicKey::from_bytes(&request.publisher_verifying_key).map_err(|source| {
                NucypherError::InvalidKey {
                    which: "publisher verifying",
                    source,
                }
            })?;
        PublicKey::from_bytes(&request.bob_verifying_key).map_err(|source| {
            NucypherError::InvalidKey {
                which: "Bob's verifying",
                source,
            }
        })?;

        // umbral-pre accepts identity and uncompressed points in a capsule and may panic on
        // them: parse strictly first. umbral-pre's own parse then checks the capsule's equation.
        Capsule::from_bytes(request.ekfrag_capsule)
            .map_err(|e| NucypherError::InvalidEncryptedKfrag(e.to_string()))?;
        let capsule = umbral_pre::Capsule::from_bytes(request.ekfrag_capsule)
            .map_err(|e| NucypherError::InvalidEncryptedKfrag(format!("capsule: {e}")))?;
        let plaintext = Zeroizing::new(
            decrypt_original(&self.decrypting, &capsule, request.ekfrag_ciphertext)
                .map_err(|_| NucypherError::KfragNotForThisNode)?
                .into_vec(),
        );

        let invalid = |e: NucypherError| NucypherError::InvalidAuthorizedKfrag(e.to_string());
        let body = split_header(&plaintext, &AKFR_BRAND, "AuthorizedKeyFrag", AKFR_VERSION)
            .map_err(invalid)?;
        let mut r = Reader::new(body);
        r.array_exact("AuthorizedKeyFrag", 2).map_err(invalid)?;
        let signature = r.bin_exact::<64>("signature").map_err(invalid)?;
        let kfrag_bytes = r.value("kfrag").map_err(invalid)?;
        r.finish("AuthorizedKeyFrag").map_err(invalid)?;
        let kfrag = KeyFrag::from_bytes(kfrag_bytes)
            .map_err(|e| NucypherError::InvalidAuthorizedKfrag(e.to_string()))?;

        // Signed: HRAC || kfrag (MessagePack). The message holds the key share: zeroize it.
        let mut message = Zeroizing::new(Vec::with_capacity(16 + KeyFrag::ENCODED_LEN));
        message.extend_from_slice(&request.hrac);
        message.extend_from_slice(Zeroizing::new(kfrag.to_bytes()).as_ref());
        let signature = Signature::try_from_be_bytes(&signature)
            .map_err(|_| NucypherError::PublisherSignature)?;
        let publisher = umbral_pre::PublicKey::try_from_compressed_bytes(publisher.as_bytes())
            .map_err(|_| NucypherError::PublisherSignature)?;
        if !signature.verify(&publisher, &message) {
            return Err(NucypherError::PublisherSignature);
        }
        kfrag
            .verify_commitment()
            .map_err(NucypherError::KfragVerification)
    }

    /// Builds the `ReencryptionResponse` for `capsules` (as received, in request order) and
    /// their `cfrags` (one per capsule, umbral-pre MessagePack bytes), signed with the signing
    /// key over the capsules and cfrags exactly as nucypher-core signs it.
    pub fn sign_response<C, F>(&self, capsules: &[C], cfrags: &[F]) -> Vec<u8>
    where
        C: AsRef<[u8]>,
        F: AsRef<[u8]>,
    {
        let message = response::response_signed_message(capsules, cfrags);
        let signature = self.signer.sign(&message);
        response::encode(cfrags, &signature.to_be_bytes())
    }
}
