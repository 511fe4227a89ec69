//! Server configuration: embedded defaults < TOML file < `UMBRALD_*` environment < flags.
//!
//! [`Config`] is the whole configuration, deserialized from TOML with every field optional
//! (missing fields keep their defaults, unknown fields are an error). [`Overrides`] holds the
//! command-line flags, each of which can also come from an `UMBRALD_*` environment variable
//! (clap reads the variable only when the flag is absent, which gives flags the last word).
//! [`Config::load`] applies both in order and validates the result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::batcher::BatcherConfig;

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error (it names the line and field).
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole server configuration. Every section and field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listening address, data directory, runtime.
    pub server: ServerSection,
    /// Certificates and optional mutual TLS.
    pub tls: TlsSection,
    /// Per-request and per-connection limits.
    pub limits: LimitsSection,
    /// The dynamic batcher.
    pub batcher: BatcherSection,
    /// The worker pool and its backend.
    pub workers: WorkersSection,
    /// The GPU backend (used when `workers.backend` is `gpu` or `auto`).
    pub gpu: GpuSection,
    /// The metrics and health HTTP endpoint.
    pub metrics: MetricsSection,
    /// Logging.
    pub log: LogSection,
    /// The node's NuCypher keys (`umbrald serve --node-keys`); never read from or written to
    /// TOML. Without them, NuCypher requests are refused.
    #[serde(skip)]
    pub node_keys: crate::nucypher::NodeKeysSlot,
}

/// `[server]`: where to listen and where to keep state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// UDP address of the QUIC endpoint. Port 0 picks an ephemeral port.
    pub listen: SocketAddr,
    /// Directory for the generated certificate and key (`cert.pem`, `key.pem`).
    pub data_dir: PathBuf,
    /// Threads of the async runtime (QUIC, TLS, framing); curve math never runs there.
    /// 0 (the default): with the CPU backend one per 8 available cores, 1 to 4; with `gpu` or
    /// `auto` three per 8 cores, 1 to 8 (see [`Config::io_threads`]).
    pub io_threads: usize,
    /// How long a graceful shutdown waits for in-flight requests, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Interleave the answers a connection has to send packet by packet (QUIC fair queuing,
    /// quinn's default) instead of sending each whole before the next, in the order they were
    /// written. `true` (the default) keeps a small answer from waiting behind large ones;
    /// `false` lets each of many concurrent large answers arrive sooner, which may feed a
    /// closed-loop client faster. On an H100 machine at 2.6 M cfrags/s both served the same
    /// (1.00-1.01x, docs/PERFORMANCE.md §4, sixth GPU session).
    pub quic_send_fairness: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4433)),
            data_dir: PathBuf::from("./.umbrald"),
            io_threads: 0,
            shutdown_grace_ms: 30_000,
            quic_send_fairness: true,
        }
    }
}

/// The automatic I/O thread count for a machine with `cores` available cores serving with
/// `backend`.
fn auto_io_threads(cores: usize, backend: BackendKind) -> usize {
    match backend {
        BackendKind::Cpu => (cores / 8).clamp(1, 4),
        // With the GPU the QUIC side is most of the server's CPU per item (1.4-1.9 of
        // 2.6-3.1 µs on an H100 machine): 6 threads on 16 cores served 1.20x 2 threads.
        BackendKind::Gpu | BackendKind::Auto => (3 * cores / 8).clamp(1, 8),
    }
}

/// `[tls]`: certificate files and client authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain. When absent (with `key`), a self-signed certificate is created in
    /// the data directory on first start and reused afterwards.
    pub cert: Option<PathBuf>,
    /// PEM private key matching `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA certificates. When set, clients must present a certificate issued by one of
    /// them (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// `[limits]`: what one client may ask of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest request, in bytes; beyond it the answer is `too_large`.
    pub max_request_bytes: usize,
    /// Most items in one request; beyond it the answer is `too_large`.
    pub max_items_per_request: usize,
    /// Most policies in one request; beyond it the answer is `too_large`.
    pub max_policies_per_request: usize,
    /// Most concurrently open request streams per connection (QUIC stream credit).
    pub max_streams_per_connection: u32,
    /// Most open connections; further handshakes are refused.
    pub max_connections: usize,
    /// How long a client may take to send a whole request, in milliseconds; a stream still
    /// unfinished after it is reset.
    pub stream_read_timeout_ms: u64,
    /// QUIC idle timeout of a connection, in milliseconds.
    pub idle_timeout_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_request_bytes: 4 << 20,
            max_items_per_request: 4096,
            max_policies_per_request: 1024,
            max_streams_per_connection: 256,
            max_connections: 4096,
            stream_read_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
        }
    }
}

