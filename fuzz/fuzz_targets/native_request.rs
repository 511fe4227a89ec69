//! The `umbrald/1` request decoder and validator the QUIC ingress runs on a stream's bytes.
//!
//! Checks: no panic; a refusal is `malformed`, `unsupported_version` or `too_large`; an
//! accepted request obeys the limits, names only its own policies, and survives an
//! encode/decode round trip unchanged. An accepted request then goes through what the
//! workers do with it (policy verification, re-encryption of its items on the CPU engine),
//! and every cfrag that comes out parses and re-encodes to itself.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use umbrald_core::{CapsuleFrag, Engine, ReencryptItem};
use umbrald_proto::{ErrorCode, Request};
use umbrald_server::fuzzing::native_request;

const MAX_ITEMS: usize = 64;
const MAX_POLICIES: usize = 8;

fuzz_target!(|bytes: &[u8]| {
    match native_request(bytes, MAX_ITEMS, MAX_POLICIES) {
        Ok(request) => {
            assert_eq!(request.v, umbrald_proto::PROTOCOL_VERSION);
            assert!(request.items.len() <= MAX_ITEMS);
            assert!(request.policies.len() <= MAX_POLICIES);
            for item in &request.items {
                assert!((item.policy as usize) < request.policies.len());
            }
            let encoded = umbrald_proto::encode(&request).expect("an accepted request encodes");
            let again: Request = umbrald_proto::decode(&encoded).expect("and decodes again");
            assert_eq!(again, request);
            run_on_engine(&request);
        }
        Err(refusal) => {
            assert!(
                matches!(
                    refusal.code,
                    ErrorCode::Malformed | ErrorCode::UnsupportedVersion | ErrorCode::TooLarge
                ),
                "unexpected refusal {refusal:?}"
            );
            assert!(!refusal.message.is_empty());
        }
    }
});

fn run_on_engine(request: &Request) {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    let engine = ENGINE.get_or_init(Engine::cpu);
    let verified: Vec<_> = request
        .policies
        .iter()
        .map(|p| {
            engine
                .verify_policy(&p.kfrag, &p.delegating_pk, &p.receiving_pk, &p.verifying_pk)
                .ok()
        })
        .collect();
    let items: Vec<ReencryptItem<'_>> = request
        .items
        .iter()
        .filter_map(|item| {
            let kfrag = verified[item.policy as usize].as_deref()?;
            Some(ReencryptItem {
                capsule: &item.capsule,
                kfrag,
            })
        })
        .collect();
    let results = engine.reencrypt_batch(&items);
    assert_eq!(results.len(), items.len());
    for cfrag in results.into_iter().flatten() {
        let bytes = cfrag.to_bytes();
        let parsed = CapsuleFrag::from_bytes(&bytes).expect("the engine's cfrag parses");
        assert_eq!(parsed, cfrag);
    }
}
