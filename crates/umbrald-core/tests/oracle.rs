//! umbral-pre 0.11 is the oracle: cfrags from the engine must verify and decrypt under it, and
//! the codec must re-emit umbral-pre's bytes exactly.

mod common;

use common::{capsule_bytes, fixture, fixture_json, public_key, secret_key, Policy};
use proptest::prelude::*;
use umbral_pre::DefaultDeserialize;
use umbrald_core::backend::CpuBackend;
use umbrald_core::{Capsule, CapsuleFrag, Engine, ItemError, KeyFrag, ReencryptItem};

/// The CPU engine (small batches share tables between checks and products) or the generic
/// path an engine takes on any other backend, here with the CPU backend behind the trait.
fn engine_of(host_only: bool) -> Engine {
    if host_only {
        Engine::cpu()
    } else {
        Engine::new(std::sync::Arc::new(CpuBackend::new()))
    }
}

#[test]
fn golden_objects_round_trip_byte_for_byte() {
    for (name, len) in [
        ("capsule.msgpack", 105),
        ("kfrag0.msgpack", 310),
        ("cfrag0.msgpack", 381),
    ] {
        let bytes = fixture(name);
        assert_eq!(bytes.len(), len, "{name}");
        let reencoded = match name {
            "capsule.msgpack" => Capsule::from_bytes(&bytes).expect(name).to_bytes().to_vec(),
            "kfrag0.msgpack" => KeyFrag::from_bytes(&bytes).expect(name).to_bytes().to_vec(),
            _ => CapsuleFrag::from_bytes(&bytes)
                .expect(name)
                .to_bytes()
                .to_vec(),
        };
        assert_eq!(reencoded, bytes, "{name}");
    }
    let keys = fixture_json("keys.json");
    for hex_cfrag in keys["cfrags_from_kfrags_0_1_2"].as_array().expect("cfrags") {
        let bytes = hex::decode(hex_cfrag.as_str().expect("hex")).expect("hex");
        assert_eq!(
            CapsuleFrag::from_bytes(&bytes)
                .expect("cfrag")
                .to_bytes()
                .to_vec(),
            bytes
        );
    }
}

/// umbral-pre's own cfrags, cut to their capsule-specific parts and completed from the kfrags
/// they were made with, come back byte for byte (the compact response form, `compact_cfrags`).
#[test]
fn golden_cfrags_rebuild_from_their_parts_and_kfrags() {
    let keys = fixture_json("keys.json");
    let kfrags = keys["kfrags"].as_array().expect("kfrags");
    let cfrags = keys["cfrags_from_kfrags_0_1_2"].as_array().expect("cfrags");
    for (i, hex_cfrag) in cfrags.iter().enumerate() {
        let bytes = hex::decode(hex_cfrag.as_str().expect("hex")).expect("hex");
        let kfrag_bytes = hex::decode(kfrags[i].as_str().expect("hex")).expect("hex");
        let kfrag = KeyFrag::from_bytes(&kfrag_bytes).expect("kfrag");
        let parts = CapsuleFrag::from_bytes(&bytes).expect("cfrag").to_parts();
        let rebuilt = CapsuleFrag::from_parts(&parts, &kfrag).expect("parts");
        assert_eq!(rebuilt.to_bytes().to_vec(), bytes, "cfrag {i}");
        // With another kfrag the cfrag is a different one (its id and proof fields).
        let other =
            hex::decode(kfrags[(i + 1) % kfrags.len()].as_str().expect("hex")).expect("hex");
        let other = KeyFrag::from_bytes(&other).expect("kfrag");
        let wrong = CapsuleFrag::from_parts(&parts, &other).expect("parts");
        assert_ne!(
            wrong.to_bytes().to_vec(),
            bytes,
            "cfrag {i} with another kfrag"
        );
        assert!(CapsuleFrag::from_parts(&parts[1..], &kfrag).is_err());
    }
}

