//! The flags of `umbrald serve` and `umbrald config check`: the configuration file, and one flag
//! per operational setting, built from the settings' definitions.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgMatches, Command};

use super::setting::Setting;

/// The command-line layer: the configuration file and the flags given. A flag's text is read
/// like an environment variable's, so that its problems are reported with the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// TOML configuration file (`--config`, or `UMBRALD_CONFIG`).
    pub config: Option<PathBuf>,
    /// The flags given: their setting and text.
    pub(crate) flags: Vec<(&'static Setting, String)>,
}

const CONFIG: &str = "config";

/// The settings that have a flag.
fn flagged() -> impl Iterator<Item = (&'static Setting, &'static str)> {
    super::SECTIONS
        .iter()
        .flat_map(|(_, settings)| settings.iter())
        .filter_map(|s| s.flag.map(|flag| (s, flag)))
}

impl Overrides {
    /// Sets the flag `--name` to `value`, as if given on the command line; `None` when no
    /// setting has that flag.
    pub fn with_flag(mut self, name: &str, value: impl Into<String>) -> Option<Self> {
        let (setting, _) = flagged().find(|(_, flag)| *flag == name)?;
        self.flags.push((setting, value.into()));
        Some(self)
    }
}

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = Self {
            config: matches.get_one::<PathBuf>(CONFIG).cloned(),
            flags: Vec::new(),
        };
        for (setting, flag) in flagged() {
            if let Some(value) = matches.get_one::<String>(flag) {
                overrides.flags.push((setting, value.clone()));
            }
        }
        Ok(overrides)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for Overrides {
    fn augment_args(command: Command) -> Command {
        let config = Arg::new(CONFIG)
            .long(CONFIG)
            .short('c')
            .env("UMBRALD_CONFIG")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML configuration file");
        flagged().fold(command.arg(config), |command, (setting, flag)| {
            let mut arg = Arg::new(flag)
                .long(flag)
                .value_name(setting.syntax.placeholder)
                .help(format!(
                    "{} [env: {}]",
                    setting.summary(),
                    setting.env_var()
                ));
            if !setting.syntax.choices.is_empty() {
                arg = arg.value_parser(PossibleValuesParser::new(
                    setting.syntax.choices.iter().copied(),
                ));
            }
            command.arg(arg)
        })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}