/// `[batcher]`: the dynamic batcher (see [`crate::batcher`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatcherSection {
    /// Most items in one CPU batch. A free worker takes the queue's fair share among all CPU
    /// workers (rounded up), at most this many.
    pub max_batch_items: usize,
    /// Longest wait of the oldest queued item for a batch to fill while a worker is free, in
    /// microseconds. 0 (the default) dispatches as soon as a worker is free; batches still
    /// grow with load, because items accumulate while every worker is busy.
    pub max_queue_delay_us: u64,
    /// Most queued items; requests that do not fit are answered `overloaded` at once.
    pub max_queue_items: usize,
    /// Most items in one batch of the GPU worker; 0 (the default) sizes it for the device: one
    /// full launch of the pair kernel per GPU host thread (`gpu.host_threads`). GPU batches are
    /// also bounded by the queue: raise `max_queue_items` to let them fill the device.
    pub gpu_max_batch_items: usize,
}

impl Default for BatcherSection {
    fn default() -> Self {
        Self {
            max_batch_items: 128,
            max_queue_delay_us: 0,
            max_queue_items: 16_384,
            gpu_max_batch_items: 0,
        }
    }
}

/// `[workers]`: the pinned worker pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersSection {
    /// Which elliptic-curve backend the engine uses.
    pub backend: BackendKind,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Pin each worker to one core (a failure to pin is logged, not fatal).
    pub pin: bool,
    /// Core ids to pin to, worker `i` on `cores[i % len]`; empty means every core this
    /// process may run on, in order.
    pub cores: Vec<usize>,
    /// Nice value of the worker threads (Linux; 0 leaves them alone). A positive value lets
    /// the I/O threads preempt a computing worker at once, which keeps response latency low
    /// while the workers still use every idle cycle.
    pub nice: i32,
}

impl Default for WorkersSection {
    fn default() -> Self {
        Self {
            backend: BackendKind::Cpu,
            threads: 0,
            pin: true,
            cores: Vec::new(),
            nice: 10,
        }
    }
}

