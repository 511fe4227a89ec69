//! Starting and stopping the whole server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use umbrald_nucypher::NodeKeys;
use umbrald_proto::app_codes;

use umbrald_scheduling::{split, BatcherConfig, Rates};

use crate::backend::BackendUnavailable;
use crate::config::Overrides;
use crate::config::PolicyCheck;
use crate::config::{BackendKind, BatcherSection, Config, ConfigError, LimitsSection};
use crate::dispatch::idle::MachineIdle;
use crate::dispatch::{self, GpuDispatch, SchedulerHandle};
use crate::exec::backends;
use crate::exec::cpu_pool::{PoolSpec, WorkerPool};
use crate::exec::gpu::{self, GpuLane, GpuProber, GpuWorker};
use crate::exec::Slots;
use crate::ingress::admission::{Access, AccessPolicy};
use crate::ingress::https::{self, Https};
use crate::ingress::upstream::{Upstream, UpstreamError};
use crate::ingress::{self, Limits, Shared};
use crate::observe::audit::AuditLog;
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
    /// The audit log's writer thread could not be spawned.
    #[error("cannot start the audit log writer: {0}")]
    Audit(std::io::Error),
    /// An `[access] allowed_clients` entry is not a public-key fingerprint.
    #[error("access.allowed_clients: {0:?} is not a SHA-256 fingerprint (64 hex digits)")]
    AllowedClient(String),
}

