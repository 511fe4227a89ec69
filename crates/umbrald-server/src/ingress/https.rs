//! The HTTPS endpoint that NuCypher's clients speak (`[nucypher] https_listen`): `POST
//! /reencrypt` with a `ReencryptionRequest` body, answered with the signed
//! `ReencryptionResponse` as an Ursula answers it.
//!
//! TLS 1.3 and 1.2 over TCP, HTTP/1.1 and HTTP/2 (ALPN). A request goes through the same
//! parser, authorization cache, scheduler, workers and GPU lane as a NuCypher request on QUIC
//! ([`nucypher::answer`]). Refusals carry the statuses nucypher 7.6.1's Ursula gives for the
//! same faults ([`status_of`]), with a short plain-text body `code: reason`.
//!
//! With `[nucypher] upstream` (the operator's Ursula), every other path, and a `/reencrypt`
//! that carries conditions, is forwarded there; with `policy_check = "upstream"` a policy's
//! first request goes there too, and umbrald serves the policy once the upstream served it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use umbrald_nucypher::{NucypherError, ReencryptionRequest};
use umbrald_proto::ErrorCode;

use super::admission::Denied;
use super::nucypher::{self, Answered};
use super::reply::Answer;
use super::upstream::{Body, Upstream, UpstreamError};
use super::Shared;
use crate::observe::audit::{Client, Protocol};
use crate::observe::metrics::HttpsRoute;

/// The path NuCypher clients post `ReencryptionRequest`s to.
pub(crate) const REENCRYPT_PATH: &str = "/reencrypt";
/// What a client waiting on a full queue is told to wait before retrying, in seconds.
const RETRY_AFTER_S: &str = "1";
/// Most bytes of an oversized body read through (and discarded) before its 413 is answered.
const DRAIN_LIMIT: usize = 64 << 20;
/// Longest HTTP/2 keep-alive ping wait before the connection is dropped.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// What every HTTPS connection shares.
#[derive(Debug)]
pub(crate) struct Https {
    /// The endpoint state shared with QUIC (limits, scheduler, metrics, node keys).
    pub shared: Arc<Shared>,
    /// The node umbrald fronts, if any.
    pub upstream: Option<Upstream>,
    /// How long a connection may sit between requests (`[limits] idle_timeout_ms`).
    pub idle_timeout: Duration,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
}

/// Accepts connections on `listener` until `stop` turns true, then lets open connections
/// finish their requests for at most `grace`. Each handshake uses the TLS configuration `tls`
/// holds when the connection is accepted (a certificate reload replaces it).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: watch::Receiver<Arc<rustls::ServerConfig>>,
    https: Arc<Https>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(https.shared.limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Also bounds how long a kept-alive connection may wait for its next request.
        .header_read_timeout(https.idle_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(https.idle_timeout / 2)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_concurrent_streams(https.max_streams_per_connection);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "HTTPS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            https.shared.metrics.https_connections_refused.inc();
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let acceptor = TlsAcceptor::from(tls.borrow().clone());
        let (builder, https) = (builder.clone(), https.clone());
        tokio::spawn(async move {
            let _permit = permit;
            connection(tcp, peer, acceptor, builder, https, watcher).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTPS connections still open after the shutdown grace period");
    }
}

/// One connection: the TLS handshake (within the stream timeout), then HTTP until the client
/// or a graceful shutdown ends it.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
    https: Arc<Https>,
    watcher: Watcher,
) {
    let metrics = https.shared.metrics.clone();
    let handshake = acceptor.accept(tcp);
    let tls = match tokio::time::timeout(https.shared.limits.stream_timeout, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "HTTPS handshake failed");
            metrics.https_connections_refused.inc();
            if let Some(reason) = access_refusal(&e) {
                metrics.access_refused(reason);
            }
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "HTTPS handshake timed out");
            metrics.https_connections_refused.inc();
            return;
        }
    };
    metrics.https_open_connections.inc();
    let client = Client::of(tls.get_ref().1.peer_certificates(), peer);
    let service = hyper::service::service_fn(move |request| {
        let https = https.clone();
        async move { Ok::<_, Infallible>(handle(&https, peer, client, request).await) }
    });
    let served = builder.serve_connection(TokioIo::new(tls), service);
    if let Err(e) = watcher.watch(served.into_owned()).await {
        tracing::debug!(%peer, error = %e, "HTTPS connection ended");
    }
    metrics.https_open_connections.dec();
}

