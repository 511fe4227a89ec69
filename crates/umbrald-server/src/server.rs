//! Starting and stopping the whole server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use umbrald_proto::app_codes;

use crate::backend::{self, BackendUnavailable};
use crate::config::{Config, ConfigError};
use crate::endpoint::{self, Shared};
use crate::gpu::{self, GpuLane, GpuProber, GpuWorker, Rates};
use crate::idle::IdleGate;
use crate::metrics::Metrics;
use crate::scheduler::{self, GpuDispatch, SchedulerHandle, Slots};
use crate::tls::{self, TlsError};
use crate::workers::{PoolSpec, WorkerPool};

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
        if config.workers.backend == backend::BackendKind::Gpu {
            backend::choose(
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
    /// starts the worker pool and the scheduler, and begins accepting connections.
    ///
    /// Call it from within a tokio runtime (multi-threaded in production: the server's tasks
    /// run on it). Returns once the server is ready; stop it with [`RunningServer::shutdown`].
    pub async fn start(config: Config) -> Result<RunningServer, StartError> {
        let prober = gpu::cuda_prober(&config.gpu_section());
        Self::start_with_gpu(config, prober).await
    }

    /// [`Server::start`] with another way of finding a GPU: `prober` runs at start (for
    /// `backend = gpu` or `auto`) and for every re-probe of an unhealthy GPU. Tests use it to
    /// inject a faulty or emulated GPU backend.
    pub async fn start_with_gpu(
        config: Config,
        prober: GpuProber,
    ) -> Result<RunningServer, StartError> {
        config.validate()?;
        let kind = config.workers.backend;
        let chooser = prober.clone();
        let backends = tokio::task::spawn_blocking(move || backend::choose(kind, &chooser))
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

        let metrics = Arc::new(Metrics::new());
        metrics.set_backend(backends.label);
        let threads = config.worker_threads();
        let slots = Slots::new(threads);
        let rates = Arc::new(Rates::default());
        let (work_tx, work_rx) = crossbeam_channel::bounded(threads);
        // `auto` on idle cores only: the CPU workers scavenge what the GPU lane leaves.
        let scavenger =
            backends.gpu.as_ref().is_some_and(|(_, helps)| *helps) && config.gpu.auto_cpu_idle_only;
        let spec = PoolSpec {
            threads,
            pin: config.workers.pin,
            cores: config.workers.cores.clone(),
            nice: worker_nice(&config, scavenger),
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
                    0 => device.batch_items.saturating_mul(section.host_threads),
                    n => n,
                };
                gpu_batch_items = Some(max);
                // The lane's measured rate counts every batch in flight (GpuWorker), so
                // `auto` shares the queue by it with any number of batches in flight.
                let in_flight = config.gpu.batches_in_flight;
                tracing::info!(
                    max_batch_items = max,
                    batches_in_flight = in_flight,
                    host_threads = section.host_threads,
                    pipelines = section.pipelines,
                    one_call = section.one_call,
                    host_wait = umbrald_gpu::HostWait::from(section.host_wait).as_str(),
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
                let idle_gate = (*cpu_helps && section.auto_cpu_idle_only)
                    .then(|| IdleGate::new(std::time::Instant::now()));
                Some(GpuDispatch {
                    lane,
                    tx,
                    cpu_workers: threads,
                    idle_gate,
                })
            }
            None => None,
        };
        let (scheduler, scheduler_task) = scheduler::spawn(
            config.batcher_config(),
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
            tokio::spawn(crate::http::serve(
                listener,
                metrics.clone(),
                ready.clone(),
                crate::http::Status::new(backends.label, &config.node_keys),
                stop,
            ))
        });

        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            limits: config.limits.clone(),
            scheduler: scheduler.clone(),
            metrics: metrics.clone(),
            nucypher: crate::nucypher::Node::new(&config.node_keys),
        });
        let accept = tokio::spawn(endpoint::accept_loop(endpoint.clone(), shared, stop_rx));
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
            cert_sha256 = %tls::fingerprint_hex(&fingerprint),
            "umbrald serving"
        );
        Ok(RunningServer {
            local_addr,
            metrics_addr,
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
            grace: Duration::from_millis(config.server.shutdown_grace_ms),
        })
    }
}

/// Lowest priority (nice) on Linux: `auto`'s CPU workers with `auto_cpu_idle_only`.
const SCAVENGER_NICE: i32 = 19;

/// The CPU workers' nice value: `[workers] nice`, or the lowest priority when they scavenge
/// for a GPU (`auto` with `auto_cpu_idle_only`; they then also run in the `SCHED_IDLE` class),
/// so that the GPU lane's host threads and the QUIC side take a core back from them at once
/// (a CPU worker spends ~200 µs of CPU on an item that costs the GPU lane's host ~5-9 µs; the
/// idle gate samples every 100 ms, the kernel's scheduler acts on each wake-up).
fn worker_nice(config: &Config, scavenger: bool) -> i32 {
    if scavenger {
        SCAVENGER_NICE
    } else {
        config.workers.nice
    }
}

/// A started server. Dropping it without [`RunningServer::shutdown`] leaves it running on the
/// runtime until the runtime stops.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scavenging_workers_run_at_the_lowest_priority() {
        let mut config = Config::default();
        assert_eq!(worker_nice(&config, false), config.workers.nice);
        assert_eq!(worker_nice(&config, true), SCAVENGER_NICE);
        config.workers.nice = 0;
        assert_eq!(worker_nice(&config, true), SCAVENGER_NICE);
        assert_eq!(worker_nice(&config, false), 0);
    }
}
