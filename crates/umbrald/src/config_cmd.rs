//! `umbrald config ...`.

use umbrald_server::config::settings;
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
    /// List every key with the environment variables and the flag that set it.
    Keys,
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
        ConfigCommand::Keys => {
            for setting in settings() {
                let mut vars = setting.env_vars();
                vars.reverse();
                let flag = setting.flag.map(|f| format!("  --{f}")).unwrap_or_default();
                println!("{}  {}{flag}", setting.path, vars.join(" "));
            }
            Ok(())
        }
    }
}
