//! Prometheus metrics, all prefixed `umbrald_`, in a registry owned by one server.
//!
//! Error-code labels are [`umbrald_proto::ErrorCode::as_str`]; every label combination is
//! registered up front so that series exist (at zero) before the first event.

use prometheus::{
    Counter, CounterVec, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use umbrald_gpu::{Fault, GpuCall};
use umbrald_proto::ErrorCode;

/// Label value of the `code` label for successful requests and items.
pub const CODE_NONE: &str = "none";

/// Seconds buckets from 50 µs to 10 s.
const SECONDS_BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.003_5, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Batch-size buckets (items), powers of two up to 4096.
const BATCH_BUCKETS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Every metric of one server.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    nucypher_requests: IntCounterVec,
    items: IntCounterVec,
    /// End-to-end request time: from the whole request read to the response handed to QUIC.
    pub request_seconds: Histogram,
    /// Time items spent in the queue before a batch took them.
    pub queue_seconds: Histogram,
    /// Time a worker spent on one batch (kfrag checks and re-encryption).
    pub compute_seconds: Histogram,
    /// Items per batch.
    pub batch_items: Histogram,
    /// Items in the queue now.
    pub queue_depth: IntGauge,
    /// Largest queue depth seen since start.
    pub queue_depth_max: IntGauge,
    /// Queue capacity (`batcher.max_queue_items`).
    pub queue_capacity: IntGauge,
    /// Requests read and not yet answered.
    pub inflight_requests: IntGauge,
    /// Batches handed to workers and not yet finished.
    pub inflight_batches: IntGauge,
    /// Open QUIC connections.
    pub open_connections: IntGauge,
    /// Open request streams.
    pub open_streams: IntGauge,
    /// Connections accepted since start.
    pub connections_total: IntCounter,
    /// Connection attempts refused (limit reached, shutting down, handshake failed).
    pub connections_refused: IntCounter,
    /// Audit records written.
    pub audit_records: IntCounter,
    /// Audit records lost (queue full or the file not writable).
    pub audit_dropped: IntCounter,
    /// Streams reset because the request was not finished in time or the peer vanished.
    pub streams_reset: IntCounter,
    /// Batches whose computation panicked on a worker (answered `internal`; the worker goes on).
    pub worker_panics: IntCounter,
    /// 1 while the server accepts work, 0 before start and while shutting down.
    pub ready: IntGauge,
    backend_info: IntGaugeVec,
    /// Worker threads.
    pub workers: IntGauge,
    /// Worker threads pinned to a core.
    pub workers_pinned: IntGauge,
    build_info: IntGaugeVec,
    /// The process's CPU time (user + system), brought up to date by [`Metrics::encode`].
    cpu_seconds: Counter,
    /// Serialises the catch-up of `cpu_seconds` between concurrent scrapes.
    cpu_sample: std::sync::Arc<std::sync::Mutex<()>>,
    /// Batches whose curve work the GPU did (no fallback).
    pub gpu_batches: IntCounter,
    /// Items in those batches.
    pub gpu_items: IntCounter,
    /// Device time in kernels, as measured by the device's events.
    pub gpu_kernel_seconds: Counter,
    /// Device time in host/device copies.
    pub gpu_copy_seconds: Counter,
    /// GPU host threads' time packing device inputs and reading results back.
    pub gpu_layout_seconds: Counter,
    /// GPU host threads' time recomputing sampled outputs on the CPU (the audit).
    pub gpu_audit_seconds: Counter,
    gpu_fallbacks: IntCounterVec,
    /// GPU results whose sampled outputs differed from the CPU's.
    pub gpu_audit_failures: IntCounter,
    /// GPU outputs recomputed on the CPU by the audit.
    pub gpu_audited: IntCounter,
    /// 1 while a GPU serves, 0 without one or while it is marked unhealthy.
    pub gpu_healthy: IntGauge,
    gpu_reprobes: IntCounterVec,
    gpu_call_seconds: HistogramVec,
    lane_rate: GaugeVec,
    thread_cpu_seconds: CounterVec,
    https_requests: IntCounterVec,
    https_seconds: HistogramVec,
    /// Open HTTPS connections.
    pub https_open_connections: IntGauge,
    /// HTTPS connections refused (limit reached) or whose TLS handshake failed.
    pub https_connections_refused: IntCounter,
    tls_reloads: IntCounterVec,
    tls_cert_info: IntGaugeVec,
    access_refusals: IntCounterVec,
    access_reloads: IntCounterVec,
    /// Clients whose `[access]` limits are tracked.
    pub access_clients: IntGauge,
}

