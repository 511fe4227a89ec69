//! The CPU/GPU split: which lane takes how much of the queue now, as one pure function of
//! what the scheduler observed ([`plan`]), and the CPU workers' priority when they only
//! scavenge for a GPU ([`worker_nice`]).
//!
//! The rules, in the order [`plan`] applies them:
//! - Without a GPU lane every free CPU worker may take a batch.
//! - The GPU lane takes a batch when it is healthy, has room for one more batch in flight and
//!   the queue is not empty. Alone (`backend = gpu`) it takes as much as one GPU batch holds;
//!   sharing with the CPU workers (`auto`) it takes its share of the queue in proportion to
//!   the measured rates ([`gpu_share`]), or everything while the idle gate is closed.
//! - With `backend = gpu` the CPU workers take batches only while the GPU is unhealthy.
//! - With `auto` and `[gpu] auto_cpu_idle_only`, while the GPU is healthy, the CPU workers
//!   stay out when their pool's measured rate is below [`MIN_CPU_SHARE`] of the combined rate,
//!   and otherwise take no more batches than the idle gate ([`crate::idle`]) allows.
//! - A CPU batch is sized by sharing the queue among the whole pool, not only the workers
//!   free now.

/// With `auto` on idle cores only, the CPU workers stay out while their pool's measured rate
/// is below this share of the combined rate: they could add at most that much, and on a GPU
/// machine their work costs the GPU lane more than it adds (docs/PERFORMANCE.md#gpu-end-to-end).
pub const MIN_CPU_SHARE: f64 = 0.05;

/// Lowest priority (nice) on Linux: `auto`'s CPU workers with `auto_cpu_idle_only`.
pub const SCAVENGER_NICE: i32 = 19;

/// The CPU worker pool as the scheduler observed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuView {
    /// Worker threads (one batch each at a time).
    pub workers: usize,
    /// Workers computing a batch now.
    pub busy: usize,
}

impl CpuView {
    /// Workers free to take a batch now.
    pub fn free(&self) -> usize {
        self.workers.saturating_sub(self.busy)
    }
}

/// The GPU lane as the scheduler observed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneView {
    /// Whether the GPU is healthy (an unhealthy one takes no batches until re-probed).
    pub healthy: bool,
    /// GPU batches in flight now.
    pub in_flight: usize,
    /// Most GPU batches in flight at once.
    pub max_in_flight: usize,
    /// Most items in one GPU batch.
    pub max_items: usize,
    /// Whether the CPU workers take work while the GPU is healthy (`auto`).
    pub cpu_helps: bool,
    /// The GPU lane's measured rate (items/s).
    pub gpu_rate: f64,
    /// One CPU worker's measured rate (items/s).
    pub cpu_worker_rate: f64,
}

impl LaneView {
    /// Whether the lane can take a batch now.
    pub fn available(&self) -> bool {
        self.healthy && self.in_flight < self.max_in_flight
    }

    /// Whether the CPU workers take batches now: always with `auto`, and with `gpu` while the
    /// GPU is unhealthy.
    pub fn cpu_takes_work(&self) -> bool {
        self.cpu_helps || !self.healthy
    }
}

/// What the scheduler observed, all at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Items in the queue.
    pub queued: usize,
    /// The CPU worker pool.
    pub cpu: CpuView,
    /// The GPU lane, when there is one.
    pub lane: Option<LaneView>,
    /// Whether the CPU workers take batches only for idle cores (`auto` with
    /// `[gpu] auto_cpu_idle_only`).
    pub idle_gate: bool,
}

/// What to hand out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Items for one GPU batch now (fewer when the queue holds fewer); 0: no GPU batch.
    pub gpu_batch_items: usize,
    /// CPU batches that may be handed out now, one per worker.
    pub cpu_batches: usize,
    /// Workers the queue is shared among when a CPU batch is sized.
    pub cpu_share_among: usize,
    /// Whether the GPU lane could take a batch now (whatever the queue holds).
    pub gpu_free: bool,
}

impl Plan {
    /// Whether any worker could take a batch now, so that the next due batch deserves a
    /// wake-up.
    pub fn takes_work(&self) -> bool {
        self.cpu_batches > 0 || self.gpu_free
    }
}

/// The split for `view`. `idle_limit` reads the idle gate (most CPU batches in flight for the
/// idle cores, [`crate::IdleGate::limit`]); it is called at most once, and only when the gate
/// decides: with `view.idle_gate`, a healthy GPU and a CPU pool worth its share, so that the
/// gate samples the machine exactly when it matters.
pub fn plan(view: &View, idle_limit: impl FnOnce() -> usize) -> Plan {
    let room = gate_room(view, idle_limit);
    let gpu_batch_items = match view.lane {
        Some(lane) if lane.available() && view.queued > 0 => {
            // A closed idle gate leaves the whole queue to the GPU: nothing would take the CPU
            // pool's share.
            if lane.cpu_helps && room != Some(0) {
                let cpu_pool = lane.cpu_worker_rate * view.cpu.workers as f64;
                gpu_share(view.queued, lane.gpu_rate, cpu_pool, lane.max_items)
            } else {
                lane.max_items
            }
        }
        _ => 0,
    };
    let free = view.cpu.free();
    let cpu_batches = match view.lane {
        Some(lane) if !lane.cpu_takes_work() => 0,
        _ => room.map_or(free, |room| free.min(room)),
    };
    Plan {
        gpu_batch_items,
        cpu_batches,
        // Share the queue among the whole pool, not only the workers free now: at light load
        // a second item waits for the next free worker (typically sooner than a doubled batch
        // would take), and under heavy load batches still grow with the queue.
        cpu_share_among: view.cpu.workers.max(cpu_batches),
        gpu_free: view.lane.is_some_and(|lane| lane.available()),
    }
}

