//! Reads an Ursula's keystore as nucypher 7.6.1 writes it and derives the node's keys from it.
//!
//! The keystore (`<created>-<id>.priv`) is a JSON object, every byte string in lowercase hex:
//!
//! ```json
//! { "version": "2.0", "created": "<unix time>", "key": "<nonce || tag || ciphertext>",
//!   "password_salt": "<32 bytes>", "wrapper_salt": "<32 bytes>" }
//! ```
//!
//! It seals the node's 32-byte seed (the entropy behind its 24 recovery words). Mirrored from
//! nucypher 7.6.1:
//! - `nucypher/crypto/keystore.py`: `_assemble_keystore`, `_serialize_keystore`,
//!   `_deserialize_keystore` (the format above), `Keystore.__decrypt_keystore` (unlocking) and
//!   `Keystore.derive_crypto_power` (key derivation);
//! - `nucypher/crypto/passwords.py`: `derive_key_material_from_password` (scrypt of the UTF-8
//!   password with `password_salt`, N = 2^20, r = 8, p = 1, 32 bytes), then
//!   `derive_wrapping_key_from_key_material` (HKDF-BLAKE2b-512 of that, salt `wrapper_salt`,
//!   info `NuCypher-KeyWrap`, 32 bytes) and `secret_box_decrypt` (NaCl secretbox,
//!   XSalsa20-Poly1305, as PyNaCl writes it: 24-byte nonce, 16-byte tag, ciphertext).
//!
//! The node's keys are `SecretKeyFactory::from_secure_randomness(seed).make_key(label)` with
//! the labels of [`DECRYPTING_LABEL`] (`DecryptingPower`) and [`SIGNING_LABEL`]
//! (`SigningPower`); nucypher-core 0.15, which nucypher 7.6.1 pins, uses umbral-pre 0.11's
//! `SecretKeyFactory`, the one this crate uses.
//!
//! The Ursula's TLS key is `make_secret(TLS_LABEL)`'s first 48 bytes as a big-endian P-384
//! scalar (`_derive_hosting_power`, `generate_self_signed_certificate`); its certificate is made
//! anew at every start, its key is not. [`UrsulaIdentity::tls_public_key_sha256`] is what
//! `[nucypher] upstream_public_key_sha256` pins when umbrald fronts that Ursula.
//!
//! The file carries no KDF parameters: the scrypt cost is fixed here, so a crafted file cannot
//! make the reader allocate more than scrypt's fixed [`SCRYPT_MEMORY_BYTES`]. A file with any
//! field besides the five above is refused before the KDF runs.

use blake2::Blake2b512;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use hkdf::SimpleHkdf;
use serde_json::{Map, Value};
use umbral_pre::SecretKeyFactory;
use zeroize::Zeroizing;

use crate::NodeKeys;

/// The keystore version nucypher 7.x writes (`_KEYSTORE_VERSION`).
pub const KEYSTORE_VERSION: &str = "2.0";
/// The largest keystore file accepted. nucypher's files are about 400 bytes.
pub const MAX_KEYSTORE_LEN: usize = 64 * 1024;
/// scrypt's cost: log2 of N.
pub const SCRYPT_LOG_N: u8 = 20;
/// scrypt's block size r.
pub const SCRYPT_R: u32 = 8;
/// scrypt's parallelism p.
pub const SCRYPT_P: u32 = 1;
/// The memory scrypt needs with these parameters (128 · r · N bytes, 1 GiB).
pub const SCRYPT_MEMORY_BYTES: usize = (128 * SCRYPT_R as usize) << SCRYPT_LOG_N;
/// The label of the node's decrypting key (nucypher's `DecryptingPower`).
pub const DECRYPTING_LABEL: &[u8] = b"NuCypher/decrypting";
/// The label of the node's signing key (nucypher's `SigningPower`).
pub const SIGNING_LABEL: &[u8] = b"NuCypher/signing";

/// The label of the node's TLS key (nucypher's `TLSHostingPower`).
pub const TLS_LABEL: &[u8] = b"NuCypher/tls";
/// Bytes of the derived secret taken as the TLS key's P-384 scalar.
const TLS_SCALAR_LEN: usize = 48;