#[test]
fn golden_capsule_reencrypts_and_decrypts_with_umbral_pre() {
    let keys = fixture_json("keys.json");
    let hex = |k: &str| keys[k].as_str().expect(k).to_owned();
    let alice_pk = public_key(&hex("alice_pk"));
    let bob_sk = secret_key(&hex("bob_sk"));
    let verifying_pk = public_key(&hex("verifying_pk"));
    let capsule_bytes = fixture("capsule.msgpack");
    let capsule = umbral_pre::Capsule::from_bytes(&capsule_bytes).expect("capsule");
    let engine = Engine::cpu();
    let mut cfrags = Vec::new();
    for hex_kfrag in keys["kfrags"].as_array().expect("kfrags").iter().take(3) {
        let kfrag = hex::decode(hex_kfrag.as_str().expect("hex")).expect("hex");
        let verified = engine
            .verify_policy(
                &kfrag,
                &hex::decode(hex("alice_pk")).expect("hex"),
                &hex::decode(hex("bob_pk")).expect("hex"),
                &hex::decode(hex("verifying_pk")).expect("hex"),
            )
            .expect("golden kfrag verifies");
        let cfrag = engine
            .reencrypt(&capsule_bytes, &verified)
            .expect("reencrypt");
        let parsed = umbral_pre::CapsuleFrag::from_bytes(&cfrag.to_bytes()).expect("parse");
        let verified_cfrag = parsed
            .verify(&capsule, &verifying_pk, &alice_pk, &bob_sk.public_key())
            .map_err(|(e, _)| e)
            .expect("umbral-pre verifies umbrald's cfrag");
        cfrags.push(verified_cfrag);
    }
    let plaintext = umbral_pre::decrypt_reencrypted(
        &bob_sk,
        &alice_pk,
        &capsule,
        cfrags,
        fixture("ciphertext.bin"),
    )
    .expect("decrypt");
    assert_eq!(hex::encode(plaintext), hex("plaintext"));
}

#[test]
fn mixed_batch_keeps_order_and_isolates_bad_items() {
    let policy = Policy::new(2, 3);
    let engine = Engine::cpu();
    let kfrag = policy.verified(&engine, 0);
    let encrypted: Vec<_> = (0..6)
        .map(|i| policy.encrypt(format!("msg {i}").as_bytes()))
        .collect();
    let mut capsules: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
    // Item 1: s tampered (equation fails). Item 3: truncated. Item 4: identity point for E.
    capsules[1][104] ^= 1;
    capsules[3].truncate(50);
    let mut identity = vec![0x93, 0xc4, 0x01, 0x00];
    identity.extend_from_slice(&capsules[4][36..]);
    capsules[4] = identity;
    let items: Vec<ReencryptItem<'_>> = capsules
        .iter()
        .map(|c| ReencryptItem {
            capsule: c,
            kfrag: &kfrag,
        })
        .collect();
    let results = engine.reencrypt_batch(&items);
    assert_eq!(results.len(), 6);
    assert_eq!(results[1], Err(ItemError::CapsuleCheckFailed));
    assert!(
        matches!(results[3], Err(ItemError::InvalidCapsule(_))),
        "{:?}",
        results[3]
    );
    assert!(
        matches!(results[4], Err(ItemError::InvalidCapsule(_))),
        "{:?}",
        results[4]
    );
    for i in [0, 2, 5] {
        let cfrag = results[i].as_ref().expect("good item");
        policy.check_cfrag(&encrypted[i].0, &cfrag.to_bytes());
    }
}

#[test]
fn tampered_kfrags_are_rejected_with_the_right_error() {
    let policy = Policy::new(1, 1);
    let other = Policy::new(1, 1);
    let engine = Engine::cpu();
    let [d, r, v] = policy.keys();
    let kfrag = policy.kfrag_bytes(0);
    // Signed by someone else.
    let [_, _, wrong_v] = other.keys();
    let err = engine
        .verify_policy(&kfrag, &d, &r, &wrong_v)
        .expect_err("wrong signer");
    assert_eq!(
        err.code(),
        umbrald_proto::ErrorCode::KfragVerificationFailed
    );
    // Wrong receiving key.
    let [_, wrong_r, _] = other.keys();
    let err = engine
        .verify_policy(&kfrag, &d, &wrong_r, &v)
        .expect_err("wrong receiver");
    assert_eq!(
        err.code(),
        umbrald_proto::ErrorCode::KfragVerificationFailed
    );
    // Key share changed: commitment no longer matches.
    let mut tampered = kfrag.clone();
    tampered[75] ^= 1; // inside the key share (bytes 73..105)
    let err = engine
        .verify_policy(&tampered, &d, &r, &v)
        .expect_err("tampered key");
    assert!(matches!(err, ItemError::KfragVerification(_)), "{err:?}");
    // A flipped signature byte.
    let mut tampered = kfrag.clone();
    tampered[200] ^= 1;
    assert!(engine.verify_policy(&tampered, &d, &r, &v).is_err());
    // Bad key bytes.
    let err = engine
        .verify_policy(&kfrag, &d[..32], &r, &v)
        .expect_err("short key");
    assert_eq!(err.code(), umbrald_proto::ErrorCode::InvalidKfrag);
}

