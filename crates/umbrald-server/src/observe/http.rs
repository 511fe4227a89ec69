//! The metrics and health HTTP endpoint: `/metrics`, `/healthz`, `/readyz`, and `/status`
//! (backend, certificate fingerprint and NuCypher node public keys, JSON).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use umbrald_nucypher::NodeKeys;

use super::metrics::Metrics;
use crate::config::PolicyCheck;

#[derive(Debug, Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    status: Arc<Status>,
}

/// What `/status` reports: public information only.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Status {
    /// The backend label (`cpu`, `gpu`, `gpu+cpu`).
    backend: &'static str,
    /// SHA-256 of the certificate new handshakes present (hex): what clients pin. A reload
    /// replaces it.
    cert_sha256: RwLock<String>,
    /// The node's NuCypher public keys, when it has node keys.
    nucypher: Option<NucypherStatus>,
    /// The HTTPS endpoint, when one is configured.
    https: Option<HttpsStatus>,
}

/// The HTTPS endpoint and the node it fronts.
#[derive(Debug, Clone, serde::Serialize)]
struct HttpsStatus {
    /// Its bound address.
    listen: String,
    /// The upstream node's scheme and authority, when one is configured.
    upstream: Option<String>,
    /// `[nucypher] policy_check`.
    policy_check: &'static str,
}

/// The node's NuCypher public keys, hex of the 33-byte compressed points.
#[derive(Debug, Clone, serde::Serialize)]
struct NucypherStatus {
    /// Publishers encrypt kfrags to this key.
    decrypting_public_key: String,
    /// Verifies the node's `ReencryptionResponse` signatures.
    verifying_public_key: String,
}

impl Status {
    /// The status of a server on `backend` presenting the certificate `cert_sha256` (hex),
    /// with `keys`, serving HTTPS on `https` in front of `upstream` (its URL and the policy
    /// check).
    pub(crate) fn new(
        backend: &'static str,
        cert_sha256: String,
        keys: Option<&NodeKeys>,
        https: Option<SocketAddr>,
        upstream: Option<(String, PolicyCheck)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            https: https.map(|listen| HttpsStatus {
                listen: listen.to_string(),
                policy_check: upstream
                    .as_ref()
                    .map_or(PolicyCheck::None, |(_, check)| *check)
                    .as_str(),
                upstream: upstream.map(|(url, _)| url),
            }),
            backend,
            cert_sha256: RwLock::new(cert_sha256),
            nucypher: keys.map(|k| NucypherStatus {
                decrypting_public_key: hex::encode(k.decrypting_public_key()),
                verifying_public_key: hex::encode(k.verifying_public_key()),
            }),
        })
    }

    /// Reports the certificate `cert_sha256` (hex) from now on.
    pub(crate) fn set_cert_sha256(&self, cert_sha256: String) {
        *self
            .cert_sha256
            .write()
            .unwrap_or_else(PoisonError::into_inner) = cert_sha256;
    }
}

/// Serves the endpoint on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    status: Arc<Status>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status_json))
        .with_state(HttpState {
            metrics,
            ready,
            status,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn status_json(State(state): State<HttpState>) -> impl IntoResponse {
    let body = serde_json::to_string(&*state.status).unwrap_or_else(|_| "{}".to_owned());
    ([(header::CONTENT_TYPE, "application/json")], body + "\n")
}

/// Alive as long as the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready while the server accepts work: 503 before start completes and from the moment a
/// shutdown begins, through its drain delay, while requests are still served.
async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
