//! `umbrald config ...`.

use umbrald_server::{Config, Overrides, Server};

/// Configuration subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration (file, environment and flags) and print the result as TOML.
    Check {
        #[command(flatten)]
        overrides: Box<Overrides>,
    },
    /// Print the embedded default configuration as TOML.
    Defaults,
}

/// Runs a configuration subcommand.
pub fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { overrides } => {
            let config = Config::load(&overrides)?;
            Server::check(&config)?;
            print!("{}", config.to_toml());
            eprintln!("configuration OK");
            Ok(())
        }
        ConfigCommand::Defaults => {
            print!("{}", Config::default().to_toml());
            Ok(())
        }
    }
}
