//! Shared helpers: umbral-pre as the oracle.

#![allow(dead_code)]

use umbral_pre::{DefaultDeserialize, DefaultSerialize};

/// Everything one policy needs, made with umbral-pre.
pub struct Policy {
    pub alice_sk: umbral_pre::SecretKey,
    pub bob_sk: umbral_pre::SecretKey,
    pub signer_pk: umbral_pre::PublicKey,
    pub kfrags: Vec<umbral_pre::VerifiedKeyFrag>,
    pub threshold: usize,
}

impl Policy {
    pub fn new(threshold: usize, shares: usize) -> Self {
        Self::with_flags(threshold, shares, true, true)
    }

    pub fn with_flags(threshold: usize, shares: usize, sign_dk: bool, sign_rk: bool) -> Self {
        let alice_sk = umbral_pre::SecretKey::random();
        let bob_sk = umbral_pre::SecretKey::random();
        let signer = umbral_pre::Signer::new(umbral_pre::SecretKey::random());
        let kfrags = umbral_pre::generate_kfrags(
            &alice_sk,
            &bob_sk.public_key(),
            &signer,
            threshold,
            shares,
            sign_dk,
            sign_rk,
        )
        .into_vec();
        Self {
            alice_sk,
            bob_sk,
            signer_pk: signer.verifying_key(),
            kfrags,
            threshold,
        }
    }

    pub fn alice_pk(&self) -> umbral_pre::PublicKey {
        self.alice_sk.public_key()
    }

    pub fn bob_pk(&self) -> umbral_pre::PublicKey {
        self.bob_sk.public_key()
    }

    pub fn kfrag_bytes(&self, i: usize) -> Vec<u8> {
        self.kfrags[i].to_bytes().expect("kfrag bytes").into_vec()
    }

    pub fn keys(&self) -> [Vec<u8>; 3] {
        [
            self.alice_pk().to_compressed_bytes().into_vec(),
            self.bob_pk().to_compressed_bytes().into_vec(),
            self.signer_pk.to_compressed_bytes().into_vec(),
        ]
    }

    /// Verifies umbrald's kfrag `i` through the engine.
    pub fn verified(
        &self,
        engine: &umbrald_core::Engine,
        i: usize,
    ) -> std::sync::Arc<umbrald_core::VerifiedKeyFrag> {
        let [d, r, v] = self.keys();
        engine
            .verify_policy(&self.kfrag_bytes(i), &d, &r, &v)
            .expect("policy verifies")
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> (umbral_pre::Capsule, Vec<u8>) {
        let (capsule, ct) = umbral_pre::encrypt(&self.alice_pk(), plaintext).expect("encrypt");
        (capsule, ct.into_vec())
    }

    /// Checks a cfrag from umbrald with umbral-pre and returns it verified.
    pub fn check_cfrag(
        &self,
        capsule: &umbral_pre::Capsule,
        cfrag: &[u8],
    ) -> umbral_pre::VerifiedCapsuleFrag {
        let parsed =
            umbral_pre::CapsuleFrag::from_bytes(cfrag).expect("umbral-pre parses the cfrag");
        parsed
            .verify(capsule, &self.signer_pk, &self.alice_pk(), &self.bob_pk())
            .map_err(|(e, _)| e)
            .expect("umbral-pre verifies the cfrag")
    }

    pub fn decrypt(
        &self,
        capsule: &umbral_pre::Capsule,
        cfrags: Vec<umbral_pre::VerifiedCapsuleFrag>,
        ciphertext: &[u8],
    ) -> Vec<u8> {
        umbral_pre::decrypt_reencrypted(&self.bob_sk, &self.alice_pk(), capsule, cfrags, ciphertext)
            .expect("decrypts")
            .into_vec()
    }
}

pub fn capsule_bytes(capsule: &umbral_pre::Capsule) -> Vec<u8> {
    capsule.to_bytes().expect("capsule bytes").into_vec()
}

pub fn secret_key(hex_str: &str) -> umbral_pre::SecretKey {
    let bytes = hex::decode(hex_str).expect("hex");
    // umbral-pre's SecretBox has no public constructor: borrow one and overwrite it.
    let mut secret = umbral_pre::SecretKey::random().to_be_bytes();
    secret.as_mut_secret().copy_from_slice(&bytes);
    umbral_pre::SecretKey::try_from_be_bytes(&secret).expect("secret key")
}

pub fn public_key(hex_str: &str) -> umbral_pre::PublicKey {
    umbral_pre::PublicKey::try_from_compressed_bytes(&hex::decode(hex_str).expect("hex"))
        .expect("public key")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/umbral-0.11/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).expect("json")
}

/// One item per capsule, all with the same kfrag.
pub fn items_for<'a>(
    capsules: &'a [Vec<u8>],
    kfrag: &'a umbrald_core::VerifiedKeyFrag,
) -> Vec<umbrald_core::ReencryptItem<'a>> {
    capsules
        .iter()
        .map(|c| umbrald_core::ReencryptItem { capsule: c, kfrag })
        .collect()
}

/// The capsule check's products `[h·E, s·G]` for every capsule, computed with k256.
pub fn check_products_k256(
    es: &[umbrald_core::curve::Affine],
    hs: &[k256::Scalar],
    ss: &[k256::Scalar],
) -> Vec<[Option<umbrald_core::curve::Affine>; 2]> {
    use umbrald_core::curve::Affine;
    es.iter()
        .zip(hs.iter().zip(ss))
        .map(|(e, (h, s))| {
            [
                Affine::from_k256(&(e.to_k256() * h)),
                Affine::from_k256(&(k256::ProjectivePoint::GENERATOR * s)),
            ]
        })
        .collect()
}
