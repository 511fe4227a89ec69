//! The NuCypher `ReencryptionRequest` parser and the encrypted-kfrag path behind it: the
//! conditions check, the keys, the kfrag's decryption with the node's key, the
//! `AuthorizedKeyFrag` parser, the publisher's signature and the kfrag's commitment.
//!
//! Input: a mode byte, then a whole request (mode 0) or the plaintext of the encrypted kfrag
//! (any other mode; the target seals it to the node inside a request like the fixture's).
//! Checks: no panic; every refusal maps to a client error code; a request that authorizes
//! yields a kfrag whose cfrags for the request's valid capsules parse and sign into a
//! response that parses and verifies.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use umbrald_core::{CapsuleFrag, Engine};
use umbrald_nucypher::{NodeKeys, ReencryptionRequest, ReencryptionResponse};
use umbrald_proto::ErrorCode;

fn node() -> &'static NodeKeys {
    static NODE: OnceLock<NodeKeys> = OnceLock::new();
    NODE.get_or_init(umbrald_fuzz::node_keys)
}

fuzz_target!(|input: &[u8]| {
    let node = node();
    let Some(bytes) = umbrald_fuzz::nucypher_request_bytes(node, input) else {
        return;
    };
    let request = match ReencryptionRequest::parse(&bytes) {
        Ok(request) => request,
        Err(e) => {
            assert!(matches!(
                e.code(),
                ErrorCode::Malformed | ErrorCode::UnsupportedVersion
            ));
            return;
        }
    };
    let kfrag = match node.authorize(&request) {
        Ok(kfrag) => kfrag,
        Err(e) => {
            assert!(
                matches!(
                    e.code(),
                    ErrorCode::Malformed
                        | ErrorCode::InvalidKfrag
                        | ErrorCode::KfragVerificationFailed
                        | ErrorCode::ConditionsUnsupported
                ),
                "{e:?}"
            );
            return;
        }
    };
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    let engine = ENGINE.get_or_init(Engine::cpu);
    let mut capsules = Vec::new();
    let mut cfrags = Vec::new();
    for capsule in &request.capsules {
        if let Ok(cfrag) = engine.reencrypt(capsule, &kfrag) {
            let encoded = cfrag.to_bytes();
            assert_eq!(CapsuleFrag::from_bytes(&encoded), Ok(cfrag));
            capsules.push(capsule.to_vec());
            cfrags.push(encoded.to_vec());
        }
    }
    let response = node.sign_response(&capsules, &cfrags);
    let parsed = ReencryptionResponse::parse(&response).expect("the node's response parses");
    assert_eq!(parsed.cfrags.len(), cfrags.len());
    assert!(parsed.verify_signature(&capsules, node.verifying_public_key()));
});
