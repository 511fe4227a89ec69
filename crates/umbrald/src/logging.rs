//! Logging setup shared by the subcommands.

use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber writing to stderr. `RUST_LOG`, when set, wins over
/// `filter` (the configuration's `log.filter`).
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => EnvFilter::try_new(env)?,
        _ => EnvFilter::try_new(filter)?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
