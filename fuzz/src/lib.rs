//! Shared helpers for umbrald's fuzz targets: the golden fixtures (copied from umbral-pre 0.11
//! and nucypher-core 0.16 output into `fuzz/fixtures/`), and umbral-pre behind `catch_unwind`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use umbral_pre::{DefaultDeserialize, DefaultSerialize};

/// umbral-pre's `Capsule` (MessagePack, 105 bytes).
pub const CAPSULE: &[u8] = include_bytes!("../fixtures/capsule.msgpack");
/// umbral-pre's `KeyFrag` (MessagePack, 310 bytes).
pub const KFRAG: &[u8] = include_bytes!("../fixtures/kfrag0.msgpack");
/// umbral-pre's `CapsuleFrag` (MessagePack, 381 bytes).
pub const CFRAG: &[u8] = include_bytes!("../fixtures/cfrag0.msgpack");
/// nucypher-core's `ReencryptionRequest` (`ReRq` 3.0).
pub const REENCRYPTION_REQUEST: &[u8] = include_bytes!("../fixtures/reencryption_request.bin");
const KEYS_JSON: &str = include_str!("../fixtures/keys.json");
const EXCHANGE_KEYS_JSON: &str = include_str!("../fixtures/exchange_keys.json");

fn hex_field(json: &str, name: &str) -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_str(json).expect("fixture JSON");
    hex::decode(value[name].as_str().expect("fixture field")).expect("fixture hex")
}

/// The 33-byte public keys of the umbral-pre fixture's policy.
pub struct PolicyKeys {
    /// Alice's delegating key.
    pub delegating: Vec<u8>,
    /// Bob's receiving key.
    pub receiving: Vec<u8>,
    /// The kfrag signer's verifying key.
    pub verifying: Vec<u8>,
}

/// The keys `KFRAG` verifies against.
pub fn policy_keys() -> PolicyKeys {
    PolicyKeys {
        delegating: hex_field(KEYS_JSON, "alice_pk"),
        receiving: hex_field(KEYS_JSON, "bob_pk"),
        verifying: hex_field(KEYS_JSON, "verifying_pk"),
    }
}

/// The node keys that decrypt `REENCRYPTION_REQUEST`'s encrypted kfrag (the fixture's
/// decrypting key; the signing key is an arbitrary fixed one).
pub fn node_keys() -> umbrald_nucypher::NodeKeys {
    let decrypting: [u8; 32] = hex_field(EXCHANGE_KEYS_JSON, "ursula_decrypting_sk")
        .try_into()
        .expect("32-byte key");
    let signing = [0x11u8; 32];
    umbrald_nucypher::NodeKeys::from_be_bytes(&decrypting, &signing).expect("fixture node keys")
}

/// The node's decrypting public key, as umbral-pre's type.
pub fn node_decrypting_pk(keys: &umbrald_nucypher::NodeKeys) -> umbral_pre::PublicKey {
    umbral_pre::PublicKey::try_from_compressed_bytes(keys.decrypting_public_key())
        .expect("node public key")
}

/// What umbral-pre did with some bytes.
pub enum Oracle<T> {
    /// Parsed; the value and its re-serialization.
    Accepted(T, Vec<u8>),
    /// Refused with an error.
    Rejected,
    /// Panicked while parsing or re-serializing.
    Panicked,
}

impl<T> Oracle<T> {
    /// Accepted, and re-serialized to exactly `input`.
    pub fn accepts_canonically(&self, input: &[u8]) -> bool {
        matches!(self, Oracle::Accepted(_, bytes) if bytes == input)
    }

    /// Whether umbral-pre panicked.
    pub fn panicked(&self) -> bool {
        matches!(self, Oracle::Panicked)
    }

    /// What happened, for a failure message (the re-serialization in hex when accepted).
    pub fn describe(&self) -> String {
        match self {
            Oracle::Accepted(_, bytes) => format!("accepted, re-encoded as {}", hex::encode(bytes)),
            Oracle::Rejected => "rejected".to_owned(),
            Oracle::Panicked => "panicked".to_owned(),
        }
    }
}

/// umbral-pre's `from_bytes` then `to_bytes`, with a panic caught and reported.
pub fn umbral_pre_decode<T>(bytes: &[u8]) -> Oracle<T>
where
    T: for<'de> DefaultDeserialize<'de> + DefaultSerialize,
{
    let result = no_panic(|| {
        let value = T::from_bytes(bytes).ok()?;
        let encoded = value.to_bytes().ok()?.into_vec();
        Some((value, encoded))
    });
    match result {
        Some(Some((value, encoded))) => Oracle::Accepted(value, encoded),
        Some(None) => Oracle::Rejected,
        None => Oracle::Panicked,
    }
}

