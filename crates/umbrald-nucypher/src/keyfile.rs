//! The node key file: both secret keys sealed with a passphrase.
//!
//! The file is JSON. The secret part, the two 32-byte big-endian scalars (decrypting, then
//! signing), is encrypted with XChaCha20-Poly1305 under a key that Argon2id derives from the
//! passphrase and a random salt. The public keys and the KDF parameters are in the clear, so
//! that `umbrald keygen --node --show` needs no passphrase, and are authenticated as the AEAD's
//! associated data. [`seal`], [`open`] and [`public_keys`] turn keys into text and back;
//! [`write_file`], [`read_file`] and [`read_public_keys`] do the same with a file on disk,
//! written with owner-only permissions (mode 0600 on Unix).
//!
//! ```text
//! {"format": "umbrald-node-keys/1", "kdf": "argon2id", "m_cost_kib": 65536, "t_cost": 3,
//!  "p_cost": 1, "salt": "<32 hex>", "aead": "xchacha20poly1305", "nonce": "<48 hex>",
//!  "ciphertext": "<160 hex>", "decrypting_public_key": "<66 hex>",
//!  "verifying_public_key": "<66 hex>"}
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::NodeKeys;

/// The `format` field of a node key file.
pub const FORMAT: &str = "umbrald-node-keys/1";
/// Largest Argon2 memory cost accepted when opening a file (4 GiB), so that a damaged file
/// cannot exhaust memory.
const MAX_M_COST_KIB: u32 = 4 << 20;
/// Largest Argon2 time cost accepted when opening a file.
const MAX_T_COST: u32 = 64;

/// Why a key file could not be sealed or opened. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Not a node key file of this format.
    #[error("not an umbrald node key file: {0}")]
    Format(String),
    /// The KDF parameters are out of range.
    #[error("bad key derivation parameters: {0}")]
    Kdf(String),
    /// Wrong passphrase, or the file was altered.
    #[error("cannot decrypt the node keys: wrong passphrase, or the file was altered")]
    Decrypt,
    /// The decrypted keys are not valid or do not match the public keys in the file.
    #[error("the node keys in the file are invalid or do not match its public keys")]
    Keys,
}

/// Why a node key file could not be written or read. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeKeyFileError {
    /// The file exists and overwriting was not asked for.
    #[error("{} exists (use --force to overwrite)", .0.display())]
    Exists(PathBuf),
    /// The file could not be created, restricted, written or read.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file's content could not be sealed or opened.
    #[error("{}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyFileError,
    },
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (about a quarter of a second on a server core).
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: String,
    kdf: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
    aead: String,
    nonce: String,
    ciphertext: String,
    decrypting_public_key: String,
    verifying_public_key: String,
}

impl File {
    /// The associated data: everything in the clear, in a fixed order.
    fn aad(&self) -> Vec<u8> {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.format,
            self.kdf,
            self.m_cost_kib,
            self.t_cost,
            self.p_cost,
            self.salt,
            self.aead,
            self.decrypting_public_key,
            self.verifying_public_key
        )
        .into_bytes()
    }
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    if params.m_cost_kib > MAX_M_COST_KIB || params.t_cost > MAX_T_COST {
        return Err(KeyFileError::Kdf(format!(
            "m_cost_kib ≤ {MAX_M_COST_KIB} and t_cost ≤ {MAX_T_COST} required"
        )));
    }
    let argon_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    Ok(key)
}

