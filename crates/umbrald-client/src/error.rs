//! The client's error types: one enum for a failed round trip, one struct for an error the
//! server reported.

use std::net::SocketAddr;
use std::time::Duration;

use umbrald_proto::{ErrorCode, ProtoError, WireError};

use crate::trust::TrustError;

/// Why a request (or a connection attempt) failed as a whole.
///
/// Per-item failures are not here: they come back as [`ServerError`]s inside the `Ok` value of
/// [`Client::reencrypt`](crate::Client::reencrypt).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The trust settings (CA file, fingerprint) are unusable.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The local UDP socket could not be opened.
    #[error("cannot open a local UDP endpoint: {0}")]
    Bind(#[source] std::io::Error),
    /// The connection attempt could not even start (bad server name, endpoint closing, ...).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The server address.
        addr: SocketAddr,
        /// What quinn said.
        #[source]
        source: quinn::ConnectError,
    },
    /// No handshake completed within the connect timeout (nothing listening, or unreachable).
    #[error("no answer from {addr} within {timeout:?}")]
    ConnectTimeout {
        /// The server address.
        addr: SocketAddr,
        /// The configured connect timeout.
        timeout: Duration,
    },
    /// The handshake failed or the connection was lost (including a certificate mismatch).
    #[error("connection to {addr} failed: {source}")]
    Connection {
        /// The server address.
        addr: SocketAddr,
        /// What quinn said.
        #[source]
        source: quinn::ConnectionError,
    },
    /// The stream carrying the request failed in a way that carries no code.
    #[error("request stream failed: {0}")]
    Stream(String),
    /// The server reset or stopped the stream carrying the request, with this QUIC
    /// application code (`umbrald_proto::app_codes`).
    #[error("request stream closed by the server with code {code}")]
    StreamReset {
        /// The application code.
        code: u64,
    },
    /// No response arrived within the request timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The response exceeds the configured size limit.
    #[error("response larger than {0} bytes")]
    ResponseTooLarge(usize),
    /// The request could not be encoded or the response could not be decoded.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The response decoded but does not answer the request (wrong id, wrong item count, ...).
    #[error("unexpected response: {0}")]
    UnexpectedResponse(String),
    /// The server rejected the whole request.
    #[error("server rejected the request: {0}")]
    Server(#[source] ServerError),
    /// The request given to send is not valid (e.g. a malformed NuCypher `ReencryptionRequest`);
    /// nothing was sent.
    #[error("invalid request, not sent: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// A short stable label for this error, used by the load generator to group errors: the
    /// server's code for [`ClientError::Server`], otherwise one of `connect`, `timeout`,
    /// `connection`, `stream`, `protocol`, `trust`.
    pub fn label(&self) -> String {
        match self {
            Self::Server(e) => e.code.clone(),
            Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::Bind(_) => {
                "connect".to_owned()
            }
            Self::Timeout(_) => "timeout".to_owned(),
            Self::Connection { .. } => "connection".to_owned(),
            Self::Stream(_) | Self::StreamReset { .. } => "stream".to_owned(),
            Self::ResponseTooLarge(_)
            | Self::Proto(_)
            | Self::UnexpectedResponse(_)
            | Self::InvalidRequest(_) => "protocol".to_owned(),
            Self::Trust(_) => "trust".to_owned(),
        }
    }

    /// Whether a new connection might make the same request succeed: the connection died
    /// under it. Used by the reconnect logic; a server rejection is never retried.
    pub(crate) fn is_connection_lost(&self) -> bool {
        match self {
            Self::Connection { source, .. } => {
                !matches!(source, quinn::ConnectionError::VersionMismatch)
            }
            _ => false,
        }
    }
}

/// An error reported by the server, for a whole request or for one item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServerError {
    /// The wire code, one of [`ErrorCode`]'s strings (or a newer one this client does not know).
    pub code: String,
    /// The server's human-readable message.
    pub message: String,
}

impl ServerError {
    /// The code as an [`ErrorCode`], or `None` for a code this client version does not know.
    pub fn known_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_wire(&self.code)
    }
}

impl From<WireError> for ServerError {
    fn from(e: WireError) -> Self {
        Self {
            code: e.code,
            message: e.message,
        }
    }
}
