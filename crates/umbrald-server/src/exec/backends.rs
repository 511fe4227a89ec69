//! Choosing what serves at start: the CPU workers' engine, and the GPU when one is found.

use std::sync::Arc;

use umbrald_core::Engine;

use super::gpu::{GpuDevice, GpuProber};
use crate::backend::BackendUnavailable;
use crate::config::BackendKind;

/// What serves: the CPU workers' engine, and the GPU when one was found.
pub(crate) struct Backends {
    /// The engine of the CPU workers.
    pub cpu_engine: Arc<Engine>,
    /// The probed GPU and whether the CPU workers take work while it is healthy.
    pub gpu: Option<(GpuDevice, bool)>,
    /// The backend label for logs and `umbrald_backend_info`: `cpu`, `gpu` or `gpu+cpu`.
    pub label: &'static str,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Probes the GPU for `gpu` and `auto` (blocking: NVRTC and the driver's JIT take seconds) and
/// decides what serves. `gpu` without a usable GPU is an error; `auto` logs the reason once
/// and serves on the CPU.
pub(crate) fn choose(
    kind: BackendKind,
    prober: &GpuProber,
) -> Result<Backends, BackendUnavailable> {
    let cpu_engine = Arc::new(Engine::cpu());
    let cpu_only = |cpu_engine| Backends {
        cpu_engine,
        gpu: None,
        label: "cpu",
    };
    if kind == BackendKind::Cpu {
        return Ok(cpu_only(cpu_engine));
    }
    match prober() {
        Ok(device) => {
            tracing::info!(device = %device.description, requested = kind.as_str(), "GPU found");
            let (label, cpu_helps) = match kind {
                BackendKind::Gpu => ("gpu", false),
                _ => ("gpu+cpu", true),
            };
            Ok(Backends {
                cpu_engine,
                gpu: Some((device, cpu_helps)),
                label,
            })
        }
        Err(reason) if kind == BackendKind::Gpu => {
            tracing::error!(%reason, "no usable GPU for backend = gpu");
            Err(BackendUnavailable {
                kind: kind.as_str(),
                reason,
            })
        }
        Err(reason) => {
            tracing::info!("no GPU: {reason}; serving on CPU");
            Ok(cpu_only(cpu_engine))
        }
    }
}