/// Runs `f`, returning `None` if it panicked. libFuzzer's panic hook (which aborts, so that
/// every panic in umbrald is a crash) is set aside meanwhile: only the oracle runs here.
pub fn no_panic<R>(f: impl FnOnce() -> R) -> Option<R> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(f)).ok();
    std::panic::set_hook(hook);
    result
}

/// umbral-pre's secret key from 32 big-endian bytes, if they are a valid non-zero scalar.
pub fn umbral_pre_secret_key(bytes: &[u8; 32]) -> Option<umbral_pre::SecretKey> {
    // umbral-pre's SecretBox has no public constructor: borrow one and overwrite it.
    let mut secret = umbral_pre::SecretKey::random().to_be_bytes();
    secret.as_mut_secret().copy_from_slice(bytes);
    umbral_pre::SecretKey::try_from_be_bytes(&secret).ok()
}

/// The fixture request's exchange values: HRAC, publisher's and Bob's verifying keys.
pub struct Exchange {
    /// The policy's HRAC.
    pub hrac: [u8; 16],
    /// The publisher's verifying key.
    pub publisher_verifying_key: [u8; 33],
    /// Bob's verifying key.
    pub bob_verifying_key: [u8; 33],
}

/// The values `REENCRYPTION_REQUEST` carries.
pub fn exchange() -> Exchange {
    let fixed = |name| hex_field(EXCHANGE_KEYS_JSON, name);
    Exchange {
        hrac: fixed("hrac").try_into().expect("16 bytes"),
        publisher_verifying_key: fixed("publisher_verifying_pk")
            .try_into()
            .expect("33 bytes"),
        bob_verifying_key: fixed("bob_verifying_pk").try_into().expect("33 bytes"),
    }
}

/// A `ReencryptionRequest` like the fixture's (its capsules, HRAC and keys) whose encrypted
/// kfrag is `authorized_kfrag` (the plaintext of an `AuthorizedKeyFrag`, header included)
/// encrypted to `node`'s decrypting key. Deterministic: the encryption's randomness is fixed.
pub fn request_with_authorized_kfrag(
    node: &umbrald_nucypher::NodeKeys,
    authorized_kfrag: &[u8],
) -> Vec<u8> {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
    let (capsule, ciphertext) =
        umbral_pre::encrypt_with_rng(&mut rng, &node_decrypting_pk(node), authorized_kfrag)
            .expect("umbral-pre encrypts");
    let encrypted = umbrald_nucypher::build::EncryptedKfrag {
        capsule: capsule.to_bytes().expect("capsule bytes").into_vec(),
        ciphertext: ciphertext.into_vec(),
    };
    let fixture =
        umbrald_nucypher::ReencryptionRequest::parse(REENCRYPTION_REQUEST).expect("fixture");
    let x = exchange();
    umbrald_nucypher::build::encode_request(
        &fixture.capsules,
        &x.hrac,
        &encrypted,
        &x.publisher_verifying_key,
        &x.bob_verifying_key,
    )
}

/// The request bytes a NuCypher target's input stands for: with a first byte of 0, the rest
/// is a whole `ReencryptionRequest`; otherwise the rest is the plaintext of the encrypted
/// kfrag, sealed to `node` inside a request like the fixture's (so that the fuzzer reaches
/// the `AuthorizedKeyFrag` parser behind the decryption).
pub fn nucypher_request_bytes(node: &umbrald_nucypher::NodeKeys, input: &[u8]) -> Option<Vec<u8>> {
    let (&mode, rest) = input.split_first()?;
    Some(if mode == 0 {
        rest.to_vec()
    } else {
        request_with_authorized_kfrag(node, rest)
    })
}

/// The plaintext of the fixture request's encrypted kfrag (an `AuthorizedKeyFrag`).
pub fn fixture_authorized_kfrag(node_decrypting_sk: &umbral_pre::SecretKey) -> Vec<u8> {
    let request =
        umbrald_nucypher::ReencryptionRequest::parse(REENCRYPTION_REQUEST).expect("fixture");
    let capsule = umbral_pre::Capsule::from_bytes(request.ekfrag_capsule).expect("capsule");
    umbral_pre::decrypt_original(node_decrypting_sk, &capsule, request.ekfrag_ciphertext)
        .expect("the fixture's kfrag decrypts")
        .into_vec()
}

/// The fixture node's decrypting secret key, as umbral-pre's type.
pub fn node_decrypting_sk() -> umbral_pre::SecretKey {
    let bytes: [u8; 32] = hex_field(EXCHANGE_KEYS_JSON, "ursula_decrypting_sk")
        .try_into()
        .expect("32 bytes");
    umbral_pre_secret_key(&bytes).expect("fixture key")
}

