//! Configuration errors: every problem found, each with where its value came from.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Values that cannot be read, unknown keys, and values out of range or inconsistent with
    /// another: all of them at once.
    #[error("invalid configuration:{0}")]
    Invalid(Problems),
}

/// Every problem of one configuration (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// One problem of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// The keys involved and where each value came from; empty for a configuration built in
    /// code.
    pub sources: Vec<(String, Origin)>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for (i, (key, origin)) in self.sources.iter().enumerate() {
            let lead = if i == 0 { " (" } else { "; " };
            match origin {
                Origin::File(_) | Origin::Text if key.is_empty() => write!(f, "{lead}{origin}")?,
                Origin::File(_) | Origin::Text => write!(f, "{lead}{key} in {origin}")?,
                _ => write!(f, "{lead}{key} from {origin}")?,
            }
        }
        if !self.sources.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The named `[gpu] profile`.
    Profile(String),
    /// The TOML file at this path.
    File(PathBuf),
    /// TOML text given directly ([`super::Config::from_toml`]).
    Text,
    /// This environment variable.
    Env(String),
    /// This command-line flag (with its `--`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("the default"),
            Self::Profile(name) => write!(f, "gpu.profile \"{name}\""),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Text => f.write_str("the TOML text"),
            Self::Env(var) => write!(f, "environment variable {var}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}
