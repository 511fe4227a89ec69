//! The worker pool: one std thread per configured core, pinned with `core_affinity`, each
//! looping on the crossbeam receiver of formed batches. All curve math happens here: capsule
//! parsing, kfrag verification (`Engine::verify_policy`, cached by the engine) and
//! `Engine::reencrypt_batch`.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Receiver;
use umbrald_core::{Engine, ItemError, ReencryptItem, VerifiedKeyFrag};
use umbrald_proto::{ErrorCode, ItemResult, Policy};

use crate::gpu::Rates;
use crate::metrics::{Metrics, ThreadGroup};
use crate::scheduler::{Batch, Slots};
use crate::work::WorkItem;

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

/// Sets the calling thread's nice value (on Linux, `setpriority` on a thread id affects only
/// that thread). Raising one's own nice value needs no privilege.
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) -> std::io::Result<()> {
    let tid = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(tid), nice).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "per-thread nice is Linux-only",
    ))
}

/// Moves the calling thread into Linux's `SCHED_IDLE` class. Unlike a high nice value, a CPU
/// running only such threads counts as idle when the kernel places a waking thread, and the
/// waking thread preempts at once instead of waiting for its turn. Needs no privilege.
#[cfg(target_os = "linux")]
fn enter_idle_class() -> std::io::Result<()> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .map_err(|e| std::io::Error::other(format!("{e:?}")))
}

#[cfg(not(target_os = "linux"))]
fn enter_idle_class() -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SCHED_IDLE is Linux-only",
    ))
}

/// The cores to pin to: the listed ids that exist, or all that this process may use.
fn pin_targets(wanted: &[usize]) -> Vec<core_affinity::CoreId> {
    let available = core_affinity::get_core_ids().unwrap_or_default();
    if wanted.is_empty() {
        return available;
    }
    wanted
        .iter()
        .map(|id| core_affinity::CoreId { id: *id })
        .filter(|c| {
            let ok = available.contains(c);
            if !ok {
                tracing::warn!(core = c.id, "configured core is not available; skipped");
            }
            ok
        })
        .collect()
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
                process(&self.engine, batch.items.iter().map(|d| &d.item), started)
            }));
            drop(cpu);
            let computed = outcome.unwrap_or_else(|_| {
                tracing::error!(worker = index, items = n, "batch computation panicked");
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

/// Computes one batch and reports every live item's result to its request.
///
/// Cancelled items are skipped; items past their deadline are answered `deadline_exceeded`
/// without work; each distinct policy is verified once per batch; then one
/// `reencrypt_batch` call covers every item whose policy verified. Returns the number of items
/// in that call.
///
/// Many threads run this at once on items that share one policy and its kfrag, so nothing here
/// writes to shared memory per item: the kfrags are borrowed, not reference-counted, per item,
/// and results go to their requests one run of consecutive items at a time.
pub(crate) fn process<'a>(
    engine: &Engine,
    items: impl Iterator<Item = &'a WorkItem>,
    now: Instant,
) -> usize {
    let mut kfrags = PolicyKfrags::default();
    let mut live: Vec<(&WorkItem, usize)> = Vec::new();
    for item in items {
        if item.request.is_cancelled() {
            continue;
        }
        if item.request_deadline_passed(now) {
            item.fail(
                ErrorCode::DeadlineExceeded,
                "deadline passed before computation",
            );
            continue;
        }
        match kfrags.index_of(item, engine) {
            Ok(k) => live.push((item, k)),
            Err(e) => item.complete(item_error(&e)),
        }
    }
    if live.is_empty() {
        return 0;
    }
    let inputs: Vec<ReencryptItem<'_>> = live
        .iter()
        .map(|&(item, k)| ReencryptItem {
            capsule: &item.capsule,
            kfrag: &kfrags.verified[k],
        })
        .collect();
    let mut results = engine.reencrypt_batch(&inputs).into_iter();
    drop(inputs);
    let mut outcomes = live.iter().map(|&(item, _)| {
        let result = match results.next() {
            Some(Ok(cfrag)) if item.request.compact_cfrags() => {
                ItemResult::ok_parts(cfrag.to_parts().to_vec())
            }
            Some(Ok(cfrag)) => ItemResult::ok(cfrag.to_bytes().to_vec()),
            Some(Err(e)) => item_error(&e),
            None => ItemResult::err(ErrorCode::Internal, "engine returned too few results"),
        };
        (item, result)
    });
    crate::work::complete_in_runs(&mut outcomes);
    live.len()
}

/// The verified kfrags of a batch's policies, each verified once: items sharing an
/// `Arc<Policy>` (all items of a request) share an entry.
#[derive(Default)]
struct PolicyKfrags {
    /// Distinct verified kfrags, indexed by the entries below.
    verified: Vec<Arc<VerifiedKeyFrag>>,
    /// Policy (by address) → index into `verified`, or why it failed.
    by_policy: HashMap<*const Policy, Result<usize, ItemError>>,
}

impl PolicyKfrags {
    fn index_of(&mut self, item: &WorkItem, engine: &Engine) -> Result<usize, ItemError> {
        let verified = &mut self.verified;
        self.by_policy
            .entry(Arc::as_ptr(&item.policy))
            .or_insert_with(|| {
                item.verified_policy(engine).map(|kfrag| {
                    verified.push(kfrag);
                    verified.len() - 1
                })
            })
            .clone()
    }
}

fn item_error(e: &ItemError) -> ItemResult {
    ItemResult::err(e.code(), e.to_string())
}

impl WorkItem {
    fn request_deadline_passed(&self, now: Instant) -> bool {
        use crate::batcher::QueueEntry;
        self.deadline().is_some_and(|d| d <= now)
    }
}

#[cfg(test)]
mod tests {
    /// Field `n` (1-based, as in proc(5)) of a thread's `stat` file.
    #[cfg(target_os = "linux")]
    fn stat_field(stat_path: &str, n: usize) -> i64 {
        let stat = std::fs::read_to_string(stat_path).expect("stat");
        // Fields after the command name (field 2, which ends with ')') start at field 3.
        let after = stat.rsplit_once(')').expect("comm").1;
        after
            .split_whitespace()
            .nth(n - 3)
            .expect("field")
            .parse()
            .expect("number")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_class_applies_only_to_the_calling_thread() {
        // Field 41 is the scheduling policy; SCHED_IDLE is 5.
        let policy = || stat_field("/proc/thread-self/stat", 41);
        let before = policy();
        let in_thread = std::thread::spawn(move || {
            super::enter_idle_class().expect("entering SCHED_IDLE needs no privilege");
            policy()
        })
        .join()
        .expect("thread");
        const SCHED_IDLE: i64 = 5;
        assert_eq!(in_thread, SCHED_IDLE);
        assert_eq!(policy(), before, "other threads unchanged");
        assert_ne!(before, SCHED_IDLE);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn lower_priority_changes_only_the_calling_thread() {
        fn nice_of(path: &str) -> i64 {
            stat_field(path, 19)
        }
        let before = nice_of("/proc/thread-self/stat");
        let in_thread = std::thread::spawn(|| {
            super::lower_priority(7).expect("raising one's own nice is allowed");
            nice_of("/proc/thread-self/stat")
        })
        .join()
        .expect("thread");
        assert_eq!(in_thread, 7.max(before));
        assert_eq!(
            nice_of("/proc/thread-self/stat"),
            before,
            "other threads unchanged"
        );
    }
}
