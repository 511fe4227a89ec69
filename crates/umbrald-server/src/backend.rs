//! The elliptic-curve backend a configuration asks for (`[workers] backend`), and why it
//! cannot run. A leaf: `exec` chooses what serves from it at start.

use serde::{Deserialize, Serialize};

/// Which elliptic-curve backend the engine runs on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// k256 on the worker threads.
    #[default]
    Cpu,
    /// The CUDA backend: starting fails when no usable GPU is found. The GPU worker takes every
    /// batch; the CPU workers serve only while the GPU is marked unhealthy.
    Gpu,
    /// The GPU when one is usable (GPU and CPU workers both take work, in proportion to their
    /// measured rates), else the CPU alone.
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
#[error("backend `{kind}` is not available: {reason}")]
pub struct BackendUnavailable {
    /// The requested backend's spelling.
    pub kind: &'static str,
    /// What the probe found (one line).
    pub reason: String,
}