/// Answers one request and counts it.
async fn handle(
    https: &Https,
    peer: SocketAddr,
    client: Client,
    request: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let (route, response) = route(https, peer, client, request).await;
    https.shared.metrics.https_request_done(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn route(
    https: &Https,
    peer: SocketAddr,
    client: Client,
    request: Request<Incoming>,
) -> (HttpsRoute, Response<Body>) {
    if request.uri().path() == REENCRYPT_PATH {
        if request.method() != Method::POST {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "/reencrypt takes POST",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return (HttpsRoute::Other, response);
        }
        return reencrypt(https, peer, client, request).await;
    }
    match &https.upstream {
        Some(upstream) => {
            let max = https.shared.limits.max_request_bytes;
            let request = request.map(|body| Limited::new(body, max).boxed());
            (
                HttpsRoute::Forwarded,
                forwarded(upstream, request, peer).await,
            )
        }
        None => (
            HttpsRoute::Other,
            text(
                StatusCode::NOT_FOUND,
                "not_found",
                "this server answers POST /reencrypt only (no upstream node is configured)",
            ),
        ),
    }
}

/// `POST /reencrypt`: the body read under the limits, then served here, or by the upstream
/// when it carries conditions or its policy is not yet vouched for.
async fn reencrypt(
    https: &Https,
    peer: SocketAddr,
    client: Client,
    request: Request<Incoming>,
) -> (HttpsRoute, Response<Body>) {
    let limits = &https.shared.limits;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > DRAIN_LIMIT as u64) {
        // Too large even to read through: answered at once, the connection closes.
        return (HttpsRoute::Reencrypt, too_large(limits.max_request_bytes));
    }
    let bytes = match read_body(body, limits.max_request_bytes, limits.stream_timeout).await {
        BodyRead::Whole(bytes) => bytes,
        BodyRead::TooLarge => {
            return (HttpsRoute::Reencrypt, too_large(limits.max_request_bytes));
        }
        BodyRead::CutShort => {
            let response = text(
                StatusCode::BAD_REQUEST,
                ErrorCode::Malformed.as_str(),
                "the request body was cut short",
            );
            return (HttpsRoute::Reencrypt, response);
        }
        BodyRead::TimedOut => {
            let reason = format!(
                "the request body did not arrive within {} ms",
                limits.stream_timeout.as_millis()
            );
            let response = text(StatusCode::REQUEST_TIMEOUT, "request_timeout", &reason);
            return (HttpsRoute::Reencrypt, response);
        }
    };

    let shared = &https.shared;
    let read_at = Instant::now();
    let ticket = match shared.access.admit(client) {
        Ok(ticket) => ticket,
        Err(Denied::NotAllowed) => {
            let mut response = text(
                StatusCode::FORBIDDEN,
                "not_allowed",
                "this client is no longer allowed",
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return (HttpsRoute::Reencrypt, response);
        }
        Err(Denied::Limited(refused)) => {
            let answer = Answer::refused(super::admission::limited(&refused), 0);
            answer.count(&shared.metrics, true);
            answer.audit(shared, client, Protocol::HttpsNucypher, read_at.elapsed());
            let response = response_of(answer.into(), Some(refused.retry_after()));
            return (HttpsRoute::Reencrypt, response);
        }
    };

    if let Some(upstream) = &https.upstream {
        if let Ok(parsed) = ReencryptionRequest::parse(&bytes) {
            let conditions = parsed.check_no_conditions().is_err();
            let vouch = upstream.must_vouch_for(&parsed.hrac);
            if conditions || vouch {
                let hrac = parsed.hrac;
                let body = Full::new(bytes.clone())
                    .map_err(|never| match never {})
                    .boxed();
                let response = forwarded(upstream, Request::from_parts(parts, body), peer).await;
                if vouch && response.status() == StatusCode::OK {
                    upstream.vouched_for(hrac);
                }
                return (HttpsRoute::Forwarded, response);
            }
        }
    }

    if let Some(refusal) = shared.audit_refusal() {
        let message = refusal.message.clone();
        let answer = Answer::refused(refusal, 0);
        answer.count(&shared.metrics, true);
        answer.audit(shared, client, Protocol::HttpsNucypher, read_at.elapsed());
        let mut response = text(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal.as_str(),
            &message,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
        return (HttpsRoute::Reencrypt, response);
    }
    let answered = nucypher::answer(&bytes, std::future::pending(), shared, &ticket).await;
    let Some(answered) = answered else {
        // Unreachable: the request is never abandoned while this task runs.
        let response = text(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal.as_str(),
            "request lost",
        );
        return (HttpsRoute::Reencrypt, response);
    };
    answered.answer.count(&shared.metrics, true);
    let latency = read_at.elapsed();
    answered
        .answer
        .audit(shared, client, Protocol::HttpsNucypher, latency);
    let retry_after = ticket.retry_after();
    (HttpsRoute::Reencrypt, response_of(answered, retry_after))
}

/// The allowlist's reason for a failed handshake, when it refused the client.
fn access_refusal(error: &std::io::Error) -> Option<&'static str> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::NoCertificatesPresented => Some("no_certificate"),
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ) => Some("not_allowed"),
        _ => None,
    }
}

/// How reading a request body ended.
enum BodyRead {
    /// The whole body, within the limit.
    Whole(Bytes),
    /// Over the limit (read through and discarded, up to [`DRAIN_LIMIT`]).
    TooLarge,
    /// The client stopped sending mid-body.
    CutShort,
    /// The body did not arrive in time.
    TimedOut,
}

