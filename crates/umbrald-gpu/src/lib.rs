//! The CUDA backend of umbrald: secp256k1 batch scalar multiplication on an NVIDIA GPU behind
//! [`umbrald_core::backend::EcBackend`].
//!
//! The kernels live in `kernels/` at the workspace root and are embedded in this crate. At
//! start-up [`GpuBackend::probe`] loads the CUDA driver and NVRTC dynamically (the binary
//! builds and runs with no CUDA installed), compiles the kernels for the device, and runs a
//! self-test; any failure is a [`GpuUnavailable`] for the caller to log once before it serves
//! with the CPU backend.
//!
//! ```no_run
//! use std::sync::Arc;
//! use umbrald_core::backend::{CpuBackend, EcBackend};
//! use umbrald_gpu::{GpuBackend, GpuOptions};
//!
//! let backend: Arc<dyn EcBackend> = match GpuBackend::probe(&GpuOptions::default()) {
//!     Ok(gpu) => {
//!         println!("GPU backend: {}", gpu.info());
//!         Arc::new(gpu)
//!     }
//!     Err(why) => {
//!         println!("no GPU backend ({why}); using the CPU");
//!         Arc::new(CpuBackend::new())
//!     }
//! };
//! # let _ = backend;
//! ```
//!
//! Every batch's results are checked: all outputs must be curve points (and the identity
//! exactly for zero scalars), and a few random outputs per call are recomputed on the CPU. A
//! driver error or an invalid output makes the call return
//! [`umbrald_core::backend::BackendError::Device`], an audit mismatch
//! [`umbrald_core::backend::BackendError::AuditMismatch`], and the engine recomputes that batch
//! on the CPU; [`GpuStats`] counts all of it.
//!
//! [`host`] runs the same kernel code compiled as host C++, which is how the arithmetic is
//! tested on machines without a GPU.

mod audit;
mod backend;
mod device;
mod error;
mod exec;
pub mod host;
pub mod layout;
pub mod nvrtc;
mod options;
pub mod source;
mod stats;
mod table;

pub use backend::GpuBackend;
pub use device::{DeviceInfo, KernelOrigin};
pub use error::GpuUnavailable;
pub use exec::{ExecError, KernelExecutor, PairProducts, Products, Timing};
pub use layout::LayoutError;
pub use options::{GpuOptions, HostWait};
pub use stats::{GpuStats, GpuStatsSnapshot};
pub use table::{FixedBase, FixedBaseTable};
