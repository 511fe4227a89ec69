//! The machine's idle cores for `auto`'s idle gate: `/proc/stat` read once a sampling period,
//! fed to the sans-IO [`IdleGate`].

use std::time::Instant;

use umbrald_scheduling::{CpuTimes, IdleGate};

/// The idle gate with its source of CPU times.
#[derive(Debug)]
pub(crate) struct MachineIdle {
    gate: IdleGate,
    read: fn() -> Option<CpuTimes>,
}

impl MachineIdle {
    /// A gate reading this machine's `/proc/stat`.
    pub fn new(now: Instant) -> Self {
        Self::with_reader(now, read_proc_stat)
    }

    /// A gate reading CPU times with `read` (tests).
    pub fn with_reader(now: Instant, read: fn() -> Option<CpuTimes>) -> Self {
        Self {
            gate: IdleGate::new(now, read()),
            read,
        }
    }

    /// Most CPU batches that may be in flight now, `busy` being in flight
    /// ([`IdleGate::limit`]).
    pub fn limit(&mut self, now: Instant, busy: usize) -> usize {
        self.gate.limit(now, busy, self.read)
    }
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

fn read_proc_stat() -> Option<CpuTimes> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(parse_proc_stat)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_machine_without_cpu_times_leaves_the_gate_open() {
        let t0 = Instant::now();
        let mut open = MachineIdle::with_reader(t0, || None);
        assert_eq!(
            open.limit(t0 + umbrald_scheduling::idle::SAMPLE_PERIOD, 0),
            usize::MAX
        );
    }
}
