//! Where and at what priority the worker threads run: pinning to cores, the nice value, and
//! Linux's idle scheduling class for workers that only scavenge for a GPU.

/// Sets the calling thread's nice value (on Linux, `setpriority` on a thread id affects only
/// that thread). Raising one's own nice value needs no privilege.
#[cfg(target_os = "linux")]
pub(crate) fn lower_priority(nice: i32) -> std::io::Result<()> {
    let tid = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(tid), nice).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lower_priority(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "per-thread nice is Linux-only",
    ))
}

/// Moves the calling thread into Linux's `SCHED_IDLE` class. Unlike a high nice value, a CPU
/// running only such threads counts as idle when the kernel places a waking thread, and the
/// waking thread preempts at once instead of waiting for its turn. Needs no privilege.
#[cfg(target_os = "linux")]
pub(crate) fn enter_idle_class() -> std::io::Result<()> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .map_err(|e| std::io::Error::other(format!("{e:?}")))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn enter_idle_class() -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SCHED_IDLE is Linux-only",
    ))
}

/// The cores to pin to: the listed ids that exist, or all that this process may use.
pub(crate) fn pin_targets(wanted: &[usize]) -> Vec<core_affinity::CoreId> {
    let available = core_affinity::get_core_ids().unwrap_or_default();
    if wanted.is_empty() {
        return available;
    }
    wanted
        .iter()
        .map(|id| core_affinity::CoreId { id: *id })
        .filter(|c| {
            let ok = available.contains(c);
            if !ok {
                tracing::warn!(core = c.id, "configured core is not available; skipped");
            }
            ok
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// Field `n` (1-based, as in proc(5)) of a thread's `stat` file.
    #[cfg(target_os = "linux")]
    fn stat_field(stat_path: &str, n: usize) -> i64 {
        let stat = std::fs::read_to_string(stat_path).expect("stat");
        // Fields after the command name (field 2, which ends with ')') start at field 3.
        let after = stat.rsplit_once(')').expect("comm").1;
        after
            .split_whitespace()
            .nth(n - 3)
            .expect("field")
            .parse()
            .expect("number")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_class_applies_only_to_the_calling_thread() {
        // Field 41 is the scheduling policy; SCHED_IDLE is 5.
        let policy = || stat_field("/proc/thread-self/stat", 41);
        let before = policy();
        let in_thread = std::thread::spawn(move || {
            super::enter_idle_class().expect("entering SCHED_IDLE needs no privilege");
            policy()
        })
        .join()
        .expect("thread");
        const SCHED_IDLE: i64 = 5;
        assert_eq!(in_thread, SCHED_IDLE);
        assert_eq!(policy(), before, "other threads unchanged");
        assert_ne!(before, SCHED_IDLE);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn lower_priority_changes_only_the_calling_thread() {
        fn nice_of(path: &str) -> i64 {
            stat_field(path, 19)
        }
        let before = nice_of("/proc/thread-self/stat");
        let in_thread = std::thread::spawn(|| {
            super::lower_priority(7).expect("raising one's own nice is allowed");
            nice_of("/proc/thread-self/stat")
        })
        .join()
        .expect("thread");
        assert_eq!(in_thread, 7.max(before));
        assert_eq!(
            nice_of("/proc/thread-self/stat"),
            before,
            "other threads unchanged"
        );
    }
}
