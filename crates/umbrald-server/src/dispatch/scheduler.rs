//! The scheduler task: owns the [`Batcher`], admits requests, and hands formed batches to the
//! workers whenever the plan says one may take them.
//!
//! Admission is decided at once, without a round trip to the task ([`Admission`]): a request
//! that does not fit is answered `overloaded`. Which lane takes how much of the queue is
//! [`umbrald_scheduling::plan`]'s decision; this task only observes, asks and carries out.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use tokio::sync::mpsc;
use umbrald_proto::ErrorCode;
use umbrald_scheduling::{split, Admission, Batcher, BatcherConfig, CpuView, Plan, View};

use super::alarm::Alarm;
use super::idle::MachineIdle;
use crate::exec::gpu::GpuLane;
use crate::exec::{Batch, Slots};
use crate::observe::metrics::Metrics;
use crate::work::WorkItem;

/// Why a request could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejected {
    /// The queue is full.
    #[error("queue full")]
    Overloaded,
    /// The scheduler has stopped (shutting down).
    #[error("server shutting down")]
    Closed,
}

enum Msg {
    Submit(Vec<WorkItem>),
    Purge,
    Stop,
}

/// The stream tasks' side of the scheduler. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SchedulerHandle {
    tx: mpsc::UnboundedSender<Msg>,
    admission: Arc<Admission>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Submit(items) => write!(f, "Submit({} items)", items.len()),
            Self::Purge => f.write_str("Purge"),
            Self::Stop => f.write_str("Stop"),
        }
    }
}

impl SchedulerHandle {
    /// Queues all of a request's items, or none: `Overloaded` when they do not fit now.
    pub fn submit(&self, items: Vec<WorkItem>) -> Result<(), Rejected> {
        let n = items.len();
        if !self.admission.try_reserve(n) {
            return Err(Rejected::Overloaded);
        }
        self.tx.send(Msg::Submit(items)).map_err(|_| {
            self.admission.release(n);
            Rejected::Closed
        })
    }

    /// Tells the scheduler that a request was cancelled, so that its queued items are dropped
    /// and their room freed.
    pub fn purge(&self) {
        let _ = self.tx.send(Msg::Purge);
    }

