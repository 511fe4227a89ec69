//! `umbrald keygen`: the client-side keys ([`umbrald_client::cli::keygen`]), or with `--node`
//! the NuCypher node keys.

use std::path::PathBuf;

use umbrald_client::cli::keygen::{self, KeygenArgs};
use umbrald_nucypher::NodeKeys;

use crate::node_keys;

/// Generate umbral-pre secret keys (secp256k1).
///
/// Without --node: keys for the client-side roles. Each key is written to DIR/NAME.sk as 64 hex
/// digits (a 32-byte big-endian scalar) with owner-only permissions (0600), and its compressed
/// public key (33 bytes, hex) is printed. The usual names: `alice` (delegating key), `signer`
/// (signs Alice's kfrags) and `bob` (receiving key). `umbrald demo --keys DIR` uses them.
///
/// With --node: the NuCypher node (Ursula) keys, a decrypting key (publishers encrypt kfrags to
/// it) and a signing key (the node signs its responses), sealed with a passphrase (Argon2id,
/// XChaCha20-Poly1305) into DIR/node.keys (or --node-keys FILE), mode 0600. The passphrase is
/// the first line of --node-keys-passphrase-file FILE, else $UMBRALD_NODE_KEYS_PASSPHRASE.
/// `umbrald serve --node-keys FILE` uses them.
///
/// Existing files are never replaced unless --force is given. With --show, nothing is
/// generated: the public keys of existing files are printed (no passphrase needed).
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenCmd {
    #[command(flatten)]
    base: KeygenArgs,

    /// Generate the NuCypher node keys instead of the client-side keys.
    #[arg(long)]
    node: bool,

    /// The node key file (with --node; default DIR/node.keys).
    #[arg(long, value_name = "FILE", requires = "node")]
    node_keys: Option<PathBuf>,

    /// File whose first line is the node key passphrase (with --node).
    #[arg(long, value_name = "FILE", requires = "node")]
    node_keys_passphrase_file: Option<PathBuf>,
}

/// Generates (or, with `--show`, reads) the key files and prints their public keys.
pub fn run(args: KeygenCmd) -> anyhow::Result<()> {
    if !args.node {
        keygen::run(&args.base, &mut std::io::stdout())?;
        return Ok(());
    }
    let path = args
        .node_keys
        .clone()
        .unwrap_or_else(|| args.base.out_dir.join("node.keys"));
    let (decrypting, verifying) = if args.base.show {
        node_keys::public_keys(&path)?
    } else {
        let passphrase = node_keys::passphrase(args.node_keys_passphrase_file.as_deref())?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let keys = NodeKeys::random();
        node_keys::write(&path, &keys, &passphrase, args.base.force)?;
        (*keys.decrypting_public_key(), *keys.verifying_public_key())
    };
    node_keys::print_public_keys(&mut std::io::stdout(), &path, &decrypting, &verifying)?;
    Ok(())
}