/// `[gpu]`: the CUDA backend, its audit and its health checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuSection {
    /// CUDA device ordinal.
    pub device: usize,
    /// Load this PTX file instead of compiling the kernels with NVRTC at start (for hosts
    /// without NVRTC; build it with an NVRTC no newer than the driver).
    pub ptx_file: Option<PathBuf>,
    /// Outputs of every GPU batch recomputed on the CPU and compared (at least 1).
    pub audit_samples: usize,
    /// Consecutive faulty GPU batches (device error, invalid output, audit mismatch) after
    /// which the GPU is marked unhealthy and the CPU serves alone until a re-probe succeeds.
    pub unhealthy_after: u32,
    /// Wait before the first re-probe of an unhealthy GPU, in milliseconds; doubles after each
    /// failed re-probe, up to 10 minutes.
    pub reprobe_after_ms: u64,
    /// Threads of the GPU worker for a batch's work outside the curve arithmetic (capsule
    /// parsing and checks, hashing, encoding): a GPU batch is split into this many parts of at
    /// least 1024 items, each one device call, so that this work overlaps the device's. 0 (the
    /// default) means one per worker thread: that host work, not the device, bounds the GPU
    /// lane's rate (measured on an H200 with 16 cores, docs/PERFORMANCE.md).
    /// `deploy/umbrald-gpu.toml` sets 8 with 3 batches in flight: fewer, larger device calls,
    /// 1.04-1.09x 16 threads with 2 batches on an H200 under 8 connections.
    pub host_threads: usize,
    /// Compute the capsule checks' products (`h·E`, `s·G`) on the GPU instead of one combined
    /// check on the host: less than half the host's work per item, twice the device calls.
    /// On by default (measured on an H200: 1.19x the lane's throughput with it off, with
    /// concurrent device calls; without them it lost, docs/PERFORMANCE.md §4).
    pub capsule_checks: bool,
    /// Decompress the capsules' points on the GPU (one square root each, the largest share of
    /// the host's remaining work per item). On by default: 1.34x the GPU lane's throughput on
    /// an H200 (docs/PERFORMANCE.md §4).
    pub decompress: bool,
    /// Keep the variable-base kernel's per-thread tables in shared memory instead of local
    /// memory (3 blocks per SM and no spills, against 6 with spills). On by default: on an
    /// H200 1.22x the kernel's rate and 1.05-1.10x end to end (docs/PERFORMANCE.md §4). A
    /// device without that much shared memory per block runs the local build; a `ptx_file`
    /// runs the build it holds.
    pub table_in_shared: bool,
    /// Re-encrypt each batch part in one device call: the capsules' compressed points and
    /// scalars, `rk`, `t` and `U1` go up once; decompression, the capsule check with its
    /// hash, the products, the proof's hash and `z` run as six kernels in a row; 51 words per
    /// capsule come back (the parts and a status). Replaces the decompression, the check's
    /// products and the products (three calls per part) and most of their host work; capsules
    /// the device rejects are checked again on the host, and the lane audits sampled capsules
    /// in full on the CPU. Takes precedence over `cfrag_parts`; batches of fewer than four
    /// capsules keep the separate calls. On by default: on an H100 1.47-1.48x the step-by-step
    /// calls end to end with `deploy/umbrald-gpu.toml` (2.55-2.62 M cfrags/s), 1.08-1.15x with
    /// the other defaults (docs/PERFORMANCE.md §4, sixth GPU session).
    pub one_call: bool,
    /// GPU batches in flight at once, one GPU worker thread each (1 to 8), so that one batch's
    /// host work (parsing, hashing, encoding) overlaps another's device calls; each batch is
    /// split over `host_threads` as before (`auto` too: the lane's measured rate counts every
    /// batch in flight). 1 (the default): one batch at a time; `deploy/umbrald-gpu.toml`
    /// sets 3 with 8 host threads (measured on an H200, docs/PERFORMANCE.md §4).
    pub batches_in_flight: usize,
    /// Device calls in flight at once, each on its own pipeline (streams and buffers sized
    /// for a full launch, ~54 MB of pinned memory each on an H200), 1 to 128. 0 (the default):
    /// one per GPU host thread, at most 8, as measured so far. A batch part waits for a free
    /// pipeline, so with more calls than pipelines (`host_threads` times
    /// `batches_in_flight`, times up to four with `overlap_calls`) the calls go in rounds;
    /// 96 with `overlap_calls` measured no gain on an H200.
    pub pipelines: usize,
    /// How the GPU host threads wait for their device calls: `block` (sleep until the device
    /// signals, the default), `yield` or `spin`. CUDA's own default spins on machines with
    /// more cores than contexts, a core per waiting thread (docs/PERFORMANCE.md §4).
    pub host_wait: GpuHostWait,
    /// With `auto`, let the CPU workers take new batches only for cores that sat idle over
    /// the last 100 ms (Linux `/proc/stat`; elsewhere they always may): they then use what
    /// the GPU lane and the QUIC side leave instead of taking their cores. On by default:
    /// without it `auto` served 0.73-0.78x `gpu` alone on a 16-core H200 machine (a CPU
    /// worker spends ~200 µs of CPU per item, the GPU lane's host ~5-9 µs). The workers then
    /// also run in Linux's `SCHED_IDLE` class at nice 19, so that any other thread of the
    /// machine takes their core at once (0.85-0.97x `gpu` alone), also while the GPU is
    /// unhealthy and they serve alone; and they stay out while their pool's measured rate is
    /// under 5 % of the combined rate (on an H100 machine with `one_call`: `auto` 1.01-1.03x
    /// `gpu` alone, 0.62x with this off). `false`: the CPU workers take their measured rate's
    /// share whatever the load, at `[workers] nice`.
    pub auto_cpu_idle_only: bool,
}

