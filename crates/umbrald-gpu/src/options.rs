//! How to start the GPU backend.

use std::path::PathBuf;

/// Options for [`crate::GpuBackend::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOptions {
    /// CUDA device ordinal.
    pub device: usize,
    /// Items per kernel launch, rounded at start-up to whole waves of resident blocks
    /// (`DeviceInfo::launch_items`). A batch larger than this is split into launches that
    /// alternate between two streams, so copies of one overlap the kernel of the other. Pinned
    /// host and device buffers for two launches of this size are allocated at start-up: about
    /// 530 bytes of pinned host memory and as much device memory per item; with `cfrag_parts`
    /// about 600 and 870 (its launches take half as many capsules).
    pub chunk_items: usize,
    /// Outputs per call recomputed on the CPU and compared (at least one is always checked).
    pub audit_samples: usize,
    /// After this many failed calls in a row the backend stops using the device and fails
    /// every call at once, so the CPU serves without the cost of packing and launching (a
    /// CUDA context that hit a fault stays broken). 0 never gives up.
    pub disable_after_failures: u32,
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
    /// dynamic shared memory per block, 3 blocks per SM, no register spills) instead of local
    /// memory (6 blocks per SM, spills). On by default: on an H200 1.22x the kernel's rate
    /// (20.1 M products/s), 1.18-1.25x through the backend and 1.05-1.10x end to end
    /// (docs/PERFORMANCE.md §4). A device that cannot give a block that much shared memory
    /// runs the local build; a `ptx_file` runs the build it holds ([`crate::DeviceInfo`] says
    /// which).
    pub table_in_shared: bool,
    /// Issue the device calls of one engine batch at once (`h·E` with `s·G` here; the engine
    /// runs the capsule check beside the products and `t·U`:
    /// [`umbrald_core::backend::EcBackend::overlaps_calls`]) instead of one after the other.
    /// Off by default: on an H200 0.92-1.00x without it (docs/PERFORMANCE.md §4).
    pub overlap_calls: bool,
    /// Finish whole cfrags on the device ([`umbrald_core::backend::EcBackend::cfrag_parts`]):
    /// the products, `t·U`, the proof's hash and `z` in one call, with only each cfrag's 197
    /// bytes of parts copied back, so the host neither reads back, checks and compresses the
    /// five products nor hashes the proof. Each pipeline's buffers grow (see `chunk_items`).
    /// Off by default until a device measures it.
    pub cfrag_parts: bool,
    /// Re-encrypt a batch's capsules in one device call
    /// ([`umbrald_core::backend::EcBackend::reencrypt_capsules`]): the capsules' compressed
    /// points, scalars, `rk`, `t` and `U1` go up once; decompression, the capsule check
    /// (including its hash), the products, the proof's hash and `z` run as six kernels in a
    /// row; only 51 words per capsule (the parts and a status) come back. Replaces three calls
    /// (decompression, check products, products) and most of their host work. Each pipeline's
    /// device buffers grow several times. Off by default until a device measures it.
    pub one_call: bool,
    /// How a host thread waits for its device call (the CUDA context's scheduling policy).
    pub host_wait: HostWait,
}

/// How host threads wait for the device: the CUDA context's scheduling flag, set at start-up.
///
/// CUDA's own default (`CU_CTX_SCHED_AUTO`) spins whenever the process has fewer contexts than
/// the machine has cores, so every thread waiting for a kernel (milliseconds each) keeps a core
/// busy. On an H200 with 16 cores the server's CPU per item rose from 10.7 to 13.5 to 20 µs as
/// 8, 16 and 16-with-more-pipelines host threads waited on the device (docs/PERFORMANCE.md §4).
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
            disable_after_failures: 16,
            ptx_file: None,
            arch: None,
            concurrent_calls: 1,
            nvrtc_options: Vec::new(),
            table_in_shared: true,
            overlap_calls: false,
            cfrag_parts: false,
            one_call: false,
            host_wait: HostWait::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HostWait;

    #[test]
    fn host_wait_spellings_round_trip() {
        for wait in [HostWait::Block, HostWait::Yield, HostWait::Spin] {
            assert_eq!(wait.as_str().parse::<HostWait>(), Ok(wait));
        }
        assert!("busy".parse::<HostWait>().is_err());
        assert_eq!(HostWait::default(), HostWait::Block);
    }
}