#[cfg(test)]
mod seeds {
    //! Writes the seed corpus: `cargo test --manifest-path fuzz/Cargo.toml --lib -- --ignored`.

    use std::path::Path;

    use super::*;

    // The coverage instrumentation's callbacks live in libFuzzer: link it, with an empty
    // target, so that this test builds with the fuzz targets' flags.
    libfuzzer_sys::fuzz_target!(|_bytes: &[u8]| {});

    fn write(target: &str, name: &str, bytes: &[u8]) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("seed");
    }

    fn native_request(v: u32, items: usize, compact: bool) -> Vec<u8> {
        let keys = policy_keys();
        let request = umbrald_proto::Request {
            v,
            id: 7,
            policies: vec![umbrald_proto::Policy {
                kfrag: KFRAG.to_vec(),
                delegating_pk: keys.delegating,
                receiving_pk: keys.receiving,
                verifying_pk: keys.verifying,
            }],
            items: (0..items)
                .map(|_| umbrald_proto::Item {
                    capsule: CAPSULE.to_vec(),
                    policy: 0,
                })
                .collect(),
            deadline_ms: Some(1000),
            priority: Some(1),
            compact_cfrags: compact.then_some(true),
        };
        umbrald_proto::encode(&request).expect("encode")
    }

    #[test]
    #[ignore = "writes the seed corpus"]
    fn write_seed_corpus() {
        write("native_request", "one_item", &native_request(1, 1, false));
        write(
            "native_request",
            "four_items_compact",
            &native_request(1, 4, true),
        );
        write("native_request", "version_2", &native_request(2, 1, false));

        let alice_pk = policy_keys().delegating;
        let secrets = [
            hex_field(KEYS_JSON, "alice_sk"),
            hex_field(KEYS_JSON, "bob_sk"),
        ]
        .concat();
        let cfrag = umbrald_core::CapsuleFrag::from_bytes(CFRAG).expect("cfrag");
        for target in ["umbral_codecs", "diff_codecs"] {
            write(target, "capsule", CAPSULE);
            write(target, "kfrag", KFRAG);
            write(target, "cfrag", CFRAG);
            write(target, "public_key", &alice_pk);
        }
        write("umbral_codecs", "secret_keys", &secrets);
        write("diff_codecs", "secret_key", &secrets[..32]);
        write("umbral_codecs", "cfrag_parts", &cfrag.to_parts());

        let node = node_keys();
        let authorized = fixture_authorized_kfrag(&node_decrypting_sk());
        write(
            "nucypher_request",
            "request",
            &[&[0u8][..], REENCRYPTION_REQUEST].concat(),
        );
        write(
            "nucypher_request",
            "authorized_kfrag",
            &[&[1u8][..], &authorized].concat(),
        );
        write("https_request", "request", REENCRYPTION_REQUEST);
        write(
            "https_request",
            "resealed_request",
            &request_with_authorized_kfrag(&node, &authorized),
        );

        let params = umbrald_nucypher::keyfile::KdfParams {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        };
        let sealed =
            umbrald_nucypher::keyfile::seal(&node, b"fuzz passphrase", params).expect("seal");
        write("node_keys", "small_kdf.keys", sealed.as_bytes());
        write(
            "node_keys",
            "default_kdf.keys",
            include_bytes!("../fixtures/node.keys"),
        );
        write(
            "node_keys",
            "keystore.priv",
            include_bytes!("../fixtures/keystore-1.priv"),
        );

        for (name, text) in [
            ("umbrald.toml", include_str!("../../deploy/umbrald.toml")),
            (
                "umbrald-gpu.toml",
                include_str!("../../deploy/umbrald-gpu.toml"),
            ),
            (
                "docker.toml",
                include_str!("../../deploy/docker/umbrald.toml"),
            ),
            (
                "k8s.toml",
                include_str!("../../deploy/k8s/base/umbrald.toml"),
            ),
        ] {
            write("config_toml", name, text.as_bytes());
        }
        #[cfg(feature = "server")]
        {
            let ephemeral = umbrald_server::Config::ephemeral("/tmp/umbrald", 2).to_toml();
            write("config_toml", "ephemeral.toml", ephemeral.as_bytes());
        }

        for (name, head, plaintext) in [
            ("t1_n1", [0u8, 0, 0, 0], &b"peace at dawn"[..]),
            (
                "t2_n3_signed_batch3",
                [1, 1, 3, 2],
                b"a longer plaintext, split over capsules",
            ),
            ("t2_n2_generic_batch2", [1, 0, 7, 1], b"x"),
        ] {
            let seed = [head[0].wrapping_mul(31); 32];
            write(
                "diff_reencrypt",
                name,
                &[&head[..], &seed[..], plaintext].concat(),
            );
        }
    }
}
