//! "First m good answers out of n" over arbitrary per-node futures, independent of the network
//! so that it can be tested with fake nodes and a paused clock.

use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// What [`first_valid`] collected when it returned.
#[derive(Debug)]
pub(crate) struct Gathered<T, E> {
    /// Accepted answers, in arrival order, with their node index.
    pub ok: Vec<(usize, T)>,
    /// Nodes that failed (or whose answer `accept` refused), in arrival order.
    pub failed: Vec<(usize, E)>,
    /// Nodes not heard from when the gathering stopped (their tasks were cancelled).
    pub pending: Vec<usize>,
}

/// Runs every task concurrently and returns as soon as `needed` answers were accepted, or as
/// soon as so many nodes failed that `needed` can no longer be reached. Tasks still running at
/// that point are cancelled: a slow or silent node never holds the caller back once enough
/// others answered.
///
/// `accept` sees each successful answer in arrival order and may still refuse it (for example
/// a duplicate). A task that panics counts as pending, never as accepted.
pub(crate) async fn first_valid<T, E, F>(
    tasks: Vec<F>,
    needed: usize,
    mut accept: impl FnMut(usize, T) -> Result<T, E>,
) -> Gathered<T, E>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let total = tasks.len();
    let (tx, mut rx) = mpsc::channel(total.max(1));
    // Dropping the set at return aborts whatever is still running.
    let mut set = JoinSet::new();
    for (node, task) in tasks.into_iter().enumerate() {
        let tx = tx.clone();
        set.spawn(async move {
            let result = task.await;
            // The receiver is gone only when gathering already stopped.
            let _ = tx.send((node, result)).await;
        });
    }
    drop(tx);

    let mut reported = vec![false; total];
    let mut gathered = Gathered {
        ok: Vec::new(),
        failed: Vec::new(),
        pending: Vec::new(),
    };
    // Stop once enough were accepted, or once too many failed for `needed` to be reachable.
    while gathered.ok.len() < needed && total - gathered.failed.len() >= needed {
        let Some((node, result)) = rx.recv().await else {
            break;
        };
        reported[node] = true;
        match result.and_then(|answer| accept(node, answer)) {
            Ok(answer) => gathered.ok.push((node, answer)),
            Err(e) => gathered.failed.push((node, e)),
        }
    }
    gathered.pending = (0..total).filter(|&node| !reported[node]).collect();
    gathered
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::time::Duration;
    use tokio::time::{sleep, Instant};

    type Task = Pin<Box<dyn Future<Output = Result<u32, String>> + Send>>;

    fn answer(after_ms: u64, value: Result<u32, String>) -> Task {
        Box::pin(async move {
            sleep(Duration::from_millis(after_ms)).await;
            value
        })
    }

    fn silent() -> Task {
        Box::pin(std::future::pending())
    }

    #[tokio::test(start_paused = true)]
    async fn returns_after_the_mth_good_answer_without_waiting_for_the_rest() {
        let started = Instant::now();
        let tasks = vec![
            answer(30, Ok(0)),
            silent(),
            answer(10, Err("bad cfrag".into())),
            answer(20, Ok(3)),
            answer(5_000, Ok(4)),
        ];
        let got = first_valid(tasks, 2, |_, v| Ok(v)).await;
        assert_eq!(got.ok, vec![(3, 3), (0, 0)]);
        assert_eq!(got.failed, vec![(2, "bad cfrag".to_owned())]);
        assert_eq!(got.pending, vec![1, 4]);
        assert_eq!(started.elapsed(), Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_as_soon_as_the_threshold_is_out_of_reach() {
        let started = Instant::now();
        let tasks = vec![
            answer(10, Err("down".into())),
            answer(20, Err("down".into())),
            answer(15, Ok(2)),
            silent(),
        ];
        // needed 3 of 4: after two failures, at most 2 can succeed.
        let got = first_valid(tasks, 3, |_, v| Ok(v)).await;
        assert_eq!(got.failed.len(), 2);
        assert_eq!(got.ok, vec![(2, 2)]);
        assert_eq!(got.pending, vec![3]);
        assert_eq!(started.elapsed(), Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn refused_answers_count_as_failures() {
        let tasks = vec![answer(1, Ok(7)), answer(2, Ok(7)), answer(3, Ok(8))];
        let mut seen = Vec::new();
        let got = first_valid(tasks, 2, |_, v| {
            if seen.contains(&v) {
                Err("duplicate".to_owned())
            } else {
                seen.push(v);
                Ok(v)
            }
        })
        .await;
        assert_eq!(got.ok, vec![(0, 7), (2, 8)]);
        assert_eq!(got.failed, vec![(1, "duplicate".to_owned())]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_pending_not_accepted() {
        let boom: Task = Box::pin(async {
            sleep(Duration::from_millis(1)).await;
            panic!("node task bug")
        });
        let got = first_valid(vec![boom, answer(5, Ok(1))], 2, |_, v| Ok(v)).await;
        assert_eq!(got.ok, vec![(1, 1)]);
        assert_eq!(got.pending, vec![0]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_tasks_stop_running() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = flag.clone();
        let slow: Task = Box::pin(async move {
            sleep(Duration::from_millis(100)).await;
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(1)
        });
        let got = first_valid(vec![answer(1, Ok(0)), slow], 1, |_, v| Ok(v)).await;
        assert_eq!(got.pending, vec![1]);
        sleep(Duration::from_millis(200)).await;
        assert!(
            !flag.load(std::sync::atomic::Ordering::SeqCst),
            "aborted on return"
        );
    }
}