/// Why a reload of `[access]` kept the settings in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The configuration could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An `[access] allowed_clients` entry is not a public-key fingerprint.
    #[error("access.allowed_clients: {0:?} is not a SHA-256 fingerprint (64 hex digits)")]
    AllowedClient(String),
    /// The TLS configurations could not be rebuilt.
    #[error(transparent)]
    Tls(#[from] TlsError),
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
        let access_policy = AccessPolicy::of(&config.access).map_err(StartError::AllowedClient)?;
        let material = tls::load_or_create(&config)?;
        let fingerprint = material.fingerprint();
        let tls_configs = tls::server_configs(
            &config,
            &material,
            config.nucypher.https_listen.is_some(),
            &access_policy.allowed,
        )?;

        let listen = config.server.listen;
        let bind_err = |addr| move |source| StartError::Bind { addr, source };
        let endpoint =
            quinn::Endpoint::server(tls_configs.quic, listen).map_err(bind_err(listen))?;
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
        // The HTTPS endpoint's TLS configuration, replaced by a certificate reload.
        let (https_tls_tx, https_tls_rx) = match tls_configs.https {
            Some(crypto) => {
                let (tx, rx) = watch::channel(Arc::new(crypto));
                (Some(tx), Some(rx))
            }
            None => (None, None),
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
        let fingerprint_hex = tls::fingerprint_hex(&fingerprint);
        metrics.set_tls_cert(&fingerprint_hex);
        let status = http::Status::new(
            backends.label,
            fingerprint_hex.clone(),
            node_keys.as_deref(),
            https_addr,
            upstream
                .as_ref()
                .map(|u| (u.base().to_string(), nucypher.policy_check)),
        );
        let (http_stop_tx, mut http_stop_rx) = watch::channel(false);
        let http = http_listener.map(|listener| {
            let stop = async move {
                let _ = http_stop_rx.wait_for(|s| *s).await;
            };
            tokio::spawn(http::serve(
                listener,
                metrics.clone(),
                ready.clone(),
                status.clone(),
                stop,
            ))
        });
        let allowed_clients = access_policy.allowed.len();
        let client_limits = access_policy.limits;
        let access = Access::new(access_policy, metrics.clone());
        let generated_cert = material.generated;
        let reloader = TlsReloader(Arc::new(Reload {
            config: config.clone(),
            endpoint: endpoint.clone(),
            https: https_tls_tx,
            current: Mutex::new(material),
            access: access.clone(),
            metrics: metrics.clone(),
            status,
        }));

        let (stop_tx, stop_rx) = watch::channel(false);
        let audit = AuditLog::start(&config.audit, metrics.clone()).map_err(StartError::Audit)?;
        let shared = Shared::new(
            ingress_limits(&config.limits),
            scheduler.clone(),
            metrics.clone(),
            node_keys,
            audit,
            access,
        );
        let grace = Duration::from_millis(config.server.shutdown_grace_ms);
        let https_task = match (https_listener, https_tls_rx) {
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
            allowed_clients,
            client_limits = ?client_limits,
            quic_send_fairness = config.server.quic_send_fairness,
            https = ?https_addr,
            upstream = ?config.nucypher.upstream,
            policy_check = config.nucypher.policy_check.as_str(),
            drain_delay_ms = config.server.drain_delay_ms,
            shutdown_grace_ms = config.server.shutdown_grace_ms,
            cert_sha256 = %fingerprint_hex,
            "umbrald serving"
        );
        Ok(RunningServer {
            local_addr,
            metrics_addr,
            https_addr,
            https: https_task,
            tls: reloader,
            backend: backends.label,
            workers: threads,
            generated_cert,
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
            drain: Duration::from_millis(config.server.drain_delay_ms),
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

/// What [`RunningServer::shutdown_with`]'s `hurry` cut short, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hurried {
    /// Nothing yet.
    No,
    /// The drain delay.
    Drain,
    /// The wait for in-flight work.
    Grace,
}

/// A started server. Dropping it without [`RunningServer::shutdown`] leaves it running on the
/// runtime until the runtime stops.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    https: Option<JoinHandle<()>>,
    tls: TlsReloader,
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
    drain: Duration,
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

    /// SHA-256 of the certificate (DER) that new handshakes present, for clients to pin.
    pub fn cert_fingerprint(&self) -> [u8; 32] {
        self.tls.fingerprint()
    }

    /// Reloads the certificate and key (see [`TlsReloader::reload`]).
    pub fn reload_tls(&self) -> Result<[u8; 32], TlsError> {
        self.tls.reload()
    }

    /// A handle that reloads the certificate and key, also while the server shuts down.
    pub fn tls_reloader(&self) -> TlsReloader {
        self.tls.clone()
    }

    /// Applies `config`'s `[access]` section (see [`TlsReloader::reload_access`]).
    pub fn reload_access(&self, config: &Config) -> Result<(), ReloadError> {
        self.tls.reload_access(config)
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
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }

    /// Graceful shutdown, in three phases:
    ///
    /// 1. drain: `/readyz` fails at once, and everything is still served for
    ///    `server.drain_delay_ms`, so that load balancers stop sending new work;
    /// 2. close: new QUIC connections are refused, new HTTPS connections find no listener, open
    ///    connections take no new streams or requests, and every request already read is
    ///    answered (up to `server.shutdown_grace_ms`); connections close as they finish;
    /// 3. stop: the endpoint closes, the queue and the workers drain, then the metrics
    ///    endpoint stops.
    pub async fn shutdown(self) {
        self.shutdown_with(std::future::pending()).await;
    }

    /// [`RunningServer::shutdown`], where `hurry` completing cuts short the phase under way:
    /// the rest of the drain delay, or the wait for in-flight requests (the binary passes a
    /// second stop signal).
    pub async fn shutdown_with(self, hurry: impl Future<Output = ()>) {
        let mut hurry = std::pin::pin!(hurry);
        let mut hurried = Hurried::No;
        self.ready.store(false, Ordering::Release);
        self.metrics.ready.set(0);
        if !self.drain.is_zero() {
            tracing::info!(
                drain_ms = self.drain.as_millis(),
                "shutting down: /readyz fails; serving on for the drain delay"
            );
            tokio::select! {
                () = tokio::time::sleep(self.drain) => {}
                () = &mut hurry => {
                    hurried = Hurried::Drain;
                    tracing::info!("drain delay cut short");
                }
            }
        }

        tracing::info!(
            grace_ms = self.grace.as_millis(),
            open_connections = self.metrics.open_connections.get(),
            https_open_connections = self.metrics.https_open_connections.get(),
            inflight_requests = self.metrics.inflight_requests.get(),
            "shutting down: no new connections or requests, finishing in-flight requests"
        );
        let _ = self.stop_tx.send(true);
        let mut accept = self.accept;
        let mut https = self.https;
        let finished = {
            let in_flight = async {
                let _ = (&mut accept).await;
                if let Some(https) = https.as_mut() {
                    // Bounded by the grace period inside too.
                    let _ = https.await;
                }
            };
            tokio::select! {
                done = tokio::time::timeout(self.grace, in_flight) => done.is_ok(),
                () = &mut hurry, if hurried == Hurried::No => {
                    hurried = Hurried::Grace;
                    false
                }
            }
        };
        if !finished {
            match hurried {
                Hurried::Grace => tracing::info!("wait for in-flight requests cut short"),
                _ => tracing::warn!(
                    grace_ms = self.grace.as_millis(),
                    "grace period over; closing anyway"
                ),
            }
            accept.abort();
            if let Some(https) = &https {
                https.abort();
            }
        }

        tracing::info!("shutting down: closing the endpoint, draining the queue and the workers");
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

/// What SIGHUP reloads: the certificate and key, read again from their files into both
/// endpoints (new QUIC and HTTPS handshakes present them, open connections keep theirs), and
/// the `[access]` section of the configuration. Clones share one server.
#[derive(Debug, Clone)]
pub struct TlsReloader(Arc<Reload>);

#[derive(Debug)]
struct Reload {
    /// Where the pair is (`[tls]` or the data directory) and how the endpoints use it.
    config: Config,
    endpoint: quinn::Endpoint,
    /// The HTTPS endpoint's configuration, when it serves.
    https: Option<watch::Sender<Arc<rustls::ServerConfig>>>,
    /// The pair in use; held across a reload, so reloads run one at a time.
    current: Mutex<tls::TlsMaterial>,
    /// The allowlist and the per-client limits.
    access: Arc<Access>,
    metrics: Arc<Metrics>,
    status: Arc<http::Status>,
}

impl TlsReloader {
    /// Reads the configured `[tls] cert` and `key` again (or the pair in the data directory;
    /// never generates one) and, when they make a usable pair, has every new handshake
    /// present them. Returns the new certificate's fingerprint. On failure (a file unreadable,
    /// a key that does not match) the current pair stays and the error is returned. Either
    /// way the outcome is logged and counted in `umbrald_tls_reloads_total`.
    pub fn reload(&self) -> Result<[u8; 32], TlsError> {
        let reload = &*self.0;
        let mut current = reload
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let allowed = reload.access.allowed();
        let loaded = tls::load(&reload.config).and_then(|material| {
            let configs =
                tls::server_configs(&reload.config, &material, reload.https.is_some(), &allowed)?;
            Ok((material, configs))
        });
        let (material, configs) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                reload.metrics.tls_reload(false);
                tracing::error!(
                    error = %e,
                    cert_sha256 = %tls::fingerprint_hex(&current.fingerprint()),
                    "certificate reload failed; keeping the current certificate"
                );
                return Err(e);
            }
        };
        reload.install(configs);
        let fingerprint = material.fingerprint();
        let previous = std::mem::replace(&mut *current, material).fingerprint();
        let hex = tls::fingerprint_hex(&fingerprint);
        reload.metrics.set_tls_cert(&hex);
        reload.metrics.tls_reload(true);
        reload.status.set_cert_sha256(hex.clone());
        tracing::info!(
            cert_sha256 = %hex,
            previous_sha256 = %tls::fingerprint_hex(&previous),
            "certificate reloaded; new handshakes present it"
        );
        Ok(fingerprint)
    }

    /// SHA-256 of the certificate (DER) that new handshakes present.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fingerprint()
    }

    /// Loads the configuration as at start (`overrides`: the same file, environment and
    /// flags) and applies its `[access]` section ([`TlsReloader::reload_access`]). A file that
    /// cannot be read or is invalid keeps the settings in force; the error is logged, counted
    /// in `umbrald_access_reloads_total` and returned.
    pub fn reload_from(&self, overrides: &Overrides) -> Result<(), ReloadError> {
        match Config::load(overrides) {
            Ok(config) => self.reload_access(&config),
            Err(e) => {
                self.0.metrics.access_reload(false);
                tracing::error!(error = %e, "configuration reload failed; keeping [access] as it is");
                Err(e.into())
            }
        }
    }

    /// Applies `config`'s `[access]` section: new handshakes on both endpoints check the new
    /// allowlist; a request on a connection opened earlier by a client no longer allowed
    /// closes that connection (HTTPS: 403); the new limits apply to the next request, every
    /// client starting with full buckets and keeping its requests in flight. Other sections
    /// take effect at the next start (a difference is logged). On failure the settings in
    /// force stay. Either way the outcome is logged and counted.
    pub fn reload_access(&self, config: &Config) -> Result<(), ReloadError> {
        let reload = &*self.0;
        let applied = self.apply_access(config);
        reload.metrics.access_reload(applied.is_ok());
        match &applied {
            Ok(()) => {
                let mut others = config.clone();
                others.access = reload.config.access.clone();
                if others != reload.config {
                    tracing::warn!(
                        "the reloaded configuration changes settings outside [access]; they \
                         take effect at the next start"
                    );
                }
            }
            Err(e) => tracing::error!(
                error = %e,
                "[access] reload failed; keeping the allowlist and limits in force"
            ),
        }
        applied
    }

    fn apply_access(&self, config: &Config) -> Result<(), ReloadError> {
        let reload = &*self.0;
        config.validate()?;
        let policy = AccessPolicy::of(&config.access).map_err(ReloadError::AllowedClient)?;
        let current = reload
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let configs = tls::server_configs(
            &reload.config,
            &current,
            reload.https.is_some(),
            &policy.allowed,
        )?;
        let (allowed_clients, limits) = (policy.allowed.len(), policy.limits);
        reload.access.set(policy);
        reload.install(configs);
        tracing::info!(
            allowed_clients,
            limits = ?limits,
            "[access] reloaded; new handshakes and requests use it"
        );
        Ok(())
    }
}

impl Reload {
    /// Has every new handshake of both endpoints use `configs`.
    fn install(&self, configs: tls::ServerConfigs) {
        self.endpoint.set_server_config(Some(configs.quic));
        if let (Some(tx), Some(crypto)) = (&self.https, configs.https) {
            tx.send_replace(Arc::new(crypto));
        }
    }
}
