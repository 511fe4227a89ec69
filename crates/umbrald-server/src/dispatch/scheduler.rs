//! The scheduler task: owns the [`Batcher`], admits requests, and hands formed batches to the
//! worker pool whenever a worker is free.
//!
//! Admission is decided at once, without a round trip to the task: an atomic count of queued
//! items (reserved by the stream task before it submits, released by the scheduler when items
//! leave the queue) is checked against `max_queue_items`; a request that does not fit is
//! answered `overloaded`. The count is never below the batcher's length, so the batcher itself
//! never overflows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use tokio::sync::{mpsc, Notify};
use umbrald_proto::ErrorCode;

use crate::alarm::Alarm;
use crate::batcher::{Batcher, BatcherConfig, Dequeued};
use crate::gpu::{gpu_share, GpuLane};
use crate::idle::IdleGate;
use crate::metrics::Metrics;
use crate::work::WorkItem;

/// A batch on its way to a worker.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The items, with the instants they were queued.
    pub items: Vec<Dequeued<WorkItem>>,
}

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

/// Items queued or on their way into the queue, against the queue's capacity.
#[derive(Debug)]
struct Admission {
    queued: AtomicUsize,
    capacity: usize,
}

impl Admission {
    fn try_reserve(&self, n: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                q.checked_add(n).filter(|total| *total <= self.capacity)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Worker slots: how many batches the pool can take now. Workers give a slot back (and wake
/// the scheduler) when they finish a batch.
#[derive(Debug)]
pub(crate) struct Slots {
    busy: AtomicUsize,
    capacity: usize,
    notify: Notify,
}

impl Slots {
    /// `capacity` slots, one per worker.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicUsize::new(0),
            capacity,
            notify: Notify::new(),
        })
    }

    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.busy())
    }

    fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    fn take(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    /// Called by a worker after a batch: frees its slot and wakes the scheduler.
    pub fn release(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// Wakes the scheduler (the GPU worker finished a batch or became healthy again).
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// With `auto` on idle cores only, the CPU workers stay out while their pool's measured rate
/// is below this share of the combined rate: they could add at most that much, and on a GPU
/// machine their work costs the GPU lane more (an H200 lane at ~1.3 M items/s against 16 CPU
/// workers at ~2,000 each, a 2–4 % share: `auto` served 0.73–0.97x `gpu` alone while they
/// took part, docs/PERFORMANCE.md §4).
const MIN_CPU_SHARE: f64 = 0.05;

/// The GPU worker as the scheduler feeds it: its lane state and its batch channel (capacity 1).
#[derive(Debug)]
pub(crate) struct GpuDispatch {
    /// Busy, healthy, batch bound and measured rates.
    pub lane: Arc<GpuLane>,
    /// Batches for the GPU worker.
    pub tx: Sender<Batch>,
    /// CPU worker threads (for the CPU pool's rate).
    pub cpu_workers: usize,
    /// With `auto` and `[gpu] auto_cpu_idle_only`: the CPU workers take batches only for
    /// idle cores.
    pub idle_gate: Option<IdleGate>,
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
    let alarm = Alarm::start(move || wake.notify.notify_one())?;
    let admission = Arc::new(Admission {
        queued: AtomicUsize::new(0),
        capacity: config.max_queue_items,
    });
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
            let wake_at = if self.cpu_free(now) > 0 || self.gpu_free() {
                self.batcher.poll_deadline()
            } else {
                None
            };
            self.alarm.set(wake_at);
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                () = self.slots.notify.notified() => continue,
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

    /// CPU workers that may take a batch now: none while a `gpu`-only lane is healthy; with
    /// `auto` and a healthy GPU, no more than the idle gate allows.
    fn cpu_free(&mut self, now: Instant) -> usize {
        let free = self.slots.free();
        match &self.gpu {
            Some(gpu) if !gpu.lane.cpu_takes_work() => 0,
            _ => self.gate_room(now).map_or(free, |room| free.min(room)),
        }
    }

    /// With `auto`'s idle gate and a healthy GPU, how many more CPU batches the gate lets in
    /// now (none while the CPU pool's measured rate is below [`MIN_CPU_SHARE`] of the
    /// combined rate); `None` when no gate applies.
    fn gate_room(&mut self, now: Instant) -> Option<usize> {
        let busy = self.slots.busy();
        match &mut self.gpu {
            Some(GpuDispatch {
                lane,
                idle_gate: Some(gate),
                cpu_workers,
                ..
            }) if lane.is_healthy() => {
                let cpu_pool = lane.rates.cpu_worker() * *cpu_workers as f64;
                if cpu_pool < MIN_CPU_SHARE * (cpu_pool + lane.rates.gpu()) {
                    return Some(0);
                }
                Some(gate.limit(now, busy).saturating_sub(busy))
            }
            _ => None,
        }
    }

    fn gpu_free(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| g.lane.available())
    }

    /// Hands the GPU worker a batch when it is free: sharing with the CPU workers (`auto`),
    /// its share of the queue in proportion to the measured rates; alone, as much as it takes.
    fn dispatch_gpu(&mut self, now: Instant) {
        let Some(gpu) = &self.gpu else { return };
        if !gpu.lane.available() || self.batcher.is_empty() {
            return;
        }
        let max = gpu.lane.max_items();
        let shares = gpu.lane.shares_with_cpu();
        // A closed idle gate leaves the whole queue to the GPU: nothing would take the CPU
        // pool's share.
        let target = if shares && self.gate_room(now) != Some(0) {
            let Some(gpu) = &self.gpu else { return };
            let rates = &gpu.lane.rates;
            let cpu_pool = rates.cpu_worker() * gpu.cpu_workers as f64;
            gpu_share(self.batcher.len(), rates.gpu(), cpu_pool, max)
        } else {
            max
        };
        if target == 0 {
            return;
        }
        let Some(items) = self.release_after(|b| b.next_batch_of(now, target)) else {
            return;
        };
        let Some(gpu) = &self.gpu else { return };
        for item in &items {
            self.metrics
                .queue_seconds
                .observe(now.duration_since(item.enqueued).as_secs_f64());
        }
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

    fn dispatch(&mut self, now: Instant) {
        self.dispatch_gpu(now);
        loop {
            let free = self.cpu_free(now);
            if free == 0 {
                break;
            }
            // Share the queue among the whole pool, not only the workers free now: at light
            // load a second item waits for the next free worker (typically sooner than a
            // doubled batch would take), and under heavy load batches still grow with the
            // queue.
            let share_among = self.slots.capacity.max(free);
            let Some(items) = self.release_after(|b| b.next_batch(now, share_among)) else {
                break;
            };
            for item in &items {
                self.metrics
                    .queue_seconds
                    .observe(now.duration_since(item.enqueued).as_secs_f64());
            }
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

    #[test]
    fn admission_is_all_or_nothing_and_bounded() {
        let a = Admission {
            queued: AtomicUsize::new(0),
            capacity: 10,
        };
        assert!(a.try_reserve(6));
        assert!(!a.try_reserve(5));
        assert!(a.try_reserve(4));
        assert!(!a.try_reserve(1));
        a.release(3);
        assert!(a.try_reserve(3));
        assert_eq!(a.queued.load(Ordering::Relaxed), 10);
    }

    use crate::idle::CpuTimes;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

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
            admission: Arc::new(Admission {
                queued: AtomicUsize::new(120),
                capacity: 1000,
            }),
            alarm: Alarm::start(move || wake.notify.notify_one()).expect("alarm"),
            gpu: Some(GpuDispatch {
                lane: GpuLane::new(1000, 1, true, Arc::default()),
                tx: gpu_tx,
                cpu_workers: 2,
                idle_gate: Some(IdleGate::with_reader(t0, reader)),
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
        task.dispatch(t0 + crate::idle::SAMPLE_PERIOD);
        let gpu = gpu_rx.try_recv().expect("a GPU batch");
        assert_eq!(gpu.items.len(), 120, "the whole queue");
        assert!(work_rx.try_recv().is_err(), "no CPU batch");
        task.stop();
    }

    #[test]
    fn an_open_idle_gate_shares_the_queue_by_rate() {
        let t0 = Instant::now();
        let (mut task, gpu_rx, work_rx) = auto_task(idle, t0);
        task.dispatch(t0 + crate::idle::SAMPLE_PERIOD);
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
        task.dispatch(t0 + crate::idle::SAMPLE_PERIOD);
        let gpu = gpu_rx.try_recv().expect("a GPU batch");
        assert_eq!(gpu.items.len(), 120, "the whole queue");
        assert!(work_rx.try_recv().is_err(), "no CPU batch");
        task.stop();
    }

    #[test]
    fn slots_count_free_workers() {
        let s = Slots::new(2);
        assert_eq!(s.free(), 2);
        s.take();
        s.take();
        assert_eq!(s.free(), 0);
        s.release();
        assert_eq!(s.free(), 1);
    }
}