/// Why the allowlist refused a client (`umbrald_access_refused_total`'s reasons).
pub const ACCESS_REFUSALS: [&str; 3] = ["no_certificate", "not_allowed", "revoked"];

/// What answered an HTTPS request: umbrald (`reencrypt`), or the upstream node it forwarded
/// the request to (`forwarded`), or neither (`other`: unknown path without an upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpsRoute {
    /// `POST /reencrypt`, answered here.
    Reencrypt,
    /// Forwarded to the upstream node.
    Forwarded,
    /// Answered here without serving anything (404, 405).
    Other,
}

impl HttpsRoute {
    /// Every route, for pre-registration.
    pub const ALL: [HttpsRoute; 3] = [Self::Reencrypt, Self::Forwarded, Self::Other];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reencrypt => "reencrypt",
            Self::Forwarded => "forwarded",
            Self::Other => "other",
        }
    }
}

/// Threads whose CPU time `umbrald_thread_cpu_seconds_total` counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadGroup {
    /// The GPU lane's host threads, computing batch parts (their device waits included).
    GpuHost,
    /// The CPU workers, computing batches.
    CpuWorkers,
}

impl ThreadGroup {
    /// Every group, for pre-registration.
    pub const ALL: [ThreadGroup; 2] = [Self::GpuHost, Self::CpuWorkers];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GpuHost => "gpu_host",
            Self::CpuWorkers => "cpu_workers",
        }
    }
}

/// Adds the calling thread's CPU time from its creation to its drop to
/// `umbrald_thread_cpu_seconds_total{group}` (nothing where thread CPU time is unavailable).
#[derive(Debug)]
pub struct ThreadCpu {
    counter: Counter,
    started: Option<cpu_time::ThreadTime>,
}

