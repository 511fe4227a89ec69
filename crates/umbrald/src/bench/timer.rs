//! A sub-millisecond timer for the open-loop schedule.
//!
//! tokio's timer wheel ticks in whole milliseconds: at a few thousand requests per second its
//! sleeps fire in bursts, up to a millisecond late, and since the latency clock runs from the
//! intended send time that lateness would be reported as server latency. Here one thread keeps
//! the pending deadlines in a heap, sleeps until the earliest (a futex wait with a timeout, so
//! tens of microseconds late at most on Linux) and wakes the task that waits for it.
//!
//! A new deadline wakes the thread only when it is earlier than every pending one: the
//! generators queue their next send while others are pending, so the thread wakes about once
//! per deadline rather than once per submission.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;

/// A timer shared by every generator of a phase. The thread stops when the timer is dropped
/// (after firing what is still pending).
#[derive(Debug)]
pub(crate) struct PreciseTimer {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    closed: bool,
}

#[derive(Debug)]
struct Pending {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PreciseTimer {
    /// Starts the timer thread.
    pub fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let for_thread = shared.clone();
        std::thread::Builder::new()
            .name("bench-timer".into())
            .spawn(move || run(&for_thread))?;
        Ok(Self { shared })
    }

    /// Returns at `at` (at once if it has passed).
    pub async fn sleep_until(&self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        let earliest = {
            let mut state = self.shared.lock();
            let seq = state.seq;
            state.seq += 1;
            let earliest = state.heap.peek().map_or(true, |p| at < p.0.at);
            state.heap.push(Reverse(Pending { at, seq, wake }));
            earliest
        };
        if earliest {
            self.shared.changed.notify_one();
        }
        let _ = woken.await;
    }
}

impl Drop for PreciseTimer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_one();
    }
}

fn run(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        let now = Instant::now();
        while state.heap.peek().is_some_and(|p| p.0.at <= now) {
            if let Some(Reverse(due)) = state.heap.pop() {
                let _ = due.wake.send(());
            }
        }
        state = match state.heap.peek().map(|p| p.0.at) {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(state, wait)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|p| p.into_inner().0)
            }
            None if state.closed => return,
            None => shared
                .changed
                .wait(state)
                .unwrap_or_else(|p| p.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_in_deadline_order_and_not_early() {
        let timer = std::sync::Arc::new(PreciseTimer::start().expect("timer thread"));
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Submitted out of order, 300 µs apart.
        for i in [4u64, 1, 3, 0, 2] {
            let (timer, tx) = (timer.clone(), tx.clone());
            let at = start + Duration::from_micros(2_000 + 300 * i);
            tokio::spawn(async move {
                timer.sleep_until(at).await;
                let _ = tx.send((i, at, Instant::now()));
            });
        }
        drop(tx);
        let mut woke = Vec::new();
        while let Some(entry) = rx.recv().await {
            woke.push(entry);
        }
        woke.sort_by_key(|(_, _, when)| *when);
        let order: Vec<u64> = woke.iter().map(|(i, _, _)| *i).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        for (_, at, when) in woke {
            assert!(when >= at, "woke before its deadline");
        }
    }

    #[tokio::test]
    async fn past_deadlines_return_at_once_and_drop_stops_the_thread() {
        let timer = PreciseTimer::start().expect("timer thread");
        timer.sleep_until(Instant::now()).await;
        drop(timer);
    }
}
