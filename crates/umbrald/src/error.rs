//! Why a client subcommand (`demo`, `bench`, `keygen`) failed.

use umbrald_client::keyfile::KeyFileError;
use umbrald_client::{ActorError, ClientError, ThresholdError};
use umbrald_nucypher::keyfile::NodeKeyFileError;
use umbrald_nucypher::keystore::KeystoreError;

use crate::keygen::PassphraseError;

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
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: KeystoreError,
    },
    /// An input file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Input {
        /// The file.
        path: std::path::PathBuf,
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
