//! The GPU lane: a dedicated worker thread that takes batches from the scheduler like the CPU
//! workers do, runs their curve work on a GPU backend behind [`umbrald_gpu::Guarded`] (which
//! audits every result on the CPU, falls back to the CPU for any call that fails and marks the
//! GPU unhealthy after repeated faults), and re-probes an unhealthy GPU later.
//!
//! Pieces:
//! - [`GpuProber`] finds and sets up a GPU ([`cuda_prober`] for the real one; tests inject
//!   their own, e.g. a backend that returns wrong points). It runs at start and for every
//!   re-probe.
//! - The guard, [`umbrald_gpu::Guarded`] over the probed backend, the one owner of the GPU's
//!   health; `LaneEvents` turns what it reports into [`Metrics`].
//! - `GpuLane`, the state the scheduler reads ([`GpuLane::view`]): batches in flight against
//!   their bound (`[gpu] batches_in_flight`), healthy, the batch size bound, and the measured
//!   [`Rates`] of one CPU worker and of the GPU lane, by which `umbrald_scheduling::plan`
//!   splits the queue between them.
//! - `GpuWorker`, one thread per batch in flight, all serving the same guarded device: with
//!   more than one, a batch's host work (parsing, hashing, encoding) overlaps another batch's
//!   device calls.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use umbrald_core::backend::EcBackend;
use umbrald_core::Engine;
use umbrald_gpu::{
    Fault, GpuBackend, GpuHealth, GpuOptions, GpuStats, GpuStatsSnapshot, GuardEvents, Guarded,
};
use umbrald_proto::ErrorCode;

use umbrald_scheduling::{LaneView, Rates};

use super::compute::process;
use super::host_threads::{HostThreads, Job};
use super::{Batch, Slots};
use crate::config::{GpuSection, MAX_GPU_PIPELINES};
use crate::observe::metrics::{Metrics, ThreadGroup};

/// A GPU found by a [`GpuProber`], ready to serve.
pub struct GpuDevice {
    /// The backend that runs the batch multiplications on the device.
    pub backend: Arc<dyn EcBackend>,
    /// One line for the logs: the device, its memory, the driver, where the kernels came from.
    pub description: String,
    /// The device's counters, for the kernel and copy time metrics (`None`: not measured).
    pub stats: Option<Arc<GpuStats>>,
    /// Items per GPU batch that fill this device (used when `batcher.gpu_max_batch_items` is 0).
    pub batch_items: usize,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("description", &self.description)
            .field("batch_items", &self.batch_items)
            .finish_non_exhaustive()
    }
}

/// Finds and sets up a GPU; `Err` is the reason there is none, in one line. Called at start
/// (for `backend = gpu` or `auto`) and for every re-probe of an unhealthy GPU, from a blocking
/// context (it may take seconds).
pub type GpuProber = Arc<dyn Fn() -> Result<GpuDevice, String> + Send + Sync>;

/// The `[gpu]` section as the GPU backend's and its guard's options.
pub(crate) fn gpu_options(section: &GpuSection) -> GpuOptions {
    GpuOptions {
        device: section.device,
        ptx_file: section.ptx_file.clone(),
        audit_samples: section.audit_samples,
        unhealthy_after: section.unhealthy_after,
        // Each pipeline has its own streams and buffers, so that the host threads' device
        // calls overlap (`Config::gpu_section` resolves 0 to one per host thread, at most 8).
        concurrent_calls: section.tuning.pipelines.clamp(1, MAX_GPU_PIPELINES),
        table_in_shared: section.tuning.table_in_shared,
        capsule_checks: section.tuning.capsule_checks,
        decompress: section.tuning.decompress,
        one_call: section.tuning.one_call,
        host_wait: section.tuning.host_wait,
        ..GpuOptions::default()
    }
}