/// HKDF info of the wrapping key (`__WRAPPING_KEY_INFO`).
const WRAPPING_KEY_INFO: &[u8] = b"NuCypher-KeyWrap";
/// Length of both salts (`_SALT_SIZE`).
const SALT_LEN: usize = 32;
/// Length of the scrypt output (`__MASTER_KEY_LENGTH`) and of the wrapping key.
const KEY_LEN: usize = 32;
/// Secretbox nonce length.
const NONCE_LEN: usize = 24;
/// Secretbox (Poly1305) tag length.
const TAG_LEN: usize = 16;
/// The fields nucypher writes; any other is refused.
const KNOWN_FIELDS: [&str; 5] = ["version", "created", "key", "password_salt", "wrapper_salt"];
/// Longest file-supplied text echoed in an error.
const MAX_ECHO: usize = 40;

/// Why a NuCypher keystore cannot be read. Messages never contain the password, the seed or
/// any key derived from them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The file is larger than any keystore.
    #[error("the keystore file is {len} bytes; a NuCypher keystore is at most {max}")]
    TooLarge {
        /// The file's length.
        len: usize,
        /// [`MAX_KEYSTORE_LEN`].
        max: usize,
    },
    /// The file is not JSON.
    #[error("the keystore is not JSON: {0}")]
    NotJson(String),
    /// The file is JSON but not an object.
    #[error("the keystore is JSON but not an object")]
    NotAnObject,
    /// A field nucypher always writes is missing.
    #[error("the keystore has no `{0}` field")]
    MissingField(&'static str),
    /// A field has the wrong type, encoding or length.
    #[error("the keystore's `{field}` field {detail}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The file has a field nucypher does not write (another format, e.g. one with its own
    /// KDF parameters).
    #[error("the keystore has a field `{0}` that nucypher's keystore format does not have; refusing an unknown format")]
    UnknownField(String),
    /// The version is not the one this reader reads.
    #[error("keystore version {found:?} is not supported; this reader reads version {KEYSTORE_VERSION} (nucypher 7.x)")]
    UnsupportedVersion {
        /// The file's version.
        found: String,
    },
    /// The sealed seed does not authenticate: the password is wrong or the file was altered.
    #[error("the password does not open this keystore (or the keystore was altered)")]
    WrongPassword,
    /// The keystore opened but what it seals cannot be a node's seed.
    #[error("the keystore opened but its secret is not a NuCypher seed: {0}")]
    BadKeyMaterial(String),
    /// The key derivation function failed (not expected with the fixed parameters).
    #[error("key derivation failed: {0}")]
    Kdf(&'static str),
}

/// A parsed NuCypher keystore: salts and the sealed seed. Holds nothing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NucypherKeystore {
    password_salt: [u8; SALT_LEN],
    wrapper_salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    tag: [u8; TAG_LEN],
    sealed_seed: Vec<u8>,
}

impl std::fmt::Debug for NucypherKeystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NucypherKeystore")
            .field("sealed_seed_len", &self.sealed_seed.len())
            .finish_non_exhaustive()
    }
}

/// Reads a NuCypher keystore file's bytes, unlocks it with `password` (the bytes nucypher
/// hashes: the password's UTF-8, nothing trimmed) and derives the node's keys. Runs scrypt
/// once, with N = 2^20: [`SCRYPT_MEMORY_BYTES`] of memory.
pub fn read_nucypher_keystore(json: &[u8], password: &[u8]) -> Result<NodeKeys, KeystoreError> {
    NucypherKeystore::parse(json)?.unlock(password)
}

/// What an Ursula's keystore gives umbrald: the node's keys, and the hash of the public key
/// the Ursula's TLS certificate holds.
#[derive(Debug, Clone)]
pub struct UrsulaIdentity {
    /// The node's decrypting and signing keys.
    pub keys: NodeKeys,
    /// SHA-256 of the DER SubjectPublicKeyInfo of the Ursula's TLS key.
    pub tls_public_key_sha256: [u8; 32],
}

