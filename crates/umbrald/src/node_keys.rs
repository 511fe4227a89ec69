//! NuCypher node key files on disk: passphrase input, owner-only writing, loading.
//!
//! The format and the cryptography are `umbrald_nucypher::keyfile`'s; this module does the I/O.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use umbrald_nucypher::keyfile::{self, KdfParams};
use umbrald_nucypher::NodeKeys;
use zeroize::Zeroizing;

/// Environment variable that may hold the node key file's passphrase.
pub const PASSPHRASE_ENV: &str = "UMBRALD_NODE_KEYS_PASSPHRASE";

/// The passphrase: the first line of `file` when given, else `$UMBRALD_NODE_KEYS_PASSPHRASE`.
/// Empty passphrases are refused.
pub fn passphrase(file: Option<&Path>) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(match file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("cannot read the passphrase file {}", path.display()))?,
        None => match std::env::var_os(PASSPHRASE_ENV) {
            Some(value) => value.into_encoded_bytes(),
            None => bail!(
                "the node key passphrase is needed: give --node-keys-passphrase-file FILE or set \
                 {PASSPHRASE_ENV}"
            ),
        },
    });
    // Only the first line counts, without its line ending.
    if let Some(end) = bytes.iter().position(|b| *b == b'\n') {
        bytes.truncate(end);
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        bail!("the node key passphrase is empty");
    }
    Ok(bytes)
}

/// Seals `keys` into `path` with mode 0600; an existing file is replaced only if `overwrite`.
pub fn write(
    path: &Path,
    keys: &NodeKeys,
    passphrase: &[u8],
    overwrite: bool,
) -> anyhow::Result<()> {
    let text = Zeroizing::new(keyfile::seal(keys, passphrase, KdfParams::default())?);
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
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists (use --force to overwrite)", path.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Opens the key file at `path` with `passphrase`.
pub fn load(path: &Path, passphrase: &[u8]) -> anyhow::Result<NodeKeys> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the node key file {}", path.display()))?,
    );
    keyfile::open(&text, passphrase).with_context(|| format!("{}", path.display()))
}

/// The public keys (decrypting, verifying) recorded in the key file at `path`.
pub fn public_keys(path: &Path) -> anyhow::Result<([u8; 33], [u8; 33])> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the node key file {}", path.display()))?;
    keyfile::public_keys(&text).with_context(|| format!("{}", path.display()))
}

/// Prints the node's public keys the way `keygen` and `serve` show them.
pub fn print_public_keys(
    out: &mut dyn Write,
    path: &Path,
    decrypting: &[u8; 33],
    verifying: &[u8; 33],
) -> std::io::Result<()> {
    writeln!(
        out,
        "node decrypting public key {}  ({})",
        hex::encode(decrypting),
        path.display()
    )?;
    writeln!(out, "node verifying public key  {}", hex::encode(verifying))
}