/// Reads `body`, keeping at most `max` bytes, within `timeout`. An oversized body is read on
/// and discarded (up to [`DRAIN_LIMIT`] bytes, within the same time) so that the client, which
/// sends the whole body before it reads (Python's `requests`), sees the 413 instead of a reset.
async fn read_body(mut body: Incoming, max: usize, timeout: Duration) -> BodyRead {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut kept = BytesMut::new();
    let mut seen = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) if seen > max => return BodyRead::TooLarge,
            Ok(None) => return BodyRead::Whole(kept.freeze()),
            Ok(Some(Err(_))) => return BodyRead::CutShort,
            Err(_) if seen > max => return BodyRead::TooLarge,
            Err(_) => return BodyRead::TimedOut,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT {
            return BodyRead::TooLarge;
        }
        if seen <= max {
            kept.extend_from_slice(&data);
        } else if !kept.is_empty() {
            kept = BytesMut::new();
        }
    }
}

/// The upstream's answer to `request`, or 502/504 when it gives none.
async fn forwarded(
    upstream: &Upstream,
    request: Request<Body>,
    peer: SocketAddr,
) -> Response<Body> {
    match upstream.forward(request, peer).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %e, "upstream node unavailable");
            let status = match e {
                UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            text(status, "upstream_unavailable", &e.to_string())
        }
    }
}

/// The HTTP response for a NuCypher answer; a 429 tells the client to wait `retry_after`
/// (rounded up to whole seconds; 1 s when not given).
fn response_of(answered: Answered, retry_after: Option<Duration>) -> Response<Body> {
    let Answered { answer, cause } = answered;
    if let Some(bytes) = answer.raw {
        let mut response = Response::new(full(bytes.into()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return response;
    }
    let (code, message) = match answer.response.error {
        Some(e) => (
            ErrorCode::from_wire(&e.code).unwrap_or(ErrorCode::Internal),
            e.message,
        ),
        None => (ErrorCode::Internal, "no answer".to_owned()),
    };
    let status = status_of(code, cause.as_ref());
    let mut response = text(status, code.as_str(), &message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let seconds = retry_after.map_or(1, |wait| {
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        });
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

/// The status an Ursula (nucypher 7.6.1, `network/server.py`) gives for the same fault: 403
/// for a kfrag that does not decrypt with the node's key, 401 for a publisher signature that
/// does not verify, 400 for any other fault of the request (conditions included: nucypher's
/// status for a condition that cannot be evaluated); and 413, 503, 504, 500 for size, load,
/// deadline and internal faults; 429 for a client past its own `[access]` limits.
pub(crate) fn status_of(code: ErrorCode, cause: Option<&NucypherError>) -> StatusCode {
    match (code, cause) {
        (_, Some(NucypherError::KfragNotForThisNode)) => StatusCode::FORBIDDEN,
        (_, Some(NucypherError::PublisherSignature)) => StatusCode::UNAUTHORIZED,
        (ErrorCode::TooLarge, _) => StatusCode::PAYLOAD_TOO_LARGE,
        (ErrorCode::Overloaded, _) => StatusCode::SERVICE_UNAVAILABLE,
        (ErrorCode::RateLimited, _) => StatusCode::TOO_MANY_REQUESTS,
        (ErrorCode::DeadlineExceeded, _) => StatusCode::GATEWAY_TIMEOUT,
        (ErrorCode::Internal, _) => StatusCode::INTERNAL_SERVER_ERROR,
        // Malformed, unsupported version, invalid capsule or kfrag, kfrag verification,
        // conditions.
        _ => StatusCode::BAD_REQUEST,
    }
}

fn too_large(max: usize) -> Response<Body> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooLarge.as_str(),
        &format!("the request body exceeds {max} bytes"),
    )
}

/// A plain-text answer `code: reason`.
fn text(status: StatusCode, code: &str, reason: &str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(format!("{code}: {reason}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_ursula() {
        let status = |code, cause| status_of(code, cause).as_u16();
        assert_eq!(
            status(
                ErrorCode::InvalidKfrag,
                Some(&NucypherError::KfragNotForThisNode)
            ),
            403
        );
        assert_eq!(
            status(
                ErrorCode::KfragVerificationFailed,
                Some(&NucypherError::PublisherSignature)
            ),
            401
        );
        let conditions = NucypherError::ConditionsUnsupported("x".into());
        assert_eq!(
            status(ErrorCode::ConditionsUnsupported, Some(&conditions)),
            400
        );
        assert_eq!(status(ErrorCode::Malformed, None), 400);
        assert_eq!(status(ErrorCode::InvalidCapsule, None), 400);
        assert_eq!(status(ErrorCode::TooLarge, None), 413);
        assert_eq!(status(ErrorCode::Overloaded, None), 503);
        assert_eq!(status(ErrorCode::RateLimited, None), 429);
        assert_eq!(status(ErrorCode::DeadlineExceeded, None), 504);
        assert_eq!(status(ErrorCode::Internal, None), 500);
    }
}
