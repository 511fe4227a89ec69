//! The node key files `umbrald serve` reads: umbrald's own sealed key file (`--node-keys`,
//! JSON with Argon2id and XChaCha20-Poly1305) and an Ursula's NuCypher keystore (parsed
//! only: unlocking it costs scrypt with 1 GiB).
//!
//! Checks: no panic. A key file is opened with a fixed passphrase when its KDF parameters are
//! small (the fuzzer cannot afford the default ones); one that opens yields the public keys it
//! records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use umbrald_nucypher::keyfile;
use umbrald_nucypher::keystore::NucypherKeystore;

/// The passphrase of the seed corpus's key files.
const PASSPHRASE: &[u8] = b"fuzz passphrase";
/// Largest Argon2 memory cost the target runs, in KiB.
const MAX_FUZZ_M_COST_KIB: u64 = 64;

fuzz_target!(|bytes: &[u8]| {
    let _ = NucypherKeystore::parse(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let recorded = keyfile::public_keys(text);
    let cheap = serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| {
        v["m_cost_kib"]
            .as_u64()
            .is_some_and(|m| m <= MAX_FUZZ_M_COST_KIB)
            && v["t_cost"].as_u64().is_some_and(|t| t <= 2)
            && v["p_cost"].as_u64().is_some_and(|p| p <= 2)
    });
    if !cheap {
        return;
    }
    if let Ok(keys) = keyfile::open(text, PASSPHRASE) {
        let (decrypting, verifying) = recorded.expect("a key file that opens has public keys");
        assert_eq!(&decrypting, keys.decrypting_public_key());
        assert_eq!(&verifying, keys.verifying_public_key());
    }
});
