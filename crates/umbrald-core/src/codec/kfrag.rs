//! `KeyFrag`: one share of a re-encryption key, and its verified form.

use k256::ecdsa::signature::DigestVerifier;
use k256::ecdsa::Signature;
use k256::Scalar;
use zeroize::Zeroize;

use super::msgpack::{Reader, Writer};
use super::{read_nonzero_scalar, read_point, read_signature, CodecError, PublicKey};
use crate::curve::{fixed, params, Affine};
use crate::hash;

const WHAT: &str = "KeyFrag";

/// A parsed, not yet verified key fragment. The key share is zeroized on drop.
#[derive(Clone)]
pub struct KeyFrag {
    pub(crate) id: [u8; 32],
    pub(crate) key: Scalar,
    pub(crate) precursor: [u8; 33],
    pub(crate) commitment: Affine,
    pub(crate) commitment_bytes: [u8; 33],
    sig_proxy: Signature,
    sig_proxy_bytes: [u8; 64],
    pub(crate) sig_receiver: Signature,
    pub(crate) sig_receiver_bytes: [u8; 64],
    delegating_key_signed: bool,
    receiving_key_signed: bool,
}

impl std::fmt::Debug for KeyFrag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key share.
        f.debug_struct("KeyFrag")
            .field("id", &hex_prefix(&self.id))
            .finish_non_exhaustive()
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Drop for KeyFrag {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Why a kfrag does not verify against its policy keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KfragVerificationError {
    /// `commitment ≠ key·U`.
    #[error("kfrag commitment does not match its key")]
    IncorrectCommitment,
    /// The signature for the proxy does not verify under the verifying key.
    #[error("kfrag signature (for the proxy) does not verify")]
    IncorrectProxySignature,
    /// The signature for the receiver (copied into every cfrag) does not verify; Bob would
    /// reject every cfrag made from this kfrag.
    #[error("kfrag signature (for the receiver) does not verify")]
    IncorrectReceiverSignature,
    /// The verifying key is not usable as an ECDSA key.
    #[error("verifying key is not a valid ECDSA public key")]
    BadVerifyingKey,
}

impl KeyFrag {
    /// Length of the MessagePack encoding.
    pub const ENCODED_LEN: usize = 310;

    /// Parses umbral-pre's MessagePack encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(WHAT, bytes);
        r.array("kfrag", 5)?;
        r.array("params", 1)?;
        let (_, u_bytes) = read_point(&mut r, WHAT, "params.u")?;
        if u_bytes != params::U_COMPRESSED {
            return Err(CodecError::WrongParameters);
        }
        let id = *r.bin_exact::<32>("id")?;
        let key = read_nonzero_scalar(&mut r, WHAT, "key")?;
        let (_, precursor) = read_point(&mut r, WHAT, "precursor")?;
        r.array("proof", 5)?;
        let (commitment, commitment_bytes) = read_point(&mut r, WHAT, "proof.commitment")?;
        let (sig_proxy, sig_proxy_bytes) =
            read_signature(&mut r, WHAT, "proof.signature_for_proxy")?;
        let (sig_receiver, sig_receiver_bytes) =
            read_signature(&mut r, WHAT, "proof.signature_for_receiver")?;
        let delegating_key_signed = r.boolean("proof.delegating_key_signed")?;
        let receiving_key_signed = r.boolean("proof.receiving_key_signed")?;
        r.finish()?;
        Ok(Self {
            id,
            key,
            precursor,
            commitment,
            commitment_bytes,
            sig_proxy,
            sig_proxy_bytes,
            sig_receiver,
            sig_receiver_bytes,
            delegating_key_signed,
            receiving_key_signed,
        })
    }

    /// The MessagePack encoding (byte-identical to umbral-pre's).
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        let mut w = Writer::new(&mut out);
        w.array(5);
        w.array(1);
        w.bin(&params::U_COMPRESSED);
        w.bin(&self.id);
        w.bin(&self.key.to_bytes());
        w.bin(&self.precursor);
        w.array(5);
        w.bin(&self.commitment_bytes);
        w.bin(&self.sig_proxy_bytes);
        w.bin(&self.sig_receiver_bytes);
        w.boolean(self.delegating_key_signed);
        w.boolean(self.receiving_key_signed);
        debug_assert_eq!(w.written(), Self::ENCODED_LEN);
        out
    }

    /// The kfrag's 32-byte identifier.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// Verifies the commitment and both signatures against the policy's keys.
    ///
    /// umbral-pre checks the commitment and the proxy signature; umbrald also checks the
    /// receiver signature, since every cfrag carries it and Bob rejects cfrags where it fails.
    pub fn verify(
        self,
        verifying_pk: &PublicKey,
        delegating_pk: &PublicKey,
        receiving_pk: &PublicKey,
    ) -> Result<VerifiedKeyFrag, KfragVerificationError> {
        let expected = fixed::mul_u(&[self.key]).pop().flatten();
        if expected != Some(self.commitment) {
            return Err(KfragVerificationError::IncorrectCommitment);
        }
        let vk = verifying_pk
            .verifying_key()
            .ok_or(KfragVerificationError::BadVerifyingKey)?;
        let proxy_message = self.signature_message(
            self.delegating_key_signed.then_some(delegating_pk),
            self.receiving_key_signed.then_some(receiving_pk),
        );
        vk.verify_digest(hash::signing_digest(&proxy_message), &self.sig_proxy)
            .map_err(|_| KfragVerificationError::IncorrectProxySignature)?;
        let receiver_message = self.signature_message(Some(delegating_pk), Some(receiving_pk));
        vk.verify_digest(hash::signing_digest(&receiver_message), &self.sig_receiver)
            .map_err(|_| KfragVerificationError::IncorrectReceiverSignature)?;
        Ok(VerifiedKeyFrag { kfrag: self })
    }

    /// Checks the commitment only (`commitment = key·U`), for protocols that authenticate the
    /// kfrag by other means and do not give the proxy the delegating and receiving keys.
    ///
    /// NuCypher is one: an Ursula gets the kfrag encrypted to her and signed, together with
    /// the policy's HRAC, by the publisher, and never learns the keys the kfrag's own
    /// signatures cover. Use [`KeyFrag::verify`] whenever those keys are known.
    pub fn verify_commitment(self) -> Result<VerifiedKeyFrag, KfragVerificationError> {
        let expected = fixed::mul_u(&[self.key]).pop().flatten();
        if expected != Some(self.commitment) {
            return Err(KfragVerificationError::IncorrectCommitment);
        }
        Ok(VerifiedKeyFrag { kfrag: self })
    }

    /// `id || commitment || precursor || [1 || delegating] | 0 || [1 || receiving] | 0`.
    fn signature_message(
        &self,
        delegating: Option<&PublicKey>,
        receiving: Option<&PublicKey>,
    ) -> Vec<u8> {
        let mut m = Vec::with_capacity(32 + 33 * 4 + 2);
        m.extend_from_slice(&self.id);
        m.extend_from_slice(&self.commitment_bytes);
        m.extend_from_slice(&self.precursor);
        for key in [delegating, receiving] {
            match key {
                Some(k) => {
                    m.push(1);
                    m.extend_from_slice(k.as_bytes());
                }
                None => m.push(0),
            }
        }
        m
    }
}

/// A kfrag whose commitment and signatures verified against its policy's keys. Only
/// [`KeyFrag::verify`] makes one.
#[derive(Clone, Debug)]
pub struct VerifiedKeyFrag {
    kfrag: KeyFrag,
}

impl VerifiedKeyFrag {
    /// The verified kfrag.
    pub fn kfrag(&self) -> &KeyFrag {
        &self.kfrag
    }
}
