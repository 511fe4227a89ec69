//! The operator's signals: stop (SIGTERM, SIGINT) and reload the certificate (SIGHUP).

/// What the operator asked for with a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT (named): shut down gracefully.
    Stop(&'static str),
    /// SIGHUP: reload the certificate and key.
    Reload,
}

/// The operator's signals (SIGTERM, SIGINT and SIGHUP), caught from the moment [`install`]
/// returns. Install them before the server announces itself, so that a signal sent as soon as
/// the announcement is read is not lost to the default action. The server itself never installs
/// signal handlers; the binary does, once.
///
/// [`install`]: Signals::install
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Catches SIGTERM, SIGINT and SIGHUP from now on. Call it inside the Tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Completes on the next signal caught since [`Signals::install`] or the previous call.
    /// Signals of one kind that arrive before it is called again count once.
    pub async fn next(&mut self) -> std::io::Result<Signal> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Ok(Signal::Stop("SIGTERM")),
                _ = self.int.recv() => Ok(Signal::Stop("SIGINT")),
                _ = self.hup.recv() => Ok(Signal::Reload),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            tokio::signal::ctrl_c().await?;
            Ok(Signal::Stop("Ctrl-C"))
        }
    }
}