/// [`read_nucypher_keystore`] with the Ursula's TLS key hash as well.
pub fn read_ursula_identity(json: &[u8], password: &[u8]) -> Result<UrsulaIdentity, KeystoreError> {
    NucypherKeystore::parse(json)?.unlock_identity(password)
}

fn factory(seed: &[u8]) -> Result<SecretKeyFactory, KeystoreError> {
    SecretKeyFactory::from_secure_randomness(seed).map_err(|_| {
        KeystoreError::BadKeyMaterial(format!(
            "the seed is {} bytes; a NuCypher seed is {}",
            seed.len(),
            SecretKeyFactory::seed_size()
        ))
    })
}

/// The SHA-256 of the DER SubjectPublicKeyInfo of the TLS key nucypher derives from `seed`
/// (`TLSHostingPower`).
pub fn tls_public_key_sha256_from_seed(seed: &[u8]) -> Result<[u8; 32], KeystoreError> {
    use p384::pkcs8::EncodePublicKey;
    use sha2::{Digest, Sha256};

    let secret = factory(seed)?.make_secret(TLS_LABEL);
    let scalar = secret
        .as_secret()
        .get(..TLS_SCALAR_LEN)
        .ok_or(KeystoreError::Kdf("the TLS secret is too short"))?;
    let key = p384::SecretKey::from_slice(scalar).map_err(|_| {
        KeystoreError::BadKeyMaterial("the TLS secret is not a valid P-384 scalar".to_owned())
    })?;
    let spki = key
        .public_key()
        .to_public_key_der()
        .map_err(|_| KeystoreError::Kdf("the TLS public key does not encode"))?;
    Ok(Sha256::digest(spki.as_bytes()).into())
}

/// The node's keys from its 32-byte seed, as nucypher's `Keystore.derive_crypto_power` derives
/// `DecryptingPower` and `SigningPower`.
pub fn node_keys_from_seed(seed: &[u8]) -> Result<NodeKeys, KeystoreError> {
    let factory = factory(seed)?;
    let mut decrypting = Zeroizing::new([0u8; 32]);
    decrypting.copy_from_slice(factory.make_key(DECRYPTING_LABEL).to_be_bytes().as_secret());
    let mut signing = Zeroizing::new([0u8; 32]);
    signing.copy_from_slice(factory.make_key(SIGNING_LABEL).to_be_bytes().as_secret());
    NodeKeys::from_be_bytes(&decrypting, &signing)
        .map_err(|error| KeystoreError::BadKeyMaterial(error.to_string()))
}

impl NucypherKeystore {
    /// Parses a keystore file strictly: size, JSON shape, version, fields, encodings and
    /// lengths. Cheap: no key derivation.
    pub fn parse(json: &[u8]) -> Result<Self, KeystoreError> {
        if json.len() > MAX_KEYSTORE_LEN {
            return Err(KeystoreError::TooLarge {
                len: json.len(),
                max: MAX_KEYSTORE_LEN,
            });
        }
        // serde_json's syntax errors name a position, never the file's text.
        let value: Value = serde_json::from_slice(json)
            .map_err(|error| KeystoreError::NotJson(error.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(KeystoreError::NotAnObject);
        };
        let version = string_field(&fields, "version")?;
        if version != KEYSTORE_VERSION {
            return Err(KeystoreError::UnsupportedVersion {
                found: echo(version),
            });
        }
        if let Some(unknown) = fields
            .keys()
            .find(|name| !KNOWN_FIELDS.contains(&name.as_str()))
        {
            return Err(KeystoreError::UnknownField(echo(unknown)));
        }
        // nucypher writes `created` and never reads it; it must still be a string if present.
        if fields.contains_key("created") {
            string_field(&fields, "created")?;
        }
        let key = hex_field(&fields, "key")?;
        if key.len() < NONCE_LEN + TAG_LEN {
            return Err(KeystoreError::InvalidField {
                field: "key",
                detail: format!(
                    "is {} bytes, shorter than a secretbox nonce and tag ({})",
                    key.len(),
                    NONCE_LEN + TAG_LEN
                ),
            });
        }
        let (nonce, rest) = key.split_at(NONCE_LEN);
        let (tag, sealed_seed) = rest.split_at(TAG_LEN);
        Ok(Self {
            password_salt: salt_field(&fields, "password_salt")?,
            wrapper_salt: salt_field(&fields, "wrapper_salt")?,
            nonce: fixed(nonce, "key")?,
            tag: fixed(tag, "key")?,
            sealed_seed: sealed_seed.to_vec(),
        })
    }

    /// Unlocks the keystore with `password` and derives the node's keys. Runs scrypt once.
    pub fn unlock(&self, password: &[u8]) -> Result<NodeKeys, KeystoreError> {
        let seed = self.open(password)?;
        node_keys_from_seed(&seed)
    }

    /// [`NucypherKeystore::unlock`] with the Ursula's TLS key hash as well.
    pub fn unlock_identity(&self, password: &[u8]) -> Result<UrsulaIdentity, KeystoreError> {
        let seed = self.open(password)?;
        Ok(UrsulaIdentity {
            keys: node_keys_from_seed(&seed)?,
            tls_public_key_sha256: tls_public_key_sha256_from_seed(&seed)?,
        })
    }

    /// The sealed seed, opened with the key derived from `password`.
    fn open(&self, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        let key_material = password_key_material(password, &self.password_salt)?;
        let wrapping_key = wrapping_key(&key_material, &self.wrapper_salt)?;
        let cipher = XSalsa20Poly1305::new_from_slice(wrapping_key.as_slice())
            .map_err(|_| KeystoreError::Kdf("the wrapping key has the wrong length"))?;
        let mut seed = Zeroizing::new(self.sealed_seed.clone());
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&self.nonce),
                b"",
                seed.as_mut_slice(),
                Tag::from_slice(&self.tag),
            )
            .map_err(|_| KeystoreError::WrongPassword)?;
        Ok(seed)
    }
}

