//! The QUIC side: the accept loop, one task per connection, one task per request stream.
//!
//! A stream task reads the whole request under a byte limit and a timeout, turns it into
//! queued work (see [`super::native`] and [`super::nucypher`]), waits for the results, its
//! deadline or the connection's end, writes one response and finishes the stream. Every failure stays inside
//! its stream: a bad request gets an error response, a stalled one a reset, and no other
//! stream or connection notices.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, Incoming, ReadToEndError, RecvStream, SendStream, VarInt};
use tokio::sync::watch;
use tokio::task::JoinSet;
use umbrald_proto::{app_codes, ErrorCode};

use super::admission::{Denied, Ticket};
use super::reply::{Answer, Refusal};
use super::{native, nucypher, Shared};
use crate::observe::audit::{Client, Protocol};
use crate::observe::metrics::GaugeGuard;

/// Longest wait, after finishing a response, for the peer to acknowledge it.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// Accepts connections until `stop` turns true (or the endpoint closes), then refuses new
/// ones (`CONNECTION_REFUSED`, at once) while every connection task finishes its in-flight
/// requests.
pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let for_connections = stop.clone();
    let mut stopping = false;
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if stopping || connections.len() >= shared.limits.max_connections {
                    shared.metrics.connections_refused.inc();
                    incoming.refuse();
                    continue;
                }
                connections.spawn(connection(incoming, shared.clone(), for_connections.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                if stopping && connections.is_empty() {
                    break;
                }
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                if connections.is_empty() {
                    break;
                }
            }
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn connection(incoming: Incoming, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            shared.metrics.connections_refused.inc();
            if let Some(reason) = access_refusal(&e) {
                shared.metrics.access_refused(reason);
            }
            tracing::debug!(reason = %e, "handshake failed");
            return;
        }
    };
    shared.metrics.connections_total.inc();
    let _open = GaugeGuard::new(&shared.metrics.open_connections);
    let peer = conn.remote_address();
    tracing::debug!(%peer, "connection open");
    let identity = conn.peer_identity().and_then(|id| {
        id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
            .ok()
    });
    let client = Client::of(identity.as_deref().map(Vec::as_slice), peer);
    let mut streams = JoinSet::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    streams.spawn(stream(send, recv, conn.clone(), client, shared.clone()));
                }
                Err(e) => {
                    tracing::debug!(%peer, reason = %e, "connection closed");
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            _ = stop.wait_for(|s| *s) => {
                stopping = true;
                break;
            }
        }
    }
    // Finish what was accepted; streams opened after this point die with the connection.
    while streams.join_next().await.is_some() {}
    if stopping {
        conn.close(
            VarInt::from_u32(app_codes::SHUTTING_DOWN),
            b"server shutting down",
        );
    }
}

async fn stream(
    mut send: SendStream,
    mut recv: RecvStream,
    conn: Connection,
    client: Client,
    shared: Arc<Shared>,
) {
    let metrics = &shared.metrics;
    let _open = GaugeGuard::new(&metrics.open_streams);
    let Some(request) = read_request(&mut send, &mut recv, &shared).await else {
        return;
    };
    let read_at = Instant::now();
    let inflight = GaugeGuard::new(&metrics.inflight_requests);
    // Held until the answer is written: the client's in-flight slot.
    let mut _ticket = None;
    let (answer, nucypher) = match request {
        Ok(bytes) => {
            let nucypher = umbrald_nucypher::is_reencryption_request(&bytes);
            match shared.access.admit(client) {
                Ok(ticket) => {
                    let answer = answer(&bytes, read_at, &conn, &shared, &ticket).await;
                    _ticket = Some(ticket);
                    (answer, nucypher)
                }
                Err(Denied::NotAllowed) => {
                    tracing::info!(client = ?client, "client no longer allowed; closing its connection");
                    conn.close(
                        VarInt::from_u32(app_codes::NOT_ALLOWED),
                        b"client not allowed",
                    );
                    return;
                }
                Err(Denied::Limited(refused)) => (
                    Some(Answer::refused(super::admission::limited(&refused), 0)),
                    nucypher,
                ),
            }
        }
        Err(refusal) => (Some(Answer::refused(refusal, 0)), false),
    };
    let Some(answer) = answer else {
        // The connection is gone: nobody to answer.
        metrics.streams_reset.inc();
        return;
    };
    answer.count(metrics, nucypher);
    let protocol = if nucypher {
        Protocol::QuicNucypher
    } else {
        Protocol::QuicNative
    };
    answer.audit(&shared, client, protocol, read_at.elapsed());
    let written = write_response(&mut send, &answer, &shared).await;
    drop(inflight);
    if written {
        metrics
            .request_seconds
            .observe(read_at.elapsed().as_secs_f64());
        // Keep the stream until the peer has the whole response, so that a graceful shutdown
        // does not close the connection on unacknowledged data.
        let _ = tokio::time::timeout(ACK_WAIT, send.stopped()).await;
    }
}

