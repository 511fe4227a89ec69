//! Logging setup shared by the subcommands.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber writing to stderr with `filter`, a directive that `RUST_LOG`,
/// when set and not empty, replaces (for the subcommands without a configuration).
pub fn init(filter: &str) -> anyhow::Result<()> {
    match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => install(EnvFilter::try_new(env)?),
        _ => install(EnvFilter::try_new(filter)?),
    }
}

/// Installs a `tracing` subscriber writing to stderr with the configuration's `log.filter`
/// (where `RUST_LOG` already took its place below `UMBRALD_LOG` and `--log`).
pub fn init_configured(filter: &str) -> anyhow::Result<()> {
    install(EnvFilter::try_new(filter)?)
}

fn install(filter: EnvFilter) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in journald or log files.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