/// `[gpu] host_wait`: how a GPU host thread waits for its device call (the CUDA context's
/// scheduling flag, [`umbrald_gpu::HostWait`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum GpuHostWait {
    /// Sleep until the device signals completion: no CPU while waiting.
    #[default]
    Block,
    /// Poll, yielding the core between polls.
    Yield,
    /// Poll without yielding: a core per waiting thread.
    Spin,
}

impl From<GpuHostWait> for umbrald_gpu::HostWait {
    fn from(wait: GpuHostWait) -> Self {
        match wait {
            GpuHostWait::Block => Self::Block,
            GpuHostWait::Yield => Self::Yield,
            GpuHostWait::Spin => Self::Spin,
        }
    }
}

/// Most device pipelines `[gpu] pipelines` may ask for.
pub const MAX_GPU_PIPELINES: usize = 128;

/// Most pipelines chosen for `[gpu] pipelines = 0` (one per host thread up to this).
const DEFAULT_MAX_GPU_PIPELINES: usize = 8;

impl Default for GpuSection {
    fn default() -> Self {
        Self {
            device: 0,
            ptx_file: None,
            audit_samples: 2,
            unhealthy_after: 3,
            reprobe_after_ms: 30_000,
            host_threads: 0,
            capsule_checks: true,
            decompress: true,
            table_in_shared: true,
            one_call: true,
            batches_in_flight: 1,
            pipelines: 0,
            host_wait: GpuHostWait::Block,
            auto_cpu_idle_only: true,
        }
    }
}

/// `[metrics]`: Prometheus metrics and health checks over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve `/metrics`, `/healthz` and `/readyz`.
    pub enabled: bool,
    /// TCP address of that HTTP endpoint.
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A `tracing` filter directive, e.g. `info` or `umbrald_server=debug,info`.
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            filter: "info".to_owned(),
        }
    }
}

