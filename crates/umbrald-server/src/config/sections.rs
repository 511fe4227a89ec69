//! Every section and setting of the configuration, each declared once (see `section!`).
//!
//! A setting's TOML key is its section and field name, its environment variable
//! `UMBRALD_<SECTION>_<KEY>` (plus any older name listed in `env [...]`), and only operational
//! settings have a flag. `deploy/umbrald.toml` documents every key.

use std::net::SocketAddr;
use std::path::PathBuf;

use umbrald_gpu::{GpuOptions, HostWait};

use super::setting::section;
use super::values::{by_display, BackendKind, GpuProfile, PolicyCheck};

section! {
    /// `[server]`: where to listen and where to keep state.
    ServerSection at "server" {
        /// UDP address of the QUIC endpoint. Port 0 picks an ephemeral port.
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], umbrald_proto::DEFAULT_PORT)),
            env ["UMBRALD_LISTEN"], flag "listen";
        /// Directory of the generated certificate and key (`cert.pem`, `key.pem`).
        data_dir: PathBuf = PathBuf::from("./.umbrald"), env ["UMBRALD_DATA_DIR"], flag "data-dir";
        /// Threads of the async runtime (QUIC, TLS, framing); 0: one per 8 cores (1 to 4) with
        /// the CPU backend, three per 8 cores (1 to 8) with `gpu` or `auto`.
        io_threads: usize = 0, env ["UMBRALD_IO_THREADS"], flag "io-threads";
        /// How long the server keeps serving after SIGTERM or SIGINT, with `/readyz` failing,
        /// before it stops accepting connections and requests, in milliseconds: time for load
        /// balancers and Kubernetes endpoints to stop sending it new work.
        drain_delay_ms: u64 = 0;
        /// How long a graceful shutdown waits for in-flight requests after the drain delay, in
        /// milliseconds.
        shutdown_grace_ms: u64 = 30_000;
        /// Interleave a connection's answers packet by packet (QUIC fair queuing), so a small
        /// answer never waits behind large ones; `false` sends each whole, in the order written.
        quic_send_fairness: bool = true, env ["UMBRALD_QUIC_SEND_FAIRNESS"];
        /// Lock every page of the process in memory (`mlockall`, present and future), so that
        /// node keys and kfrag secrets are never written to swap. Needs `CAP_IPC_LOCK` or an
        /// unlimited `RLIMIT_MEMLOCK` (systemd `LimitMEMLOCK=infinity`); without either the
        /// server refuses to start rather than fail an allocation later.
        lock_memory: bool = false, env ["UMBRALD_LOCK_MEMORY"];
    }
}

section! {
    /// `[tls]`: certificate files and client authentication.
    TlsSection at "tls" {
        /// PEM certificate chain. Without it (and `key`), a self-signed certificate is created
        /// in the data directory on first start and reused afterwards.
        cert: Option<PathBuf> = None, flag "cert";
        /// PEM private key matching `cert`.
        key: Option<PathBuf> = None, flag "key";
        /// PEM CA certificates: when set, clients must present a certificate issued by one of
        /// them (mutual TLS).
        client_ca: Option<PathBuf> = None, flag "client-ca";
    }
}

section! {
    /// `[limits]`: what one client may ask of the server.
    LimitsSection at "limits" {
        /// Largest request, in bytes; beyond it the answer is `too_large`.
        max_request_bytes: usize = 4 << 20, env ["UMBRALD_MAX_REQUEST_BYTES"];
        /// Most items in one request; beyond it the answer is `too_large`.
        max_items_per_request: usize = 4096, env ["UMBRALD_MAX_ITEMS_PER_REQUEST"];
        /// Most policies in one request; beyond it the answer is `too_large`.
        max_policies_per_request: usize = 1024;
        /// Most concurrently open request streams per connection (QUIC stream credit).
        max_streams_per_connection: u32 = 256, env ["UMBRALD_MAX_STREAMS_PER_CONNECTION"];
        /// Most open connections; further handshakes are refused.
        max_connections: usize = 4096;
        /// How long a client may take to send a whole request, in milliseconds; a stream still
        /// unfinished after it is reset.
        stream_read_timeout_ms: u64 = 10_000;
        /// QUIC idle timeout of a connection, in milliseconds.
        idle_timeout_ms: u64 = 30_000;
    }
}

