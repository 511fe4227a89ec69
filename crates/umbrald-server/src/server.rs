//! Starting and stopping the whole server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use umbrald_nucypher::NodeKeys;
use umbrald_proto::app_codes;

use umbrald_scheduling::{split, BatcherConfig, Rates};

use crate::backend::BackendUnavailable;
use crate::config::PolicyCheck;
use crate::config::{BackendKind, BatcherSection, Config, ConfigError, LimitsSection};
use crate::dispatch::idle::MachineIdle;
use crate::dispatch::{self, GpuDispatch, SchedulerHandle};
use crate::exec::backends;
use crate::exec::cpu_pool::{PoolSpec, WorkerPool};
use crate::exec::gpu::{self, GpuLane, GpuProber, GpuWorker};
use crate::exec::Slots;
use crate::ingress::https::{self, Https};
use crate::ingress::upstream::{Upstream, UpstreamError};
use crate::ingress::{self, Limits, Shared};
use crate::observe::http;
use crate::observe::metrics::Metrics;
use crate::tls::{self, TlsError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Certificates could not be loaded, created or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The requested backend is not available.
    #[error(transparent)]
    Backend(#[from] BackendUnavailable),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Worker threads could not be spawned.
    #[error("cannot start worker threads: {0}")]
    Workers(std::io::Error),
    /// `[nucypher] https_listen` is set but the server has no node keys to serve with.
    #[error(
        "nucypher.https_listen needs the node's keys: start with --node-keys FILE \
         (umbrald keygen --node)"
    )]
    HttpsWithoutNodeKeys,
    /// `[nucypher] upstream` cannot be used.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// The server's entry point.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Checks `config` as far as possible without binding sockets or writing files: value
    /// ranges, the GPU for `backend = gpu` (probed as at start: seconds with NVRTC; `auto`
    /// always starts), and the certificate, key and client CA files when the configuration
    /// names them (a generated certificate is not created by a check).
    pub fn check(config: &Config) -> Result<(), StartError> {
        config.validate()?;
        if config.workers.backend == BackendKind::Gpu {
            backends::choose(
                config.workers.backend,
                &gpu::cuda_prober(&config.gpu_section()),
            )?;
        }
        if config.tls.cert.is_some() {
            let material = tls::load_or_create(config)?;
            tls::server_crypto(&material, config.tls.client_ca.as_deref())?;
        } else if let Some(ca) = &config.tls.client_ca {
            tls::check_client_ca(ca)?;
        }
        Ok(())
    }

    /// Starts the server described by `config` on the current tokio runtime: binds the QUIC
    /// endpoint (and the metrics endpoint when enabled), loads or creates the certificate,
    /// starts the worker pool and the scheduler, and begins accepting connections. With
    /// `node_keys` it also serves NuCypher requests; without, it refuses them.
    ///
    /// Call it from within a tokio runtime (multi-threaded in production: the server's tasks
    /// run on it). Returns once the server is ready; stop it with [`RunningServer::shutdown`].
    pub async fn start(
        config: Config,
        node_keys: Option<NodeKeys>,
    ) -> Result<RunningServer, StartError> {
        let prober = gpu::cuda_prober(&config.gpu_section());
        Self::launch(config, node_keys, prober).await
    }

    /// [`Server::start`] without node keys and with another way of finding a GPU: `prober`
    /// runs at start (for `backend = gpu` or `auto`) and for every re-probe of an unhealthy
    /// GPU. Tests use it to inject a faulty or emulated GPU backend.
    pub async fn start_with_gpu(
        config: Config,
        prober: GpuProber,
    ) -> Result<RunningServer, StartError> {
        Self::launch(config, None, prober).await
    }

    async fn launch(
        config: Config,
        node_keys: Option<NodeKeys>,
        prober: GpuProber,
    ) -> Result<RunningServer, StartError> {
        config.validate()?;
        let node_keys = node_keys.map(Arc::new);
        let kind = config.workers.backend;
        let chooser = prober.clone();
        let backends = tokio::task::spawn_blocking(move || backends::choose(kind, &chooser))
            .await
            .map_err(|e| BackendUnavailable {
                kind: kind.as_str(),
                reason: format!("GPU probe failed: {e}"),
            })??;
        let engine = backends.cpu_engine.clone();
        let material = tls::load_or_create(&config)?;
        let fingerprint = material.fingerprint();
        let crypto = tls::server_crypto(&material, config.tls.client_ca.as_deref())?;
        let server_config =
            tls::quic_server_config(crypto, &config.limits, config.server.quic_send_fairness)?;

        let listen = config.server.listen;
        let bind_err = |addr| move |source| StartError::Bind { addr, source };
        let endpoint = quinn::Endpoint::server(server_config, listen).map_err(bind_err(listen))?;
        let local_addr = endpoint.local_addr().map_err(bind_err(listen))?;
        let http_listener = if config.metrics.enabled {
            let addr = config.metrics.listen;
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(bind_err(addr))?,
            )
        } else {
            None
        };
        let metrics_addr = match &http_listener {
            Some(l) => Some(l.local_addr().map_err(bind_err(config.metrics.listen))?),
            None => None,
        };
        let nucypher = &config.nucypher;
        let https_listener = match nucypher.https_listen {
            Some(_) if node_keys.is_none() => return Err(StartError::HttpsWithoutNodeKeys),
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(bind_err(addr))?,
            ),
            None => None,
        };
        let https_addr = match (&https_listener, nucypher.https_listen) {
            (Some(l), Some(addr)) => Some(l.local_addr().map_err(bind_err(addr))?),
            _ => None,
        };
        let upstream = match &nucypher.upstream {
            Some(url) => Some(Upstream::new(
                url,
                nucypher.upstream_public_key_sha256.as_deref(),
                nucypher.policy_check == PolicyCheck::Upstream,
                Duration::from_secs(nucypher.policy_check_ttl_s),
            )?),
            None => None,
        };
        let https_crypto = match https_listener {
            Some(_) => Some(Arc::new(tls::https_server_crypto(&material)?)),
            None => None,
        };

        let metrics = Arc::new(Metrics::new());
        metrics.set_backend(backends.label);
        let threads = config.worker_threads();
        let slots = Slots::new(threads);
        let rates = Arc::new(Rates::default());
        let (work_tx, work_rx) = crossbeam_channel::bounded(threads);
        // `auto` on idle cores only: the CPU workers scavenge what the GPU lane leaves.
        let scavenger = split::scavenges(
            backends.gpu.as_ref().is_some_and(|(_, helps)| *helps),
            config.gpu.tuning.auto_cpu_idle_only,
        );
        let spec = PoolSpec {
            threads,
            pin: config.workers.pin,
            cores: config.workers.cores.clone(),
            nice: split::worker_nice(config.workers.nice, scavenger),
            idle_class: scavenger,
        };
        let pool = WorkerPool::start(
            &spec,
            engine.clone(),
            work_rx,
            slots.clone(),
            metrics.clone(),
            rates.clone(),
        )
        .map_err(StartError::Workers)?;
        let mut pool = pool;
        let mut gpu_batch_items = None;
        let gpu_dispatch = match &backends.gpu {
            Some((device, cpu_helps)) => {
                let section = config.gpu_section();
                let max = match config.batcher.gpu_max_batch_items {
                    0 => device
                        .batch_items
                        .saturating_mul(section.tuning.host_threads),
                    n => n,
                };
                gpu_batch_items = Some(max);
                // The lane's measured rate counts every batch in flight (GpuWorker), so
                // `auto` shares the queue by it with any number of batches in flight.
                let in_flight = section.tuning.batches_in_flight;
                tracing::info!(
                    max_batch_items = max,
                    batches_in_flight = in_flight,
                    host_threads = section.tuning.host_threads,
                    pipelines = section.tuning.pipelines,
                    one_call = section.tuning.one_call,
                    host_wait = section.tuning.host_wait.as_str(),
                    "GPU lane"
                );
                if config.batcher.max_queue_items < max {
                    // The queue bound caps every batch the lane can form under load.
                    tracing::warn!(
                        max_queue_items = config.batcher.max_queue_items,
                        max_batch_items = max,
                        "the queue holds less than one full GPU batch, so under load the GPU \
                         runs part-full batches: raise [batcher] max_queue_items \
                         (deploy/umbrald-gpu.toml sets 262144)"
                    );
                }
                let lane = GpuLane::new(max, in_flight, *cpu_helps, rates.clone());
                let (tx, rx) = crossbeam_channel::bounded(lane.max_in_flight());
                let handles = GpuWorker::start(
                    device,
                    &section,
                    lane.clone(),
                    rx,
                    slots.clone(),
                    metrics.clone(),
                    prober,
                    threads,
                )
                .map_err(StartError::Workers)?;
                for handle in handles {
                    pool.adopt(handle);
                }
                let idle_gate = split::scavenges(*cpu_helps, section.tuning.auto_cpu_idle_only)
                    .then(|| MachineIdle::new(std::time::Instant::now()));
                Some(GpuDispatch {
                    lane,
                    tx,
                    idle_gate,
                })
            }
            None => None,
        };
        let (scheduler, scheduler_task) = dispatch::spawn(
            batcher_config(&config.batcher),
            slots,
            work_tx,
            metrics.clone(),
            gpu_dispatch,
        )
        .map_err(StartError::Workers)?;

        let ready = Arc::new(AtomicBool::new(false));
        let (http_stop_tx, mut http_stop_rx) = watch::channel(false);
        let http = http_listener.map(|listener| {
            let stop = async move {
                let _ = http_stop_rx.wait_for(|s| *s).await;
            };
            tokio::spawn(http::serve(
                listener,
                metrics.clone(),
                ready.clone(),
                http::Status::new(
                    backends.label,
                    node_keys.as_deref(),
                    https_addr,
                    upstream
                        .as_ref()
                        .map(|u| (u.base().to_string(), nucypher.policy_check)),
                ),
                stop,
            ))
        });

        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Shared::new(
            ingress_limits(&config.limits),
            scheduler.clone(),
            metrics.clone(),
            node_keys,
        );
        let grace = Duration::from_millis(config.server.shutdown_grace_ms);
        let https_task = match (https_listener, https_crypto) {
            (Some(listener), Some(crypto)) => {
                let https = Arc::new(Https {
                    shared: shared.clone(),
                    upstream,
                    idle_timeout: Duration::from_millis(config.limits.idle_timeout_ms),
                    max_streams_per_connection: config.limits.max_streams_per_connection,
                });
                Some(tokio::spawn(https::serve(
                    listener,
                    crypto,
                    https,
                    stop_rx.clone(),
                    grace,
                )))
            }
            _ => None,
        };
        let accept = tokio::spawn(ingress::accept_loop(endpoint.clone(), shared, stop_rx));
        ready.store(true, Ordering::Release);
        metrics.ready.set(1);
        tracing::info!(
            listen = %local_addr,
            metrics = ?metrics_addr,
            backend = backends.label,
            workers = threads,
            worker_nice = spec.nice,
            worker_idle_class = scavenger,
            gpu_max_batch_items = ?gpu_batch_items,
            pinned = config.workers.pin,
            max_batch_items = config.batcher.max_batch_items,
            max_queue_delay_us = config.batcher.max_queue_delay_us,
            max_queue_items = config.batcher.max_queue_items,
            mutual_tls = config.tls.client_ca.is_some(),
            quic_send_fairness = config.server.quic_send_fairness,
            https = ?https_addr,
            upstream = ?config.nucypher.upstream,
            policy_check = config.nucypher.policy_check.as_str(),
            cert_sha256 = %tls::fingerprint_hex(&fingerprint),
            "umbrald serving"
        );
        Ok(RunningServer {
            local_addr,
            metrics_addr,
            https_addr,
            https: https_task,
            fingerprint,
            backend: backends.label,
            workers: threads,
            generated_cert: material.generated,
            endpoint,
            stop_tx,
            http_stop_tx,
            ready,
            metrics,
            accept,
            scheduler,
            scheduler_task,
            pool,
            http,
            grace,
        })
    }
}

