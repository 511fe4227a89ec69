//! Differential, structured: whatever umbrald re-encrypts verifies and decrypts under
//! umbral-pre 0.11.
//!
//! The input picks a policy (threshold, shares, which keys the kfrags sign), a batch size, an
//! engine (the CPU engine, or the generic path any other backend takes, with the CPU backend
//! behind it), a seed and a plaintext. umbral-pre makes the keys, kfrags and capsules from a
//! ChaCha20 generator seeded with it; umbrald verifies every kfrag and re-encrypts every
//! capsule with every kfrag in one batch; umbral-pre must parse and verify every cfrag and
//! decrypt each capsule's plaintext from a threshold of them. Any failure is a crash.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use umbral_pre::{DefaultDeserialize, DefaultSerialize};
use umbrald_core::backend::CpuBackend;
use umbrald_core::{Engine, ReencryptItem};

const MAX_CAPSULES: usize = 3;

fn engine(generic: bool) -> &'static Engine {
    static CPU: OnceLock<Engine> = OnceLock::new();
    static GENERIC: OnceLock<Engine> = OnceLock::new();
    if generic {
        GENERIC.get_or_init(|| Engine::new(Arc::new(CpuBackend::new())))
    } else {
        CPU.get_or_init(Engine::cpu)
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&[threshold, extra_shares, flags, capsules], rest)) = bytes.split_first_chunk()
    else {
        return;
    };
    let threshold = 1 + usize::from(threshold % 2);
    let shares = threshold + usize::from(extra_shares % 2);
    let sign_dk = flags & 1 != 0;
    let sign_rk = flags & 2 != 0;
    let generic = flags & 4 != 0;
    let capsules = 1 + usize::from(capsules) % MAX_CAPSULES;
    let mut seed = [0u8; 32];
    let seed_len = rest.len().min(32);
    seed[..seed_len].copy_from_slice(&rest[..seed_len]);
    let plaintext = &rest[seed_len..];
    let mut rng = ChaCha20Rng::from_seed(seed);

    // The policy and the capsules, made by umbral-pre.
    let alice = umbral_pre::SecretKey::random_with_rng(&mut rng);
    let bob = umbral_pre::SecretKey::random_with_rng(&mut rng);
    let signer = umbral_pre::Signer::new(umbral_pre::SecretKey::random_with_rng(&mut rng));
    let kfrags = umbral_pre::generate_kfrags_with_rng(
        &mut rng,
        &alice,
        &bob.public_key(),
        &signer,
        threshold,
        shares,
        sign_dk,
        sign_rk,
    );
    let keys = [alice.public_key(), bob.public_key(), signer.verifying_key()]
        .map(|pk| pk.to_compressed_bytes().into_vec());
    let encrypted: Vec<(umbral_pre::Capsule, Vec<u8>, &[u8])> = (0..capsules)
        .map(|i| {
            // Each capsule gets a different slice of the plaintext.
            let part = &plaintext[plaintext.len() * i / capsules..];
            let (capsule, ciphertext) =
                umbral_pre::encrypt_with_rng(&mut rng, &alice.public_key(), part)
                    .expect("umbral-pre encrypts");
            (capsule, ciphertext.into_vec(), part)
        })
        .collect();
    let capsule_bytes: Vec<Vec<u8>> = encrypted
        .iter()
        .map(|(c, _, _)| c.to_bytes().expect("capsule bytes").into_vec())
        .collect();

    // umbrald: verify every kfrag, re-encrypt every capsule with every kfrag in one batch.
    let engine = engine(generic);
    let verified: Vec<_> = kfrags
        .iter()
        .map(|kfrag| {
            let bytes = kfrag.to_bytes().expect("kfrag bytes");
            engine
                .verify_policy(&bytes, &keys[0], &keys[1], &keys[2])
                .expect("umbrald verifies umbral-pre's kfrag")
        })
        .collect();
    let items: Vec<ReencryptItem<'_>> = capsule_bytes
        .iter()
        .flat_map(|capsule| {
            verified.iter().map(move |kfrag| ReencryptItem {
                capsule,
                kfrag: kfrag.as_ref(),
            })
        })
        .collect();
    let results = engine.reencrypt_batch(&items);
    assert_eq!(results.len(), items.len());

    // umbral-pre: verify every cfrag, decrypt each capsule from a threshold of them.
    let alice_pk = alice.public_key();
    let bob_pk = bob.public_key();
    let verifying_pk = signer.verifying_key();
    for (c, (capsule, ciphertext, part)) in encrypted.iter().enumerate() {
        let cfrags: Vec<umbral_pre::VerifiedCapsuleFrag> = results[c * shares..(c + 1) * shares]
            .iter()
            .map(|result| {
                let cfrag = result
                    .as_ref()
                    .expect("umbrald re-encrypts a valid capsule");
                let cfrag = umbral_pre::CapsuleFrag::from_bytes(&cfrag.to_bytes())
                    .expect("umbral-pre parses umbrald's cfrag");
                cfrag
                    .verify(capsule, &verifying_pk, &alice_pk, &bob_pk)
                    .map_err(|(e, _)| e)
                    .expect("umbral-pre verifies umbrald's cfrag")
            })
            .collect();
        // A threshold from the end, so that every kfrag's cfrags are used across inputs.
        let chosen = cfrags.into_iter().rev().take(threshold);
        let decrypted =
            umbral_pre::decrypt_reencrypted(&bob, &alice_pk, capsule, chosen, ciphertext)
                .expect("umbral-pre decrypts with umbrald's cfrags");
        assert_eq!(&decrypted[..], *part);
    }
});