section! {
    /// `[access]`: which clients may connect, and what each may ask per second. SIGHUP
    /// re-reads this section from the configuration file (docs/SECURITY.md#access-control).
    AccessSection at "access" {
        /// SHA-256 of the public key (DER SubjectPublicKeyInfo) of each client certificate
        /// allowed, hex: when not empty, both the QUIC and the HTTPS endpoint require a client
        /// certificate holding one of these keys (self-signed certificates are fine; with
        /// `tls.client_ca` the certificate must also be issued by that CA).
        allowed_clients: Vec<String> = Vec::new();
        /// Requests per second one client may send, sustained; 0: unlimited. A client is its
        /// certificate's public key when it presents one, else its IP address (IPv6: its /64).
        requests_per_s: u32 = 0;
        /// Requests one client may send at once after a quiet spell; 0: `requests_per_s`.
        request_burst: u32 = 0;
        /// Items (capsules) per second one client may send, sustained; 0: unlimited.
        items_per_s: u32 = 0;
        /// Items one client may send at once after a quiet spell; 0: `items_per_s`. A larger
        /// request is admitted on a full bucket and slows the client's next ones.
        item_burst: u32 = 0;
        /// Requests of one client being answered at once; 0: unlimited.
        max_in_flight: u32 = 0;
        /// Most clients whose limits are tracked at once (under 4 MiB for 16,384); past it, the
        /// longest idle are forgotten, and while every tracked client has requests in flight a
        /// new client is answered `rate_limited`.
        max_clients: usize = umbrald_scheduling::limits::DEFAULT_MAX_CLIENTS;
    }
}

section! {
    /// `[batcher]`: the dynamic batcher.
    BatcherSection at "batcher" {
        /// Most items in one CPU batch; a free worker takes the queue's fair share among all
        /// CPU workers (rounded up), at most this many.
        max_batch_items: usize = 128, env ["UMBRALD_MAX_BATCH_ITEMS"];
        /// Longest wait of the oldest queued item for a batch to fill while a worker is free, in
        /// microseconds; 0 dispatches at once (batches still grow while every worker is busy).
        max_queue_delay_us: u64 = 0, env ["UMBRALD_MAX_QUEUE_DELAY_US"];
        /// Most queued items; requests that do not fit are answered `overloaded` at once.
        max_queue_items: usize = 16_384, env ["UMBRALD_MAX_QUEUE_ITEMS"];
        /// Most items in one GPU batch; 0 sizes it for the device (one full launch per GPU host
        /// thread). GPU batches are also bounded by `max_queue_items`.
        gpu_max_batch_items: usize = 0, env ["UMBRALD_GPU_MAX_BATCH_ITEMS"];
    }
}

section! {
    /// `[workers]`: the pinned worker pool.
    WorkersSection at "workers" {
        /// Which elliptic-curve backend the engine uses: `cpu`, `gpu` or `auto`.
        backend: BackendKind = BackendKind::Cpu, env ["UMBRALD_BACKEND"], flag "backend";
        /// Worker threads; 0 means one per available core.
        threads: usize = 0, env ["UMBRALD_WORKERS"], flag "workers";
        /// Pin each worker to one core (a failure to pin is logged, not fatal).
        pin: bool = true;
        /// Core ids to pin to, worker `i` on `cores[i % len]`; empty means every core this
        /// process may run on, in order.
        cores: Vec<usize> = Vec::new();
        /// Nice value of the worker threads (Linux, 0 to 19; 0 leaves them alone): a positive
        /// value lets the I/O threads preempt a computing worker at once.
        nice: i32 = 10;
    }
}

section! {
    /// `[gpu]`: the CUDA backend, its audit and its health checks (with `workers.backend`
    /// `gpu` or `auto`).
    GpuSection at "gpu" {
        /// Named tuning values below every explicit key: `default` or `throughput`
        /// ([`GpuProfile`]).
        profile: GpuProfile = GpuProfile::Default;
        /// CUDA device ordinal.
        device: usize = GpuOptions::default().device, flag "gpu-device";
        /// PTX file loaded instead of compiling the kernels with NVRTC at start (for hosts
        /// without NVRTC; build it with an NVRTC no newer than the driver).
        ptx_file: Option<PathBuf> = GpuOptions::default().ptx_file, flag "gpu-ptx-file";
        /// Outputs of every GPU batch recomputed on the CPU and compared (at least 1).
        audit_samples: usize = GpuOptions::default().audit_samples;
        /// Faulty GPU batches in a row after which the GPU is marked unhealthy and the CPU
        /// serves alone until a re-probe succeeds.
        unhealthy_after: u32 = 3;
        /// Wait before the first re-probe of an unhealthy GPU, in milliseconds; doubles after
        /// each failed re-probe, up to 10 minutes.
        reprobe_after_ms: u64 = 30_000;
    }
    nested {
        /// `[gpu.tuning]`: how the GPU lane splits and issues its work.
        tuning: GpuTuning;
    }
}