/// The batcher's limits as the sans-IO queue takes them.
fn batcher_config(section: &BatcherSection) -> BatcherConfig {
    BatcherConfig {
        max_batch_items: section.max_batch_items,
        max_queue_delay: Duration::from_micros(section.max_queue_delay_us),
        max_queue_items: section.max_queue_items,
    }
}

/// `[limits]` as ingress applies them.
fn ingress_limits(limits: &LimitsSection) -> Limits {
    Limits {
        max_request_bytes: limits.max_request_bytes,
        max_items_per_request: limits.max_items_per_request,
        max_policies_per_request: limits.max_policies_per_request,
        max_connections: limits.max_connections,
        stream_timeout: Duration::from_millis(limits.stream_read_timeout_ms),
    }
}

/// A started server. Dropping it without [`RunningServer::shutdown`] leaves it running on the
/// runtime until the runtime stops.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    https: Option<JoinHandle<()>>,
    fingerprint: [u8; 32],
    backend: &'static str,
    workers: usize,
    generated_cert: bool,
    endpoint: quinn::Endpoint,
    stop_tx: watch::Sender<bool>,
    http_stop_tx: watch::Sender<bool>,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    accept: JoinHandle<()>,
    scheduler: SchedulerHandle,
    scheduler_task: JoinHandle<()>,
    pool: WorkerPool,
    http: Option<JoinHandle<std::io::Result<()>>>,
    grace: Duration,
}

