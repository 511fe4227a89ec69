//! Reading nucypher 7.6.1 keystores (`tests/fixtures/keystore`, made by nucypher's own
//! `Keystore.generate`): the derived keys equal nucypher's `DecryptingPower` and `SigningPower`,
//! the TLS key's hash equals that of nucypher's `TLSHostingPower` certificate key, and every kind
//! of bad file or password gets its typed error.
//!
//! Unlocking runs scrypt with N = 2^20 (1 GiB); those tests take a lock so that one runs at a
//! time, and each unlocks a keystore once.

use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Value};
use umbrald_nucypher::keystore::{
    node_keys_from_seed, read_nucypher_keystore, read_ursula_identity,
    tls_public_key_sha256_from_seed, KeystoreError, NucypherKeystore, MAX_KEYSTORE_LEN,
};
use umbrald_nucypher::NodeKeys;

/// The keystores nucypher made, with their expected values.
const FIXTURES: [(&str, &str); 3] = [
    (
        include_str!("fixtures/keystore/keystore-1.priv"),
        include_str!("fixtures/keystore/keystore-1.expected.json"),
    ),
    (
        include_str!("fixtures/keystore/keystore-2.priv"),
        include_str!("fixtures/keystore/keystore-2.expected.json"),
    ),
    (
        include_str!("fixtures/keystore/keystore-3.priv"),
        include_str!("fixtures/keystore/keystore-3.expected.json"),
    ),
];
/// A keystore sealing a 31-byte secret, with nucypher's own `secret_box_encrypt`.
const SHORT_SEED: (&str, &str) = (
    include_str!("fixtures/keystore/short-seed.priv"),
    include_str!("fixtures/keystore/short-seed.expected.json"),
);

/// One scrypt (1 GiB) at a time.
static SCRYPT: Mutex<()> = Mutex::new(());

fn one_scrypt_at_a_time() -> MutexGuard<'static, ()> {
    SCRYPT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn expected(text: &str) -> Value {
    serde_json::from_str(text).expect("expected JSON")
}

fn text<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().expect("string field")
}

fn assert_keys(keys: &NodeKeys, expected: &Value) {
    assert_eq!(
        hex::encode(keys.decrypting_public_key()),
        text(expected, "decrypting_public_key")
    );
    assert_eq!(
        hex::encode(keys.verifying_public_key()),
        text(expected, "verifying_public_key")
    );
}

/// The first fixture as a JSON object, for tampering.
fn fixture_object() -> serde_json::Map<String, Value> {
    fixture_object_of(FIXTURES[0].0)
}

/// A keystore file as a JSON object.
fn fixture_object_of(keystore: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str(keystore).expect("fixture JSON") {
        Value::Object(fields) => fields,
        _ => panic!("fixture is an object"),
    }
}

fn parse(fields: serde_json::Map<String, Value>) -> Result<NucypherKeystore, KeystoreError> {
    NucypherKeystore::parse(&serde_json::to_vec(&Value::Object(fields)).expect("serialise"))
}

#[test]
fn every_fixture_unlocks_to_nucypher_s_keys() {
    for (keystore, expected_json) in FIXTURES {
        let expected = expected(expected_json);
        let identity = {
            let _one = one_scrypt_at_a_time();
            read_ursula_identity(keystore.as_bytes(), text(&expected, "password").as_bytes())
                .expect("unlocks")
        };
        assert_keys(&identity.keys, &expected);
        assert_eq!(
            hex::encode(identity.tls_public_key_sha256),
            text(&expected, "tls_public_key_sha256")
        );
        // nucypher names the keystore after its verifying key.
        assert!(text(&expected, "verifying_public_key").starts_with(text(&expected, "keystore_id")));
    }
}

#[test]
fn every_fixture_seed_derives_nucypher_s_keys() {
    for (_, expected_json) in FIXTURES {
        let expected = expected(expected_json);
        let seed = hex::decode(text(&expected, "seed")).expect("hex seed");
        assert_keys(&node_keys_from_seed(&seed).expect("keys"), &expected);
        assert_eq!(
            hex::encode(tls_public_key_sha256_from_seed(&seed).expect("tls key")),
            text(&expected, "tls_public_key_sha256")
        );
    }
}

#[test]
fn a_wrong_password_is_wrong_password() {
    let password = "not the password of keystore 2";
    let error = {
        let _one = one_scrypt_at_a_time();
        read_nucypher_keystore(FIXTURES[1].0.as_bytes(), password.as_bytes())
            .expect_err("wrong password")
    };
    assert_eq!(error, KeystoreError::WrongPassword);
    assert!(!error.to_string().contains(password));
}

#[test]
fn a_flipped_ciphertext_byte_fails_authentication() {
    let expected = expected(FIXTURES[2].1);
    let mut fields = fixture_object_of(FIXTURES[2].0);
    let mut key = hex::decode(fields["key"].as_str().expect("key")).expect("hex");
    // Past the 24-byte nonce and the 16-byte tag: the sealed seed itself.
    key[24 + 16 + 5] ^= 0x01;
    fields.insert("key".into(), Value::String(hex::encode(key)));
    let keystore = parse(fields).expect("still well-formed");
    let error = {
        let _one = one_scrypt_at_a_time();
        keystore
            .unlock(text(&expected, "password").as_bytes())
            .expect_err("altered")
    };
    assert_eq!(error, KeystoreError::WrongPassword);
}