section! {
    /// `[gpu.tuning]`: how the GPU lane splits and issues its work. The measured effect of
    /// each key is in docs/PERFORMANCE.md#gpu-end-to-end; `[gpu] profile` sets several at once.
    GpuTuning at "gpu.tuning" {
        /// Threads of the GPU worker for a batch's host work (parsing, hashing, encoding): a
        /// batch is split into this many parts of at least 1024 items, one device call each.
        /// 0 means one per worker thread.
        host_threads: usize = 0, env ["UMBRALD_GPU_HOST_THREADS"];
        /// Compute the capsule checks' products (`h·E`, `s·G`) on the GPU instead of one
        /// combined check on the host.
        capsule_checks: bool = true, env ["UMBRALD_GPU_CAPSULE_CHECKS"];
        /// Decompress the capsules' points on the GPU.
        decompress: bool = true, env ["UMBRALD_GPU_DECOMPRESS"];
        /// Keep the variable-base kernel's tables in shared memory instead of local memory; a
        /// device without enough shared memory runs the local build.
        table_in_shared: bool = GpuOptions::default().table_in_shared,
            env ["UMBRALD_GPU_TABLE_IN_SHARED"];
        /// Re-encrypt each batch part in one device call (six kernels in a row) instead of the
        /// separate calls; batches of fewer than four capsules keep the separate calls.
        one_call: bool = true, env ["UMBRALD_GPU_ONE_CALL"];
        /// GPU batches in flight at once (1 to 8), one GPU worker thread each, so that one
        /// batch's host work overlaps another's device calls.
        batches_in_flight: usize = 1, env ["UMBRALD_GPU_BATCHES_IN_FLIGHT"];
        /// Device calls in flight at once, each on its own pipeline of streams and pinned
        /// buffers (up to 128); 0 means one per GPU host thread, at most 8.
        pipelines: usize = 0, env ["UMBRALD_GPU_PIPELINES"];
        /// How GPU host threads wait for their device calls: `block` (sleep until the device
        /// signals), `yield` or `spin` (a core per waiting thread).
        #[serde(serialize_with = "by_display")]
        host_wait: HostWait = GpuOptions::default().host_wait, env ["UMBRALD_GPU_HOST_WAIT"];
        /// With `auto`, CPU workers take batches only for cores idle over the last 100 ms, at
        /// the lowest priority; `false` gives them their measured share at `workers.nice`.
        auto_cpu_idle_only: bool = true, env ["UMBRALD_GPU_AUTO_CPU_IDLE_ONLY"];
    }
}

section! {
    /// `[nucypher]`: serving the NuCypher network's clients as a node does (docs/NUCYPHER.md).
    NucypherSection at "nucypher" {
        /// TCP address of the HTTPS endpoint that answers `POST /reencrypt` as an Ursula does
        /// (TLS 1.3 and 1.2, HTTP/1.1 and HTTP/2); unset: no HTTPS endpoint. Needs node keys.
        https_listen: Option<SocketAddr> = None, env ["UMBRALD_HTTPS_LISTEN"], flag "https-listen";
        /// The operator's Ursula, e.g. `https://127.0.0.1:9151`: every HTTPS request other than
        /// `POST /reencrypt` is forwarded to it, and so is a `/reencrypt` carrying conditions.
        upstream: Option<String> = None;
        /// SHA-256 of the public key (DER SubjectPublicKeyInfo) in the upstream's certificate,
        /// hex; an `https://` upstream is reached only when its certificate holds this key. An
        /// Ursula's key is derived from its keystore and survives restarts; its certificate
        /// does not.
        upstream_public_key_sha256: Option<String> = None;
        /// `none`: serve every policy whose kfrag authenticates; `upstream`: serve a policy
        /// (HRAC) only after the upstream answered one of its requests with 200, so an unpaid
        /// policy gets the upstream's 402.
        policy_check: PolicyCheck = PolicyCheck::None;
        /// How long an upstream's acceptance of a policy is trusted, in seconds.
        policy_check_ttl_s: u64 = 300;
    }
}

section! {
    /// `[metrics]`: Prometheus metrics and health checks over HTTP.
    MetricsSection at "metrics" {
        /// Serve `/metrics`, `/healthz`, `/readyz` and `/status`.
        enabled: bool = true, flag "metrics-enabled";
        /// TCP address of that HTTP endpoint.
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9464)), flag "metrics-listen";
    }
}

section! {
    /// `[audit]`: one JSON line per answered request (docs/OPERATIONS.md#audit-log).
    AuditSection at "audit" {
        /// The audit log's file, or `-` for standard output; unset: no audit log.
        path: Option<PathBuf> = None;
        /// Size in bytes past which the file is rotated (`path.1`, `path.2`, …); 0: never.
        max_bytes: u64 = 100 << 20;
        /// Rotated files kept besides the current one; 0: the full file is discarded.
        keep: usize = 5;
        /// Refuse new requests (`internal`, "audit log unavailable"; HTTPS 503) while records
        /// cannot be written; `false` serves on and counts the lost records.
        fail_closed: bool = false;
    }
}

section! {
    /// `[log]`: logging.
    LogSection at "log" {
        /// A `tracing` filter, e.g. `info` or `umbrald_server=debug,info`. `RUST_LOG` sets it
        /// too, below `UMBRALD_LOG`.
        filter: String = "info".to_owned(), env ["UMBRALD_LOG", "RUST_LOG"], flag "log";
    }
}
