//! Alice and Bob, built on umbral-pre: encrypt, grant an m-of-n policy, decrypt with cfrags.
//!
//! ```no_run
//! # async fn demo(nodes: umbrald_client::ThresholdClient) -> Result<(), Box<dyn std::error::Error>> {
//! use umbrald_client::{Alice, Bob};
//! let (alice, bob) = (Alice::random(), Bob::random());
//! let sealed = alice.encrypt(b"hello")?;
//! let grant = alice.grant(&bob.public_key(), 2, 3)?;
//! let retrieved = nodes.retrieve(&grant, &sealed.capsule).await?;
//! let plaintext = bob.decrypt(&grant, &sealed, retrieved.cfrags)?;
//! # Ok(()) }
//! ```

use umbral_pre::{Capsule, DefaultSerialize, PublicKey, SecretKey, Signer, VerifiedCapsuleFrag};
use umbrald_proto::Policy;

/// Failure of an Alice or Bob operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The threshold must satisfy `1 <= threshold <= shares`.
    #[error("invalid threshold {threshold} of {shares} shares (need 1 <= m <= n)")]
    InvalidThreshold {
        /// m.
        threshold: usize,
        /// n.
        shares: usize,
    },
    /// Encryption failed (umbral-pre's message).
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// An umbral-pre object could not be serialized (not expected to happen).
    #[error("cannot serialize {0}")]
    Serialize(&'static str),
    /// Decryption failed: wrong key, too few or repeated cfrags, or a tampered ciphertext.
    #[error("decryption failed: {0}")]
    Decrypt(String),
}

/// A ciphertext and the capsule that carries its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    /// The capsule, to be re-encrypted by the appliances.
    pub capsule: Capsule,
    /// The symmetric ciphertext (stays with Bob; appliances never see it).
    pub ciphertext: Box<[u8]>,
}

impl Sealed {
    /// The capsule's umbral-pre bytes, as carried in a request item.
    pub fn capsule_bytes(&self) -> Result<Vec<u8>, ActorError> {
        capsule_bytes(&self.capsule)
    }
}

/// The data owner: holds the delegating key and the kfrag-signing key.
pub struct Alice {
    secret: SecretKey,
    signer: Signer,
}

impl Alice {
    /// A fresh Alice with random delegating and signing keys.
    pub fn random() -> Self {
        Self::from_keys(SecretKey::random(), SecretKey::random())
    }

    /// An Alice from existing keys (see [`crate::keyfile`] for loading them).
    pub fn from_keys(delegating: SecretKey, signing: SecretKey) -> Self {
        Self {
            secret: delegating,
            signer: Signer::new(signing),
        }
    }

    /// The delegating public key (anyone may encrypt to it).
    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// The public key that verifies Alice's kfrag signatures.
    pub fn verifying_key(&self) -> PublicKey {
        self.signer.verifying_key()
    }

