//! Differential: umbrald's capsule, kfrag, cfrag, public-key and secret-key parsers against
//! umbral-pre 0.11's, on the same bytes (a 32-byte input is also a secret key).
//!
//! umbrald accepts exactly the canonical encodings umbral-pre accepts: whatever umbrald parses,
//! umbral-pre parses and re-serializes to the same bytes, and whatever umbral-pre parses and
//! re-serializes to the input, umbrald parses. umbral-pre also takes non-canonical forms
//! (uncompressed points, `str8`/`bin16`/`bin32` byte fields, trailing bytes) and re-encodes
//! them differently; umbrald refuses those. Where umbral-pre panics, umbrald must refuse.
//! Two checks umbral-pre makes elsewhere are accounted for: a capsule's equation (umbral-pre
//! checks it when parsing, umbrald when re-encrypting) and a kfrag's signature for the
//! receiver (umbral-pre checks it on each cfrag, umbrald when verifying the kfrag).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use umbrald_core::codec::KfragVerificationError;
use umbrald_core::{Capsule, CapsuleFrag, CodecError, KeyFrag, PublicKey};
use umbrald_fuzz::{policy_keys, umbral_pre_decode, umbral_pre_secret_key, Oracle};

struct Keys {
    ours: [PublicKey; 3],
    theirs: [umbral_pre::PublicKey; 3],
}

/// The fixture policy's keys (verifying, delegating, receiving) in both libraries' types.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let k = policy_keys();
        let all = [k.verifying, k.delegating, k.receiving];
        Keys {
            ours: all
                .clone()
                .map(|b| PublicKey::from_bytes(&b).expect("fixture key")),
            theirs: all.map(|b| {
                umbral_pre::PublicKey::try_from_compressed_bytes(&b).expect("fixture key")
            }),
        }
    })
}

fuzz_target!(|bytes: &[u8]| {
    capsule(bytes);
    kfrag(bytes);
    cfrag(bytes);
    public_key(bytes);
    if let Ok(secret) = bytes.try_into() {
        secret_key(secret);
    }
});

fn capsule(bytes: &[u8]) {
    let theirs = umbral_pre_decode::<umbral_pre::Capsule>(bytes);
    let ours = Capsule::from_bytes(bytes);
    if let Ok(capsule) = &ours {
        assert_eq!(
            &capsule.to_bytes()[..],
            bytes,
            "umbrald re-encodes a capsule differently"
        );
    }
    assert!(
        !(theirs.panicked() && ours.is_ok()),
        "umbral-pre panics on a capsule umbrald accepts"
    );
    // umbral-pre's parse includes the capsule's equation.
    let ours_complete = ours.as_ref().is_ok_and(Capsule::check_vartime);
    assert_eq!(
        ours_complete,
        theirs.accepts_canonically(bytes),
        "capsule: umbrald {ours:?}, umbral-pre {}",
        theirs.describe()
    );
}

fn kfrag(bytes: &[u8]) {
    let theirs = umbral_pre_decode::<umbral_pre::KeyFrag>(bytes);
    let ours = KeyFrag::from_bytes(bytes);
    if let Ok(kfrag) = &ours {
        assert_eq!(
            &kfrag.to_bytes()[..],
            bytes,
            "umbrald re-encodes a kfrag differently"
        );
    }
    // umbral-pre takes any point as the kfrag's parameter `U` (and then checks the commitment
    // against it); umbrald accepts only Umbral's standard `U`.
    let other_parameters = matches!(ours, Err(CodecError::WrongParameters));
    assert!(
        ours.is_ok() == theirs.accepts_canonically(bytes)
            || (other_parameters && theirs.accepts_canonically(bytes)),
        "kfrag: umbrald {:?}, umbral-pre {}",
        ours.as_ref().err(),
        theirs.describe()
    );
    // Verified: against the fixture policy's keys.
    let (Ok(ours), Oracle::Accepted(theirs, _)) = (ours, theirs) else {
        return;
    };
    let k = keys();
    let ours = ours.verify(&k.ours[0], &k.ours[1], &k.ours[2]);
    let theirs = umbrald_fuzz::no_panic(|| {
        theirs
            .verify(&k.theirs[0], Some(&k.theirs[1]), Some(&k.theirs[2]))
            .is_ok()
    })
    .expect("umbral-pre panics verifying a kfrag umbrald parsed");
    match ours {
        Ok(_) => assert!(theirs, "umbrald verifies a kfrag umbral-pre refuses"),
        Err(KfragVerificationError::IncorrectReceiverSignature) => {}
        Err(e) => assert!(
            !theirs,
            "umbral-pre verifies a kfrag umbrald refuses: {e:?}"
        ),
    }
}

fn cfrag(bytes: &[u8]) {
    let theirs = umbral_pre_decode::<umbral_pre::CapsuleFrag>(bytes);
    let ours = CapsuleFrag::from_bytes(bytes);
    if let Ok(cfrag) = &ours {
        assert_eq!(
            &cfrag.to_bytes()[..],
            bytes,
            "umbrald re-encodes a cfrag differently"
        );
    }
    assert_eq!(
        ours.is_ok(),
        theirs.accepts_canonically(bytes),
        "cfrag: umbrald {ours:?}, umbral-pre {}",
        theirs.describe()
    );
}

fn public_key(bytes: &[u8]) {
    let theirs = umbrald_fuzz::no_panic(|| {
        umbral_pre::PublicKey::try_from_compressed_bytes(bytes)
            .ok()
            .map(|pk| pk.to_compressed_bytes().into_vec())
    });
    let ours = PublicKey::from_bytes(bytes);
    let theirs_canonical = matches!(&theirs, Some(Some(b)) if b == bytes);
    assert!(
        theirs.is_some() || ours.is_err(),
        "umbral-pre panics on a public key umbrald accepts"
    );
    assert_eq!(
        ours.is_ok(),
        theirs_canonical,
        "public key: umbrald {ours:?}, umbral-pre {theirs:?}"
    );
    if let Ok(pk) = ours {
        assert_eq!(&pk.as_bytes()[..], bytes);
    }
}

fn secret_key(bytes: &[u8; 32]) {
    let theirs = umbrald_fuzz::no_panic(|| umbral_pre_secret_key(bytes))
        .expect("umbral-pre panics on a secret key");
    let ours = umbrald_nucypher::NodeKeys::from_be_bytes(bytes, bytes);
    assert_eq!(
        ours.is_ok(),
        theirs.is_some(),
        "secret key: umbrald {:?}",
        ours.as_ref().err()
    );
    if let (Ok(ours), Some(theirs)) = (ours, theirs) {
        let theirs_pk = theirs.public_key().to_compressed_bytes();
        assert_eq!(&ours.decrypting_public_key()[..], &theirs_pk[..]);
    }
}
