//! umbral-pre as the oracle: one policy, encryption, and cfrag verification and decryption.

use umbral_pre::{DefaultDeserialize, DefaultSerialize};
use umbrald_core::{Engine, ReencryptItem};

/// Everything one policy needs, made with umbral-pre.
pub struct Policy {
    pub alice_sk: umbral_pre::SecretKey,
    pub bob_sk: umbral_pre::SecretKey,
    pub signer_pk: umbral_pre::PublicKey,
    pub kfrags: Vec<umbral_pre::VerifiedKeyFrag>,
}

impl Policy {
    pub fn new(threshold: usize, shares: usize) -> Self {
        let alice_sk = umbral_pre::SecretKey::random();
        let bob_sk = umbral_pre::SecretKey::random();
        let signer = umbral_pre::Signer::new(umbral_pre::SecretKey::random());
        let kfrags = umbral_pre::generate_kfrags(
            &alice_sk,
            &bob_sk.public_key(),
            &signer,
            threshold,
            shares,
            true,
            true,
        )
        .into_vec();
        Self {
            alice_sk,
            bob_sk,
            signer_pk: signer.verifying_key(),
            kfrags,
        }
    }

    /// Re-encrypts `capsule` with every kfrag through `engine` (one batch), checks every cfrag
    /// with umbral-pre, decrypts with them and returns the plaintext.
    pub fn round_trip(&self, engine: &Engine, plaintext: &[u8]) -> Vec<u8> {
        let alice_pk = self.alice_sk.public_key();
        let bob_pk = self.bob_sk.public_key();
        let (capsule, ct) = umbral_pre::encrypt(&alice_pk, plaintext).expect("encrypt");
        let capsule_bytes = capsule.to_bytes().expect("capsule bytes").into_vec();
        let keys = [
            alice_pk.to_compressed_bytes().into_vec(),
            bob_pk.to_compressed_bytes().into_vec(),
            self.signer_pk.to_compressed_bytes().into_vec(),
        ];
        let verified: Vec<_> = self
            .kfrags
            .iter()
            .map(|k| {
                let bytes = k.to_bytes().expect("kfrag bytes");
                engine
                    .verify_policy(&bytes, &keys[0], &keys[1], &keys[2])
                    .expect("policy verifies")
            })
            .collect();
        let items: Vec<ReencryptItem<'_>> = verified
            .iter()
            .map(|kfrag| ReencryptItem {
                capsule: &capsule_bytes,
                kfrag,
            })
            .collect();
        let cfrags: Vec<umbral_pre::VerifiedCapsuleFrag> = engine
            .reencrypt_batch(&items)
            .into_iter()
            .map(|r| {
                let bytes = r.expect("re-encryption succeeds").to_bytes();
                umbral_pre::CapsuleFrag::from_bytes(&bytes)
                    .expect("umbral-pre parses the cfrag")
                    .verify(&capsule, &self.signer_pk, &alice_pk, &bob_pk)
                    .map_err(|(e, _)| e)
                    .expect("umbral-pre verifies the cfrag")
            })
            .collect();
        umbral_pre::decrypt_reencrypted(&self.bob_sk, &alice_pk, &capsule, cfrags, &ct)
            .expect("decrypts")
            .into_vec()
    }

    /// Re-encrypts `n` fresh capsules with the first kfrag in one batch, after tampering with
    /// the signature of those at `bad`: true when exactly those fail their capsule check and
    /// every other cfrag verifies under umbral-pre.
    pub fn rejects_tampered_capsules(&self, engine: &Engine, n: usize, bad: &[usize]) -> bool {
        let alice_pk = self.alice_sk.public_key();
        let bob_pk = self.bob_sk.public_key();
        let keys = [
            alice_pk.to_compressed_bytes().into_vec(),
            bob_pk.to_compressed_bytes().into_vec(),
            self.signer_pk.to_compressed_bytes().into_vec(),
        ];
        let kfrag = engine
            .verify_policy(
                &self.kfrags[0].to_bytes().expect("kfrag bytes"),
                &keys[0],
                &keys[1],
                &keys[2],
            )
            .expect("policy verifies");
        let capsules: Vec<umbral_pre::Capsule> = (0..n)
            .map(|i| {
                umbral_pre::encrypt(&alice_pk, &[i as u8; 5])
                    .expect("encrypt")
                    .0
            })
            .collect();
        let mut bytes: Vec<Vec<u8>> = capsules
            .iter()
            .map(|c| c.to_bytes().expect("capsule bytes").into_vec())
            .collect();
        for &i in bad {
            bytes[i][104] ^= 1;
        }
        let items: Vec<ReencryptItem<'_>> = bytes
            .iter()
            .map(|capsule| ReencryptItem {
                capsule,
                kfrag: &kfrag,
            })
            .collect();
        engine
            .reencrypt_batch(&items)
            .into_iter()
            .enumerate()
            .all(|(i, result)| match result {
                Err(umbrald_core::ItemError::CapsuleCheckFailed) => bad.contains(&i),
                Err(_) => false,
                Ok(cfrag) => {
                    !bad.contains(&i)
                        && umbral_pre::CapsuleFrag::from_bytes(&cfrag.to_bytes())
                            .expect("umbral-pre parses the cfrag")
                            .verify(&capsules[i], &self.signer_pk, &alice_pk, &bob_pk)
                            .is_ok()
                }
            })
    }
}
