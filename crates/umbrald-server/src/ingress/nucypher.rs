//! NuCypher requests (nucypher-core 0.16 `ReencryptionRequest`), from either transport: a QUIC
//! request stream whose bytes begin with the `ReRq` brand, or an HTTPS `POST /reencrypt`.
//!
//! The per-request fixed cost (parsing, decrypting the kfrag with the node's
//! decrypting key, checking the publisher's signature) runs at most once per request, on tokio's
//! blocking pool, and not again for a request whose encrypted kfrag, HRAC and keys were
//! authorized before (Bob sends the same ones for every retrieval under a policy); the
//! capsules then become ordinary queue items of one pre-verified policy, so they share batches,
//! workers and backends with native requests. The answer is a signed `ReencryptionResponse`, or
//! on any failure a request-level error: the `umbrald/1` error map on QUIC, the matching status
//! on HTTPS.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use umbrald_core::VerifiedKeyFrag;
use umbrald_nucypher::{NodeKeys, NucypherError, ReencryptionRequest};
use umbrald_proto::{ErrorCode, ItemResult, Policy};

use super::admission::Ticket;
use super::reply::{results_response, Answer, Refusal};
use super::submit::run_work;
use super::Shared;
use crate::work::{RequestState, WorkItem};

/// Most authorized kfrags remembered; the memory is cleared when it is full.
const AUTHORIZED_CACHE: usize = 4096;

