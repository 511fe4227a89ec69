//! Waiting for the operator's stop signal.

/// The operator's stop signals (SIGINT and SIGTERM), caught from the moment [`install`] returns.
/// Install them before the server announces itself, so that a stop sent as soon as the
/// announcement is read is not lost to the default action. The server itself never installs
/// signal handlers; the binary does, once.
///
/// [`install`]: StopSignals::install
#[derive(Debug)]
pub struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Catches SIGINT and SIGTERM from now on. Call it inside the Tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Completes on the first SIGINT (Ctrl-C) or SIGTERM caught since [`StopSignals::install`],
    /// naming it.
    pub async fn wait(mut self) -> std::io::Result<&'static str> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Ok("SIGTERM"),
                _ = self.int.recv() => Ok("SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            tokio::signal::ctrl_c().await?;
            Ok("Ctrl-C")
        }
    }
}