    /// Encrypts `plaintext` to Alice's own public key.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Sealed, ActorError> {
        encrypt(&self.public_key(), plaintext)
    }

    /// Decrypts something encrypted to Alice, without any appliance.
    pub fn decrypt_own(&self, sealed: &Sealed) -> Result<Box<[u8]>, ActorError> {
        umbral_pre::decrypt_original(&self.secret, &sealed.capsule, &sealed.ciphertext)
            .map_err(|e| ActorError::Decrypt(e.to_string()))
    }

    /// Grants `bob` access: splits the re-encryption key into `shares` kfrags of which any
    /// `threshold` suffice, signed over both public keys. Give kfrag `i` to appliance `i`.
    pub fn grant(
        &self,
        bob: &PublicKey,
        threshold: usize,
        shares: usize,
    ) -> Result<Grant, ActorError> {
        if threshold == 0 || threshold > shares {
            return Err(ActorError::InvalidThreshold { threshold, shares });
        }
        let kfrags = umbral_pre::generate_kfrags(
            &self.secret,
            bob,
            &self.signer,
            threshold,
            shares,
            true,
            true,
        );
        let kfrags = kfrags
            .iter()
            .map(|k| {
                k.to_bytes()
                    .map(Vec::from)
                    .map_err(|_| ActorError::Serialize("kfrag"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Grant {
            delegating_pk: self.public_key(),
            receiving_pk: *bob,
            verifying_pk: self.verifying_key(),
            threshold,
            kfrags,
        })
    }
}

/// Encrypts `plaintext` to `delegating_pk` (what any sender does; Alice need not be online).
pub fn encrypt(delegating_pk: &PublicKey, plaintext: &[u8]) -> Result<Sealed, ActorError> {
    let (capsule, ciphertext) = umbral_pre::encrypt(delegating_pk, plaintext)
        .map_err(|e| ActorError::Encrypt(e.to_string()))?;
    Ok(Sealed {
        capsule,
        ciphertext,
    })
}

/// An m-of-n re-encryption grant from Alice to Bob: the public keys and the n kfrags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Alice's delegating public key.
    pub delegating_pk: PublicKey,
    /// Bob's receiving public key.
    pub receiving_pk: PublicKey,
    /// Alice's kfrag-verifying public key.
    pub verifying_pk: PublicKey,
    /// How many cfrags Bob needs (m).
    pub threshold: usize,
    /// The kfrags' umbral-pre bytes, one per appliance (n). Their holders can re-encrypt for
    /// Bob; keep each on its own appliance.
    pub kfrags: Vec<Vec<u8>>,
}

impl Grant {
    /// The number of kfrags (n).
    pub fn shares(&self) -> usize {
        self.kfrags.len()
    }

    /// The wire policy for appliance `i`: its kfrag and the three public keys. `None` when
    /// `i >= n`.
    pub fn policy(&self, i: usize) -> Option<Policy> {
        let kfrag = self.kfrags.get(i)?.clone();
        Some(Policy {
            kfrag,
            delegating_pk: self.delegating_pk.to_compressed_bytes().into_vec(),
            receiving_pk: self.receiving_pk.to_compressed_bytes().into_vec(),
            verifying_pk: self.verifying_pk.to_compressed_bytes().into_vec(),
        })
    }
}

/// The recipient: holds the receiving key.
pub struct Bob {
    secret: SecretKey,
}

impl Bob {
    /// A fresh Bob with a random key.
    pub fn random() -> Self {
        Self::from_key(SecretKey::random())
    }

    /// A Bob from an existing key.
    pub fn from_key(secret: SecretKey) -> Self {
        Self { secret }
    }

    /// The receiving public key Alice grants to.
    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// Decrypts `sealed` with at least `grant.threshold` verified cfrags of its capsule.
    pub fn decrypt(
        &self,
        grant: &Grant,
        sealed: &Sealed,
        cfrags: impl IntoIterator<Item = VerifiedCapsuleFrag>,
    ) -> Result<Box<[u8]>, ActorError> {
        umbral_pre::decrypt_reencrypted(
            &self.secret,
            &grant.delegating_pk,
            &sealed.capsule,
            cfrags,
            &sealed.ciphertext,
        )
        .map_err(|e| ActorError::Decrypt(e.to_string()))
    }
}

/// A capsule's umbral-pre bytes.
pub fn capsule_bytes(capsule: &Capsule) -> Result<Vec<u8>, ActorError> {
    capsule
        .to_bytes()
        .map(Vec::from)
        .map_err(|_| ActorError::Serialize("capsule"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use umbral_pre::{DefaultDeserialize, KeyFrag};

    #[test]
    fn alice_to_bob_through_local_reencryption() {
        let (alice, bob) = (Alice::random(), Bob::random());
        let sealed = alice.encrypt(b"split-key secret").expect("encrypt");
        assert_eq!(
            &*alice.decrypt_own(&sealed).expect("own"),
            b"split-key secret"
        );
        let grant = alice.grant(&bob.public_key(), 2, 3).expect("grant");
        assert_eq!(grant.shares(), 3);
        let cfrags: Vec<_> = [0, 2]
            .iter()
            .map(|&i| {
                let policy = grant.policy(i).expect("policy");
                let kfrag = KeyFrag::from_bytes(&policy.kfrag)
                    .expect("kfrag")
                    .verify(
                        &grant.verifying_pk,
                        Some(&grant.delegating_pk),
                        Some(&grant.receiving_pk),
                    )
                    .expect("verifies");
                umbral_pre::reencrypt(&sealed.capsule, kfrag)
            })
            .collect();
        assert!(
            bob.decrypt(&grant, &sealed, cfrags[..1].to_vec()).is_err(),
            "1 < m"
        );
        assert_eq!(
            &*bob.decrypt(&grant, &sealed, cfrags).expect("decrypt"),
            b"split-key secret"
        );
    }

    #[test]
    fn policy_carries_compressed_keys_and_sizes() {
        let (alice, bob) = (Alice::random(), Bob::random());
        let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
        let policy = grant.policy(0).expect("policy");
        assert_eq!(policy.delegating_pk.len(), 33);
        assert_eq!(policy.receiving_pk.len(), 33);
        assert_eq!(policy.verifying_pk.len(), 33);
        assert!(grant.policy(1).is_none());
        let sealed = alice.encrypt(b"x").expect("encrypt");
        let bytes = sealed.capsule_bytes().expect("bytes");
        assert_eq!(bytes.len(), 105, "umbral-pre 0.11 capsule bytes");
        assert_eq!(policy.kfrag.len(), 310, "umbral-pre 0.11 kfrag bytes");
        assert_eq!(bytes, capsule_bytes(&sealed.capsule).expect("bytes"));
    }

    #[test]
    fn bad_thresholds_are_refused() {
        let (alice, bob) = (Alice::random(), Bob::random());
        assert!(matches!(
            alice.grant(&bob.public_key(), 0, 3),
            Err(ActorError::InvalidThreshold { .. })
        ));
        assert!(alice.grant(&bob.public_key(), 4, 3).is_err());
    }
}
