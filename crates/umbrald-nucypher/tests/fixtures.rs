//! The golden nucypher-core 0.16 / umbral-pre 0.11 messages in `tests/fixtures` (made with the
//! official Python wheels): parsing, kfrag decryption and authentication, the response
//! signature, and the exact errors for tampered requests.

use umbral_pre::DefaultDeserialize;
use umbrald_core::{Engine, ReencryptItem};
use umbrald_nucypher::{
    is_reencryption_request, NodeKeys, NucypherError, ReencryptionRequest, ReencryptionResponse,
};
use umbrald_proto::ErrorCode;

const REQUEST: &[u8] = include_bytes!("fixtures/reencryption_request.bin");
const RESPONSE: &[u8] = include_bytes!("fixtures/reencryption_response.bin");
const KEYS: &str = include_str!("fixtures/exchange_keys.json");

fn key(name: &str) -> Vec<u8> {
    let keys: serde_json::Value = serde_json::from_str(KEYS).expect("json");
    hex::decode(keys[name].as_str().expect("key present")).expect("hex")
}

fn key32(name: &str) -> [u8; 32] {
    key(name).try_into().expect("32 bytes")
}

/// The fixture's node, with a fresh signing key (the fixture does not include Ursula's).
fn node() -> NodeKeys {
    let signing = *NodeKeys::random().secret_bytes();
    let signing: [u8; 32] = signing[32..].try_into().expect("32");
    NodeKeys::from_be_bytes(&key32("ursula_decrypting_sk"), &signing).expect("keys")
}

fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    assert!(
        bytes[at + 1..].windows(from.len()).all(|w| w != from),
        "pattern unique"
    );
    let mut out = bytes.to_vec();
    out[at..at + from.len()].copy_from_slice(to);
    out
}

fn authorize_err(bytes: &[u8], node: &NodeKeys) -> NucypherError {
    let parsed = match ReencryptionRequest::parse(bytes) {
        Ok(req) => req,
        Err(e) => return e,
    };
    node.authorize(&parsed).expect_err("must fail")
}

#[test]
fn request_parses_with_every_field() {
    assert!(is_reencryption_request(REQUEST));
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    assert_eq!(req.capsules.len(), 2);
    assert!(req.capsules.iter().all(|c| c.len() == 105));
    assert_eq!(req.hrac.to_vec(), key("hrac"));
    assert_eq!(
        req.publisher_verifying_key.to_vec(),
        key("publisher_verifying_pk")
    );
    assert_eq!(req.bob_verifying_key.to_vec(), key("bob_verifying_pk"));
    // What nucypher's client sends when no capsule has conditions.
    assert_eq!(req.conditions, Some("[null, null]"));
    assert_eq!(req.context, Some("{}"));
    req.check_no_conditions().expect("no real conditions");
}

#[test]
fn kfrag_decrypts_and_the_publisher_signature_verifies() {
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let kfrag = node().authorize(&req).expect("authorized");
    // The kfrag is a real one for this policy: cfrags made with it verify under the policy's
    // keys with umbral-pre itself.
    let engine = Engine::cpu();
    let items: Vec<_> = req
        .capsules
        .iter()
        .map(|c| ReencryptItem {
            capsule: c,
            kfrag: &kfrag,
        })
        .collect();
    let publisher =
        umbral_pre::PublicKey::try_from_compressed_bytes(&key("publisher_verifying_pk"))
            .expect("pk");
    let policy = umbral_pre::PublicKey::try_from_compressed_bytes(&key("policy_pk")).expect("pk");
    let bob = umbral_pre::PublicKey::try_from_compressed_bytes(&key("bob_pk")).expect("pk");
    for (capsule, cfrag) in req.capsules.iter().zip(engine.reencrypt_batch(&items)) {
        let cfrag = cfrag.expect("re-encrypted").to_bytes();
        let cfrag = umbral_pre::CapsuleFrag::from_bytes(&cfrag).expect("umbral parses");
        let capsule = umbral_pre::Capsule::from_bytes(capsule).expect("capsule");
        cfrag
            .verify(&capsule, &publisher, &policy, &bob)
            .map_err(|(e, _)| e)
            .expect("cfrag verifies under the policy keys");
    }
}