impl RunningServer {
    /// The QUIC endpoint's bound address (the real port when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics endpoint's bound address, if metrics are enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The HTTPS endpoint's bound address, if `[nucypher] https_listen` is set.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// SHA-256 of the server certificate (DER), for clients to pin.
    pub fn cert_fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Whether the certificate was generated by this start (first run on a data directory).
    pub fn generated_cert(&self) -> bool {
        self.generated_cert
    }

    /// The backend in use: `"cpu"`, `"gpu"` (the GPU worker alone while healthy) or `"gpu+cpu"`
    /// (`auto` with a GPU: both take work).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The server's metrics, for in-process inspection.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }

    /// Graceful shutdown: stops accepting connections and streams, answers every request
    /// already read (up to `server.shutdown_grace_ms`), closes connections, drains the queue
    /// and the workers, then stops the metrics endpoint.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        self.ready.store(false, Ordering::Release);
        self.metrics.ready.set(0);
        self.endpoint.set_server_config(None);
        let _ = self.stop_tx.send(true);
        let mut accept = self.accept;
        if tokio::time::timeout(self.grace, &mut accept).await.is_err() {
            tracing::warn!(
                grace_ms = self.grace.as_millis(),
                "grace period over; closing anyway"
            );
            accept.abort();
        }
        if let Some(https) = self.https {
            // Bounded by the grace period inside.
            let _ = https.await;
        }
        self.endpoint
            .close(app_codes::SHUTTING_DOWN.into(), b"server shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
        self.scheduler.stop();
        let _ = self.scheduler_task.await;
        let pool = self.pool;
        let _ = tokio::task::spawn_blocking(move || pool.join()).await;
        let _ = self.http_stop_tx.send(true);
        if let Some(http) = self.http {
            match http.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "metrics endpoint failed"),
                Err(e) => tracing::warn!(error = %e, "metrics endpoint task failed"),
                Ok(Ok(())) => {}
            }
        }
        tracing::info!("shutdown complete");
    }
}