/// Command-line flags of `umbrald serve` and `umbrald config check`; every one can also be set
/// by the `UMBRALD_*` environment variable named in its help.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "UMBRALD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// QUIC listening address (UDP).
    #[arg(long, env = "UMBRALD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data directory (generated certificate and key).
    #[arg(long, env = "UMBRALD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Async runtime threads (0: one per 8 cores, 1 to 4, with the CPU backend; three per 8,
    /// 1 to 8, with gpu or auto).
    #[arg(long, env = "UMBRALD_IO_THREADS", value_name = "N")]
    pub io_threads: Option<usize>,
    /// Interleave a connection's answers packet by packet (true, the default) or send each
    /// whole in turn (false).
    #[arg(long, env = "UMBRALD_QUIC_SEND_FAIRNESS", value_name = "BOOL")]
    pub quic_send_fairness: Option<bool>,
    /// PEM certificate chain.
    #[arg(long, env = "UMBRALD_TLS_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "UMBRALD_TLS_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// PEM CA that client certificates must chain to (enables mutual TLS).
    #[arg(long, env = "UMBRALD_TLS_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Elliptic-curve backend: cpu, gpu or auto.
    #[arg(long, env = "UMBRALD_BACKEND", value_name = "KIND")]
    pub backend: Option<BackendKind>,
    /// Worker threads (0 = one per core).
    #[arg(long, env = "UMBRALD_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Most items per batch.
    #[arg(long, env = "UMBRALD_MAX_BATCH_ITEMS", value_name = "N")]
    pub max_batch_items: Option<usize>,
    /// Longest queue wait for a batch to fill, in microseconds.
    #[arg(long, env = "UMBRALD_MAX_QUEUE_DELAY_US", value_name = "US")]
    pub max_queue_delay_us: Option<u64>,
    /// Most queued items before requests are answered `overloaded`.
    #[arg(long, env = "UMBRALD_MAX_QUEUE_ITEMS", value_name = "N")]
    pub max_queue_items: Option<usize>,
    /// Most items per GPU batch (0 = sized for the device).
    #[arg(long, env = "UMBRALD_GPU_MAX_BATCH_ITEMS", value_name = "N")]
    pub gpu_max_batch_items: Option<usize>,
    /// CUDA device ordinal.
    #[arg(long, env = "UMBRALD_GPU_DEVICE", value_name = "N")]
    pub gpu_device: Option<usize>,
    /// PTX file to load instead of compiling the kernels with NVRTC.
    #[arg(long, env = "UMBRALD_GPU_PTX_FILE", value_name = "FILE")]
    pub gpu_ptx_file: Option<PathBuf>,
    /// Host threads of the GPU worker (0: one per worker thread).
    #[arg(long, env = "UMBRALD_GPU_HOST_THREADS", value_name = "N")]
    pub gpu_host_threads: Option<usize>,
    /// Compute the capsule checks' products on the GPU (true or false).
    #[arg(long, env = "UMBRALD_GPU_CAPSULE_CHECKS", value_name = "BOOL")]
    pub gpu_capsule_checks: Option<bool>,
    /// Decompress the capsules' points on the GPU (true or false).
    #[arg(long, env = "UMBRALD_GPU_DECOMPRESS", value_name = "BOOL")]
    pub gpu_decompress: Option<bool>,
    /// Keep the kernel's per-thread tables in shared memory (true or false).
    #[arg(long, env = "UMBRALD_GPU_TABLE_IN_SHARED", value_name = "BOOL")]
    pub gpu_table_in_shared: Option<bool>,
    /// Re-encrypt each batch part in one GPU call (true or false).
    #[arg(long, env = "UMBRALD_GPU_ONE_CALL", value_name = "BOOL")]
    pub gpu_one_call: Option<bool>,
    /// GPU batches in flight at once (1 to 8).
    #[arg(long, env = "UMBRALD_GPU_BATCHES_IN_FLIGHT", value_name = "N")]
    pub gpu_batches_in_flight: Option<usize>,
    /// Device calls in flight at once (0: one per GPU host thread, at most 8; up to 128).
    #[arg(long, env = "UMBRALD_GPU_PIPELINES", value_name = "N")]
    pub gpu_pipelines: Option<usize>,
    /// How GPU host threads wait for the device (block, yield or spin).
    #[arg(long, env = "UMBRALD_GPU_HOST_WAIT", value_name = "WAIT")]
    pub gpu_host_wait: Option<GpuHostWait>,
    /// With `auto`, CPU workers take batches only for idle cores (true or false).
    #[arg(long, env = "UMBRALD_GPU_AUTO_CPU_IDLE_ONLY", value_name = "BOOL")]
    pub gpu_auto_cpu_idle_only: Option<bool>,
    /// Largest request in bytes.
    #[arg(long, env = "UMBRALD_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Most items per request.
    #[arg(long, env = "UMBRALD_MAX_ITEMS_PER_REQUEST", value_name = "N")]
    pub max_items_per_request: Option<usize>,
    /// Most open request streams per connection.
    #[arg(long, env = "UMBRALD_MAX_STREAMS_PER_CONNECTION", value_name = "N")]
    pub max_streams_per_connection: Option<u32>,
    /// Metrics/health HTTP address (TCP).
    #[arg(long, env = "UMBRALD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve metrics and health checks (true/false).
    #[arg(long, env = "UMBRALD_METRICS_ENABLED", value_name = "BOOL")]
    pub metrics_enabled: Option<bool>,
    /// Log filter, e.g. `info` or `umbrald_server=debug`.
    #[arg(long, env = "UMBRALD_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