#[test]
fn the_golden_response_verifies_with_our_signed_message() {
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let resp = ReencryptionResponse::parse(RESPONSE).expect("parses");
    assert_eq!(resp.cfrags.len(), 2);
    assert!(resp.verify_signature(&req.capsules, &key("ursula_verifying_pk")));
    assert!(!resp.verify_signature(&req.capsules[..1], &key("ursula_verifying_pk")));
    assert!(!resp.verify_signature(&req.capsules, &key("publisher_verifying_pk")));
}

#[test]
fn our_response_is_byte_compatible_and_verifies() {
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let golden = ReencryptionResponse::parse(RESPONSE).expect("parses");
    let node = node();
    // Signing the golden cfrags gives the golden bytes except for the signature.
    let ours = node.sign_response(&req.capsules, &golden.cfrags);
    assert_eq!(ours.len(), RESPONSE.len());
    assert_eq!(ours[..ours.len() - 64], RESPONSE[..RESPONSE.len() - 64]);
    let parsed = ReencryptionResponse::parse(&ours).expect("parses");
    assert!(parsed.verify_signature(&req.capsules, node.verifying_public_key()));
    // And umbral-pre agrees on the signature.
    let sig = umbral_pre::Signature::try_from_be_bytes(&parsed.signature).expect("sig");
    let vk =
        umbral_pre::PublicKey::try_from_compressed_bytes(node.verifying_public_key()).expect("vk");
    let message = umbrald_nucypher::response_signed_message(&req.capsules, &golden.cfrags);
    assert!(sig.verify(&vk, &message));
}

