//! The CPU worker pool: one std thread per configured core, pinned with `core_affinity`, each
//! looping on the crossbeam receiver of formed batches. All curve math happens on the workers:
//! capsule parsing, kfrag verification (`Engine::verify_policy`, cached by the engine) and
//! `Engine::reencrypt_batch` (see [`super::compute`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Receiver;
use umbrald_core::Engine;
use umbrald_proto::ErrorCode;
use umbrald_scheduling::Rates;

use super::compute::process;
use super::priority::{enter_idle_class, lower_priority, pin_targets};
use super::{Batch, Slots};
use crate::observe::metrics::{Metrics, ThreadGroup};

/// The running worker threads.
#[derive(Debug)]
pub(crate) struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
}

/// Where and how many workers to run.
#[derive(Debug, Clone)]
pub(crate) struct PoolSpec {
    /// Number of threads.
    pub threads: usize,
    /// Pin them to cores.
    pub pin: bool,
    /// Core ids to use (empty: every core this process may run on).
    pub cores: Vec<usize>,
    /// Nice value for the worker threads (0: unchanged).
    pub nice: i32,
    /// Run the workers in Linux's idle scheduling class (`SCHED_IDLE`): they get a core only
    /// when no other thread wants it, and a waking thread takes it from them at once.
    pub idle_class: bool,
}

impl WorkerPool {
    /// Starts `spec.threads` workers reading batches from `rx`. Each worker returns its slot
    /// to `slots` after every batch. Workers exit when every sender of `rx` is dropped and the
    /// channel is empty.
    pub fn start(
        spec: &PoolSpec,
        engine: Arc<Engine>,
        rx: Receiver<Batch>,
        slots: Arc<Slots>,
        metrics: Arc<Metrics>,
        rates: Arc<Rates>,
    ) -> std::io::Result<Self> {
        let cores = if spec.pin {
            pin_targets(&spec.cores)
        } else {
            Vec::new()
        };
        let mut handles = Vec::with_capacity(spec.threads);
        for i in 0..spec.threads {
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let (nice, idle_class) = (spec.nice, spec.idle_class);
            let worker = Worker {
                engine: engine.clone(),
                rx: rx.clone(),
                slots: slots.clone(),
                metrics: metrics.clone(),
                rates: rates.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("umbrald-worker-{i}"))
                .spawn(move || worker.run(i, core, nice, idle_class))?;
            handles.push(handle);
        }
        metrics
            .workers
            .set(i64::try_from(spec.threads).unwrap_or(i64::MAX));
        Ok(Self { handles })
    }

    /// Adds another thread (the GPU worker) for [`WorkerPool::join`] to wait for.
    pub fn adopt(&mut self, handle: JoinHandle<()>) {
        self.handles.push(handle);
    }

    /// Waits for every worker to exit (after the batch channel closes). Blocking.
    pub fn join(self) {
        for handle in self.handles {
            if handle.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

struct Worker {
    engine: Arc<Engine>,
    rx: Receiver<Batch>,
    slots: Arc<Slots>,
    metrics: Arc<Metrics>,
    rates: Arc<Rates>,
}

impl Worker {
    fn run(self, index: usize, core: Option<core_affinity::CoreId>, nice: i32, idle_class: bool) {
        // The class first: entering it resets the nice value.
        if idle_class {
            if let Err(e) = enter_idle_class() {
                tracing::warn!(worker = index, error = %e, "cannot enter the idle scheduling class");
            }
        }
        if nice != 0 {
            if let Err(e) = lower_priority(nice) {
                tracing::warn!(worker = index, nice, error = %e, "cannot lower worker priority");
            }
        }
        if let Some(core) = core {
            if core_affinity::set_for_current(core) {
                self.metrics.workers_pinned.inc();
                tracing::debug!(worker = index, core = core.id, "worker pinned");
            } else {
                tracing::warn!(
                    worker = index,
                    core = core.id,
                    "cannot pin worker; running unpinned"
                );
            }
        }
        while let Ok(batch) = self.rx.recv() {
            let started = Instant::now();
            let n = batch.items.len();
            // Before any result goes out, so that a client that got its answer sees its batch.
            self.metrics.batch_items.observe(n as f64);
            let cpu = self.metrics.thread_cpu(ThreadGroup::CpuWorkers);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                #[cfg(feature = "fault-injection")]
                super::fault::panic_if_armed(batch.items.iter().map(|d| d.item.capsule.as_slice()));
                process(&self.engine, batch.items.iter().map(|d| &d.item), started)
            }));
            drop(cpu);
            // The panic is caught around the batch alone: this thread goes on with the next
            // batch, so the pool keeps its size without a replacement thread.
            let computed = outcome.unwrap_or_else(|_| {
                tracing::error!(worker = index, items = n, "batch computation panicked");
                self.metrics.worker_panics.inc();
                // Items already answered keep their result; the rest are answered here.
                for entry in &batch.items {
                    entry.item.fail(ErrorCode::Internal, "internal error");
                }
                0
            });
            let elapsed = started.elapsed();
            self.metrics.compute_seconds.observe(elapsed.as_secs_f64());
            if computed > 0 {
                let rate = self.rates.record_cpu(computed, elapsed);
                self.metrics.set_lane_rate("cpu", rate);
            }
            self.metrics.inflight_batches.dec();
            drop(batch);
            self.slots.release();
        }
        tracing::debug!(worker = index, "worker stopped");
    }
}
