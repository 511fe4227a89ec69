//! Measured throughput of one CPU worker and of the GPU lane, which split the queue between
//! them (see [`crate::split`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Weight of the newest sample in the rate EWMAs.
const EWMA_WEIGHT: f64 = 0.25;
/// Rate assumed for one CPU worker before the first measurement (items/s).
pub const CPU_RATE_PRIOR: f64 = 2_000.0;
/// Rate assumed for the GPU lane before the first measurement (items/s).
pub const GPU_RATE_PRIOR: f64 = 20_000.0;

/// Measured throughput of one CPU worker and of the GPU lane, as EWMAs of items/s, stored as
/// `f64` bits so that the workers update them and the scheduler reads them without locks.
#[derive(Debug)]
pub struct Rates {
    cpu_worker: AtomicU64,
    gpu: AtomicU64,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            cpu_worker: AtomicU64::new(CPU_RATE_PRIOR.to_bits()),
            gpu: AtomicU64::new(GPU_RATE_PRIOR.to_bits()),
        }
    }
}

impl Rates {
    /// One CPU worker's rate.
    pub fn cpu_worker(&self) -> f64 {
        f64::from_bits(self.cpu_worker.load(Ordering::Relaxed))
    }

    /// The GPU lane's rate.
    pub fn gpu(&self) -> f64 {
        f64::from_bits(self.gpu.load(Ordering::Relaxed))
    }

    /// Folds in one batch of a CPU worker; returns the new rate.
    pub fn record_cpu(&self, items: usize, elapsed: Duration) -> f64 {
        fold(&self.cpu_worker, items, elapsed)
    }

    /// Folds in one batch of the GPU lane; returns the new rate.
    pub fn record_gpu(&self, items: usize, elapsed: Duration) -> f64 {
        fold(&self.gpu, items, elapsed)
    }
}

fn fold(slot: &AtomicU64, items: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    let old = f64::from_bits(slot.load(Ordering::Relaxed));
    if items == 0 || secs <= 0.0 {
        return old;
    }
    let sample = items as f64 / secs;
    let mut new = old;
    let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        new = f64::from_bits(bits) * (1.0 - EWMA_WEIGHT) + sample * EWMA_WEIGHT;
        Some(new.to_bits())
    });
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_move_toward_samples() {
        let r = Rates::default();
        let before = r.gpu();
        let after = r.record_gpu(1_000_000, Duration::from_secs(1));
        assert!(after > before && after < 1_000_000.0, "{before} -> {after}");
        assert_eq!(r.gpu(), after);
        // Empty batches and zero durations change nothing.
        assert_eq!(r.record_gpu(0, Duration::from_secs(1)), after);
        assert_eq!(r.record_cpu(5, Duration::ZERO), CPU_RATE_PRIOR);
        for _ in 0..100 {
            r.record_cpu(500, Duration::from_millis(100));
        }
        assert!((r.cpu_worker() - 5_000.0).abs() < 1.0, "{}", r.cpu_worker());
    }
}
