//! Handing a request's items to the scheduler and waiting for their results.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;
use umbrald_proto::{ErrorCode, ItemResult};

use super::reply::Refusal;
use super::Shared;
use crate::dispatch::Rejected;
use crate::work::{RequestState, WorkItem};

/// Cancels a request's queued items unless disarmed: when the waiting task is dropped (its
/// HTTP connection went away), nothing is left computing for nobody.
struct CancelOnDrop<'a> {
    state: Option<Arc<RequestState>>,
    shared: &'a Shared,
}

impl CancelOnDrop<'_> {
    fn cancel(&mut self) {
        if let Some(state) = self.state.take() {
            state.cancel();
            self.shared.scheduler.purge();
        }
    }

    fn disarm(&mut self) {
        self.state = None;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Queues a request's items (at least one) and waits for all their results, the request's
/// deadline or `closed` (the client's end). `Err` is the request-level refusal (with id 0:
/// callers that know the id set it); `None` means the client went away meanwhile.
pub(crate) async fn run_work(
    state: Arc<RequestState>,
    rx: oneshot::Receiver<Vec<ItemResult>>,
    items: Vec<WorkItem>,
    deadline: Option<Instant>,
    closed: impl Future<Output = ()>,
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
    let mut guard = CancelOnDrop {
        state: Some(state),
        shared,
    };
    let deadline_passed = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        results = rx => {
            guard.disarm();
            Some(match results {
                Ok(results) => Ok(results),
                Err(_) => Err(Refusal::new(0, ErrorCode::Internal, "request lost")),
            })
        }
        () = deadline_passed => {
            guard.cancel();
            Some(Err(Refusal::new(0, ErrorCode::DeadlineExceeded, "deadline passed")))
        }
        () = closed => {
            guard.cancel();
            None
        }
    }
}
