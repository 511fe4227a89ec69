//! `umbrald keygen`: the client-side secret keys, or with `--node` the sealed NuCypher node
//! keys; and the node key passphrase, which `umbrald serve --node-keys` reads the same way.
//!
//! The file formats are [`umbrald_client::keyfile`]'s (one secret key per role) and
//! [`umbrald_nucypher::keyfile`]'s (the sealed node key file).

use std::io::Write;
use std::path::{Path, PathBuf};

use umbral_pre::SecretKey;
use umbrald_client::keyfile::{read_secret_key, secret_key_path, write_secret_key};
use umbrald_nucypher::keyfile::{self as node_keyfile, KdfParams};
use umbrald_nucypher::keystore::{read_ursula_identity, UrsulaIdentity, MAX_KEYSTORE_LEN};
use umbrald_nucypher::NodeKeys;
use zeroize::Zeroizing;

use crate::error::{CliError, PassphraseError, SecretSource};

/// Environment variable that may hold the node key file's passphrase.
pub const PASSPHRASE_ENV: &str = "UMBRALD_NODE_KEYS_PASSPHRASE";

/// Environment variable that may hold a nucypher keystore's password: the one nucypher itself
/// reads.
pub const KEYSTORE_PASSWORD_ENV: &str = "NUCYPHER_KEYSTORE_PASSWORD";

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
pub struct KeygenArgs {
    /// Directory for the key files (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".umbrald/keys")]
    pub out_dir: PathBuf,

    /// Which keys to make (comma-separated names; each becomes NAME.sk).
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        default_value = "alice,bob,signer"
    )]
    pub names: Vec<String>,

    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,

    /// Print the public keys of existing key files instead of generating.
    #[arg(long)]
    pub show: bool,

    /// Generate the NuCypher node keys instead of the client-side keys.
    #[arg(long)]
    pub node: bool,

    /// The node key file (with --node; default DIR/node.keys).
    #[arg(long, value_name = "FILE", requires = "node")]
    pub node_keys: Option<PathBuf>,

    /// File whose first line is the node key passphrase (with --node).
    #[arg(long, value_name = "FILE", requires = "node")]
    pub node_keys_passphrase_file: Option<PathBuf>,

    /// Take the node keys from an Ursula's nucypher keystore file (nucypher 7.x, the
    /// `keystore/*.priv` of its config root) instead of generating them, so that umbrald holds
    /// the node's own decrypting and signing keys (with --node).
    #[arg(long, value_name = "FILE", requires = "node", conflicts_with = "show")]
    pub from_nucypher_keystore: Option<PathBuf>,

    /// File whose first line is the nucypher keystore's password; else
    /// $NUCYPHER_KEYSTORE_PASSWORD (with --from-nucypher-keystore).
    #[arg(long, value_name = "FILE", requires = "from_nucypher_keystore")]
    pub nucypher_keystore_password_file: Option<PathBuf>,
}

/// One client-side key that was written or shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// The role name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The compressed public key, hex.
    pub public_key_hex: String,
}

/// The node key file's passphrase.
pub const NODE_KEYS_PASSPHRASE: SecretSource = SecretSource {
    what: "node key passphrase",
    flag: "--node-keys-passphrase-file",
    env: PASSPHRASE_ENV,
};

/// A nucypher keystore's password.
pub const KEYSTORE_PASSWORD: SecretSource = SecretSource {
    what: "nucypher keystore password",
    flag: "--nucypher-keystore-password-file",
    env: KEYSTORE_PASSWORD_ENV,
};

/// Generates (or, with `--show`, reads) the key files and prints their public keys.
pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    if args.node {
        node_command(&args, &mut stdout)?;
    } else {
        client_keys(&args, &mut stdout)?;
    }
    Ok(())
}

/// The client-side keys: one line per key to `out`.
pub fn client_keys(args: &KeygenArgs, out: &mut dyn Write) -> Result<Vec<KeyReport>, CliError> {
    for name in &args.names {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(CliError::Usage(format!(
                "key name {name:?}: use letters, digits, '-' and '_' only"
            )));
        }
    }
    if !args.show {
        std::fs::create_dir_all(&args.out_dir)
            .map_err(CliError::output(args.out_dir.display().to_string()))?;
    }
    let mut reports = Vec::new();
    for name in &args.names {
        let path = secret_key_path(&args.out_dir, name);
        let key = if args.show {
            read_secret_key(&path)?
        } else {
            let key = SecretKey::random();
            write_secret_key(&path, &key, args.force)?;
            key
        };
        let public_key_hex = hex::encode(key.public_key().to_compressed_bytes());
        writeln!(
            out,
            "{name:<8} public key {public_key_hex}  ({})",
            path.display()
        )
        .map_err(CliError::output("stdout"))?;
        reports.push(KeyReport {
            name: name.clone(),
            path,
            public_key_hex,
        });
    }
    Ok(reports)
}

