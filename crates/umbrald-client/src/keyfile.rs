//! Secret key files of the client-side roles (Alice's delegating key, her kfrag signer, Bob's
//! receiving key): one umbral-pre secret key as 64 hex digits (32-byte big-endian scalar) and a
//! newline, readable by the owner only (mode 0600 on Unix). Role `NAME` lives in `DIR/NAME.sk`
//! ([`secret_key_path`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use umbral_pre::SecretKey;

/// Failure to read or write a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{0} exists (use --force to overwrite)")]
    Exists(PathBuf),
    /// The content is not 64 hex digits of a valid non-zero scalar.
    #[error(
        "{0}: not a secret key (expected 64 hex digits of a non-zero scalar below the curve order)"
    )]
    Invalid(PathBuf),
}

/// The file that holds the key of role `name` in `dir`: `dir/name.sk`.
pub fn secret_key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sk"))
}

/// Writes `key` to `path` with owner-only permissions. Refuses to replace an existing file
/// unless `overwrite`.
pub fn write_secret_key(path: &Path, key: &SecretKey, overwrite: bool) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = umbrald_nucypher::keyfile::create_owner_only(path, overwrite).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(path.to_owned())
        } else {
            io(e)
        }
    })?;
    // An existing file keeps its old mode when truncated: tighten it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    let mut text = hex::encode(key.to_be_bytes().as_secret());
    text.push('\n');
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    zeroize_string(&mut text);
    written.map_err(io)
}

/// Reads a key written by [`write_secret_key`] (surrounding whitespace is ignored).
pub fn read_secret_key(path: &Path) -> Result<SecretKey, KeyFileError> {
    let mut text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let key = parse_secret_key(text.trim()).ok_or_else(|| KeyFileError::Invalid(path.to_owned()));
    zeroize_string(&mut text);
    key
}

/// Parses 64 hex digits as a secret key.
fn parse_secret_key(hex_digits: &str) -> Option<SecretKey> {
    // umbral-pre only builds a key from its own `SecretBox`, which has no public constructor:
    // take the box of a throwaway key and overwrite its bytes. The box zeroizes on drop.
    let mut bytes = SecretKey::random().to_be_bytes();
    let target = bytes.as_mut_secret();
    if hex::decode_to_slice(hex_digits, target.as_mut_slice()).is_err() {
        return None;
    }
    SecretKey::try_from_be_bytes(&bytes).ok()
}

fn zeroize_string(text: &mut String) {
    zeroize::Zeroize::zeroize(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("umbrald-keyfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn round_trip_with_owner_only_mode() {
        let path = temp_path("rt");
        let key = SecretKey::random();
        write_secret_key(&path, &key, false).expect("write");
        let back = read_secret_key(&path).expect("read");
        assert!(back == key);
        let text = std::fs::read_to_string(&path).expect("text");
        assert_eq!(text.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_secret_key(&path, &key, false),
            Err(KeyFileError::Exists(_))
        ));
        write_secret_key(&path, &SecretKey::random(), true).expect("overwrite");
        assert!(read_secret_key(&path).expect("read") != key);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn junk_and_zero_are_not_keys() {
        assert!(parse_secret_key("zz").is_none());
        assert!(parse_secret_key(&"00".repeat(32)).is_none());
        assert!(
            parse_secret_key(&"ff".repeat(32)).is_none(),
            "above the group order"
        );
        assert!(parse_secret_key(&"01".repeat(32)).is_some());
    }

    /// Key files written by `umbrald keygen` (tests/fixtures/keys) and their public keys.
    const FIXTURES: [(&str, &str); 3] = [
        (
            "alice",
            "03c6ee8d00b4f0f8cebc4f1770e10ccee197d4d3233f0c7fb434b3e7f2980302af",
        ),
        (
            "bob",
            "0302cf0f51de4652514fef1c0f32bf79f96542989b361f7bd462932be50c64a0bc",
        ),
        (
            "signer",
            "02f420815a0721db746c347b41f4639a7fe94f1fef7cfd2b70a056bbb49b4d67d8",
        ),
    ];

    #[test]
    fn existing_files_still_load_and_are_written_byte_for_byte_the_same() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
        for (name, public_key_hex) in FIXTURES {
            let path = secret_key_path(&dir, name);
            let key = read_secret_key(&path).expect("fixture loads");
            assert_eq!(
                hex::encode(key.public_key().to_compressed_bytes()),
                public_key_hex
            );
            let copy = temp_path(&format!("fixture-{name}"));
            write_secret_key(&copy, &key, false).expect("write");
            assert_eq!(
                std::fs::read(&copy).expect("copy"),
                std::fs::read(&path).expect("fixture")
            );
            let _ = std::fs::remove_file(&copy);
        }
    }
}