impl Drop for ThreadCpu {
    fn drop(&mut self) {
        if let Some(started) = self.started.take() {
            if let Ok(spent) = started.try_elapsed() {
                self.counter.inc_by(spent.as_secs_f64());
            }
        }
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            requests: counter_vec(
                &registry,
                "umbrald_requests_total",
                "Requests answered, by outcome (ok or error) and error code",
                &["outcome", "code"],
            ),
            nucypher_requests: counter_vec(
                &registry,
                "umbrald_nucypher_requests_total",
                "NuCypher ReencryptionRequests answered (also counted in umbrald_requests_total), \
                 by outcome and error code",
                &["outcome", "code"],
            ),
            items: counter_vec(
                &registry,
                "umbrald_items_total",
                "Items answered, by outcome (ok or error) and error code",
                &["outcome", "code"],
            ),
            request_seconds: histogram(
                &registry,
                "umbrald_request_duration_seconds",
                "End-to-end request time, from request read to response written",
                &SECONDS_BUCKETS,
            ),
            queue_seconds: histogram(
                &registry,
                "umbrald_queue_wait_seconds",
                "Time an item waited in the queue before a batch took it",
                &SECONDS_BUCKETS,
            ),
            compute_seconds: histogram(
                &registry,
                "umbrald_batch_compute_seconds",
                "Time a worker spent computing one batch",
                &SECONDS_BUCKETS,
            ),
            batch_items: histogram(
                &registry,
                "umbrald_batch_size_items",
                "Items per batch",
                &BATCH_BUCKETS,
            ),
            queue_depth: gauge(&registry, "umbrald_queue_depth", "Items in the queue"),
            queue_depth_max: gauge(
                &registry,
                "umbrald_queue_depth_max",
                "Largest queue depth seen since start",
            ),
            queue_capacity: gauge(
                &registry,
                "umbrald_queue_capacity",
                "Queue capacity in items",
            ),
            inflight_requests: gauge(
                &registry,
                "umbrald_inflight_requests",
                "Requests read and not yet answered",
            ),
            inflight_batches: gauge(
                &registry,
                "umbrald_inflight_batches",
                "Batches handed to workers and not yet finished",
            ),
            open_connections: gauge(&registry, "umbrald_open_connections", "Open connections"),
            open_streams: gauge(&registry, "umbrald_open_streams", "Open request streams"),
            connections_total: counter(
                &registry,
                "umbrald_connections_total",
                "Connections accepted since start",
            ),
            audit_records: counter(
                &registry,
                "umbrald_audit_records_total",
                "Audit records written",
            ),
            audit_dropped: counter(
                &registry,
                "umbrald_audit_dropped_total",
                "Audit records lost: the queue was full or the audit log not writable",
            ),
            connections_refused: counter(
                &registry,
                "umbrald_connections_refused_total",
                "Connection attempts refused or failed in the handshake",
            ),
            streams_reset: counter(
                &registry,
                "umbrald_streams_reset_total",
                "Request streams reset: not finished in time, or the peer vanished",
            ),
            worker_panics: counter(
                &registry,
                "umbrald_worker_panics_total",
                "Batches whose computation panicked on a worker: answered internal, the worker \
                 went on with the next batch",
            ),
            ready: gauge(
                &registry,
                "umbrald_ready",
                "1 while the server accepts work",
            ),
            backend_info: gauge_vec(
                &registry,
                "umbrald_backend_info",
                "The elliptic-curve backend in use (value 1)",
                &["backend"],
            ),
            workers: gauge(&registry, "umbrald_workers", "Worker threads"),
            workers_pinned: gauge(
                &registry,
                "umbrald_workers_pinned",
                "Worker threads pinned to a core",
            ),
            build_info: gauge_vec(
                &registry,
                "umbrald_build_info",
                "Build information (value 1)",
                &["version", "protocol"],
            ),
            // `process_cpu_seconds_total` (below) counts whole seconds: too coarse for the
            // CPU per item of a benchmark window of a few seconds.
            cpu_seconds: register(
                &registry,
                float_counter(
                    "umbrald_cpu_seconds_total",
                    "CPU time of the server process (user + system), nanosecond resolution",
                ),
            ),
            cpu_sample: std::sync::Arc::default(),
            gpu_batches: counter(
                &registry,
                "umbrald_gpu_batches_total",
                "Batches whose curve work the GPU did and whose audit passed",
            ),
            gpu_items: counter(
                &registry,
                "umbrald_gpu_items_total",
                "Items re-encrypted with the GPU's curve work",
            ),
            gpu_kernel_seconds: register(
                &registry,
                float_counter(
                    "umbrald_gpu_kernel_seconds_total",
                    "Device time spent in GPU kernels",
                ),
            ),
            gpu_copy_seconds: register(
                &registry,
                float_counter(
                    "umbrald_gpu_copy_seconds_total",
                    "Device time spent copying between host and GPU",
                ),
            ),
            gpu_layout_seconds: register(
                &registry,
                float_counter(
                    "umbrald_gpu_layout_seconds_total",
                    "Host CPU time packing GPU inputs and reading results back, point checks included",
                ),
            ),
            gpu_audit_seconds: register(
                &registry,
                float_counter(
                    "umbrald_gpu_audit_seconds_total",
                    "Host CPU time recomputing sampled GPU outputs on the CPU",
                ),
            ),
            gpu_fallbacks: counter_vec(
                &registry,
                "umbrald_gpu_fallbacks_total",
                "GPU backend calls recomputed on the CPU, by reason",
                &["reason"],
            ),
            gpu_audit_failures: counter(
                &registry,
                "umbrald_gpu_audit_failures_total",
                "GPU results whose sampled outputs differed from the CPU's",
            ),
            gpu_audited: counter(
                &registry,
                "umbrald_gpu_audited_outputs_total",
                "GPU outputs recomputed on the CPU by the audit",
            ),
            gpu_healthy: gauge(
                &registry,
                "umbrald_gpu_healthy",
                "1 while a GPU serves, 0 without one or while it is unhealthy",
            ),
            gpu_reprobes: counter_vec(
                &registry,
                "umbrald_gpu_reprobes_total",
                "Re-probes of an unhealthy GPU, by result (ok or failed)",
                &["result"],
            ),
            gpu_call_seconds: histogram_vec(
                &registry,
                "umbrald_gpu_call_seconds",
                "Wall time of one GPU backend call on its host thread (waiting for a pipeline, \
                 packing, the device, unpacking and checking), by call",
                &["call"],
                &SECONDS_BUCKETS,
            ),
            lane_rate: float_gauge_vec(
                &registry,
                "umbrald_lane_rate_items_per_second",
                "Measured throughput (EWMA) of one CPU worker and of the GPU worker",
                &["lane"],
            ),
            thread_cpu_seconds: float_counter_vec(
                &registry,
                "umbrald_thread_cpu_seconds_total",
                "CPU time computing batches, by thread group: gpu_host (the GPU lane's host \
                 threads) and cpu_workers; the rest of umbrald_cpu_seconds_total is the QUIC \
                 side, the scheduler and this endpoint",
                &["group"],
            ),
            https_requests: counter_vec(
                &registry,
                "umbrald_https_requests_total",
                "HTTPS requests answered, by route (reencrypt: served here; forwarded: answered \
                 by the upstream node; other) and HTTP status",
                &["route", "status"],
            ),
            https_seconds: histogram_vec(
                &registry,
                "umbrald_https_request_duration_seconds",
                "HTTPS request time, from the request head read to the response head written, \
                 by route",
                &["route"],
                &SECONDS_BUCKETS,
            ),
            https_open_connections: gauge(
                &registry,
                "umbrald_https_open_connections",
                "Open HTTPS connections",
            ),
            https_connections_refused: counter(
                &registry,
                "umbrald_https_connections_refused_total",
                "HTTPS connections refused (limit reached) or whose TLS handshake failed or \
                 timed out",
            ),
            access_refusals: counter_vec(
                &registry,
                "umbrald_access_refused_total",
                "Clients refused by [access] allowed_clients, by reason: no_certificate and \
                 not_allowed (QUIC and HTTPS handshakes), revoked (a request on a connection \
                 whose key a reload removed)",
                &["reason"],
            ),
            access_reloads: counter_vec(
                &registry,
                "umbrald_access_reloads_total",
                "Reloads of [access] (SIGHUP), by result (ok, or failed: the previous settings \
                 stay)",
                &["result"],
            ),
            access_clients: gauge(
                &registry,
                "umbrald_access_clients",
                "Clients whose [access] limits are tracked (at most access.max_clients)",
            ),
            tls_reloads: counter_vec(
                &registry,
                "umbrald_tls_reloads_total",
                "Certificate reloads (SIGHUP), by result (ok, or failed: the previous certificate \
                 stays)",
                &["result"],
            ),
            tls_cert_info: gauge_vec(
                &registry,
                "umbrald_tls_cert_info",
                "The certificate new handshakes present, by the SHA-256 fingerprint clients pin \
                 (value 1)",
                &["sha256"],
            ),
            registry,
        };
        // The standard `process_*` metrics (CPU seconds, resident memory, open descriptors):
        // with the items counter they give the server's CPU per item, which `umbrald bench
        // --metrics-url` reports.
        #[cfg(target_os = "linux")]
        if let Err(e) = m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::warn!(error = %e, "process metrics unavailable");
        }
        for reason in Fault::ALL {
            m.gpu_fallbacks.with_label_values(&[reason.as_str()]);
        }
        for result in ["ok", "failed"] {
            m.gpu_reprobes.with_label_values(&[result]);
            m.tls_reloads.with_label_values(&[result]);
            m.access_reloads.with_label_values(&[result]);
        }
        for reason in ACCESS_REFUSALS {
            m.access_refusals.with_label_values(&[reason]);
        }
        for route in HttpsRoute::ALL {
            m.https_seconds.with_label_values(&[route.as_str()]);
        }
        for status in [
            "200", "400", "401", "403", "408", "413", "429", "500", "503", "504",
        ] {
            m.https_requests
                .with_label_values(&[HttpsRoute::Reencrypt.as_str(), status]);
        }
        for code in ErrorCode::ALL {
            m.requests.with_label_values(&["error", code.as_str()]);
            m.items.with_label_values(&["error", code.as_str()]);
        }
        for group in ThreadGroup::ALL {
            m.thread_cpu_seconds.with_label_values(&[group.as_str()]);
        }
        m.requests.with_label_values(&["ok", CODE_NONE]);
        m.items.with_label_values(&["ok", CODE_NONE]);
        let protocol = String::from_utf8_lossy(umbrald_proto::ALPN).into_owned();
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), protocol.as_str()])
            .set(1);
        m
    }

    /// Records the backend in use.
    pub fn set_backend(&self, name: &str) {
        self.backend_info.reset();
        self.backend_info.with_label_values(&[name]).set(1);
    }

    /// Counts one client refused by the allowlist, for `reason` (one of [`ACCESS_REFUSALS`]).
    pub fn access_refused(&self, reason: &str) {
        self.access_refusals.with_label_values(&[reason]).inc();
    }

    /// Counts one reload of `[access]` that succeeded (`ok`) or kept the previous settings.
    pub fn access_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.access_reloads.with_label_values(&[result]).inc();
    }

    /// Records the certificate that new handshakes present, by its fingerprint in hex.
    pub fn set_tls_cert(&self, sha256_hex: &str) {
        self.tls_cert_info.reset();
        self.tls_cert_info.with_label_values(&[sha256_hex]).set(1);
    }

    /// Counts one certificate reload that succeeded (`ok`) or kept the previous certificate.
    pub fn tls_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls_reloads.with_label_values(&[result]).inc();
    }

    /// Counts one GPU backend call recomputed on the CPU.
    pub fn gpu_fallback(&self, reason: Fault) {
        self.gpu_fallbacks
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Records the wall time of one GPU backend call of kind `call`.
    pub fn gpu_call(&self, call: GpuCall, seconds: f64) {
        self.gpu_call_seconds
            .with_label_values(&[call.as_str()])
            .observe(seconds);
    }

    /// Starts counting the calling thread's CPU time for `group` until the guard drops.
    pub fn thread_cpu(&self, group: ThreadGroup) -> ThreadCpu {
        ThreadCpu {
            counter: self.thread_cpu_seconds.with_label_values(&[group.as_str()]),
            started: cpu_time::ThreadTime::try_now().ok(),
        }
    }

    /// Counts one re-probe of an unhealthy GPU.
    pub fn gpu_reprobe(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.gpu_reprobes.with_label_values(&[result]).inc();
    }

    /// Publishes a lane's measured rate (`lane` is `cpu` for one CPU worker, or `gpu`).
    pub fn set_lane_rate(&self, lane: &str, items_per_second: f64) {
        self.lane_rate
            .with_label_values(&[lane])
            .set(items_per_second);
    }

    /// Counts one answered request: `None` for a response with results, else its error code.
    pub fn request_done(&self, error: Option<ErrorCode>) {
        Self::count_outcome(&self.requests, error);
    }

    /// Counts one NuCypher `ReencryptionRequest` answered (in addition to
    /// [`Metrics::request_done`]), with `error` (`None`: a `ReencryptionResponse`).
    pub fn nucypher_request_done(&self, error: Option<ErrorCode>) {
        Self::count_outcome(&self.nucypher_requests, error);
    }

    fn count_outcome(counter: &IntCounterVec, error: Option<ErrorCode>) {
        match error {
            None => counter.with_label_values(&["ok", CODE_NONE]).inc(),
            Some(code) => counter.with_label_values(&["error", code.as_str()]).inc(),
        }
    }

    /// Counts an HTTPS request answered on `route` with `status` after `seconds`.
    pub fn https_request_done(&self, route: HttpsRoute, status: u16, seconds: f64) {
        self.https_requests
            .with_label_values(&[route.as_str(), &status.to_string()])
            .inc();
        self.https_seconds
            .with_label_values(&[route.as_str()])
            .observe(seconds);
    }

    /// Counts `n` items answered with `error` (`None`: a cfrag).
    pub fn items_done(&self, error: Option<ErrorCode>, n: u64) {
        if n == 0 {
            return;
        }
        match error {
            None => self.items.with_label_values(&["ok", CODE_NONE]).inc_by(n),
            Some(code) => self
                .items
                .with_label_values(&["error", code.as_str()])
                .inc_by(n),
        }
    }

    /// Sets the queue depth gauge and its high-water mark.
    pub fn set_queue_depth(&self, depth: usize) {
        let depth = i64::try_from(depth).unwrap_or(i64::MAX);
        self.queue_depth.set(depth);
        if depth > self.queue_depth_max.get() {
            self.queue_depth_max.set(depth);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        self.sample_cpu();
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }

    /// Brings `umbrald_cpu_seconds_total` up to the process's CPU time now.
    fn sample_cpu(&self) {
        let Ok(_serial) = self.cpu_sample.lock() else {
            return;
        };
        let Ok(now) = cpu_time::ProcessTime::try_now() else {
            return;
        };
        let behind = now.as_duration().as_secs_f64() - self.cpu_seconds.get();
        if behind > 0.0 {
            self.cpu_seconds.inc_by(behind);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Increments a gauge now and decrements it when dropped (open connections, streams,
/// in-flight requests).
#[derive(Debug)]
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    /// Increments `gauge` until the guard is dropped.
    pub fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

// Registration only fails on a duplicate or invalid name, which the constant names above rule
// out; a failure is a programming error caught by the first test that builds `Metrics`.
#[allow(clippy::expect_used)]
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    registry
        .register(Box::new(m.clone()))
        .expect("unique, valid metric name");
    m
}

#[allow(clippy::expect_used)]
fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid opts"),
    )
}

#[allow(clippy::expect_used)]
fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("valid opts"))
}

