//! Every `unsafe` block of the crate, behind safe functions: the CUDA driver ([`cuda`]),
//! NVRTC ([`nvrtc`]) and, with the `host-harness` feature, the host-compiled kernels
//! (`host`). The rest of the crate denies `unsafe_code`. Each function checks what it can
//! (buffer lengths against the kernel's layout) and states in a SAFETY comment what it relies
//! on.

pub(crate) mod cuda;
#[cfg(feature = "host-harness")]
pub(crate) mod host;
pub(crate) mod nvrtc;