#[test]
fn a_sealed_secret_that_is_not_a_seed_is_bad_key_material() {
    let expected = expected(SHORT_SEED.1);
    let error = {
        let _one = one_scrypt_at_a_time();
        read_nucypher_keystore(
            SHORT_SEED.0.as_bytes(),
            text(&expected, "password").as_bytes(),
        )
        .expect_err("31-byte seed")
    };
    assert!(
        matches!(&error, KeystoreError::BadKeyMaterial(detail) if detail.contains("31 bytes")),
        "{error:?}"
    );
}

#[test]
fn every_fixture_parses() {
    for (keystore, _) in FIXTURES.iter().chain([&SHORT_SEED]) {
        NucypherKeystore::parse(keystore.as_bytes()).expect("parses");
    }
}

#[test]
fn truncated_json_is_not_json() {
    let keystore = FIXTURES[0].0.as_bytes();
    for len in [0, 1, keystore.len() / 2, keystore.len() - 2] {
        let error = NucypherKeystore::parse(&keystore[..len]).expect_err("truncated");
        assert!(
            matches!(error, KeystoreError::NotJson(_)),
            "{len}: {error:?}"
        );
    }
}

#[test]
fn json_that_is_not_an_object_is_refused() {
    for text in ["[]", "\"2.0\"", "null", "42"] {
        assert_eq!(
            NucypherKeystore::parse(text.as_bytes()),
            Err(KeystoreError::NotAnObject)
        );
    }
}

#[test]
fn every_missing_field_is_named() {
    for field in ["version", "key", "password_salt", "wrapper_salt"] {
        let mut fields = fixture_object();
        fields.remove(field);
        assert_eq!(parse(fields), Err(KeystoreError::MissingField(field)));
    }
    // nucypher writes `created` but never reads it.
    let mut fields = fixture_object();
    fields.remove("created");
    parse(fields).expect("`created` is optional");
}

#[test]
fn an_unsupported_version_is_refused() {
    for version in ["1.0", "2.1", "3.0", ""] {
        let mut fields = fixture_object();
        fields.insert("version".into(), json!(version));
        assert_eq!(
            parse(fields),
            Err(KeystoreError::UnsupportedVersion {
                found: version.into()
            })
        );
    }
    let mut fields = fixture_object();
    fields.insert("version".into(), json!(2.0));
    assert!(matches!(
        parse(fields),
        Err(KeystoreError::InvalidField {
            field: "version",
            ..
        })
    ));
}

#[test]
fn kdf_parameters_in_the_file_are_refused_before_any_kdf_runs() {
    // The format fixes scrypt's cost; a file that names its own parameters (here absurd ones
    // that would need petabytes) is another format and is refused while parsing.
    let mut fields = fixture_object();
    fields.insert(
        "kdf".into(),
        json!({"name": "scrypt", "n": 1u64 << 40, "r": 1u64 << 20, "p": 1u64 << 20}),
    );
    let file = serde_json::to_vec(&Value::Object(fields)).expect("serialise");
    assert_eq!(
        read_nucypher_keystore(&file, b"any password").expect_err("unknown format"),
        KeystoreError::UnknownField("kdf".into())
    );
    for field in ["n", "r", "p", "scrypt_cost"] {
        let mut fields = fixture_object();
        fields.insert(field.into(), json!(u64::MAX));
        assert_eq!(
            parse(fields),
            Err(KeystoreError::UnknownField(field.into()))
        );
    }
}

#[test]
fn fields_with_bad_encoding_or_length_are_invalid() {
    let cases: [(&'static str, Value); 8] = [
        ("key", json!("zz")),
        ("key", json!(42)),
        ("key", json!("00".repeat(39))),
        ("password_salt", json!("00".repeat(31))),
        ("password_salt", json!("abc")),
        ("wrapper_salt", json!("00".repeat(33))),
        ("wrapper_salt", Value::Null),
        ("created", json!(1_700_000_000.5)),
    ];
    for (field, value) in cases {
        let mut fields = fixture_object();
        fields.insert(field.into(), value.clone());
        let error = parse(fields).expect_err("invalid");
        assert!(
            matches!(&error, KeystoreError::InvalidField { field: f, .. } if *f == field),
            "{field} = {value}: {error:?}"
        );
    }
}

#[test]
fn an_oversized_file_is_refused_unread() {
    let file = vec![b' '; MAX_KEYSTORE_LEN + 1];
    assert_eq!(
        NucypherKeystore::parse(&file),
        Err(KeystoreError::TooLarge {
            len: MAX_KEYSTORE_LEN + 1,
            max: MAX_KEYSTORE_LEN
        })
    );
}

#[test]
fn a_seed_of_the_wrong_size_is_bad_key_material() {
    for len in [0, 16, 31, 33, 64] {
        let error = node_keys_from_seed(&vec![7u8; len]).expect_err("wrong size");
        assert!(matches!(error, KeystoreError::BadKeyMaterial(_)), "{len}");
    }
}
