//! The HTTPS `POST /reencrypt` path without sockets: a body goes through what the listener
//! does with it (the `ReencryptionRequest` parser, the item limit, the conditions check, the
//! node's authorization of the encrypted kfrag, re-encryption of each capsule, the signed
//! response) and the HTTP status it answers comes from the listener's own mapping.
//!
//! Checks: no panic; client faults are answered 4xx, never 5xx: 400 for a malformed request,
//! 401 for a publisher signature that does not verify, 403 for a kfrag addressed to another
//! node, 413 for too many capsules; a 200 carries a response that parses and verifies.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use umbrald_core::Engine;
use umbrald_nucypher::{NodeKeys, NucypherError, ReencryptionRequest, ReencryptionResponse};
use umbrald_proto::ErrorCode;
use umbrald_server::fuzzing::https_status;

const MAX_ITEMS: usize = 16;

fn node() -> &'static NodeKeys {
    static NODE: OnceLock<NodeKeys> = OnceLock::new();
    NODE.get_or_init(umbrald_fuzz::node_keys)
}

/// The status an Ursula gives for the same refusal (see `docs/PROTOCOL.md`).
fn expected_status(code: ErrorCode, cause: Option<&NucypherError>) -> u16 {
    match (code, cause) {
        (_, Some(NucypherError::KfragNotForThisNode)) => 403,
        (_, Some(NucypherError::PublisherSignature)) => 401,
        (ErrorCode::TooLarge, _) => 413,
        _ => 400,
    }
}

/// The listener's answer to a refusal, checked against the expected client-fault status.
fn refused(code: ErrorCode, cause: Option<&NucypherError>) {
    let status = https_status(code, cause);
    assert!(
        (400..500).contains(&status),
        "client fault {code:?} ({cause:?}) answered {status}"
    );
    assert_eq!(status, expected_status(code, cause), "{code:?} ({cause:?})");
}

fuzz_target!(|body: &[u8]| {
    let node = node();
    let request = match ReencryptionRequest::parse(body) {
        Ok(request) => request,
        Err(e) => return refused(e.code(), Some(&e)),
    };
    if request.capsules.len() > MAX_ITEMS {
        return refused(ErrorCode::TooLarge, None);
    }
    if let Err(e) = request.check_no_conditions() {
        return refused(e.code(), Some(&e));
    }
    let kfrag = match node.authorize(&request) {
        Ok(kfrag) => kfrag,
        Err(e) => return refused(e.code(), Some(&e)),
    };
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    let engine = ENGINE.get_or_init(Engine::cpu);
    let mut cfrags = Vec::with_capacity(request.capsules.len());
    for capsule in &request.capsules {
        match engine.reencrypt(capsule, &kfrag) {
            Ok(cfrag) => cfrags.push(cfrag.to_bytes().to_vec()),
            Err(e) => return refused(e.code(), None),
        }
    }
    let response = node.sign_response(&request.capsules, &cfrags);
    let parsed = ReencryptionResponse::parse(&response).expect("the response parses");
    assert!(parsed.verify_signature(&request.capsules, node.verifying_public_key()));
});