/// The prober of the CUDA backend: driver, device, kernels (NVRTC or `gpu.ptx_file`),
/// self-test. Never panics; with no driver or device it returns the reason.
pub fn cuda_prober(section: &GpuSection) -> GpuProber {
    let opts = gpu_options(section);
    Arc::new(move || {
        let gpu = GpuBackend::probe(&opts).map_err(|e| e.to_string())?;
        Ok(GpuDevice {
            description: gpu.info().to_string(),
            stats: Some(gpu.stats()),
            // One full launch of the pair kernel: two pairs (E and V) per item.
            batch_items: (match gpu.info().launch_items {
                0 => opts.chunk_items,
                n => n,
            } / 2)
                .max(1),
            backend: Arc::new(gpu),
        })
    })
}

/// A prober that never finds a GPU (for tests and CPU-only embeddings).
pub fn no_gpu(reason: &'static str) -> GpuProber {
    Arc::new(move || Err(reason.to_owned()))
}

/// Longest wait between re-probes.
const MAX_REPROBE_BACKOFF: Duration = Duration::from_secs(600);
/// Smallest part of a GPU batch given to one host thread of the GPU worker.
const MIN_PART_ITEMS: usize = 1024;

/// The GPU lane's state as the scheduler sees it.
#[derive(Debug)]
pub(crate) struct GpuLane {
    in_flight: AtomicUsize,
    max_in_flight: usize,
    /// The guard's health, once the GPU workers have started (healthy until then).
    health: OnceLock<Arc<GpuHealth>>,
    max_items: AtomicUsize,
    cpu_helps: bool,
    /// Measured rates of the CPU workers and the GPU worker.
    pub rates: Arc<Rates>,
}