/// With the idle gate and a healthy GPU, how many more CPU batches the gate lets in now (none
/// while the CPU pool's measured rate is below [`MIN_CPU_SHARE`] of the combined rate);
/// `None` when no gate applies.
fn gate_room(view: &View, idle_limit: impl FnOnce() -> usize) -> Option<usize> {
    match view.lane {
        Some(lane) if view.idle_gate && lane.healthy => {
            let cpu_pool = lane.cpu_worker_rate * view.cpu.workers as f64;
            if cpu_pool < MIN_CPU_SHARE * (cpu_pool + lane.gpu_rate) {
                return Some(0);
            }
            Some(idle_limit().saturating_sub(view.cpu.busy))
        }
        _ => None,
    }
}

/// How many of `queued` items the GPU should take when it shares the queue with a CPU pool:
/// the GPU's fraction of the combined rate, rounded, at most `max`. 0 means the CPU pool is
/// expected to finish them sooner (a light load); the GPU then waits for more.
pub fn gpu_share(queued: usize, gpu_rate: f64, cpu_pool_rate: f64, max: usize) -> usize {
    let total = gpu_rate + cpu_pool_rate;
    if total.is_nan() || total <= 0.0 || !gpu_rate.is_finite() {
        return queued.min(max);
    }
    let share = (queued as f64 * (gpu_rate / total)).round();
    (share as usize).min(queued).min(max)
}

/// Whether the CPU workers only scavenge for a GPU: `auto` found one (`cpu_helps_gpu`) and
/// `[gpu] auto_cpu_idle_only` is on. They then take batches through the idle gate, run at
/// [`SCAVENGER_NICE`] and in Linux's `SCHED_IDLE` class.
pub fn scavenges(cpu_helps_gpu: bool, auto_cpu_idle_only: bool) -> bool {
    cpu_helps_gpu && auto_cpu_idle_only
}

