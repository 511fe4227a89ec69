//! umbrald's umbral-pre 0.11 codecs on any bytes: capsule (whole, and in parts as a device
//! batch takes them), kfrag (parsed, verified against the fixture policy's keys, and by its
//! commitment alone), cfrag (whole, and rebuilt from its parts), public key, and node secret
//! keys (a 64-byte input: decrypting and signing key).
//!
//! Checks: no panic; whatever parses re-encodes to exactly the input; the two capsule paths
//! agree; a cfrag rebuilt from its parts and its own kfrag fields is the same cfrag.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use umbrald_core::codec::CapsuleParts;
use umbrald_core::{Capsule, CapsuleFrag, KeyFrag, PublicKey};
use umbrald_fuzz::{policy_keys, PolicyKeys};

struct Keys {
    delegating: PublicKey,
    receiving: PublicKey,
    verifying: PublicKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let PolicyKeys {
            delegating,
            receiving,
            verifying,
        } = policy_keys();
        let key = |bytes: Vec<u8>| PublicKey::from_bytes(&bytes).expect("fixture key");
        Keys {
            delegating: key(delegating),
            receiving: key(receiving),
            verifying: key(verifying),
        }
    })
}

fn fixture_kfrag() -> &'static KeyFrag {
    static KFRAG: OnceLock<KeyFrag> = OnceLock::new();
    KFRAG.get_or_init(|| KeyFrag::from_bytes(umbrald_fuzz::KFRAG).expect("fixture kfrag"))
}

fuzz_target!(|bytes: &[u8]| {
    // Capsule, whole and in parts.
    let whole = Capsule::from_bytes(bytes);
    match CapsuleParts::from_bytes(bytes) {
        Ok(parts) => {
            let [e, v] = parts.points().map(|p| p.decompress_vartime());
            let finished = parts.finish(e, v);
            assert_eq!(finished, whole);
        }
        Err(e) => assert_eq!(whole, Err(e)),
    }
    if let Ok(capsule) = &whole {
        assert_eq!(&capsule.to_bytes()[..], bytes);
        let _ = capsule.check_vartime();
    }

    // KeyFrag: parse, verify against the fixture's keys, and by its commitment alone.
    if let Ok(kfrag) = KeyFrag::from_bytes(bytes) {
        assert_eq!(&kfrag.to_bytes()[..], bytes);
        let k = keys();
        if let Ok(verified) = kfrag
            .clone()
            .verify(&k.verifying, &k.delegating, &k.receiving)
        {
            assert_eq!(&verified.kfrag().to_bytes()[..], bytes);
        }
        if let Ok(verified) = kfrag.verify_commitment() {
            assert_eq!(&verified.kfrag().to_bytes()[..], bytes);
        }
    }

    // CapsuleFrag, whole and from its parts (with a kfrag made of the cfrag's own fields
    // where one parses: the fixture kfrag with the cfrag's id, precursor, commitment and
    // signature spliced in).
    if let Ok(cfrag) = CapsuleFrag::from_bytes(bytes) {
        assert_eq!(&cfrag.to_bytes()[..], bytes);
        let parts = cfrag.to_parts();
        let mut kfrag_bytes = umbrald_fuzz::KFRAG.to_vec();
        splice_kfrag_fields(&mut kfrag_bytes, &cfrag);
        if let Ok(kfrag) = KeyFrag::from_bytes(&kfrag_bytes) {
            let rebuilt =
                CapsuleFrag::from_parts(&parts, &kfrag).expect("parts of the right length");
            assert_eq!(rebuilt, cfrag);
        }
    }
    if let Ok(cfrag) = CapsuleFrag::from_parts(bytes, fixture_kfrag()) {
        assert_eq!(cfrag.to_parts()[..], bytes[..]);
    }

    // Public key (33-byte SEC1 compressed).
    if let Ok(pk) = PublicKey::from_bytes(bytes) {
        assert_eq!(&pk.as_bytes()[..], bytes);
    }

    // Node secret keys (two 32-byte big-endian scalars).
    if bytes.len() == 64 {
        let decrypting: [u8; 32] = bytes[..32].try_into().expect("32 bytes");
        let signing: [u8; 32] = bytes[32..].try_into().expect("32 bytes");
        if let Ok(node) = umbrald_nucypher::NodeKeys::from_be_bytes(&decrypting, &signing) {
            let secret = node.secret_bytes();
            assert_eq!(&secret[..32], &decrypting[..]);
            assert_eq!(&secret[32..], &signing[..]);
            PublicKey::from_bytes(node.decrypting_public_key()).expect("a valid public key");
            PublicKey::from_bytes(node.verifying_public_key()).expect("a valid public key");
        }
    }
});

/// Copies the cfrag's kfrag-derived fields (id, precursor, commitment, signature for the
/// receiver) into the fixture kfrag's encoding, at the fixture's field offsets.
fn splice_kfrag_fields(kfrag: &mut [u8], cfrag: &CapsuleFrag) {
    // Offsets of the payloads in umbral-pre's 310-byte kfrag encoding:
    // 95 91 c4 21 [U:33] | c4 20 [id:32] | c4 20 [key:32] | c4 21 [precursor:33] |
    // 95 c4 21 [commitment:33] | c4 40 [sig_proxy:64] | c4 40 [sig_receiver:64] | c3 | c3
    const ID: usize = 4 + 33 + 2;
    const PRECURSOR: usize = ID + 32 + 2 + 32 + 2;
    const COMMITMENT: usize = PRECURSOR + 33 + 3;
    const SIG_RECEIVER: usize = COMMITMENT + 33 + 2 + 64 + 2;
    kfrag[ID..ID + 32].copy_from_slice(&cfrag.kfrag_id);
    kfrag[PRECURSOR..PRECURSOR + 33].copy_from_slice(&cfrag.precursor);
    kfrag[COMMITMENT..COMMITMENT + 33].copy_from_slice(&cfrag.u1);
    kfrag[SIG_RECEIVER..SIG_RECEIVER + 64].copy_from_slice(&cfrag.kfrag_signature);
}