#[test]
fn tampered_requests_get_exact_errors() {
    let node = node();
    let code = |e: &NucypherError| e.code();

    // Not our brand at all / too short.
    let e = ReencryptionRequest::parse(b"ReRq\x00").expect_err("short");
    assert!(matches!(e, NucypherError::Header { .. }));
    assert_eq!(code(&e), ErrorCode::Malformed);

    // Unknown major and minor versions.
    let mut v4 = REQUEST.to_vec();
    v4[5] = 4;
    let e = authorize_err(&v4, &node);
    assert_eq!(
        e,
        NucypherError::UnsupportedVersion {
            brand: "ReencryptionRequest",
            major: 4,
            minor: 0,
            supported: (3, 0)
        }
    );
    assert_eq!(code(&e), ErrorCode::UnsupportedVersion);
    assert_eq!(
        e.to_string(),
        "ReencryptionRequest version 4.0 is not supported; this server speaks ReencryptionRequest 3.0"
    );
    let mut minor = REQUEST.to_vec();
    minor[7] = 1;
    assert_eq!(
        code(&authorize_err(&minor, &node)),
        ErrorCode::UnsupportedVersion
    );

    // Truncated body.
    let e = authorize_err(&REQUEST[..REQUEST.len() - 3], &node);
    assert!(matches!(e, NucypherError::Malformed { .. }), "{e}");

    // A kfrag for another node.
    let e = authorize_err(REQUEST, &NodeKeys::random());
    assert_eq!(e, NucypherError::KfragNotForThisNode);
    assert_eq!(code(&e), ErrorCode::InvalidKfrag);

    // Another HRAC: the publisher's signature no longer verifies.
    let hrac = key("hrac");
    let mut other = hrac.clone();
    other[0] ^= 1;
    let e = authorize_err(&replace_once(REQUEST, &hrac, &other), &node);
    assert_eq!(e, NucypherError::PublisherSignature);
    assert_eq!(code(&e), ErrorCode::KfragVerificationFailed);

    // Another publisher key (a valid point): same.
    let publisher = key("publisher_verifying_pk");
    let e = authorize_err(
        &replace_once(REQUEST, &publisher, &key("bob_verifying_pk")),
        &node,
    );
    assert_eq!(e, NucypherError::PublisherSignature);

    // A publisher key that is not a point.
    let mut junk = publisher.clone();
    junk[0] = 0x07;
    let e = authorize_err(&replace_once(REQUEST, &publisher, &junk), &node);
    assert!(
        matches!(
            e,
            NucypherError::InvalidKey {
                which: "publisher verifying",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(code(&e), ErrorCode::InvalidKfrag);

    // Conditions that are real conditions.
    let e = authorize_err(
        &replace_once(REQUEST, b"[null, null]", b"[{\"x\":true}]"),
        &node,
    );
    assert_eq!(
        e,
        NucypherError::ConditionsUnsupported("[{\"x\":true}]".into())
    );
    assert_eq!(code(&e), ErrorCode::ConditionsUnsupported);
}

#[test]
fn altered_ciphertext_does_not_decrypt() {
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let ct = req.ekfrag_ciphertext;
    let mut altered = ct[..8].to_vec();
    altered[4] ^= 0x80;
    let bytes = replace_once(REQUEST, &ct[..8], &altered);
    assert_eq!(
        authorize_err(&bytes, &node()),
        NucypherError::KfragNotForThisNode
    );
}

#[test]
fn built_requests_round_trip_and_authorize() {
    // Re-encode the golden request's parts with our builder: same bytes except the
    // conditions and context (the builder sends none).
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let ekfrag = umbrald_nucypher::build::EncryptedKfrag {
        capsule: req.ekfrag_capsule.to_vec(),
        ciphertext: req.ekfrag_ciphertext.to_vec(),
    };
    let built = umbrald_nucypher::build::encode_request(
        &req.capsules,
        &req.hrac,
        &ekfrag,
        &req.publisher_verifying_key,
        &req.bob_verifying_key,
    );
    let tail = REQUEST.len() - 13 - 3; // "[null, null]" (0xac + 12) and "{}" (0xa2 + 2)
    assert_eq!(built[..tail], REQUEST[..tail]);
    assert_eq!(built.len(), tail + 2);
    node()
        .authorize(&ReencryptionRequest::parse(&built).expect("parses"))
        .expect("authorized");

    // A fresh kfrag encrypted to a fresh node.
    let node = NodeKeys::random();
    let publisher = umbral_pre::Signer::new(umbral_pre::SecretKey::random());
    let alice = umbral_pre::SecretKey::random();
    let bob = umbral_pre::SecretKey::random().public_key();
    let kfrag = umbral_pre::generate_kfrags(&alice, &bob, &publisher, 1, 1, false, false)[0]
        .clone()
        .unverify();
    let kfrag = umbral_pre::DefaultSerialize::to_bytes(&kfrag).expect("kfrag bytes");
    let node_pk =
        umbral_pre::PublicKey::try_from_compressed_bytes(node.decrypting_public_key()).expect("pk");
    let ekfrag = umbrald_nucypher::build::encrypt_kfrag(&publisher, &node_pk, &[7; 16], &kfrag)
        .expect("ekfrag");
    let publisher_vk: [u8; 33] = publisher.verifying_key().to_compressed_bytes()[..]
        .try_into()
        .expect("33");
    let bytes = umbrald_nucypher::build::encode_request(
        &req.capsules,
        &[7; 16],
        &ekfrag,
        &publisher_vk,
        &req.bob_verifying_key,
    );
    let parsed = ReencryptionRequest::parse(&bytes).expect("parses");
    assert_eq!(parsed.conditions, None);
    node.authorize(&parsed).expect("authorized");
}

/// The per-request fixed cost, measured: `authorize` (kfrag decryption and signature checks)
/// and signing a 64-capsule response.
/// Run: `cargo test --release -p umbrald-nucypher --test fixtures -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check; run it explicitly"]
fn fixed_cost_per_request() {
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let node = node();
    let runs = 200;
    let started = std::time::Instant::now();
    for _ in 0..runs {
        node.authorize(&req).expect("authorized");
    }
    let authorize = started.elapsed() / runs;
    let golden = ReencryptionResponse::parse(RESPONSE).expect("parses");
    let capsules: Vec<&[u8]> = (0..64).map(|i| req.capsules[i % 2]).collect();
    let cfrags: Vec<&[u8]> = (0..64).map(|i| golden.cfrags[i % 2]).collect();
    let started = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(node.sign_response(&capsules, &cfrags));
    }
    let sign = started.elapsed() / runs;
    println!("authorize {authorize:?} per request; sign a 64-capsule response {sign:?}");
}

#[test]
fn a_bad_encrypted_kfrag_capsule_is_invalid_kfrag() {
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let capsule = req.ekfrag_capsule;
    // Flip the last byte of the capsule's scalar: it parses but fails its equation.
    let mut bad = capsule.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let e = authorize_err(&replace_once(REQUEST, capsule, &bad), &node());
    assert!(matches!(e, NucypherError::InvalidEncryptedKfrag(_)), "{e}");
    assert_eq!(e.code(), ErrorCode::InvalidKfrag);
    // The identity point, which umbral-pre would accept and then panic on.
    let mut identity = capsule.to_vec();
    identity[3..36].fill(0);
    let e = authorize_err(&replace_once(REQUEST, capsule, &identity), &node());
    assert!(matches!(e, NucypherError::InvalidEncryptedKfrag(_)), "{e}");
}