impl Overrides {
    /// Writes every set override into `config`.
    pub fn apply(&self, config: &mut Config) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        fn set_opt<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
            if value.is_some() {
                slot.clone_from(value);
            }
        }
        set(&mut config.server.listen, &self.listen);
        set(&mut config.server.data_dir, &self.data_dir);
        set(&mut config.server.io_threads, &self.io_threads);
        set(
            &mut config.server.quic_send_fairness,
            &self.quic_send_fairness,
        );
        set_opt(&mut config.tls.cert, &self.cert);
        set_opt(&mut config.tls.key, &self.key);
        set_opt(&mut config.tls.client_ca, &self.client_ca);
        set(&mut config.workers.backend, &self.backend);
        set(&mut config.workers.threads, &self.workers);
        set(&mut config.batcher.max_batch_items, &self.max_batch_items);
        set(
            &mut config.batcher.max_queue_delay_us,
            &self.max_queue_delay_us,
        );
        set(&mut config.batcher.max_queue_items, &self.max_queue_items);
        set(
            &mut config.batcher.gpu_max_batch_items,
            &self.gpu_max_batch_items,
        );
        set(&mut config.gpu.device, &self.gpu_device);
        set_opt(&mut config.gpu.ptx_file, &self.gpu_ptx_file);
        set(&mut config.gpu.host_threads, &self.gpu_host_threads);
        set(&mut config.gpu.capsule_checks, &self.gpu_capsule_checks);
        set(&mut config.gpu.decompress, &self.gpu_decompress);
        set(&mut config.gpu.table_in_shared, &self.gpu_table_in_shared);
        set(&mut config.gpu.one_call, &self.gpu_one_call);
        set(
            &mut config.gpu.batches_in_flight,
            &self.gpu_batches_in_flight,
        );
        set(&mut config.gpu.pipelines, &self.gpu_pipelines);
        set(&mut config.gpu.host_wait, &self.gpu_host_wait);
        set(
            &mut config.gpu.auto_cpu_idle_only,
            &self.gpu_auto_cpu_idle_only,
        );
        set(
            &mut config.limits.max_request_bytes,
            &self.max_request_bytes,
        );
        set(
            &mut config.limits.max_items_per_request,
            &self.max_items_per_request,
        );
        set(
            &mut config.limits.max_streams_per_connection,
            &self.max_streams_per_connection,
        );
        set(&mut config.metrics.listen, &self.metrics_listen);
        set(&mut config.metrics.enabled, &self.metrics_enabled);
        set(&mut config.log.filter, &self.log);
    }
}

