//! `umbrald keygen`: see [`umbrald_client::cli::keygen`].

use umbrald_client::cli::keygen::{self, KeygenArgs};

/// Generates (or, with `--show`, reads) the key files and prints their public keys.
pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    keygen::run(&args, &mut std::io::stdout())?;
    Ok(())
}
