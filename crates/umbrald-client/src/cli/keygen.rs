//! `umbrald keygen`: umbral-pre secret keys for Alice, Bob and the kfrag signer.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use umbral_pre::SecretKey;

use super::CliError;
use crate::keyfile::{read_secret_key, write_secret_key};

/// Generate umbral-pre secret keys (secp256k1) for the client-side roles.
///
/// Each key is written to DIR/NAME.sk as 64 hex digits (a 32-byte big-endian scalar) with
/// owner-only permissions (0600), and its compressed public key (33 bytes, hex) is printed.
/// The usual names: `alice` (delegating key: data is encrypted to it), `signer` (signs Alice's
/// kfrags; appliances verify against it) and `bob` (receiving key). `umbrald demo --keys DIR`
/// uses them. Existing files are never replaced unless --force is given. With --show, nothing
/// is generated: the public keys of existing files are printed.
#[derive(Debug, Clone, Args)]
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
}

/// One key that was written or shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// The role name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The compressed public key, hex.
    pub public_key_hex: String,
}

/// Runs `umbrald keygen`, printing one line per key to `out`.
pub fn run(args: &KeygenArgs, out: &mut dyn Write) -> Result<Vec<KeyReport>, CliError> {
    let mut reports = Vec::new();
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
    for name in &args.names {
        let path = key_path(&args.out_dir, name);
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

/// The file that holds key `name` in `dir`.
pub fn key_path(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_then_shows_the_same_public_keys() {
        let dir = std::env::temp_dir().join(format!("umbrald-keygen-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut args = KeygenArgs {
            out_dir: dir.clone(),
            names: vec!["alice".into(), "bob".into()],
            force: false,
            show: false,
        };
        let mut out = Vec::new();
        let made = run(&args, &mut out).expect("keygen");
        assert_eq!(made.len(), 2);
        assert!(made.iter().all(|k| k.public_key_hex.len() == 66));
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains(&made[0].public_key_hex));

        // A second run refuses to overwrite.
        assert!(matches!(
            run(&args, &mut Vec::new()),
            Err(CliError::KeyFile(_))
        ));

        args.show = true;
        let shown = run(&args, &mut Vec::new()).expect("show");
        assert_eq!(shown, made);

        args.names = vec!["../evil".into()];
        assert!(matches!(
            run(&args, &mut Vec::new()),
            Err(CliError::Usage(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
