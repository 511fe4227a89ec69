//! Ingress: where requests come in and replies go out.
//!
//! - [`quic`]: the QUIC endpoint's accept loop, one task per connection and per request
//!   stream; reading a request and writing its reply under the limits.
//! - [`native`]: the `umbrald/1` request: decode, validate, turn into work items.
//! - [`nucypher`]: a NuCypher `ReencryptionRequest`, from QUIC or HTTPS.
//! - [`https`]: the HTTPS endpoint NuCypher's clients speak (`POST /reencrypt`).
//! - [`upstream`]: the node umbrald fronts, which answers what umbrald does not.
//! - [`submit`]: hands a request's items to the scheduler and waits for their results.
//! - [`reply`]: the answer to a request and what is counted for it.
//! - [`admission`]: the allowlist and per-client limits, request by request.
//!
//! Ingress feeds `dispatch` and never reaches past it.

use std::sync::Arc;
use std::time::Duration;

use umbrald_nucypher::NodeKeys;

use crate::dispatch::SchedulerHandle;
use crate::observe::audit::AuditLog;
use crate::observe::metrics::Metrics;

pub(crate) mod admission;
pub(crate) mod https;
pub(crate) mod native;
pub(crate) mod nucypher;
pub(crate) mod quic;
pub(crate) mod reply;
pub(crate) mod submit;
pub(crate) mod upstream;

pub(crate) use quic::accept_loop;

/// What one client may ask of the server, as ingress applies it (built from `[limits]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest request, in bytes; beyond it the answer is `too_large`.
    pub max_request_bytes: usize,
    /// Most items in one request; beyond it the answer is `too_large`.
    pub max_items_per_request: usize,
    /// Most policies in one request; beyond it the answer is `too_large`.
    pub max_policies_per_request: usize,
    /// Most open connections; further handshakes are refused.
    pub max_connections: usize,
    /// How long a client may take to send a whole request, or to take its reply.
    pub stream_timeout: Duration,
}

/// What every connection and stream task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Per-request limits.
    pub limits: Limits,
    /// Where work goes.
    pub scheduler: SchedulerHandle,
    /// Where counts go.
    pub metrics: Arc<Metrics>,
    /// The NuCypher node (keys, authorized kfrags); `None` refuses NuCypher requests.
    pub nucypher: Option<Arc<nucypher::Node>>,
    /// The audit log, when one is configured.
    pub audit: Option<Arc<AuditLog>>,
    /// The allowlist and per-client limits.
    pub access: Arc<admission::Access>,
}

impl Shared {
    /// The state of an endpoint with `limits`, feeding `scheduler`, serving NuCypher requests
    /// when `node_keys` holds keys, recording answers in `audit`, admitting clients by
    /// `access`.
    pub fn new(
        limits: Limits,
        scheduler: SchedulerHandle,
        metrics: Arc<Metrics>,
        node_keys: Option<Arc<NodeKeys>>,
        audit: Option<Arc<AuditLog>>,
        access: Arc<admission::Access>,
    ) -> Arc<Self> {
        Arc::new(Self {
            limits,
            scheduler,
            metrics,
            nucypher: node_keys.map(nucypher::Node::new),
            audit,
            access,
        })
    }

    /// The refusal of every new request while the fail-closed audit log is unavailable.
    pub(crate) fn audit_refusal(&self) -> Option<reply::Refusal> {
        self.audit.as_ref().filter(|log| log.refuses()).map(|_| {
            reply::Refusal::new(
                0,
                umbrald_proto::ErrorCode::Internal,
                "audit log unavailable",
            )
        })
    }
}
