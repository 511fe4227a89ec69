//! How many of the machine's cores sat idle lately, from `/proc/stat` (Linux): the gate that
//! lets `auto`'s CPU workers use only the cores the GPU lane and the QUIC side leave.
//!
//! A CPU worker spends about 200 µs of CPU on an item that costs the GPU lane's host threads
//! about 9 µs (docs/PERFORMANCE.md §4): while the GPU lane is bound by the host's cores, every
//! core a CPU worker takes serves ~20x fewer items than the lane would have. So with `auto`
//! the CPU workers take new batches only while whole cores were idle over the last sampling
//! period; when the GPU lane waits on the device, cores idle and the CPU workers help.

use std::time::{Duration, Instant};

/// How often `/proc/stat` is read.
pub(crate) const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// Idle cores kept free of CPU workers: the GPU lane's and the QUIC side's threads wake in
/// bursts and need a core at once.
const RESERVED_IDLE_CORES: f64 = 1.0;

/// Cumulative CPU time of the whole machine, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// Idle and I/O-wait ticks.
    pub idle: u64,
    /// All ticks (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
    /// Cores counted (`cpuN` lines).
    pub cores: usize,
}

/// Reads `/proc/stat`'s aggregate `cpu` line and counts the `cpuN` lines; `None` when the
/// text has no such line (or on other systems).
pub(crate) fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let mut lines = text.lines();
    let first = lines.next()?;
    let mut fields = first.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields.take(8).map_while(|f| f.parse().ok()).collect();
    if ticks.len() < 5 {
        return None;
    }
    let cores = lines
        .take_while(|l| l.starts_with("cpu"))
        .filter(|l| l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some(CpuTimes {
        idle: ticks[3] + ticks[4],
        total: ticks.iter().sum(),
        cores: cores.max(1),
    })
}

/// Idle cores between two readings (0 when the clock did not move).
pub(crate) fn idle_cores(before: CpuTimes, after: CpuTimes) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    let idle = after.idle.saturating_sub(before.idle);
    idle as f64 / total as f64 * after.cores as f64
}

/// Most CPU batches in flight for cores that sat `idle` while `busy` CPU batches ran: the
/// cores those batches used plus the idle ones, less a reserve.
pub(crate) fn limit_for(idle: f64, busy: usize) -> usize {
    let cores = (idle + busy as f64 - RESERVED_IDLE_CORES).floor();
    if cores.is_finite() && cores > 0.0 {
        cores as usize
    } else {
        0
    }
}

/// The gate: a limit on CPU batches in flight, set again each period from the idle cores.
#[derive(Debug)]
pub(crate) struct IdleGate {
    read: fn() -> Option<CpuTimes>,
    last: Option<(Instant, CpuTimes)>,
    limit: usize,
}

impl IdleGate {
    /// A gate reading this machine's `/proc/stat`.
    pub fn new(now: Instant) -> Self {
        Self::with_reader(now, read_proc_stat)
    }

    /// A gate reading CPU times with `read` (tests).
    pub fn with_reader(now: Instant, read: fn() -> Option<CpuTimes>) -> Self {
        Self {
            read,
            last: read().map(|t| (now, t)),
            limit: 0,
        }
    }

    /// Most CPU batches that may be in flight now, `busy` being in flight: unlimited where CPU
    /// times cannot be read, else the limit the last period set (0 before the first period).
    pub fn limit(&mut self, now: Instant, busy: usize) -> usize {
        let Some((at, before)) = self.last else {
            return usize::MAX;
        };
        if now.saturating_duration_since(at) >= SAMPLE_PERIOD {
            match (self.read)() {
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

fn read_proc_stat() -> Option<CpuTimes> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(parse_proc_stat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    const STAT: &str = "cpu  100 5 50 800 20 3 2 10 0 0\n\
                        cpu0 50 2 25 400 10 1 1 5 0 0\n\
                        cpu1 50 3 25 400 10 2 1 5 0 0\n\
                        intr 12345\n";

    #[test]
    fn the_aggregate_line_and_the_cores_are_read() {
        let t = parse_proc_stat(STAT).expect("parses");
        assert_eq!(t.idle, 820);
        assert_eq!(t.total, 100 + 5 + 50 + 800 + 20 + 3 + 2 + 10);
        assert_eq!(t.cores, 2);
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert_eq!(parse_proc_stat("cpu 1 2\n"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

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

    static IDLE: AtomicU64 = AtomicU64::new(0);
    static TOTAL: AtomicU64 = AtomicU64::new(0);

    fn fake() -> Option<CpuTimes> {
        Some(CpuTimes {
            idle: IDLE.load(Ordering::Relaxed),
            total: TOTAL.load(Ordering::Relaxed),
            cores: 8,
        })
    }

    #[test]
    fn the_limit_is_set_once_a_period_from_the_idle_cores() {
        let t0 = Instant::now();
        let mut gate = IdleGate::with_reader(t0, fake);
        assert_eq!(gate.limit(t0, 0), 0, "no period measured yet");
        // Half of 8 cores idle with nothing running: 4 idle, 3 batches after the reserve.
        IDLE.store(500, Ordering::Relaxed);
        TOTAL.store(1000, Ordering::Relaxed);
        let t1 = t0 + SAMPLE_PERIOD;
        assert_eq!(gate.limit(t1, 0), 3);
        assert_eq!(gate.limit(t1 + SAMPLE_PERIOD / 2, 3), 3, "same period");
        // A saturated period with those 3 running: one fewer.
        TOTAL.store(2000, Ordering::Relaxed);
        assert_eq!(gate.limit(t1 + SAMPLE_PERIOD, 3), 2);
        // Without CPU times the gate stays open.
        let mut open = IdleGate::with_reader(t0, || None);
        assert_eq!(open.limit(t1, 0), usize::MAX);
    }
}