/// Seals `keys` under `passphrase` and returns the file's text (ending in a newline).
pub fn seal(keys: &NodeKeys, passphrase: &[u8], params: KdfParams) -> Result<String, KeyFileError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut nonce);
    let mut file = File {
        format: FORMAT.to_owned(),
        kdf: "argon2id".to_owned(),
        m_cost_kib: params.m_cost_kib,
        t_cost: params.t_cost,
        p_cost: params.p_cost,
        salt: hex::encode(salt),
        aead: "xchacha20poly1305".to_owned(),
        nonce: hex::encode(nonce),
        ciphertext: String::new(),
        decrypting_public_key: hex::encode(keys.decrypting_public_key()),
        verifying_public_key: hex::encode(keys.verifying_public_key()),
    };
    let key = derive_key(passphrase, &salt, params)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let secret = keys.secret_bytes();
    let aad = file.aad();
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret.as_ref(),
                aad: &aad,
            },
        )
        .map_err(|_| KeyFileError::Decrypt)?;
    file.ciphertext = hex::encode(ciphertext);
    let mut text =
        serde_json::to_string_pretty(&file).map_err(|e| KeyFileError::Format(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

fn parse(text: &str) -> Result<File, KeyFileError> {
    let file: File = serde_json::from_str(text).map_err(|e| KeyFileError::Format(e.to_string()))?;
    if file.format != FORMAT || file.kdf != "argon2id" || file.aead != "xchacha20poly1305" {
        return Err(KeyFileError::Format(format!(
            "format {:?}, kdf {:?}, aead {:?}; expected {FORMAT}, argon2id, xchacha20poly1305",
            file.format, file.kdf, file.aead
        )));
    }
    Ok(file)
}

fn hex_field<const N: usize>(value: &str, name: &str) -> Result<[u8; N], KeyFileError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(value, &mut out)
        .map_err(|_| KeyFileError::Format(format!("`{name}` is not {N} bytes of hex")))?;
    Ok(out)
}

/// The public keys recorded in a key file (decrypting, verifying), without the passphrase.
pub fn public_keys(text: &str) -> Result<([u8; 33], [u8; 33]), KeyFileError> {
    let file = parse(text)?;
    Ok((
        hex_field(&file.decrypting_public_key, "decrypting_public_key")?,
        hex_field(&file.verifying_public_key, "verifying_public_key")?,
    ))
}

/// Opens a key file's text with `passphrase`.
pub fn open(text: &str, passphrase: &[u8]) -> Result<NodeKeys, KeyFileError> {
    let file = parse(text)?;
    let (decrypting_pk, verifying_pk) = public_keys(text)?;
    let salt = hex_field::<16>(&file.salt, "salt")?;
    let nonce = hex_field::<24>(&file.nonce, "nonce")?;
    let ciphertext = hex::decode(&file.ciphertext)
        .map_err(|_| KeyFileError::Format("`ciphertext` is not hex".into()))?;
    let params = KdfParams {
        m_cost_kib: file.m_cost_kib,
        t_cost: file.t_cost,
        p_cost: file.p_cost,
    };
    let key = derive_key(passphrase, &salt, params)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let aad = file.aad();
    let secret = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyFileError::Decrypt)?,
    );
    if secret.len() != 64 {
        return Err(KeyFileError::Keys);
    }
    let mut decrypting = Zeroizing::new([0u8; 32]);
    let mut signing = Zeroizing::new([0u8; 32]);
    decrypting.copy_from_slice(&secret[..32]);
    signing.copy_from_slice(&secret[32..]);
    let keys = NodeKeys::from_be_bytes(&decrypting, &signing).map_err(|_| KeyFileError::Keys)?;
    if keys.decrypting_public_key() != &decrypting_pk
        || keys.verifying_public_key() != &verifying_pk
    {
        return Err(KeyFileError::Keys);
    }
    Ok(keys)
}

/// Seals `keys` under `passphrase` into `path`, mode 0600. An existing file is replaced only
/// if `overwrite`.
pub fn write_file(
    path: &Path,
    keys: &NodeKeys,
    passphrase: &[u8],
    params: KdfParams,
    overwrite: bool,
) -> Result<(), NodeKeyFileError> {
    let io = |action| {
        move |source| NodeKeyFileError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let text = Zeroizing::new(seal(keys, passphrase, params).map_err(|source| {
        NodeKeyFileError::Content {
            path: path.to_owned(),
            source,
        }
    })?);
    let mut file = create_owner_only(path, overwrite).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            NodeKeyFileError::Exists(path.to_owned())
        } else {
            io("create")(e)
        }
    })?;
    // An existing file keeps its old mode when truncated: tighten it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io("restrict"))?;
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write"))
}

/// Opens the key file at `path` with `passphrase`.
pub fn read_file(path: &Path, passphrase: &[u8]) -> Result<NodeKeys, NodeKeyFileError> {
    let text = Zeroizing::new(read_text(path)?);
    open(&text, passphrase).map_err(|source| NodeKeyFileError::Content {
        path: path.to_owned(),
        source,
    })
}