/// The node keys: sealed into their file (or, with `--show`, read from it), public keys to
/// `out`.
fn node_command(args: &KeygenArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = args
        .node_keys
        .clone()
        .unwrap_or_else(|| args.out_dir.join("node.keys"));
    let (decrypting, verifying) = if args.show {
        node_keyfile::read_public_keys(&path)?
    } else {
        let passphrase = passphrase(args.node_keys_passphrase_file.as_deref())?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(CliError::output(dir.display().to_string()))?;
        }
        let (keys, tls_pin) = match &args.from_nucypher_keystore {
            Some(keystore) => {
                let password = first_line(
                    args.nucypher_keystore_password_file.as_deref(),
                    KEYSTORE_PASSWORD,
                )?;
                let identity = ursula_identity(keystore, &password)?;
                (identity.keys, Some(identity.tls_public_key_sha256))
            }
            None => (NodeKeys::random(), None),
        };
        node_keyfile::write_file(&path, &keys, &passphrase, KdfParams::default(), args.force)?;
        if let Some(pin) = tls_pin {
            // What `[nucypher] upstream_public_key_sha256` needs to front this Ursula.
            writeln!(
                out,
                "Ursula TLS public key sha256 {}  ([nucypher] upstream_public_key_sha256)",
                hex::encode(pin)
            )
            .map_err(CliError::output("stdout"))?;
        }
        (*keys.decrypting_public_key(), *keys.verifying_public_key())
    };
    print_node_public_keys(out, &path, &decrypting, &verifying)
}

/// Opens the node key file at `path` for `umbrald serve`, with the passphrase from
/// `passphrase_file` or the environment, and prints its public keys to `out`.
pub fn open_node_keys(
    path: &Path,
    passphrase_file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<NodeKeys, CliError> {
    let passphrase = passphrase(passphrase_file)?;
    let keys = node_keyfile::read_file(path, &passphrase)?;
    print_node_public_keys(
        out,
        path,
        keys.decrypting_public_key(),
        keys.verifying_public_key(),
    )?;
    Ok(keys)
}

/// Reads an Ursula's nucypher keystore and derives the node's keys and its TLS key's hash.
fn ursula_identity(path: &Path, password: &[u8]) -> Result<UrsulaIdentity, CliError> {
    let keystore_error = |source| CliError::Keystore {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(CliError::input(path))?;
    let mut json = Zeroizing::new(Vec::new());
    // One byte more than a keystore may hold, so that a larger file is refused as such.
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_KEYSTORE_LEN as u64 + 1),
        &mut json,
    )
    .map_err(CliError::input(path))?;
    read_ursula_identity(&json, password).map_err(keystore_error)
}

/// The node key passphrase: the first line of `file` when given, else
/// `$UMBRALD_NODE_KEYS_PASSPHRASE`. Empty passphrases are refused.
pub fn passphrase(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
    first_line(file, NODE_KEYS_PASSPHRASE)
}

