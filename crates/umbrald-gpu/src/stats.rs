//! Counters of the device backend, as plain atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::exec::Timing;

/// Live counters of one [`crate::GpuBackend`]: what the device answered and the time it took.
/// All counters only grow. The audit and the faults are [`crate::Guarded`]'s to count.
#[derive(Debug, Default)]
pub struct GpuStats {
    batches: AtomicU64,
    items: AtomicU64,
    kernel_ns: AtomicU64,
    copy_ns: AtomicU64,
    layout_ns: AtomicU64,
}

/// A copy of [`GpuStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuStatsSnapshot {
    /// Backend calls the device answered with well-formed outputs.
    pub batches: u64,
    /// Scalar multiplications in those calls (a pair counts as two).
    pub items: u64,
    /// Device time in kernels.
    pub kernel_time: Duration,
    /// Device time in host/device copies.
    pub copy_time: Duration,
    /// Host CPU time packing inputs and reading results back (point checks included), summed
    /// over the calling threads.
    pub layout_time: Duration,
}

impl GpuStatsSnapshot {
    /// What was added between `earlier` and this snapshot.
    pub fn since(&self, earlier: &GpuStatsSnapshot) -> GpuStatsSnapshot {
        GpuStatsSnapshot {
            batches: self.batches.saturating_sub(earlier.batches),
            items: self.items.saturating_sub(earlier.items),
            kernel_time: self.kernel_time.saturating_sub(earlier.kernel_time),
            copy_time: self.copy_time.saturating_sub(earlier.copy_time),
            layout_time: self.layout_time.saturating_sub(earlier.layout_time),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl GpuStats {
    /// Reads every counter (each individually atomic; the set is not one transaction).
    pub fn snapshot(&self) -> GpuStatsSnapshot {
        GpuStatsSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            kernel_time: Duration::from_nanos(self.kernel_ns.load(Ordering::Relaxed)),
            copy_time: Duration::from_nanos(self.copy_ns.load(Ordering::Relaxed)),
            layout_time: Duration::from_nanos(self.layout_ns.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn record_success(&self, items: u64, timing: Timing) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items, Ordering::Relaxed);
        self.kernel_ns
            .fetch_add(nanos(timing.kernel), Ordering::Relaxed);
        self.copy_ns
            .fetch_add(nanos(timing.copy), Ordering::Relaxed);
        self.layout_ns
            .fetch_add(nanos(timing.layout), Ordering::Relaxed);
    }
}