/// Reads a whole request under the byte limit and the stream timeout. `Some(Err)` is a request
/// to answer `too_large`; `None` means the stream was reset and needs no answer.
async fn read_request(
    send: &mut SendStream,
    recv: &mut RecvStream,
    shared: &Shared,
) -> Option<Result<Vec<u8>, Refusal>> {
    let timeout = shared.limits.stream_timeout;
    let limit = shared.limits.max_request_bytes;
    let failed = match tokio::time::timeout(timeout, recv.read_to_end(limit)).await {
        Ok(Ok(bytes)) => return Some(Ok(bytes)),
        Ok(Err(ReadToEndError::TooLong)) => {
            let _ = recv.stop(VarInt::from_u32(app_codes::TOO_LARGE));
            let message = format!("request exceeds {limit} bytes");
            return Some(Err(Refusal::new(0, ErrorCode::TooLarge, message)));
        }
        Ok(Err(ReadToEndError::Read(e))) => {
            tracing::debug!(reason = %e, "request stream failed while reading");
            false
        }
        Err(_elapsed) => {
            tracing::debug!(
                timeout_ms = timeout.as_millis(),
                "request not finished in time"
            );
            true
        }
    };
    shared.metrics.streams_reset.inc();
    if failed {
        let _ = recv.stop(VarInt::from_u32(app_codes::REQUEST_TIMEOUT));
    }
    let _ = send.reset(VarInt::from_u32(app_codes::REQUEST_TIMEOUT));
    None
}

/// Encodes and writes the response, then finishes the stream, within the stream timeout.
/// Returns whether the response was handed to QUIC completely.
async fn write_response(send: &mut SendStream, answer: &Answer, shared: &Shared) -> bool {
    let response = &answer.response;
    let encoded = match answer
        .raw
        .clone()
        .map_or_else(|| umbrald_proto::encode(response), Ok)
    {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a response");
            let fallback = Refusal::new(response.id, ErrorCode::Internal, "internal error");
            match umbrald_proto::encode(&fallback.into_response()) {
                Ok(bytes) => bytes,
                Err(_) => return false,
            }
        }
    };
    let timeout = shared.limits.stream_timeout;
    let write = async {
        send.write_all(&encoded).await?;
        send.finish()?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(reason = %e, "cannot write the response");
            false
        }
        Err(_elapsed) => {
            tracing::debug!("client did not take the response in time");
            shared.metrics.streams_reset.inc();
            let _ = send.reset(VarInt::from_u32(app_codes::WRITE_TIMEOUT));
            false
        }
    }
}

/// Answers a whole request: a NuCypher one or a native one. `None` when the connection closed
/// meanwhile.
async fn answer(
    bytes: &[u8],
    read_at: Instant,
    conn: &Connection,
    shared: &Shared,
    ticket: &Ticket,
) -> Option<Answer> {
    if let Some(refusal) = shared.audit_refusal() {
        return Some(Answer::refused(refusal, 0));
    }
    if umbrald_nucypher::is_reencryption_request(bytes) {
        return nucypher::answer(bytes, closed(conn), shared, ticket)
            .await
            .map(|answered| answered.answer);
    }
    native::answer(bytes, read_at, conn, shared, ticket).await
}

/// The allowlist's reason for a failed handshake, when it refused the client: the TLS alerts
/// `certificate_required` (no certificate) and `access_denied` (a key not allowed).
fn access_refusal(error: &quinn::ConnectionError) -> Option<&'static str> {
    const CERTIFICATE_REQUIRED: u8 = 116;
    const ACCESS_DENIED: u8 = 49;
    let quinn::ConnectionError::TransportError(error) = error else {
        return None;
    };
    if error.code == quinn::TransportErrorCode::crypto(CERTIFICATE_REQUIRED) {
        Some("no_certificate")
    } else if error.code == quinn::TransportErrorCode::crypto(ACCESS_DENIED) {
        Some("not_allowed")
    } else {
        None
    }
}

/// Completes when `conn` is closed.
pub(super) async fn closed(conn: &Connection) {
    conn.closed().await;
}
