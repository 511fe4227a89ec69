//! Choosing the elliptic-curve backend at start.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use umbrald_core::Engine;

/// Which elliptic-curve backend the engine runs on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// k256 on the worker threads.
    #[default]
    Cpu,
    /// The CUDA backend (not part of this build yet: starting with it fails).
    Gpu,
    /// The GPU when one is usable, else the CPU.
    Auto,
}

impl BackendKind {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
            Self::Auto => "auto",
        }
    }
}

/// The requested backend cannot run here.
#[derive(Debug, thiserror::Error)]
#[error("backend `{0}` is not available in this build")]
pub struct BackendUnavailable(pub &'static str);

/// Builds the engine for `kind`. `auto` falls back to the CPU (no GPU backend is built in yet).
pub(crate) fn build_engine(kind: BackendKind) -> Result<Arc<Engine>, BackendUnavailable> {
    check(kind)?;
    Ok(Arc::new(Engine::cpu()))
}

/// Whether `kind` can be started in this build.
pub(crate) fn check(kind: BackendKind) -> Result<(), BackendUnavailable> {
    match kind {
        BackendKind::Cpu | BackendKind::Auto => Ok(()),
        BackendKind::Gpu => Err(BackendUnavailable(kind.as_str())),
    }
}