/// The CPU workers' nice value: `configured` (`[workers] nice`), or the lowest priority when
/// they scavenge for a GPU, so that the GPU lane's host threads and the QUIC side take a core
/// back from them at once (the idle gate samples once a period; the kernel's scheduler acts on
/// each wake-up).
pub fn worker_nice(configured: i32, scavenger: bool) -> i32 {
    if scavenger {
        SCAVENGER_NICE
    } else {
        configured
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::{CPU_RATE_PRIOR, GPU_RATE_PRIOR};

    fn cpu(workers: usize, busy: usize) -> CpuView {
        CpuView { workers, busy }
    }

    /// A healthy, idle lane with the rate priors; `cpu_helps`: `auto`.
    fn lane(cpu_helps: bool) -> LaneView {
        LaneView {
            healthy: true,
            in_flight: 0,
            max_in_flight: 1,
            max_items: 1000,
            cpu_helps,
            gpu_rate: GPU_RATE_PRIOR,
            cpu_worker_rate: CPU_RATE_PRIOR,
        }
    }

    fn view(queued: usize, cpu: CpuView, lane: Option<LaneView>, idle_gate: bool) -> View {
        View {
            queued,
            cpu,
            lane,
            idle_gate,
        }
    }

    fn unread() -> usize {
        panic!("the idle gate was read")
    }

    #[test]
    fn share_follows_the_rates() {
        // Equal rates: half each.
        assert_eq!(gpu_share(100, 1000.0, 1000.0, 1 << 20), 50);
        // GPU 9x the CPU pool: 90 %.
        assert_eq!(gpu_share(1000, 9000.0, 1000.0, 1 << 20), 900);
        // Bounded by the GPU batch size and the queue.
        assert_eq!(gpu_share(1000, 9000.0, 1000.0, 128), 128);
        // A light load the CPU pool finishes sooner: the GPU waits.
        assert_eq!(gpu_share(1, 1000.0, 8000.0, 128), 0);
        // No CPU pool: everything.
        assert_eq!(gpu_share(7, 1000.0, 0.0, 128), 7);
        assert_eq!(gpu_share(7, 0.0, 0.0, 128), 7);
        // Unmeasurable rates: everything the GPU batch holds.
        assert_eq!(gpu_share(7, f64::INFINITY, 1.0, 5), 5);
        assert_eq!(gpu_share(7, f64::NAN, 1.0, 128), 7);
    }

    #[test]
    fn without_a_gpu_every_free_worker_takes_a_batch() {
        let p = plan(&view(50, cpu(4, 1), None, false), unread);
        assert_eq!(
            p,
            Plan {
                gpu_batch_items: 0,
                cpu_batches: 3,
                cpu_share_among: 4,
                gpu_free: false,
            }
        );
        assert!(p.takes_work());
        let busy = plan(&view(50, cpu(4, 4), None, false), unread);
        assert_eq!(busy.cpu_batches, 0);
        assert!(!busy.takes_work());
    }

    #[test]
    fn a_healthy_gpu_alone_takes_a_full_batch_and_the_cpu_stays_out() {
        let p = plan(&view(50, cpu(4, 0), Some(lane(false)), false), unread);
        assert_eq!(p.gpu_batch_items, 1000, "as much as a GPU batch holds");
        assert_eq!(p.cpu_batches, 0);
        assert!(p.takes_work());
    }

    #[test]
    fn an_unhealthy_gpu_takes_nothing_and_the_cpu_serves() {
        let sick = LaneView {
            healthy: false,
            ..lane(false)
        };
        let p = plan(&view(50, cpu(4, 0), Some(sick), true), unread);
        assert_eq!((p.gpu_batch_items, p.cpu_batches), (0, 4));
        assert!(!p.gpu_free);
    }

    #[test]
    fn a_full_lane_or_an_empty_queue_gets_no_gpu_batch() {
        let full = LaneView {
            in_flight: 1,
            ..lane(false)
        };
        let p = plan(&view(50, cpu(4, 0), Some(full), false), unread);
        assert_eq!(p.gpu_batch_items, 0);
        assert!(!p.takes_work(), "nothing may take a batch");
        let p = plan(&view(0, cpu(4, 0), Some(lane(false)), false), unread);
        assert_eq!(p.gpu_batch_items, 0);
        assert!(
            p.gpu_free && p.takes_work(),
            "the lane waits for the next batch"
        );
    }

    #[test]
    fn auto_without_the_idle_gate_shares_by_rate() {
        // GPU 20,000 items/s against two CPU workers at 2,000: 100 of 120.
        let p = plan(&view(120, cpu(2, 0), Some(lane(true)), false), unread);
        assert_eq!((p.gpu_batch_items, p.cpu_batches), (100, 2));
        assert_eq!(p.cpu_share_among, 2);
    }

    #[test]
    fn an_open_idle_gate_shares_by_rate_within_its_limit() {
        let mut reads = 0;
        let p = plan(&view(120, cpu(4, 1), Some(lane(true)), true), || {
            reads += 1;
            3
        });
        assert_eq!(reads, 1, "read once");
        // 4 workers at 2,000 against 20,000: 20/28 of 120.
        assert_eq!(p.gpu_batch_items, 86);
        // The gate allows 3 in flight, 1 is: 2 more (of 3 free).
        assert_eq!(p.cpu_batches, 2);
        assert_eq!(p.cpu_share_among, 4, "the whole pool");
    }

    #[test]
    fn a_closed_idle_gate_leaves_the_whole_queue_to_the_gpu() {
        let p = plan(&view(120, cpu(2, 0), Some(lane(true)), true), || 0);
        assert_eq!((p.gpu_batch_items, p.cpu_batches), (1000, 0));
        // A limit at or below the busy count is closed too.
        let p = plan(&view(120, cpu(4, 2), Some(lane(true)), true), || 2);
        assert_eq!((p.gpu_batch_items, p.cpu_batches), (1000, 0));
    }

    #[test]
    fn a_cpu_pool_far_slower_than_the_gpu_stays_out_without_reading_the_gate() {
        // Two CPU workers at 2,000 against a GPU at 265,000: a 1.5 % share.
        let fast = LaneView {
            gpu_rate: 265_000.0,
            ..lane(true)
        };
        let p = plan(&view(120, cpu(2, 0), Some(fast), true), unread);
        assert_eq!((p.gpu_batch_items, p.cpu_batches), (1000, 0));
        // Without the gate the same pool still takes its (small) share.
        let p = plan(&view(120, cpu(2, 0), Some(fast), false), unread);
        assert_eq!(p.cpu_batches, 2);
        assert_eq!(p.gpu_batch_items, 118);
    }

    #[test]
    fn the_gate_is_not_read_while_the_gpu_is_unhealthy() {
        let sick = LaneView {
            healthy: false,
            ..lane(true)
        };
        let p = plan(&view(10, cpu(3, 0), Some(sick), true), unread);
        assert_eq!(p.cpu_batches, 3);
    }

    #[test]
    fn scavenging_workers_run_at_the_lowest_priority() {
        assert!(scavenges(true, true));
        assert!(!scavenges(true, false));
        assert!(!scavenges(false, true));
        assert_eq!(worker_nice(10, false), 10);
        assert_eq!(worker_nice(10, true), SCAVENGER_NICE);
        assert_eq!(worker_nice(0, true), SCAVENGER_NICE);
        assert_eq!(worker_nice(0, false), 0);
    }
}
