//! The answer to a request: a request-level refusal, the results, or a foreign format's bytes;
//! and what is counted for it.

use std::time::{Duration, SystemTime};

use umbrald_proto::{ErrorCode, ItemResult, Response, WireError, PROTOCOL_VERSION};

use super::Shared;
use crate::observe::audit::{Client, Protocol, Record};
use crate::observe::metrics::Metrics;

/// A request-level error, as answered on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The request's id when known, else 0.
    pub id: u64,
    /// The code.
    pub code: ErrorCode,
    /// A safe, human-readable detail.
    pub message: String,
}

impl Refusal {
    /// A refusal of request `id` (0 when unknown) with `code`.
    pub fn new(id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id,
            code,
            message: message.into(),
        }
    }

    /// The response carrying this error.
    pub fn into_response(self) -> Response {
        Response {
            v: PROTOCOL_VERSION,
            id: self.id,
            results: None,
            error: Some(WireError::new(self.code, self.message)),
        }
    }
}

/// The successful response carrying `results`.
pub(crate) fn results_response(id: u64, results: Vec<ItemResult>) -> Response {
    Response {
        v: PROTOCOL_VERSION,
        id,
        results: Some(results),
        error: None,
    }
}

/// A response and what to count for it.
pub(crate) struct Answer {
    /// The response (what is written, unless `raw` is set; always what is counted).
    pub(super) response: Response,
    /// Bytes to write instead of `response`'s encoding (a NuCypher `ReencryptionResponse`).
    pub(super) raw: Option<Vec<u8>>,
    /// Items the request carried (counted under the request-level error, if any).
    items: usize,
    /// The audit log's policy fingerprint (public keys only), when the request was read.
    policy: Option<[u8; 32]>,
    /// The NuCypher policy's HRAC, when the request was read.
    hrac: Option<[u8; 16]>,
}

impl Answer {
    /// A request-level error.
    pub(crate) fn refused(refusal: Refusal, items: usize) -> Self {
        Self {
            response: refusal.into_response(),
            raw: None,
            items,
            policy: None,
            hrac: None,
        }
    }

    /// The results of request `id`, which carried `items` items.
    pub(crate) fn results(id: u64, results: Vec<ItemResult>, items: usize) -> Self {
        Self {
            response: results_response(id, results),
            raw: None,
            items,
            policy: None,
            hrac: None,
        }
    }

    /// A successful answer in a foreign format: `bytes` are written, `response` is counted.
    pub(crate) fn raw(response: Response, bytes: Vec<u8>, items: usize) -> Self {
        Self {
            response,
            raw: Some(bytes),
            items,
            policy: None,
            hrac: None,
        }
    }

    /// The answer, recorded in the audit log under `policy` and `hrac`.
    pub(crate) fn about(mut self, policy: Option<[u8; 32]>, hrac: Option<[u8; 16]>) -> Self {
        self.policy = policy;
        self.hrac = hrac;
        self
    }

    /// Queues the answer's audit record, when there is an audit log: `latency` since the
    /// request was read.
    pub(super) fn audit(
        &self,
        shared: &Shared,
        client: Client,
        protocol: Protocol,
        latency: Duration,
    ) {
        let Some(log) = &shared.audit else { return };
        let outcome = self.response.error.as_ref().map_or("ok", |err| {
            ErrorCode::from_wire(&err.code)
                .unwrap_or(ErrorCode::Internal)
                .as_str()
        });
        log.record(Record {
            time: SystemTime::now(),
            client,
            protocol,
            policy: self.policy,
            hrac: self.hrac,
            items: self.items,
            outcome,
            latency,
        });
    }

    /// Counts the answer; `nucypher`: it answers a NuCypher request (counted on its own too).
    pub(super) fn count(&self, metrics: &Metrics, nucypher: bool) {
        let request_error = self
            .response
            .error
            .as_ref()
            .map(|err| ErrorCode::from_wire(&err.code).unwrap_or(ErrorCode::Internal));
        if nucypher {
            metrics.nucypher_request_done(request_error);
        }
        match (request_error, &self.response.results) {
            (Some(code), _) => {
                metrics.request_done(Some(code));
                metrics.items_done(Some(code), self.items as u64);
            }
            (None, results) => {
                metrics.request_done(None);
                let mut ok = 0;
                for result in results.iter().flatten() {
                    match &result.error {
                        None => ok += 1,
                        Some(e) => {
                            let code = ErrorCode::from_wire(&e.code).unwrap_or(ErrorCode::Internal);
                            metrics.items_done(Some(code), 1);
                        }
                    }
                }
                metrics.items_done(None, ok);
            }
        }
    }
}