impl Config {
    /// Defaults, then the TOML file named by `overrides.config` (if any), then the overrides;
    /// validated.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match &overrides.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        overrides.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file on top of the defaults (not validated).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses TOML text on top of the defaults (not validated).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The configuration as TOML (what `umbrald config check` prints).
    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings, numbers, paths and addresses cannot fail unless a
        // path is not UTF-8; fall back to the debug form then.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# not representable: {e}"))
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let b = &self.batcher;
        let checks: [(bool, &str); 14] = [
            (
                l.max_request_bytes >= 1024,
                "limits.max_request_bytes must be at least 1024",
            ),
            (
                l.max_request_bytes <= 1 << 30,
                "limits.max_request_bytes must be at most 1 GiB",
            ),
            (
                l.max_items_per_request >= 1,
                "limits.max_items_per_request must be at least 1",
            ),
            (
                l.max_policies_per_request >= 1,
                "limits.max_policies_per_request must be >= 1",
            ),
            (
                l.max_streams_per_connection >= 1,
                "limits.max_streams_per_connection must be >= 1",
            ),
            (
                l.max_connections >= 1,
                "limits.max_connections must be at least 1",
            ),
            (
                l.stream_read_timeout_ms >= 1,
                "limits.stream_read_timeout_ms must be at least 1",
            ),
            (
                l.idle_timeout_ms >= 1,
                "limits.idle_timeout_ms must be at least 1",
            ),
            (
                b.max_batch_items >= 1,
                "batcher.max_batch_items must be at least 1",
            ),
            (
                b.max_queue_items >= l.max_items_per_request,
                "batcher.max_queue_items must be at least limits.max_items_per_request",
            ),
            (
                (0..=19).contains(&self.workers.nice),
                "workers.nice must be within 0..=19",
            ),
            (
                (1..=8).contains(&self.gpu.batches_in_flight),
                "gpu.batches_in_flight must be within 1..=8",
            ),
            (
                self.gpu.pipelines <= MAX_GPU_PIPELINES,
                "gpu.pipelines must be within 0..=128",
            ),
            (
                self.tls.cert.is_some() == self.tls.key.is_some(),
                "tls.cert and tls.key must be given together",
            ),
        ];
        if let Some((_, why)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(ConfigError::Invalid((*why).to_owned()));
        }
        let g = &self.gpu;
        let gpu_checks = [
            (g.audit_samples >= 1, "gpu.audit_samples must be at least 1"),
            (
                g.unhealthy_after >= 1,
                "gpu.unhealthy_after must be at least 1",
            ),
            (
                g.reprobe_after_ms >= 1,
                "gpu.reprobe_after_ms must be at least 1",
            ),
        ];
        match gpu_checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(ConfigError::Invalid((*why).to_owned())),
            None => Ok(()),
        }
    }

    /// The batcher's limits as the sans-IO queue takes them.
    pub fn batcher_config(&self) -> BatcherConfig {
        BatcherConfig {
            max_batch_items: self.batcher.max_batch_items,
            max_queue_delay: Duration::from_micros(self.batcher.max_queue_delay_us),
            max_queue_items: self.batcher.max_queue_items,
        }
    }

    /// Host threads of the GPU worker: `gpu.host_threads`, or one per worker thread for 0.
    pub fn gpu_host_threads(&self) -> usize {
        match self.gpu.host_threads {
            0 => self.worker_threads(),
            n => n,
        }
    }

    /// `[gpu]` with `host_threads` resolved.
    pub fn gpu_section(&self) -> GpuSection {
        let host_threads = self.gpu_host_threads();
        GpuSection {
            host_threads,
            pipelines: match self.gpu.pipelines {
                0 => host_threads.clamp(1, DEFAULT_MAX_GPU_PIPELINES),
                n => n,
            },
            ..self.gpu.clone()
        }
    }

    /// Threads of the async runtime: `server.io_threads`, or for 0 with the CPU backend one
    /// per 8 available cores, 1 to 4, and with `gpu` or `auto` three per 8 cores, 1 to 8. With
    /// the CPU backend every extra I/O thread costs CPU that the workers need: on two cores one
    /// I/O thread spent 0.75× the CPU per item of two at batch 64 and 0.85× per single-capsule
    /// request, at the same throughput (docs/PERFORMANCE.md §2). With the GPU the workers
    /// wait for the device and the QUIC side binds: on a 16-core H100 machine 6 I/O threads
    /// served 1.20x 2 (docs/PERFORMANCE.md §4, sixth GPU session).
    pub fn io_threads(&self) -> usize {
        match self.server.io_threads {
            0 => auto_io_threads(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                self.workers.backend,
            ),
            n => n,
        }
    }

    /// Worker threads to start: the configured count, else one per listed core, else one per
    /// available core.
    pub fn worker_threads(&self) -> usize {
        if self.workers.threads > 0 {
            self.workers.threads
        } else if !self.workers.cores.is_empty() {
            self.workers.cores.len()
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// A configuration for tests and the in-process `demo`: ephemeral ports on loopback, the
    /// given data directory, `threads` workers, metrics on an ephemeral port.
    pub fn ephemeral(data_dir: impl Into<PathBuf>, threads: usize) -> Self {
        let mut config = Self::default();
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.server.data_dir = data_dir.into();
        config.server.shutdown_grace_ms = 5_000;
        config.workers.threads = threads.max(1);
        config.metrics.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        o: Overrides,
    }

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let c = Config::default();
        c.validate().expect("defaults validate");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:4433");
        assert_eq!(c.metrics.listen.port(), 9464);
        assert_eq!(c.server.data_dir, PathBuf::from("./.umbrald"));
        assert_eq!(c.workers.backend, BackendKind::Cpu);
        assert_eq!(c.workers.threads, 0);
        assert!(c.worker_threads() >= 1);
        assert_eq!(c.server.io_threads, 0);
        assert!((1..=4).contains(&c.io_threads()));
    }

    #[test]
    fn io_threads_follow_the_core_count_unless_set() {
        let cores = [1, 2, 8, 15, 16, 24, 32, 128];
        assert_eq!(
            cores.map(|n| auto_io_threads(n, BackendKind::Cpu)),
            [1, 1, 1, 1, 2, 3, 4, 4]
        );
        for backend in [BackendKind::Gpu, BackendKind::Auto] {
            assert_eq!(
                cores.map(|n| auto_io_threads(n, backend)),
                [1, 1, 3, 5, 6, 8, 8, 8]
            );
        }
        let c = Config::from_toml("[workers]\nbackend = \"gpu\"\n").expect("parses");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.io_threads(), auto_io_threads(cores, BackendKind::Gpu));
        let c = Config::from_toml("[server]\nio_threads = 3\n").expect("parses");
        assert_eq!(c.io_threads(), 3);
    }

    #[test]
    fn quic_send_fairness_is_on_unless_turned_off() {
        assert!(Config::default().server.quic_send_fairness);
        let c = Config::from_toml("[server]\nquic_send_fairness = false\n").expect("parses");
        assert!(!c.server.quic_send_fairness);
        let o = Overrides {
            quic_send_fairness: Some(false),
            ..Default::default()
        };
        assert!(!Config::load(&o).expect("loads").server.quic_send_fairness);
    }

    #[test]
    fn partial_toml_keeps_other_defaults() {
        let c = Config::from_toml("[batcher]\nmax_batch_items = 32\n").expect("parses");
        assert_eq!(c.batcher.max_batch_items, 32);
        assert_eq!(
            c.batcher.max_queue_items,
            BatcherSection::default().max_queue_items
        );
        assert_eq!(c.server, ServerSection::default());
    }

    #[test]
    fn gpu_host_wait_reads_from_the_file_and_the_flag() {
        assert_eq!(Config::default().gpu.host_wait, GpuHostWait::Block);
        let c = Config::from_toml("[gpu]\nhost_wait = \"spin\"\n").expect("parses");
        assert_eq!(c.gpu.host_wait, GpuHostWait::Spin);
        assert!(Config::from_toml("[gpu]\nhost_wait = \"busy\"\n").is_err());
        let cli = Cli::try_parse_from(["x", "--gpu-host-wait", "yield"]).expect("flags parse");
        let c = Config::load(&cli.o).expect("loads");
        assert_eq!(c.gpu.host_wait, GpuHostWait::Yield);
        assert_eq!(
            umbrald_gpu::HostWait::from(c.gpu.host_wait),
            umbrald_gpu::HostWait::Yield
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = Config::from_toml("[batcher]\nmax_batch = 32\n").expect_err("typo");
        assert!(err.to_string().contains("max_batch"), "{err}");
        assert!(Config::from_toml("[nope]\n").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("umbrald-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[batcher]\nmax_batch_items = 32\nmax_queue_delay_us = 7\n",
        )
        .expect("write");
        let cli = Cli::try_parse_from([
            "x",
            "--config",
            path.to_str().expect("utf-8 tmp path"),
            "--max-batch-items",
            "16",
            "--listen",
            "0.0.0.0:5000",
            "--backend",
            "auto",
        ])
        .expect("flags parse");
        let c = Config::load(&cli.o).expect("loads");
        assert_eq!(c.batcher.max_batch_items, 16, "flag beats file");
        assert_eq!(c.batcher.max_queue_delay_us, 7, "file beats default");
        assert_eq!(c.server.listen.port(), 5000);
        assert_eq!(c.workers.backend, BackendKind::Auto);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn inconsistent_values_are_rejected() {
        let mut c = Config::default();
        c.batcher.max_queue_items = 10;
        c.limits.max_items_per_request = 11;
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))));
        let mut c = Config::default();
        c.tls.cert = Some("cert.pem".into());
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.limits.max_request_bytes = 10;
        assert!(c.validate().is_err());
    }

    #[test]
    fn toml_round_trips() {
        let mut c = Config::default();
        c.tls.client_ca = Some("ca.pem".into());
        let back = Config::from_toml(&c.to_toml()).expect("own output parses");
        assert_eq!(back, c);
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let o = Overrides {
            config: Some("/nonexistent/umbrald.toml".into()),
            ..Default::default()
        };
        assert!(matches!(Config::load(&o), Err(ConfigError::Read { .. })));
    }
}