/// A secret given as the first line of `file` when given, else as `source`'s environment
/// variable, without its line ending. Empty secrets are refused.
fn first_line(
    file: Option<&Path>,
    source: SecretSource,
) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
    let what = source.what;
    let mut bytes = Zeroizing::new(match file {
        Some(path) => std::fs::read(path).map_err(|source| PassphraseError::Read {
            what,
            path: path.to_owned(),
            source,
        })?,
        None => match std::env::var_os(source.env) {
            Some(value) => value.into_encoded_bytes(),
            None => return Err(PassphraseError::Missing(source)),
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
        return Err(PassphraseError::Empty { what });
    }
    Ok(bytes)
}

/// Prints the node's public keys the way `keygen` and `serve` show them.
fn print_node_public_keys(
    out: &mut dyn Write,
    path: &Path,
    decrypting: &[u8; 33],
    verifying: &[u8; 33],
) -> Result<(), CliError> {
    writeln!(
        out,
        "node decrypting public key {}  ({})",
        hex::encode(decrypting),
        path.display()
    )
    .and_then(|()| writeln!(out, "node verifying public key  {}", hex::encode(verifying)))
    .map_err(CliError::output("stdout"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        keygen: KeygenArgs,
    }

    fn args(list: &[&str]) -> KeygenArgs {
        Cli::try_parse_from(std::iter::once("keygen").chain(list.iter().copied()))
            .expect("keygen arguments parse")
            .keygen
    }

    #[test]
    fn generates_then_shows_the_same_public_keys() {
        let dir = std::env::temp_dir().join(format!("umbrald-keygen-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut args = args(&["--names", "alice,bob"]);
        args.out_dir = dir.clone();
        let mut out = Vec::new();
        let made = client_keys(&args, &mut out).expect("keygen");
        assert_eq!(made.len(), 2);
        assert!(made.iter().all(|k| k.public_key_hex.len() == 66));
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains(&made[0].public_key_hex));

        // A second run refuses to overwrite.
        assert!(matches!(
            client_keys(&args, &mut Vec::new()),
            Err(CliError::KeyFile(_))
        ));

        args.show = true;
        let shown = client_keys(&args, &mut Vec::new()).expect("show");
        assert_eq!(shown, made);

        args.names = vec!["../evil".into()];
        assert!(matches!(
            client_keys(&args, &mut Vec::new()),
            Err(CliError::Usage(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_passphrase_is_the_first_line_and_not_empty() {
        let dir = std::env::temp_dir().join(format!("umbrald-passphrase-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("pass");
        std::fs::write(&file, "s3cret\r\nsecond line\n").expect("write");
        assert_eq!(&**passphrase(Some(&file)).expect("read"), b"s3cret");
        std::fs::write(&file, "\nnot the first line\n").expect("write");
        assert!(matches!(
            passphrase(Some(&file)),
            Err(PassphraseError::Empty { .. })
        ));
        assert!(matches!(
            passphrase(Some(&dir.join("missing"))),
            Err(PassphraseError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A keystore written by nucypher 7.6.1's own `Keystore.generate` (umbrald-nucypher's test
    /// fixture), imported: the sealed node key file holds the keys nucypher derives for the
    /// node, and a wrong password is refused before anything is written.
    #[test]
    fn node_keys_come_from_a_nucypher_keystore() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../umbrald-nucypher/tests/fixtures/keystore");
        let expected: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixtures.join("keystore-1.expected.json")).expect("expected keys"),
        )
        .expect("expected keys parse");
        let text = |key: &str| expected[key].as_str().expect("a string").to_owned();
        let dir = std::env::temp_dir().join(format!("umbrald-keystore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (passphrase_file, password_file) = (dir.join("pass"), dir.join("password"));
        std::fs::write(&passphrase_file, "node key passphrase\n").expect("write");
        let keystore = fixtures.join("keystore-1.priv");
        let node_keys = dir.join("node.keys");
        let run = |password: &str| {
            std::fs::write(&password_file, format!("{password}\n")).expect("write");
            let args = args(&[
                "--node",
                "--node-keys",
                node_keys.to_str().expect("utf-8"),
                "--node-keys-passphrase-file",
                passphrase_file.to_str().expect("utf-8"),
                "--from-nucypher-keystore",
                keystore.to_str().expect("utf-8"),
                "--nucypher-keystore-password-file",
                password_file.to_str().expect("utf-8"),
            ]);
            let mut out = Vec::new();
            node_command(&args, &mut out).map(|()| String::from_utf8(out).expect("utf-8"))
        };
        assert!(matches!(
            run("not the password"),
            Err(CliError::Keystore { .. })
        ));
        assert!(!node_keys.exists(), "nothing written on a wrong password");
        let printed = run(&text("password")).expect("imported");
        assert!(
            printed.contains(&text("decrypting_public_key")),
            "{printed}"
        );
        assert!(printed.contains(&text("verifying_public_key")), "{printed}");
        let passphrase = passphrase(Some(&passphrase_file)).expect("passphrase");
        let sealed = node_keyfile::read_file(&node_keys, &passphrase).expect("sealed keys");
        assert_eq!(
            hex::encode(sealed.decrypting_public_key()),
            text("decrypting_public_key")
        );
        assert_eq!(
            hex::encode(sealed.verifying_public_key()),
            text("verifying_public_key")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