    /// Asks the task to stop: remaining queued items are answered `internal`, the worker
    /// channel is closed (workers finish their batches and exit).
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// The GPU lane as the scheduler feeds it: its lane state and its batch channel.
#[derive(Debug)]
pub(crate) struct GpuDispatch {
    /// Busy, healthy, batch bound and measured rates.
    pub lane: Arc<GpuLane>,
    /// Batches for the GPU workers.
    pub tx: Sender<Batch>,
    /// With `auto` and `[gpu] auto_cpu_idle_only`: the CPU workers take batches only for
    /// idle cores.
    pub idle_gate: Option<MachineIdle>,
}

/// Spawns the scheduler task on the current runtime.
pub(crate) fn spawn(
    config: BatcherConfig,
    slots: Arc<Slots>,
    work_tx: Sender<Batch>,
    metrics: Arc<Metrics>,
    gpu: Option<GpuDispatch>,
) -> std::io::Result<(SchedulerHandle, tokio::task::JoinHandle<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let wake = slots.clone();
    let alarm = Alarm::start(move || wake.wake())?;
    let admission = Arc::new(Admission::new(config.max_queue_items));
    metrics
        .queue_capacity
        .set(i64::try_from(config.max_queue_items).unwrap_or(i64::MAX));
    let task = Task {
        batcher: Batcher::new(config),
        slots,
        work_tx,
        metrics,
        admission: admission.clone(),
        alarm,
        gpu,
    };
    let join = tokio::spawn(task.run(rx));
    Ok((SchedulerHandle { tx, admission }, join))
}

struct Task {
    batcher: Batcher<WorkItem>,
    slots: Arc<Slots>,
    work_tx: Sender<Batch>,
    metrics: Arc<Metrics>,
    admission: Arc<Admission>,
    alarm: Alarm,
    gpu: Option<GpuDispatch>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let now = Instant::now();
            self.alarm.fired(now);
            self.dispatch(now);
            // Wake for the next due batch only while a worker could take it; a worker that
            // frees up wakes us through the same notification.
            let wake_at = if self.plan(now).takes_work() {
                self.batcher.poll_deadline()
            } else {
                None
            };
            self.alarm.set(wake_at);
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                () = self.slots.notified() => continue,
            };
            // Take everything already waiting before forming batches, so that a burst of
            // requests is batched together.
            let mut next = msg;
            let mut purge = false;
            loop {
                match next {
                    Some(Msg::Submit(items)) => self.push(items),
                    Some(Msg::Purge) => purge = true,
                    Some(Msg::Stop) | None => {
                        self.stop();
                        return;
                    }
                }
                next = match rx.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => break,
                };
            }
            if purge {
                self.release_after(|b| b.purge(Instant::now()));
                self.answer_expired();
            }
        }
    }

    fn push(&mut self, items: Vec<WorkItem>) {
        let n = items.len();

        if let Err(items) = self.batcher.push_all(Instant::now(), items) {
            // Unreachable while admission holds (its count bounds the queue), but never lose
            // a request: answer it.
            self.admission.release(n);
            for item in &items {
                item.fail(ErrorCode::Overloaded, "queue full");
            }
        }
        self.metrics.set_queue_depth(self.batcher.len());
    }

    /// The plan for what the queue, the workers and the GPU lane look like now; the idle gate
    /// is read only when the plan asks for it.
    fn plan(&mut self, now: Instant) -> Plan {
        let view = View {
            queued: self.batcher.len(),
            cpu: CpuView {
                workers: self.slots.capacity(),
                busy: self.slots.busy(),
            },
            lane: self.gpu.as_ref().map(|gpu| gpu.lane.view()),
            idle_gate: self.gpu.as_ref().is_some_and(|gpu| gpu.idle_gate.is_some()),
        };
        let gate = self.gpu.as_mut().and_then(|gpu| gpu.idle_gate.as_mut());
        split::plan(&view, || {
            gate.map_or(usize::MAX, |gate| gate.limit(now, view.cpu.busy))
        })
    }

    /// Carries out the plan: a GPU batch of its size when it names one, then a CPU batch for
    /// each worker it lets in, while the queue has a due batch.
    fn dispatch(&mut self, now: Instant) {
        let plan = self.plan(now);
        if plan.gpu_batch_items > 0 {
            self.dispatch_gpu(now, plan.gpu_batch_items);
        }
        for _ in 0..plan.cpu_batches {
            let Some(items) = self.release_after(|b| b.next_batch(now, plan.cpu_share_among))
            else {
                break;
            };
            self.observe_queued(now, &items);
            self.slots.take();
            self.metrics.inflight_batches.inc();
            if let Err(err) = self.work_tx.try_send(Batch { items }) {
                // Unreachable: the channel holds one batch per slot. Answer, never drop.
                self.slots.release();
                self.metrics.inflight_batches.dec();
                for entry in err.into_inner().items {
                    entry
                        .item
                        .fail(ErrorCode::Internal, "worker pool unavailable");
                }
            }
        }
        self.answer_expired();
    }

    /// Hands the GPU workers a batch of at most `target` items, if one is due.
    fn dispatch_gpu(&mut self, now: Instant, target: usize) {
        let Some(items) = self.release_after(|b| b.next_batch_of(now, target)) else {
            return;
        };
        self.observe_queued(now, &items);
        let Some(gpu) = &self.gpu else { return };
        gpu.lane.take();
        self.metrics.inflight_batches.inc();
        if let Err(err) = gpu.tx.try_send(Batch { items }) {
            // Unreachable: the lane is taken only while fewer batches than its channel holds
            // are in flight.
            gpu.lane.release();
            self.metrics.inflight_batches.dec();
            for entry in err.into_inner().items {
                entry
                    .item
                    .fail(ErrorCode::Internal, "GPU worker unavailable");
            }
        }
    }

    fn observe_queued(&self, now: Instant, items: &[umbrald_scheduling::Dequeued<WorkItem>]) {
        for item in items {
            self.metrics
                .queue_seconds
                .observe(now.duration_since(item.enqueued).as_secs_f64());
        }
    }

    /// Runs `op` on the batcher and releases the admission count of every item it removed.
    fn release_after<R>(&mut self, op: impl FnOnce(&mut Batcher<WorkItem>) -> R) -> R {
        let before = self.batcher.len();
        let out = op(&mut self.batcher);
        let removed = before - self.batcher.len();
        if removed > 0 {
            self.admission.release(removed);
            self.metrics.set_queue_depth(self.batcher.len());
        }
        out
    }

    fn answer_expired(&mut self) {
        for entry in self.batcher.take_expired() {
            entry
                .item
                .fail(ErrorCode::DeadlineExceeded, "deadline passed while queued");
        }
    }

    fn stop(&mut self) {
        let left = self.release_after(Batcher::drain);
        for entry in left {
            entry.item.fail(ErrorCode::Internal, "server shutting down");
        }
        self.answer_expired();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use umbrald_scheduling::idle::SAMPLE_PERIOD;
    use umbrald_scheduling::CpuTimes;

    static BUSY_TICKS: AtomicU64 = AtomicU64::new(0);
    static IDLE_TICKS: AtomicU64 = AtomicU64::new(0);

    /// A machine whose 8 cores never idle.
    fn saturated() -> Option<CpuTimes> {
        let total = BUSY_TICKS.fetch_add(1000, Ordering::Relaxed);
        Some(CpuTimes {
            idle: 0,
            total,
            cores: 8,
        })
    }

    /// A machine whose 8 cores always idle.
    fn idle() -> Option<CpuTimes> {
        let total = IDLE_TICKS.fetch_add(1000, Ordering::Relaxed);
        Some(CpuTimes {
            idle: total,
            total,
            cores: 8,
        })
    }

    /// An `auto` task (2 CPU workers, a GPU lane with the default rate priors) whose idle gate
    /// reads `reader`, with 120 items queued; the GPU's and the CPU workers' batch receivers.
    fn auto_task(
        reader: fn() -> Option<CpuTimes>,
        t0: Instant,
    ) -> (
        Task,
        crossbeam_channel::Receiver<Batch>,
        crossbeam_channel::Receiver<Batch>,
    ) {
        let (work_tx, work_rx) = crossbeam_channel::bounded(2);
        let (gpu_tx, gpu_rx) = crossbeam_channel::bounded(1);
        let slots = Slots::new(2);
        let wake = slots.clone();
        let mut task = Task {
            batcher: Batcher::new(BatcherConfig {
                max_batch_items: 16,
                max_queue_delay: Duration::ZERO,
                max_queue_items: 1000,
            }),
            slots,
            work_tx,
            metrics: Arc::new(Metrics::new()),
            admission: Arc::new(Admission::with_queued(120, 1000)),
            alarm: Alarm::start(move || wake.wake()).expect("alarm"),
            gpu: Some(GpuDispatch {
                lane: GpuLane::new(1000, 1, true, Arc::default()),
                tx: gpu_tx,
                idle_gate: Some(MachineIdle::with_reader(t0, reader)),
            }),
        };
        let (request, _rx) = crate::work::RequestState::new(120, 0, None, false);
        let policy = Arc::new(umbrald_proto::Policy {
            kfrag: vec![],
            delegating_pk: vec![],
            receiving_pk: vec![],
            verifying_pk: vec![],
        });
        task.push(
            (0..120)
                .map(|index| WorkItem::new(vec![], policy.clone(), None, request.clone(), index))
                .collect(),
        );
        (task, gpu_rx, work_rx)
    }

    #[test]
    fn a_closed_idle_gate_leaves_the_whole_queue_to_the_gpu() {
        let t0 = Instant::now();
        let (mut task, gpu_rx, work_rx) = auto_task(saturated, t0);
        task.dispatch(t0 + SAMPLE_PERIOD);
        let gpu = gpu_rx.try_recv().expect("a GPU batch");
        assert_eq!(gpu.items.len(), 120, "the whole queue");
        assert!(work_rx.try_recv().is_err(), "no CPU batch");
        task.stop();
    }

    #[test]
    fn an_open_idle_gate_shares_the_queue_by_rate() {
        let t0 = Instant::now();
        let (mut task, gpu_rx, work_rx) = auto_task(idle, t0);
        task.dispatch(t0 + SAMPLE_PERIOD);
        let gpu = gpu_rx.try_recv().expect("a GPU batch");
        // GPU 20,000 items/s against two CPU workers at 2,000: 100 of the 120.
        assert_eq!(gpu.items.len(), 100);
        // The rest is the CPU workers': one batch for each (both are free), the remainder
        // queued for the first to finish.
        let cpu: Vec<usize> = work_rx.try_iter().map(|b| b.items.len()).collect();
        assert_eq!(cpu.len(), 2, "{cpu:?}");
        assert_eq!(cpu.iter().sum::<usize>() + task.batcher.len(), 20);
        task.stop();
    }

    #[test]
    fn a_cpu_pool_far_slower_than_the_gpu_stays_out() {
        let t0 = Instant::now();
        let (mut task, gpu_rx, work_rx) = auto_task(idle, t0);
        // The GPU measured at ~265,000 items/s against two CPU workers at 2,000: a 1.5 %
        // share, below MIN_CPU_SHARE, so the open idle gate does not let them in.
        if let Some(gpu) = &task.gpu {
            gpu.lane.rates.record_gpu(1_000_000, Duration::from_secs(1));
        }
        task.dispatch(t0 + SAMPLE_PERIOD);
        let gpu = gpu_rx.try_recv().expect("a GPU batch");
        assert_eq!(gpu.items.len(), 120, "the whole queue");
        assert!(work_rx.try_recv().is_err(), "no CPU batch");
        task.stop();
    }
}
