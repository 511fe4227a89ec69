//! How many of the machine's cores sat idle lately: the gate that lets `auto`'s CPU workers
//! use only the cores the GPU lane and the QUIC side leave.
//!
//! A CPU worker spends far more CPU on an item than the GPU lane's host threads do for the
//! same item (docs/PERFORMANCE.md#gpu-end-to-end): while the GPU lane is bound by the host's
//! cores, every
//! core a CPU worker takes serves many fewer items than the lane would have. So with `auto`
//! the CPU workers take new batches only while whole cores were idle over the last sampling
//! period; when the GPU lane waits on the device, cores idle and the CPU workers help.
//!
//! The gate never reads the machine itself: the caller hands it a reading of the CPU times
//! (the server reads `/proc/stat`) when the gate asks for one.

use std::time::{Duration, Instant};

/// How often the CPU times are read.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// Idle cores kept free of CPU workers: the GPU lane's and the QUIC side's threads wake in
/// bursts and need a core at once.
const RESERVED_IDLE_CORES: f64 = 1.0;

/// Cumulative CPU time of the whole machine, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Idle and I/O-wait ticks.
    pub idle: u64,
    /// All ticks (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
    /// Cores counted.
    pub cores: usize,
}

/// Idle cores between two readings (0 when the clock did not move).
pub fn idle_cores(before: CpuTimes, after: CpuTimes) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    let idle = after.idle.saturating_sub(before.idle);
    idle as f64 / total as f64 * after.cores as f64
}

/// Most CPU batches in flight for cores that sat `idle` while `busy` CPU batches ran: the
/// cores those batches used plus the idle ones, less a reserve.
pub fn limit_for(idle: f64, busy: usize) -> usize {
    let cores = (idle + busy as f64 - RESERVED_IDLE_CORES).floor();
    if cores.is_finite() && cores > 0.0 {
        cores as usize
    } else {
        0
    }
}

/// The gate: a limit on CPU batches in flight, set again each period from the idle cores.
#[derive(Debug, Clone)]
pub struct IdleGate {
    last: Option<(Instant, CpuTimes)>,
    limit: usize,
}

impl IdleGate {
    /// A gate starting at `now` from the reading `first` (`None`: CPU times cannot be read
    /// here, and the gate stays open).
    pub fn new(now: Instant, first: Option<CpuTimes>) -> Self {
        Self {
            last: first.map(|t| (now, t)),
            limit: 0,
        }
    }

    /// Most CPU batches that may be in flight now, `busy` being in flight: unlimited where CPU
    /// times cannot be read, else the limit the last period set (0 before the first period).
    /// Calls `read` for a new reading once a period has passed since the last one.
    pub fn limit(
        &mut self,
        now: Instant,
        busy: usize,
        read: impl FnOnce() -> Option<CpuTimes>,
    ) -> usize {
        let Some((at, before)) = self.last else {
            return usize::MAX;
        };
        if now.saturating_duration_since(at) >= SAMPLE_PERIOD {
            match read() {
                Some(after) => {
                    self.limit = limit_for(idle_cores(before, after), busy);
                    self.last = Some((now, after));
                }
                None => {
                    self.last = None;
                    return usize::MAX;
                }
            }
        }
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_cores_scale_the_idle_share_by_the_core_count() {
        let at = |idle, total| CpuTimes {
            idle,
            total,
            cores: 16,
        };
        // 1,000 ticks, 250 of them idle, 16 cores: 4 idle cores.
        assert!((idle_cores(at(0, 0), at(250, 1000)) - 4.0).abs() < 1e-9);
        assert_eq!(idle_cores(at(5, 10), at(5, 10)), 0.0);
        // 4 idle cores and 2 batches running: 5 batches after the reserve.
        assert_eq!(limit_for(4.0, 2), 5);
        assert_eq!(limit_for(1.9, 0), 0);
        assert_eq!(
            limit_for(0.0, 3),
            2,
            "a saturated machine sheds one batch a period"
        );
        assert_eq!(limit_for(f64::NAN, 4), 0);
    }

    fn times(idle: u64, total: u64) -> Option<CpuTimes> {
        Some(CpuTimes {
            idle,
            total,
            cores: 8,
        })
    }

    #[test]
    fn the_limit_is_set_once_a_period_from_the_idle_cores() {
        let t0 = Instant::now();
        let mut gate = IdleGate::new(t0, times(0, 0));
        let unread = || -> Option<CpuTimes> { panic!("read within the period") };
        assert_eq!(gate.limit(t0, 0, unread), 0, "no period measured yet");
        // Half of 8 cores idle with nothing running: 4 idle, 3 batches after the reserve.
        let t1 = t0 + SAMPLE_PERIOD;
        assert_eq!(gate.limit(t1, 0, || times(500, 1000)), 3);
        assert_eq!(
            gate.limit(t1 + SAMPLE_PERIOD / 2, 3, unread),
            3,
            "same period"
        );
        // A saturated period with those 3 running: one fewer.
        assert_eq!(gate.limit(t1 + SAMPLE_PERIOD, 3, || times(500, 2000)), 2);
        // Without CPU times the gate stays open, from the start or once a reading fails.
        let mut open = IdleGate::new(t0, None);
        assert_eq!(open.limit(t1, 0, unread), usize::MAX);
        assert_eq!(gate.limit(t1 + SAMPLE_PERIOD * 2, 0, || None), usize::MAX);
        assert_eq!(gate.limit(t1 + SAMPLE_PERIOD * 9, 0, unread), usize::MAX);
    }
}
