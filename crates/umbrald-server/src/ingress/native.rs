//! The native `umbrald/1` request: from its bytes to queued work, and from the results to the
//! answer.
//!
//! Decoding and validation are cheap checks of shape and limits; no curve math happens here
//! (capsules and kfrags are parsed and verified on the workers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::Connection;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use umbrald_proto::{Envelope, ErrorCode, ItemResult, Request, PROTOCOL_VERSION};

use super::admission::Ticket;
use super::quic::closed;
use super::reply::{Answer, Refusal};
use super::submit::run_work;
use super::{Limits, Shared};
use crate::work::{RequestState, WorkItem};

/// Decodes, validates, charges the items to the client's `ticket`, queues and waits. `None`
/// when the connection closed meanwhile.
pub(crate) async fn answer(
    bytes: &[u8],
    read_at: Instant,
    conn: &Connection,
    shared: &Shared,
    ticket: &Ticket,
) -> Option<Answer> {
    let req = match decode(bytes) {
        Ok(req) => req,
        Err(refusal) => return Some(Answer::refused(refusal, 0)),
    };
    // Hashed only for the audit log.
    let policy = shared
        .audit
        .as_ref()
        .map(|_| policy_fingerprint(&req.policies));
    answer_decoded(req, read_at, conn, shared, ticket)
        .await
        .map(|answer| answer.about(policy, None))
}

/// The audit log's policy fingerprint: SHA-256 over every policy's public keys, in request
/// order, each key (`delegating_pk`, `receiving_pk`, `verifying_pk`) preceded by its length as
/// a big-endian u64. The kfrag is never hashed.
pub(crate) fn policy_fingerprint(policies: &[umbrald_proto::Policy]) -> [u8; 32] {
    let mut h = Sha256::new();
    for policy in policies {
        for key in [
            &policy.delegating_pk,
            &policy.receiving_pk,
            &policy.verifying_pk,
        ] {
            h.update((key.len() as u64).to_be_bytes());
            h.update(key);
        }
    }
    h.finalize().into()
}

/// [`answer`] for a decoded request.
async fn answer_decoded(
    req: Request,
    read_at: Instant,
    conn: &Connection,
    shared: &Shared,
    ticket: &Ticket,
) -> Option<Answer> {
    let (id, n) = (req.id, req.items.len());
    if let Err(refusal) = validate(&req, &shared.limits) {
        return Some(Answer::refused(refusal, n));
    }
    if let Err(refusal) = ticket.charge_items(n) {
        return Some(Answer::refused(Refusal { id, ..refusal }, n));
    }
    if n == 0 {
        return Some(Answer::results(id, Vec::new(), 0));
    }
    let deadline = deadline(&req, read_at);
    if deadline.is_some_and(|d| d <= read_at) {
        let refusal = Refusal::new(id, ErrorCode::DeadlineExceeded, "deadline of 0 ms");
        return Some(Answer::refused(refusal, n));
    }
    let (state, rx, items) = into_work(req, read_at);
    Some(
        match run_work(state, rx, items, deadline, closed(conn), shared).await? {
            Ok(results) => Answer::results(id, results, n),
            Err(refusal) => Answer::refused(Refusal { id, ..refusal }, n),
        },
    )
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
pub(crate) fn validate(req: &Request, limits: &Limits) -> Result<(), Refusal> {
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

    fn default_limits() -> Limits {
        Limits {
            max_request_bytes: 4 << 20,
            max_items_per_request: 4096,
            max_policies_per_request: 1024,
            max_connections: 4096,
            stream_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn limits_and_indices_are_checked() {
        let limits = Limits {
            max_items_per_request: 2,
            ..default_limits()
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
        let limits = Limits {
            max_policies_per_request: 0,
            ..default_limits()
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
        use umbrald_scheduling::QueueEntry;
        assert_eq!(items[1].priority(), 3);
        assert_eq!(items[1].deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(!state.is_cancelled());
    }
}
