//! How to start the GPU backend.

use std::path::PathBuf;

/// Options for [`crate::GpuBackend::probe`] and [`crate::Guarded`]. The defaults are the
/// measured best (docs/PERFORMANCE.md#gpu-end-to-end); the server takes its `[gpu]` defaults from
/// here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOptions {
    /// CUDA device ordinal.
    pub device: usize,
    /// Items per kernel launch, rounded at start-up to whole waves of resident blocks
    /// (`DeviceInfo::launch_items`). A batch larger than this is split into launches that
    /// alternate between two streams, so copies of one overlap the kernel of the other. Pinned
    /// host and device buffers for two launches of this size are allocated at start-up: about
    /// 530 bytes of pinned host memory and as much device memory per item; the device buffers
    /// grow several times with `one_call`.
    pub chunk_items: usize,
    /// Outputs per call recomputed on the CPU and compared by [`crate::Guarded`] (at least one
    /// is always checked).
    pub audit_samples: usize,
    /// Faulty calls in a row (device error, invalid output, audit mismatch) after which
    /// [`crate::Guarded`] marks the GPU unhealthy: it then sends no call to the device until
    /// [`crate::Guarded::replace`] hands it a freshly probed one (a CUDA context that hit a
    /// fault stays broken). At least 1.
    pub unhealthy_after: u32,
    /// Load this PTX file instead of compiling the embedded sources with NVRTC (for hosts
    /// without NVRTC; the PTX must be built for this device's architecture or an older one).
    pub ptx_file: Option<PathBuf>,
    /// NVRTC `--gpu-architecture` value, e.g. `compute_90`; by default the device's own.
    pub arch: Option<String>,
    /// Device calls that may run at once, from different threads: each has its own pair of
    /// streams and buffers (the pinned and device memory of `chunk_items` above, per call), so
    /// small calls from several host threads overlap on the device instead of queueing behind
    /// one another. 1 serializes every call.
    pub concurrent_calls: usize,
    /// Extra NVRTC options, e.g. `-DUMB_POINT_FN=UMB_DEVICE` or `--maxrregcount=96`: for
    /// measuring kernel variants (`gpu_bench --nvrtc-opt`); empty in production.
    pub nvrtc_options: Vec<String>,
    /// Keep each thread's variable-base table in shared memory (`UMB_TABLE_SHARED`: 64 KiB of
    /// dynamic shared memory per block, fewer blocks per SM, no register spills) instead of
    /// local memory (more blocks per SM, spills). On by default
    /// (docs/PERFORMANCE.md#gpu-kernel-alone). A device that cannot give a block that much
    /// shared memory runs the local build; a `ptx_file` runs the build it holds
    /// ([`crate::DeviceInfo`] says which).
    pub table_in_shared: bool,
    /// Offer the capsule checks' products (`h·E`, `s·G`) from the device to the engine
    /// ([`umbrald_core::backend::EcBackend::capsule_check_products`]) instead of its combined
    /// check on the host. On by default (docs/PERFORMANCE.md#gpu-end-to-end).
    pub capsule_checks: bool,
    /// Offer the capsules' points decompressed on the device to the engine
    /// ([`umbrald_core::backend::EcBackend::decompress_points`]). On by default
    /// (docs/PERFORMANCE.md#gpu-end-to-end).
    pub decompress: bool,
    /// Re-encrypt a batch's capsules in one device call
    /// ([`umbrald_core::backend::EcBackend::reencrypt_capsules`]): the capsules' compressed
    /// points, scalars, `rk`, `t` and `U1` go up once; decompression, the capsule check
    /// (including its hash), the products, the proof's hash and `z` run as six kernels in a
    /// row; only 51 words per capsule (the parts and a status) come back. Replaces three calls
    /// (decompression, check products, products) and most of their host work. Each pipeline's
    /// device buffers grow several times. On by default: the fastest path measured
    /// (docs/PERFORMANCE.md#gpu-end-to-end).
    pub one_call: bool,
    /// How a host thread waits for its device call (the CUDA context's scheduling policy).
    pub host_wait: HostWait,
}

/// How host threads wait for the device: the CUDA context's scheduling flag, set at start-up.
///
/// CUDA's own default (`CU_CTX_SCHED_AUTO`) spins whenever the process has fewer contexts than
/// the machine has cores, so every thread waiting for a kernel (milliseconds each) keeps a core
/// busy, and the server's CPU per item grows with the host threads waiting on the device
/// (docs/PERFORMANCE.md#gpu-end-to-end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HostWait {
    /// Sleep until the device signals completion (`CU_CTX_SCHED_BLOCKING_SYNC`): no CPU while
    /// waiting, a wake-up of some microseconds after each call. The default.
    #[default]
    Block,
    /// Poll, yielding the core to other runnable threads between polls (`CU_CTX_SCHED_YIELD`).
    Yield,
    /// Poll without yielding (`CU_CTX_SCHED_SPIN`): the lowest wake-up latency, a core per
    /// waiting thread.
    Spin,
}

impl HostWait {
    /// The configuration spelling: `block`, `yield` or `spin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Yield => "yield",
            Self::Spin => "spin",
        }
    }
}

impl std::fmt::Display for HostWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HostWait {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(Self::Block),
            "yield" => Ok(Self::Yield),
            "spin" => Ok(Self::Spin),
            other => Err(format!(
                "unknown host wait `{other}` (block, yield or spin)"
            )),
        }
    }
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self {
            device: 0,
            chunk_items: 1 << 16,
            audit_samples: 2,
            unhealthy_after: 3,
            ptx_file: None,
            arch: None,
            concurrent_calls: 1,
            nvrtc_options: Vec::new(),
            table_in_shared: true,
            capsule_checks: true,
            decompress: true,
            one_call: true,
            host_wait: HostWait::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{GpuOptions, HostWait};

    /// The library's defaults are the measured best, the ones the server serves with.
    #[test]
    fn defaults_take_every_measured_gain() {
        let opts = GpuOptions::default();
        assert!(opts.one_call && opts.capsule_checks && opts.decompress && opts.table_in_shared);
        assert_eq!((opts.audit_samples, opts.unhealthy_after), (2, 3));
        assert_eq!(opts.host_wait, HostWait::Block);
    }

    #[test]
    fn host_wait_spellings_round_trip() {
        for wait in [HostWait::Block, HostWait::Yield, HostWait::Spin] {
            assert_eq!(wait.as_str().parse::<HostWait>(), Ok(wait));
        }
        assert!("busy".parse::<HostWait>().is_err());
        assert_eq!(HostWait::default(), HostWait::Block);
    }
}