/// The serving node: its keys, and the kfrags it authorized, by the request fields that
/// determine the authorization.
pub(crate) struct Node {
    keys: Arc<NodeKeys>,
    authorized: Mutex<HashMap<[u8; 32], Arc<VerifiedKeyFrag>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// The node serving with `keys`.
    pub(crate) fn new(keys: Arc<NodeKeys>) -> Arc<Self> {
        Arc::new(Self {
            keys,
            authorized: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Arc<VerifiedKeyFrag>> {
        self.authorized.lock().ok()?.get(key).cloned()
    }

    fn remember(&self, key: [u8; 32], kfrag: Arc<VerifiedKeyFrag>) {
        if let Ok(mut cache) = self.authorized.lock() {
            if cache.len() >= AUTHORIZED_CACHE {
                cache.clear();
            }
            cache.insert(key, kfrag);
        }
    }
}

/// Everything [`NodeKeys::authorize`] depends on besides the conditions (which are checked on
/// every request), length-prefixed and hashed.
fn authorization_key(req: &ReencryptionRequest<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        &req.hrac[..],
        &req.publisher_verifying_key[..],
        &req.bob_verifying_key[..],
        req.ekfrag_capsule,
        req.ekfrag_ciphertext,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// The answer to a NuCypher request, and why it was refused when the request itself was at
/// fault in a NuCypher-specific way (HTTPS maps some of those causes to their own statuses).
pub(crate) struct Answered {
    /// What is answered and counted.
    pub answer: Answer,
    /// The request's fault, when it was refused for one.
    pub cause: Option<NucypherError>,
}

impl From<Answer> for Answered {
    fn from(answer: Answer) -> Self {
        Self {
            answer,
            cause: None,
        }
    }
}

fn refuse(code: ErrorCode, message: impl Into<String>, items: usize) -> Answered {
    Answer::refused(Refusal::new(0, code, message), items).into()
}

fn refuse_error(e: NucypherError, items: usize) -> Answered {
    let answer = Answer::refused(Refusal::new(0, e.code(), e.to_string()), items);
    Answered {
        answer,
        cause: Some(e),
    }
}

/// Answers one NuCypher request, charging its capsules to the client's `ticket`. `None` when
/// the client went away (`closed` completed) meanwhile.
pub(crate) async fn answer(
    bytes: &[u8],
    closed: impl Future<Output = ()>,
    shared: &Shared,
    ticket: &Ticket,
) -> Option<Answered> {
    let mut about = None;
    let answered = answer_request(bytes, closed, shared, ticket, &mut about).await;
    answered.map(|mut answered| {
        if let Some((policy, hrac)) = about {
            answered.answer = answered.answer.about(Some(policy), Some(hrac));
        }
        answered
    })
}

/// The audit log's policy fingerprint of a NuCypher request: SHA-256 over the publisher's
/// and Bob's verifying keys (33 bytes each, compressed), each preceded by its length as a
/// big-endian u64. The encrypted kfrag is never hashed.
fn policy_fingerprint(req: &ReencryptionRequest<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    for key in [&req.publisher_verifying_key[..], &req.bob_verifying_key[..]] {
        h.update((key.len() as u64).to_be_bytes());
        h.update(key);
    }
    h.finalize().into()
}

/// [`answer`], setting `about` to the policy fingerprint and HRAC once the request parsed.
async fn answer_request(
    bytes: &[u8],
    closed: impl Future<Output = ()>,
    shared: &Shared,
    ticket: &Ticket,
    about: &mut Option<([u8; 32], [u8; 16])>,
) -> Option<Answered> {
    let Some(node) = shared.nucypher.clone() else {
        return Some(refuse(
            ErrorCode::UnsupportedVersion,
            "this server does not serve NuCypher requests (it was started without node keys)",
            0,
        ));
    };
    // Structure and limits first: cheap, and no point decrypting for a refused request.
    let (capsules, conditions, cache_key) = match ReencryptionRequest::parse(bytes) {
        Ok(req) => (
            {
                if shared.audit.is_some() {
                    *about = Some((policy_fingerprint(&req), req.hrac));
                }
                req.capsules.iter().map(|c| c.to_vec()).collect::<Vec<_>>()
            },
            req.check_no_conditions(),
            authorization_key(&req),
        ),
        Err(e) => return Some(refuse_error(e, 0)),
    };
    let n = capsules.len();
    if n > shared.limits.max_items_per_request {
        let message = format!(
            "{n} capsules; at most {} per request",
            shared.limits.max_items_per_request
        );
        return Some(refuse(ErrorCode::TooLarge, message, n));
    }
    if let Err(refusal) = ticket.charge_items(n) {
        return Some(Answer::refused(refusal, n).into());
    }
    if let Err(e) = conditions {
        return Some(refuse_error(e, n));
    }

    // The fixed cost, at most once per request, off the async runtime.
    let kfrag = match node.cached(&cache_key) {
        Some(kfrag) => kfrag,
        None => {
            let owned: Arc<[u8]> = bytes.into();
            let keys = node.keys.clone();
            let authorized = tokio::task::spawn_blocking(move || {
                let req = ReencryptionRequest::parse(&owned)?;
                keys.authorize(&req)
            })
            .await;
            match authorized {
                Ok(Ok(kfrag)) => {
                    let kfrag = Arc::new(kfrag);
                    node.remember(cache_key, kfrag.clone());
                    kfrag
                }
                Ok(Err(e)) => return Some(refuse_error(e, n)),
                Err(_) => return Some(refuse(ErrorCode::Internal, "internal error", n)),
            }
        }
    };

    let cfrags = if n == 0 {
        Vec::new()
    } else {
        let (state, rx) = RequestState::new(n, 0, None, false);
        // One placeholder policy per request: workers group items by it, and use `preverified`.
        let policy = Arc::new(Policy {
            kfrag: Vec::new(),
            delegating_pk: Vec::new(),
            receiving_pk: Vec::new(),
            verifying_pk: Vec::new(),
        });
        let items = capsules
            .iter()
            .enumerate()
            .map(|(index, capsule)| {
                WorkItem::new(
                    capsule.clone(),
                    policy.clone(),
                    Some(kfrag.clone()),
                    state.clone(),
                    index,
                )
            })
            .collect();
        let results = match run_work(state, rx, items, None, closed, shared).await? {
            Ok(results) => results,
            Err(refusal) => return Some(Answer::refused(refusal, n).into()),
        };
        match collect_cfrags(results) {
            Ok(cfrags) => cfrags,
            Err(refusal) => return Some(Answer::refused(refusal, n).into()),
        }
    };

    let signed = {
        let cfrags = cfrags.clone();
        let keys = node.keys.clone();
        tokio::task::spawn_blocking(move || keys.sign_response(&capsules, &cfrags)).await
    };
    match signed {
        Ok(bytes) => {
            let results = cfrags.into_iter().map(ItemResult::ok).collect();
            Some(Answer::raw(results_response(0, results), bytes, n).into())
        }
        Err(_) => Some(refuse(ErrorCode::Internal, "internal error", n)),
    }
}

/// Every cfrag, or the request-level refusal for the first capsule that failed (a NuCypher
/// response has no per-item errors).
fn collect_cfrags(results: Vec<ItemResult>) -> Result<Vec<Vec<u8>>, Refusal> {
    let n = results.len();
    let mut cfrags = Vec::with_capacity(n);
    for (i, result) in results.into_iter().enumerate() {
        match (result.cfrag, result.error) {
            (Some(cfrag), None) => cfrags.push(cfrag),
            (_, Some(e)) => {
                let code = ErrorCode::from_wire(&e.code).unwrap_or(ErrorCode::Internal);
                return Err(Refusal::new(0, code, format!("capsule {i}: {}", e.message)));
            }
            (None, None) => {
                return Err(Refusal::new(0, ErrorCode::Internal, "internal error"));
            }
        }
    }
    Ok(cfrags)
}
