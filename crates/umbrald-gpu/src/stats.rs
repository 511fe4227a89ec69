//! Counters of the GPU backend, as plain atomics; the server exports them to Prometheus.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::exec::Timing;

/// Live counters of one [`crate::GpuBackend`]. All counters only grow.
#[derive(Debug, Default)]
pub struct GpuStats {
    batches: AtomicU64,
    items: AtomicU64,
    kernel_ns: AtomicU64,
    copy_ns: AtomicU64,
    layout_ns: AtomicU64,
    audit_ns: AtomicU64,
    fallbacks: AtomicU64,
    audit_failures: AtomicU64,
    audited: AtomicU64,
    disabled: AtomicBool,
}

/// A copy of [`GpuStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuStatsSnapshot {
    /// Backend calls whose results came from the device and passed the audit.
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
    /// Host CPU time recomputing sampled outputs on the CPU (the audit), summed over the calling
    /// threads; failed calls included.
    pub audit_time: Duration,
    /// Calls handed back to the CPU: a driver error, an invalid output or a failed audit.
    pub fallbacks: u64,
    /// Calls whose audited outputs differed from the CPU's (each is also a fallback).
    pub audit_failures: u64,
    /// Outputs recomputed on the CPU by the audit.
    pub audited: u64,
    /// The backend gave up on the device after repeated failures (see
    /// [`crate::GpuOptions::disable_after_failures`]); every call now falls back.
    pub disabled: bool,
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
            audit_time: Duration::from_nanos(self.audit_ns.load(Ordering::Relaxed)),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            audit_failures: self.audit_failures.load(Ordering::Relaxed),
            audited: self.audited.load(Ordering::Relaxed),
            disabled: self.disabled.load(Ordering::Relaxed),
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

    pub(crate) fn record_audit_time(&self, spent: Duration) {
        self.audit_ns.fetch_add(nanos(spent), Ordering::Relaxed);
    }

    pub(crate) fn record_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_audit_failure(&self) {
        self.audit_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the device as given up; true only for the call that changed it.
    pub(crate) fn record_disabled(&self) -> bool {
        !self.disabled.swap(true, Ordering::Relaxed)
    }

    pub(crate) fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    pub(crate) fn record_audited(&self, outputs: u64) {
        self.audited.fetch_add(outputs, Ordering::Relaxed);
    }
}
