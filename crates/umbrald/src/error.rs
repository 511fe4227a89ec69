//! Why a client subcommand (`demo`, `bench`, `keygen`) failed, and where its secrets come from.

use std::path::PathBuf;

use umbrald_client::keyfile::KeyFileError;
use umbrald_client::{ActorError, ClientError, ThresholdError};
use umbrald_nucypher::keyfile::NodeKeyFileError;
use umbrald_nucypher::keystore::KeystoreError;

/// Why a client subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// Talking to an appliance failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Threshold retrieval failed.
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
    /// An umbral-pre operation failed.
    #[error(transparent)]
    Actor(#[from] ActorError),
    /// A secret key file could not be read or written.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The node key file could not be read or written.
    #[error(transparent)]
    NodeKeyFile(#[from] NodeKeyFileError),
    /// A nucypher keystore could not be read or unlocked.
    #[error("nucypher keystore {}: {source}", path.display())]
    Keystore {
        /// The keystore file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeystoreError,
    },
    /// An input file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node key passphrase is missing or unreadable.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// The appliance returned cfrags that do not verify: benchmarking it would be meaningless.
    #[error("the appliance returned bad cfrags: {0}")]
    BadCfrag(String),
    /// Reading the server's `/metrics` failed.
    #[error("metrics scrape of {url} failed: {reason}")]
    Metrics {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Writing output (terminal, JSON or hlog file) failed.
    #[error("cannot write {what}: {source}")]
    Output {
        /// What was being written.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// Maps an I/O error while reading `path` to [`CliError::Input`].
    pub fn input(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Input {
            path: path.to_owned(),
            source,
        }
    }

    /// Maps an I/O error while writing `what` to [`CliError::Output`].
    pub fn output(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Output { what, source }
    }
}

/// Where a secret line may come from: a file named by a flag, else an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretSource {
    /// What the secret is, for messages.
    pub what: &'static str,
    /// The flag that names its file.
    pub flag: &'static str,
    /// The environment variable that may hold it.
    pub env: &'static str,
}

/// Why a passphrase or password could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// The file could not be read.
    #[error("cannot read the {what} file {}", path.display())]
    Read {
        /// What the secret is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Neither a file nor the environment variable was given.
    #[error("the {} is needed: give {} FILE or set {}", .0.what, .0.flag, .0.env)]
    Missing(SecretSource),
    /// The secret is empty.
    #[error("the {what} is empty")]
    Empty {
        /// What the secret is.
        what: &'static str,
    },
}