#[test]
fn kfrags_without_key_signatures_verify_too() {
    for (dk, rk) in [(false, false), (true, false), (false, true)] {
        let policy = Policy::with_flags(1, 1, dk, rk);
        let engine = Engine::cpu();
        let kfrag = policy.verified(&engine, 0);
        let (capsule, ct) = policy.encrypt(b"flags");
        let cfrag = engine
            .reencrypt(&capsule_bytes(&capsule), &kfrag)
            .expect("reencrypt");
        let verified = policy.check_cfrag(&capsule, &cfrag.to_bytes());
        assert_eq!(policy.decrypt(&capsule, vec![verified], &ct), b"flags");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Random keys, thresholds and batch sizes: every cfrag verifies under umbral-pre and any m
    /// of them decrypt.
    #[test]
    fn random_policies_and_batches_match_umbral_pre(
        threshold in 1usize..4,
        extra_shares in 0usize..2,
        batch in 1usize..24,
        seed in any::<u64>(),
        host_only in any::<bool>(),
    ) {
        let shares = threshold + extra_shares;
        let policy = Policy::new(threshold, shares);
        let engine = engine_of(host_only);
        let kfrags: Vec<_> = (0..shares).map(|i| policy.verified(&engine, i)).collect();
        let messages: Vec<Vec<u8>> =
            (0..batch).map(|i| format!("{seed}:{i}").into_bytes()).collect();
        let encrypted: Vec<_> = messages.iter().map(|m| policy.encrypt(m)).collect();
        let capsules: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
        // One batch per kfrag, each holding every capsule.
        let per_kfrag: Vec<Vec<CapsuleFrag>> = kfrags
            .iter()
            .map(|k| {
                let items: Vec<_> =
                    capsules.iter().map(|c| ReencryptItem { capsule: c, kfrag: k }).collect();
                engine
                    .reencrypt_batch(&items)
                    .into_iter()
                    .map(|r| r.expect("valid capsule re-encrypts"))
                    .collect()
            })
            .collect();
        // The compact form rebuilds every cfrag exactly from its kfrag.
        for (kfrag, cfrags) in kfrags.iter().zip(&per_kfrag) {
            for cfrag in cfrags {
                let rebuilt = CapsuleFrag::from_parts(&cfrag.to_parts(), kfrag.kfrag());
                prop_assert_eq!(rebuilt.as_ref(), Ok(cfrag));
            }
        }
        for (i, (capsule, ct)) in encrypted.iter().enumerate() {
            let start = (seed as usize + i) % shares;
            let chosen: Vec<_> = (0..threshold)
                .map(|j| policy.check_cfrag(capsule, &per_kfrag[(start + j) % shares][i].to_bytes()))
                .collect();
            prop_assert_eq!(&policy.decrypt(capsule, chosen, ct), &messages[i]);
        }
    }

    /// A batch mixing items of different policies re-encrypts each with its own kfrag.
    #[test]
    fn batches_mixing_policies(batch in 2usize..12) {
        let engine = Engine::cpu();
        let policies: Vec<Policy> = (0..3).map(|_| Policy::new(1, 1)).collect();
        let kfrags: Vec<_> = policies.iter().map(|p| p.verified(&engine, 0)).collect();
        let encrypted: Vec<_> = (0..batch).map(|i| policies[i % 3].encrypt(b"mixed")).collect();
        let capsules: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
        let items: Vec<_> = capsules
            .iter()
            .enumerate()
            .map(|(i, c)| ReencryptItem { capsule: c, kfrag: &kfrags[i % 3] })
            .collect();
        for (i, result) in engine.reencrypt_batch(&items).into_iter().enumerate() {
            let policy = &policies[i % 3];
            let cfrag = policy.check_cfrag(&encrypted[i].0, &result.expect("ok").to_bytes());
            prop_assert_eq!(policy.decrypt(&encrypted[i].0, vec![cfrag], &encrypted[i].1), b"mixed".to_vec());
        }
    }
}

#[test]
fn small_batch_checks_each_capsule_alone() {
    // Fewer capsules than the combined check needs: each equation is checked on its own, on
    // both small-batch paths, with the bad capsule at every position.
    let policy = Policy::new(2, 3);
    for host_only in [true, false] {
        let engine = engine_of(host_only);
        let kfrag = policy.verified(&engine, 1);
        for size in 1..=3u8 {
            for bad in 0..size as usize {
                let encrypted: Vec<_> = (0..size).map(|i| policy.encrypt(&[i; 7])).collect();
                let mut capsules: Vec<Vec<u8>> =
                    encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
                capsules[bad][104] ^= 1;
                let items: Vec<ReencryptItem<'_>> = capsules
                    .iter()
                    .map(|c| ReencryptItem {
                        capsule: c,
                        kfrag: &kfrag,
                    })
                    .collect();
                let results = engine.reencrypt_batch(&items);
                for (i, result) in results.iter().enumerate() {
                    if i == bad {
                        assert_eq!(result, &Err(ItemError::CapsuleCheckFailed));
                    } else {
                        let cfrag = result.as_ref().expect("good item");
                        policy.check_cfrag(&encrypted[i].0, &cfrag.to_bytes());
                    }
                }
            }
        }
    }
}