impl GpuLane {
    /// A healthy, idle lane taking batches of at most `max_items`, at most `max_in_flight` of
    /// them at once; `cpu_helps` lets the CPU workers take work while the GPU is healthy
    /// (`auto`).
    pub fn new(
        max_items: usize,
        max_in_flight: usize,
        cpu_helps: bool,
        rates: Arc<Rates>,
    ) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
            health: OnceLock::new(),
            max_items: AtomicUsize::new(max_items.max(1)),
            cpu_helps,
            rates,
        })
    }

    /// Most batches in flight at once (one GPU worker thread each).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Batches in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether the GPU is healthy, as its guard decides.
    pub fn is_healthy(&self) -> bool {
        match self.health.get() {
            Some(health) => health.is_healthy(),
            None => true,
        }
    }

    /// Reads the GPU's health from `health` (its guard's) from now on.
    fn attach(&self, health: Arc<GpuHealth>) {
        let _ = self.health.set(health);
    }

    /// Most items in one GPU batch.
    pub fn max_items(&self) -> usize {
        self.max_items.load(Ordering::Relaxed)
    }

    /// The lane as the scheduler's plan sees it now.
    pub fn view(&self) -> LaneView {
        LaneView {
            healthy: self.is_healthy(),
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight,
            max_items: self.max_items(),
            cpu_helps: self.cpu_helps,
            gpu_rate: self.rates.gpu(),
            cpu_worker_rate: self.rates.cpu_worker(),
        }
    }

    /// The scheduler hands a GPU worker a batch.
    pub fn take(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A GPU worker finished its batch.
    pub fn release(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// What the guard reports, into the metrics.
struct LaneEvents {
    metrics: Arc<Metrics>,
}

impl GuardEvents for LaneEvents {
    fn call(&self, call: umbrald_gpu::GpuCall, wall: Duration) {
        self.metrics.gpu_call(call, wall.as_secs_f64());
    }

    fn audited(&self, outputs: u64, cpu: Duration) {
        self.metrics.gpu_audited.inc_by(outputs);
        self.metrics.gpu_audit_seconds.inc_by(cpu.as_secs_f64());
    }

    fn fault(&self, fault: Fault) {
        self.metrics.gpu_fallback(fault);
        if fault == Fault::AuditMismatch {
            self.metrics.gpu_audit_failures.inc();
        }
    }

    fn health(&self, healthy: bool) {
        self.metrics.gpu_healthy.set(i64::from(healthy));
    }

    fn device_time(&self, since_last: GpuStatsSnapshot) {
        let m = &self.metrics;
        m.gpu_kernel_seconds
            .inc_by(since_last.kernel_time.as_secs_f64());
        m.gpu_copy_seconds
            .inc_by(since_last.copy_time.as_secs_f64());
        m.gpu_layout_seconds
            .inc_by(since_last.layout_time.as_secs_f64());
    }
}

/// One GPU worker thread (of `[gpu] batches_in_flight`), serving one batch at a time.
pub(crate) struct GpuWorker {
    guard: Arc<Guarded>,
    /// Held by the one worker that re-probes an unhealthy GPU; the others wait for batches.
    reprobing: Arc<Mutex<()>>,
    engine: Arc<Engine>,
    /// The threads that compute the parts of a batch split over `host_threads`.
    host: HostThreads,
    rx: Receiver<Batch>,
    slots: Arc<Slots>,
    lane: Arc<GpuLane>,
    metrics: Arc<Metrics>,
    prober: GpuProber,
    reprobe_after: Duration,
    host_threads: usize,
}

/// Into how many parts (one host thread and one device call each) the GPU worker splits a
/// batch of `items`: parts of at least [`MIN_PART_ITEMS`], at most `threads`.
pub(crate) fn parts_for(items: usize, threads: usize) -> usize {
    threads.min(items / MIN_PART_ITEMS).max(1)
}

impl GpuWorker {
    /// Starts the GPU workers, one thread per batch the lane lets in flight
    /// ([`GpuLane::max_in_flight`]), all serving `device` through one guard with batches from
    /// `rx`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        device: &GpuDevice,
        section: &GpuSection,
        lane: Arc<GpuLane>,
        rx: Receiver<Batch>,
        slots: Arc<Slots>,
        metrics: Arc<Metrics>,
        prober: GpuProber,
        fallback_threads: usize,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let events = Arc::new(LaneEvents {
            metrics: metrics.clone(),
        });
        let guard = Arc::new(Guarded::new(
            Arc::clone(&device.backend),
            device.stats.clone(),
            &gpu_options(section),
            fallback_threads,
            events,
        ));
        lane.attach(guard.health());
        metrics.set_lane_rate("gpu", lane.rates.gpu());
        let reprobing = Arc::new(Mutex::new(()));
        (0..lane.max_in_flight())
            .map(|i| {
                let host_threads = section.tuning.host_threads.max(1);
                // Parts run on these; a batch of one part runs on the worker thread itself.
                let host = HostThreads::start(
                    if host_threads > 1 { host_threads } else { 0 },
                    &format!("umbrald-gpu-{i}"),
                )?;
                let worker = GpuWorker {
                    engine: Arc::new(Engine::new(guard.clone())),
                    host,
                    guard: guard.clone(),
                    reprobing: reprobing.clone(),
                    rx: rx.clone(),
                    slots: slots.clone(),
                    lane: lane.clone(),
                    metrics: metrics.clone(),
                    prober: prober.clone(),
                    reprobe_after: Duration::from_millis(section.reprobe_after_ms.max(1)),
                    host_threads,
                };
                std::thread::Builder::new()
                    .name(format!("umbrald-gpu-{i}"))
                    .spawn(move || worker.run())
            })
            .collect()
    }

    fn run(self) {
        let mut backoff = self.reprobe_after;
        loop {
            if self.lane.is_healthy() {
                match self.rx.recv() {
                    Ok(batch) => self.serve(batch),
                    Err(_) => break,
                }
                backoff = self.reprobe_after;
                if !self.lane.is_healthy() {
                    // Let go of the device now; the CPU serves meanwhile.
                    self.guard.release_device();
                }
                continue;
            }
            match self.rx.recv_timeout(backoff) {
                // Only a batch handed over just before the GPU turned unhealthy: the guard
                // computes it on the CPU.
                Ok(batch) => self.serve(batch),
                Err(RecvTimeoutError::Timeout) => {
                    if !self.reprobe() {
                        backoff = (backoff * 2).min(MAX_REPROBE_BACKOFF);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        tracing::debug!("GPU worker stopped");
    }

    /// Probes the GPU again; on success the lane is healthy and takes work again. While
    /// another worker probes, this one does nothing and reports success (its wait is not
    /// lengthened).
    fn reprobe(&self) -> bool {
        let Ok(_probing) = self.reprobing.try_lock() else {
            return true;
        };
        if self.lane.is_healthy() {
            return true;
        }
        let started = Instant::now();
        let found = match catch_unwind(AssertUnwindSafe(|| (self.prober)())) {
            Ok(found) => found,
            Err(_) => Err("the prober panicked".to_owned()),
        };
        match found {
            Ok(device) => {
                self.guard
                    .replace(Arc::clone(&device.backend), device.stats.clone());
                self.metrics.gpu_reprobe(true);
                tracing::info!(
                    device = %device.description,
                    seconds = started.elapsed().as_secs_f64(),
                    "GPU re-probed and healthy again"
                );
                self.slots.wake();
                true
            }
            Err(reason) => {
                self.metrics.gpu_reprobe(false);
                tracing::warn!(%reason, "GPU re-probe failed; the CPU keeps serving");
                false
            }
        }
    }

    fn serve(&self, batch: Batch) {
        let started = Instant::now();
        let n = batch.items.len();
        self.metrics.batch_items.observe(n as f64);
        let faults_before = self.guard.faults();
        let parts = parts_for(n, self.host_threads);
        let batch = Arc::new(batch);
        // Each part is one engine call (one device call): the parts' parsing, checks and
        // encoding run on the host threads while the device serves another part.
        let chunk = n.div_ceil(parts).max(1);
        let jobs: Vec<Job> = (0..n)
            .step_by(chunk)
            .map(|from| {
                let (batch, engine, metrics) =
                    (batch.clone(), self.engine.clone(), self.metrics.clone());
                Box::new(move || {
                    let _cpu = metrics.thread_cpu(ThreadGroup::GpuHost);
                    let items = &batch.items[from..(from + chunk).min(batch.items.len())];
                    process(&engine, items.iter().map(|d| &d.item), started)
                }) as Job
            })
            .collect();
        let jobs_sent = jobs.len();
        let counts = self.host.run_all(jobs);
        let outcome: Option<usize> = (counts.len() == jobs_sent).then(|| counts.into_iter().sum());
        let computed = outcome.unwrap_or_else(|| {
            tracing::error!(items = n, "GPU batch computation panicked");
            self.metrics.worker_panics.inc();
            // Items already answered keep their result; the rest are answered here.
            for entry in &batch.items {
                entry.item.fail(ErrorCode::Internal, "internal error");
            }
            0
        });
        let elapsed = started.elapsed();
        self.metrics.compute_seconds.observe(elapsed.as_secs_f64());
        self.metrics.inflight_batches.dec();
        // The lane's rate, not this batch's: batches in flight together share the device.
        let concurrent = self.lane.in_flight().max(1);
        drop(batch);
        self.lane.release();
        self.slots.wake();
        if computed > 0 && self.guard.faults() == faults_before {
            self.metrics.gpu_batches.inc();
            self.metrics.gpu_items.inc_by(computed as u64);
            let rate = self.lane.rates.record_gpu(computed * concurrent, elapsed);
            self.metrics.set_lane_rate("gpu", rate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_parts_of_at_least_min_items() {
        assert_eq!(parts_for(10, 4), 1);
        assert_eq!(parts_for(MIN_PART_ITEMS * 2 - 1, 4), 1);
        assert_eq!(parts_for(MIN_PART_ITEMS * 2, 4), 2);
        assert_eq!(parts_for(MIN_PART_ITEMS * 100, 4), 4);
        assert_eq!(parts_for(MIN_PART_ITEMS * 100, 1), 1);
        assert_eq!(parts_for(0, 4), 1);
    }
}
