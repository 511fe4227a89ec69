//! The client-side subcommands of the `umbrald` binary: `demo`, `bench` and `keygen`.
//!
//! Each has a clap [`clap::Args`] struct and an async (or plain) `run` function that writes its
//! human output to a caller-given writer. The binary owns process concerns (parsing, starting an
//! in-process server when no `--addr` is given, exit codes).

pub mod bench;
pub mod demo;
pub mod keygen;
pub mod target;

mod duration;

pub use duration::parse_duration;
pub use target::TargetArgs;

use crate::actors::ActorError;
use crate::error::ClientError;
use crate::keyfile::KeyFileError;
use crate::threshold::ThresholdError;

/// Why a client subcommand failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A key file could not be read or written.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
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
    pub(crate) fn output(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Output { what, source }
    }
}
