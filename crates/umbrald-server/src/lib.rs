//! umbrald's appliance server: `umbrald serve`.
//!
//! The server speaks `umbrald/1` (see `docs/PROTOCOL.md`) over QUIC. Its modules are rooms in
//! pipeline order, and imports point down the pipeline only (see `docs/ARCHITECTURE.md`):
//!
//! - `ingress`: the QUIC endpoint and its accept loop; per stream, the native protocol
//!   (decode, validate, into work) or a NuCypher `ReencryptionRequest`; the reply.
//! - `dispatch`: the async scheduler task. Requests' items join one bounded, priority-ordered
//!   queue; the task feeds what it observes (queue, free CPU workers, the GPU lane, idle
//!   cores) to the sans-IO [`umbrald_scheduling`] crate and carries out its plan.
//! - `exec`: the pinned CPU worker pool and the GPU lane's worker threads, which run the
//!   elliptic-curve work through [`umbrald_core::Engine`]. The async runtime never does curve
//!   math.
//! - `observe`: metrics and the HTTP health/metrics endpoint. [`tls`] and [`config`] are
//!   leaves every room may use, as is `work` (the unit that flows through the rooms).
//!
//! Entry point: [`Server::start`] with a [`Config`] and the node's NuCypher keys, if any, which
//! returns a [`RunningServer`] handle. The `umbrald` binary wraps it with a CLI, signal handling
//! ([`Signals`]: stop, and reload the certificate) and logging; tests and the `demo` command run it in-process on an ephemeral port. With the
//! `test-support` feature, `umbrald_server::testing` offers an in-process test client.

pub mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;

mod backend;
mod dispatch;
mod exec;
mod ingress;
mod observe;
mod server;
mod shutdown;
mod work;

pub use backend::BackendUnavailable;
pub use config::{BackendKind, Config, ConfigError, Overrides};
#[cfg(feature = "fault-injection")]
pub use exec::fault as fault_injection;
pub use exec::gpu::{cuda_prober, no_gpu, GpuDevice, GpuProber};
pub use ingress::upstream::UpstreamError;
pub use observe::metrics::Metrics;
pub use server::{ReloadError, RunningServer, Server, StartError, TlsReloader};
pub use shutdown::{Signal, Signals};
