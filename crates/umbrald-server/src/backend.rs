//! Why the elliptic-curve backend a configuration asks for (`[workers] backend`) cannot run.
//! A leaf: `exec` chooses what serves at start.

/// The requested backend cannot run here.
#[derive(Debug, thiserror::Error)]
#[error("backend `{kind}` is not available: {reason}")]
pub struct BackendUnavailable {
    /// The requested backend's spelling.
    pub kind: &'static str,
    /// What the probe found (one line).
    pub reason: String,
}
