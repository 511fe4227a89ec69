//! Handing a request's items to the scheduler and waiting for their results.

use std::sync::Arc;
use std::time::Instant;

use quinn::Connection;
use tokio::sync::oneshot;
use umbrald_proto::{ErrorCode, ItemResult};

use super::reply::Refusal;
use super::Shared;
use crate::dispatch::Rejected;
use crate::work::{RequestState, WorkItem};

/// Queues a request's items (at least one) and waits for all their results, the request's
/// deadline or the connection's end. `Err` is the request-level refusal (with id 0: callers
/// that know the id set it); `None` means the connection closed meanwhile.
pub(crate) async fn run_work(
    state: Arc<RequestState>,
    rx: oneshot::Receiver<Vec<ItemResult>>,
    items: Vec<WorkItem>,
    deadline: Option<Instant>,
    conn: &Connection,
    shared: &Shared,
) -> Option<Result<Vec<ItemResult>, Refusal>> {
    if let Err(rejected) = shared.scheduler.submit(items) {
        let refusal = match rejected {
            Rejected::Overloaded => {
                Refusal::new(0, ErrorCode::Overloaded, "queue full; retry later")
            }
            Rejected::Closed => Refusal::new(0, ErrorCode::Internal, "server shutting down"),
        };
        state.cancel();
        return Some(Err(refusal));
    }
    let deadline_passed = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        results = rx => Some(match results {
            Ok(results) => Ok(results),
            Err(_) => Err(Refusal::new(0, ErrorCode::Internal, "request lost")),
        }),
        () = deadline_passed => {
            state.cancel();
            shared.scheduler.purge();
            Some(Err(Refusal::new(0, ErrorCode::DeadlineExceeded, "deadline passed")))
        }
        _ = conn.closed() => {
            state.cancel();
            shared.scheduler.purge();
            None
        }
    }
}
