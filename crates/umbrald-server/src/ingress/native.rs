//! From request bytes to queued work, and from results to the response: everything a request
//! stream does between reading and writing, free of QUIC.
//!
//! Decoding and validation are cheap checks of shape and limits; no curve math happens here
//! (capsules and kfrags are parsed and verified on the workers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use umbrald_proto::{
    Envelope, ErrorCode, ItemResult, Request, Response, WireError, PROTOCOL_VERSION,
};

use crate::config::LimitsSection;
use crate::work::{RequestState, WorkItem};

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

/// Decodes request bytes. A message whose `v` is not ours is `unsupported_version` (with its
/// `id` when readable) even if the rest has another shape; anything else unreadable is
/// `malformed`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Request, Refusal> {
    let unsupported = |id: u64, v: u32| {
        Refusal::new(
            id,
            ErrorCode::UnsupportedVersion,
            format!("version {v} is not supported; this server speaks {PROTOCOL_VERSION}"),
        )
    };
    // The whole request first: a well-formed one is read once. Only a message that does not
    // decode is read again, as a bare envelope, to tell a foreign version from garbage.
    match umbrald_proto::decode::<Request>(bytes) {
        Ok(req) if req.v == PROTOCOL_VERSION => Ok(req),
        Ok(req) => Err(unsupported(req.id, req.v)),
        Err(e) => match umbrald_proto::decode::<Envelope>(bytes) {
            Ok(env) if env.v != PROTOCOL_VERSION => Err(unsupported(env.id, env.v)),
            envelope => Err(Refusal::new(
                envelope.map_or(0, |env| env.id),
                ErrorCode::Malformed,
                format!("not a valid request: {e}"),
            )),
        },
    }
}

/// Checks a decoded request against the limits and its own consistency.
pub(crate) fn validate(req: &Request, limits: &LimitsSection) -> Result<(), Refusal> {
    if req.items.len() > limits.max_items_per_request {
        return Err(Refusal::new(
            req.id,
            ErrorCode::TooLarge,
            format!(
                "{} items; at most {} per request",
                req.items.len(),
                limits.max_items_per_request
            ),
        ));
    }
    if req.policies.len() > limits.max_policies_per_request {
        return Err(Refusal::new(
            req.id,
            ErrorCode::TooLarge,
            format!(
                "{} policies; at most {} per request",
                req.policies.len(),
                limits.max_policies_per_request
            ),
        ));
    }
    if let Some((i, item)) = req
        .items
        .iter()
        .enumerate()
        .find(|(_, it)| it.policy as usize >= req.policies.len())
    {
        return Err(Refusal::new(
            req.id,
            ErrorCode::Malformed,
            format!(
                "item {i} names policy {} but the request has {}",
                item.policy,
                req.policies.len()
            ),
        ));
    }
    Ok(())
}

/// A validated request turned into work: its shared state, the receiver of its results and
/// its items, ready for the queue. `read_at` is when the request was fully read; the deadline
/// counts from it. The request must have at least one item.
pub(crate) fn into_work(
    req: Request,
    read_at: Instant,
) -> (
    Arc<RequestState>,
    oneshot::Receiver<Vec<ItemResult>>,
    Vec<WorkItem>,
) {
    let deadline = deadline(&req, read_at);
    let (state, rx) = RequestState::new(
        req.items.len(),
        req.priority.unwrap_or(0),
        deadline,
        req.compact_cfrags.unwrap_or(false),
    );
    let policies: Vec<Arc<umbrald_proto::Policy>> =
        req.policies.into_iter().map(Arc::new).collect();
    let items = req
        .items
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| {
            // `validate` checked every index; skipping keeps this total without a panic path.
            let policy = policies.get(item.policy as usize)?.clone();
            Some(WorkItem::new(
                item.capsule,
                policy,
                None,
                state.clone(),
                index,
            ))
        })
        .collect();
    (state, rx, items)
}

/// The instant a request's deadline falls, if it has one.
pub(crate) fn deadline(req: &Request, read_at: Instant) -> Option<Instant> {
    req.deadline_ms
        .map(|ms| read_at + Duration::from_millis(u64::from(ms)))
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

#[cfg(test)]
mod tests {
    use umbrald_proto::{encode, Item, Policy};

    use super::*;

    fn policy() -> Policy {
        Policy {
            kfrag: vec![1; 310],
            delegating_pk: vec![2; 33],
            receiving_pk: vec![3; 33],
            verifying_pk: vec![4; 33],
        }
    }

    fn request(items: usize) -> Request {
        Request {
            v: 1,
            id: 42,
            policies: vec![policy()],
            items: (0..items)
                .map(|_| Item {
                    capsule: vec![5; 105],
                    policy: 0,
                })
                .collect(),
            deadline_ms: Some(10),
            priority: Some(3),
            compact_cfrags: None,
        }
    }

    #[test]
    fn garbage_is_malformed_with_id_zero() {
        let err = decode(b"\xc1\xff garbage").expect_err("garbage");
        assert_eq!((err.id, err.code), (0, ErrorCode::Malformed));
        let err = decode(&[]).expect_err("empty");
        assert_eq!(err.code, ErrorCode::Malformed);
    }

    #[test]
    fn unknown_version_is_reported_with_the_id() {
        #[derive(serde::Serialize)]
        struct Future {
            v: u32,
            id: u64,
            stuff: Vec<u8>,
        }
        let bytes = encode(&Future {
            v: 2,
            id: 99,
            stuff: vec![1, 2],
        })
        .expect("encode");
        let err = decode(&bytes).expect_err("v2");
        assert_eq!((err.id, err.code), (99, ErrorCode::UnsupportedVersion));
    }

    #[test]
    fn right_version_wrong_shape_is_malformed_with_the_id() {
        #[derive(serde::Serialize)]
        struct Odd {
            v: u32,
            id: u64,
            items: u8,
        }
        let bytes = encode(&Odd {
            v: 1,
            id: 7,
            items: 3,
        })
        .expect("encode");
        let err = decode(&bytes).expect_err("bad shape");
        assert_eq!((err.id, err.code), (7, ErrorCode::Malformed));
    }

    #[test]
    fn limits_and_indices_are_checked() {
        let limits = LimitsSection {
            max_items_per_request: 2,
            ..LimitsSection::default()
        };
        validate(&request(2), &limits).expect("within limits");
        let err = validate(&request(3), &limits).expect_err("too many items");
        assert_eq!((err.id, err.code), (42, ErrorCode::TooLarge));
        let mut req = request(1);
        req.items[0].policy = 1;
        assert_eq!(
            validate(&req, &limits).expect_err("bad index").code,
            ErrorCode::Malformed
        );
        let limits = LimitsSection {
            max_policies_per_request: 0,
            ..LimitsSection::default()
        };
        assert_eq!(
            validate(&request(1), &limits).expect_err("policies").code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn work_items_share_policies_and_carry_priority_and_deadline() {
        let t0 = Instant::now();
        let req = decode(&encode(&request(3)).expect("encode")).expect("decodes");
        let (state, _rx, items) = into_work(req, t0);
        assert_eq!(items.len(), 3);
        assert!(Arc::ptr_eq(&items[0].policy, &items[2].policy));
        assert_eq!(
            items.iter().map(|i| i.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        use crate::batcher::QueueEntry;
        assert_eq!(items[1].priority(), 3);
        assert_eq!(items[1].deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(!state.is_cancelled());
    }
}