/// scrypt of the password (`derive_key_material_from_password`). The output is zeroized;
/// scrypt's working memory belongs to the `scrypt` crate, which does not zeroize it.
fn password_key_material(
    password: &[u8],
    salt: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
    let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, KEY_LEN)
        .map_err(|_| KeystoreError::Kdf("invalid scrypt parameters"))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(password, salt, &params, out.as_mut_slice())
        .map_err(|_| KeystoreError::Kdf("scrypt output length"))?;
    Ok(out)
}

/// HKDF-BLAKE2b-512 of the key material (`derive_wrapping_key_from_key_material`). The
/// output is zeroized; the `hkdf` crate does not zeroize its internal state.
fn wrapping_key(
    key_material: &[u8; KEY_LEN],
    salt: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    SimpleHkdf::<Blake2b512>::new(Some(salt), key_material)
        .expand(WRAPPING_KEY_INFO, out.as_mut_slice())
        .map_err(|_| KeystoreError::Kdf("HKDF output length"))?;
    Ok(out)
}

fn string_field<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, KeystoreError> {
    match fields.get(field) {
        None => Err(KeystoreError::MissingField(field)),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(KeystoreError::InvalidField {
            field,
            detail: "is not a string".into(),
        }),
    }
}

fn hex_field(fields: &Map<String, Value>, field: &'static str) -> Result<Vec<u8>, KeystoreError> {
    hex::decode(string_field(fields, field)?).map_err(|error| KeystoreError::InvalidField {
        field,
        detail: format!("is not hex: {error}"),
    })
}

fn salt_field(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<[u8; SALT_LEN], KeystoreError> {
    fixed(&hex_field(fields, field)?, field)
}

fn fixed<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], KeystoreError> {
    bytes.try_into().map_err(|_| KeystoreError::InvalidField {
        field,
        detail: format!("is {} bytes; nucypher writes {N}", bytes.len()),
    })
}

/// File-supplied text for an error message, shortened and escaped.
fn echo(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_ECHO)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > MAX_ECHO {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrypt_memory_is_bounded_by_the_fixed_parameters() {
        assert_eq!(SCRYPT_MEMORY_BYTES, 1 << 30);
    }

    #[test]
    fn echo_shortens_and_escapes() {
        assert_eq!(echo("2.0\n"), "2.0\\n");
        assert_eq!(echo(&"x".repeat(100)).chars().count(), MAX_ECHO + 1);
    }
}
