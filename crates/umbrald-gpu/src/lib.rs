//! The CUDA backend of umbrald: secp256k1 batch scalar multiplication on an NVIDIA GPU behind
//! [`umbrald_core::backend::EcBackend`].
//!
//! The kernels live in `kernels/` at the workspace root and are embedded in this crate. At
//! start-up [`GpuBackend::probe`] loads the CUDA driver and NVRTC dynamically (the binary
//! builds and runs with no CUDA installed), compiles the kernels for the device, and runs a
//! self-test; any failure is a [`GpuUnavailable`] for the caller to log once before it serves
//! with the CPU backend.
//!
//! Serve through [`Guarded`], the one owner of the GPU's health: it checks every answer,
//! recomputes a few random outputs per call on the CPU, recomputes a faulty call on the CPU,
//! and after repeated faults marks the GPU unhealthy ([`GpuHealth`]) until a re-probed device
//! replaces it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use umbrald_core::backend::{CpuBackend, EcBackend};
//! use umbrald_gpu::{GpuBackend, GpuOptions, Guarded, NoEvents};
//!
//! let opts = GpuOptions::default();
//! let backend: Arc<dyn EcBackend> = match GpuBackend::probe(&opts) {
//!     Ok(gpu) => {
//!         println!("GPU backend: {}", gpu.info());
//!         let stats = Some(gpu.stats());
//!         Arc::new(Guarded::new(Arc::new(gpu), stats, &opts, 4, Arc::new(NoEvents)))
//!     }
//!     Err(why) => {
//!         println!("no GPU backend ({why}); using the CPU");
//!         Arc::new(CpuBackend::new())
//!     }
//! };
//! # let _ = backend;
//! ```
//!
//! The `host-harness` feature adds `host`: the same kernel code compiled as host C++, which
//! is how the arithmetic is tested on machines without a GPU (a test-only dependency: release
//! builds compile no C++).

#![deny(unsafe_code)]

mod audit;
mod backend;
mod device;
mod error;
mod exec;
#[allow(unsafe_code)]
mod ffi;
mod guard;
#[cfg(feature = "host-harness")]
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
pub use guard::{Fault, GpuCall, GpuHealth, GuardEvents, GuardSnapshot, Guarded, NoEvents};
pub use layout::LayoutError;
pub use options::{GpuOptions, HostWait};
pub use stats::{GpuStats, GpuStatsSnapshot};
pub use table::{FixedBase, FixedBaseTable};
