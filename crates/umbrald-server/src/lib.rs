//! umbrald's appliance server: `umbrald serve`.
//!
//! The server speaks `umbrald/1` (see `docs/PROTOCOL.md`) over QUIC. Requests from every
//! connection are validated on the async runtime, their items join one bounded, priority-ordered
//! queue ([`batcher::Batcher`], sans-IO), a single scheduler task forms batches from it whenever a
//! worker is free, and a pool of pinned worker threads runs the elliptic-curve work through
//! [`umbrald_core::Engine`]. The async runtime never does curve math.
//!
//! Entry point: [`Server::start`] with a [`Config`] and the node's NuCypher keys, if any, which
//! returns a [`RunningServer`] handle. The `umbrald` binary wraps it with a CLI, signal handling
//! and logging; tests and the `demo` command run it in-process on an ephemeral port.

pub mod batcher;
pub mod config;
pub mod gpu;
pub mod metrics;
pub mod testing;
pub mod tls;

mod alarm;
mod backend;
mod endpoint;
mod host_threads;
mod http;
mod idle;
mod nucypher;
mod request;
mod scheduler;
mod server;
mod shutdown;
mod work;
mod workers;

pub use config::{BackendKind, Config, ConfigError, Overrides};
pub use server::{RunningServer, Server, StartError};
pub use shutdown::wait_for_signal;