#[allow(clippy::expect_used)]
fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid opts"))
}

#[allow(clippy::expect_used)]
fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid opts"),
    )
}

#[allow(clippy::expect_used)]
fn float_counter(name: &str, help: &str) -> Counter {
    Counter::new(name, help).expect("valid opts")
}

#[allow(clippy::expect_used)]
fn float_counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    register(
        registry,
        CounterVec::new(Opts::new(name, help), labels).expect("valid opts"),
    )
}

#[allow(clippy::expect_used)]
fn float_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        registry,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid opts"),
    )
}

#[allow(clippy::expect_used)]
fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(
        registry,
        HistogramVec::new(opts, labels).expect("valid opts"),
    )
}

#[allow(clippy::expect_used)]
fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, Histogram::with_opts(opts).expect("valid opts"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_promised_series() {
        let m = Metrics::new();
        m.set_backend("cpu");
        m.request_done(None);
        m.request_done(Some(ErrorCode::Overloaded));
        m.items_done(Some(ErrorCode::InvalidCapsule), 3);
        m.batch_items.observe(64.0);
        m.set_queue_depth(5);
        m.set_queue_depth(2);
        let text = m.encode();
        for needle in [
            "umbrald_requests_total{code=\"none\",outcome=\"ok\"} 1",
            "umbrald_requests_total{code=\"overloaded\",outcome=\"error\"} 1",
            "umbrald_requests_total{code=\"malformed\",outcome=\"error\"} 0",
            "umbrald_items_total{code=\"invalid_capsule\",outcome=\"error\"} 3",
            "umbrald_backend_info{backend=\"cpu\"} 1",
            "umbrald_batch_size_items_count 1",
            "umbrald_queue_depth 2",
            "umbrald_queue_depth_max 5",
            "umbrald_build_info{protocol=\"umbrald/1\"",
            "umbrald_request_duration_seconds_bucket",
            "umbrald_queue_wait_seconds_bucket",
            "umbrald_batch_compute_seconds_bucket",
            "umbrald_inflight_requests 0",
            "umbrald_open_connections 0",
            "umbrald_workers 0",
            "umbrald_gpu_batches_total 0",
            "umbrald_gpu_fallbacks_total{reason=\"audit_mismatch\"} 0",
            "umbrald_gpu_fallbacks_total{reason=\"device_error\"} 0",
            "umbrald_gpu_audit_failures_total 0",
            "umbrald_gpu_kernel_seconds_total 0",
            "umbrald_gpu_copy_seconds_total 0",
            "umbrald_gpu_layout_seconds_total 0",
            "umbrald_gpu_audit_seconds_total 0",
            "umbrald_gpu_healthy 0",
            "umbrald_gpu_reprobes_total{result=\"failed\"} 0",
            "umbrald_tls_reloads_total{result=\"ok\"} 0",
            "umbrald_tls_reloads_total{result=\"failed\"} 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn cpu_seconds_follow_the_process_below_a_second() {
        fn cpu_seconds(text: &str) -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix("umbrald_cpu_seconds_total "))
                .and_then(|v| v.parse().ok())
                .expect("umbrald_cpu_seconds_total in the exposition")
        }
        let m = Metrics::new();
        let first = cpu_seconds(&m.encode());
        // About 50 ms of CPU on this thread: the whole-second process counter would not move.
        let spin = cpu_time::ThreadTime::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let second = cpu_seconds(&m.encode());
        assert!(second - first >= 0.045, "{first} -> {second}");
    }
}