/// The public keys (decrypting, verifying) recorded in the key file at `path`; no passphrase
/// needed.
pub fn read_public_keys(path: &Path) -> Result<([u8; 33], [u8; 33]), NodeKeyFileError> {
    public_keys(&read_text(path)?).map_err(|source| NodeKeyFileError::Content {
        path: path.to_owned(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, NodeKeyFileError> {
    std::fs::read_to_string(path).map_err(|source| NodeKeyFileError::Io {
        action: "read the node key file",
        path: path.to_owned(),
        source,
    })
}

/// Creates `path` for writing with owner-only permissions (0600 on Unix): truncated when
/// `overwrite`, else only if it does not exist (`AlreadyExists` otherwise). Every key file,
/// the node's and the client's, is created this way.
pub fn create_owner_only(path: &Path, overwrite: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn seal_then_open_gives_the_same_keys() {
        let keys = NodeKeys::random();
        let text = seal(&keys, b"correct horse", FAST).expect("seal");
        let back = open(&text, b"correct horse").expect("open");
        assert_eq!(*back.secret_bytes(), *keys.secret_bytes());
        assert_eq!(
            public_keys(&text).expect("public"),
            (*keys.decrypting_public_key(), *keys.verifying_public_key())
        );
        let secret_hex = hex::encode(&keys.secret_bytes()[..32]);
        assert!(!text.contains(&secret_hex), "secret in the clear");
    }

    #[test]
    fn wrong_passphrase_and_tampering_are_refused() {
        let keys = NodeKeys::random();
        let text = seal(&keys, b"pw", FAST).expect("seal");
        assert_eq!(open(&text, b"PW").err(), Some(KeyFileError::Decrypt));
        // Swapping in another node's public key breaks the associated data.
        let other = hex::encode(NodeKeys::random().verifying_public_key());
        let mine = hex::encode(keys.verifying_public_key());
        let swapped = text.replace(&mine, &other);
        assert_eq!(open(&swapped, b"pw").err(), Some(KeyFileError::Decrypt));
        assert!(matches!(open("{}", b"pw"), Err(KeyFileError::Format(_))));
        let huge = text.replace("\"m_cost_kib\": 64", "\"m_cost_kib\": 4294967295");
        assert!(matches!(open(&huge, b"pw"), Err(KeyFileError::Kdf(_))));
    }

    /// A key file written by `umbrald keygen --node` (tests/fixtures/node.keys).
    const FIXTURE: &str = include_str!("../tests/fixtures/node.keys");
    const FIXTURE_PASSPHRASE: &[u8] = b"fixture passphrase";
    const FIXTURE_DECRYPTING: &str =
        "02bdb95225029611f5ecda0f1f57511c3e5475a9b4a6dac258f5eca37a76ab3e52";
    const FIXTURE_VERIFYING: &str =
        "0235dcc4c732c840f9c73c3f386799cc7477385c62e0f625d4afbab8e40ca0d8da";

    fn fixture_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node.keys")
    }

    fn temp_path(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "umbrald-node-keyfile-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn an_existing_file_still_opens() {
        let path = fixture_path();
        let keys = read_file(&path, FIXTURE_PASSPHRASE).expect("opens");
        assert_eq!(
            hex::encode(keys.decrypting_public_key()),
            FIXTURE_DECRYPTING
        );
        assert_eq!(hex::encode(keys.verifying_public_key()), FIXTURE_VERIFYING);
        let (decrypting, verifying) = read_public_keys(&path).expect("public keys");
        assert_eq!(
            (hex::encode(decrypting), hex::encode(verifying)),
            (FIXTURE_DECRYPTING.to_owned(), FIXTURE_VERIFYING.to_owned())
        );
        assert!(matches!(
            read_file(&path, b"wrong"),
            Err(NodeKeyFileError::Content {
                source: KeyFileError::Decrypt,
                ..
            })
        ));
    }

    #[test]
    fn the_writer_lays_out_a_file_byte_for_byte_as_before() {
        let file = parse(FIXTURE).expect("parses");
        let mut text = serde_json::to_string_pretty(&file).expect("serializes");
        text.push('\n');
        assert_eq!(text, FIXTURE);
    }

    #[test]
    fn write_file_then_read_file_with_owner_only_mode() {
        let path = temp_path("rt");
        let keys = NodeKeys::random();
        write_file(&path, &keys, b"pw", FAST, false).expect("write");
        let back = read_file(&path, b"pw").expect("read");
        assert_eq!(*back.secret_bytes(), *keys.secret_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_file(&path, &keys, b"pw", FAST, false),
            Err(NodeKeyFileError::Exists(_))
        ));
        let other = NodeKeys::random();
        write_file(&path, &other, b"pw2", FAST, true).expect("overwrite");
        assert_eq!(
            read_public_keys(&path).expect("public keys"),
            (
                *other.decrypting_public_key(),
                *other.verifying_public_key()
            )
        );
        let _ = std::fs::remove_file(&path);
        assert!(matches!(
            read_public_keys(&path),
            Err(NodeKeyFileError::Io { .. })
        ));
    }
}
