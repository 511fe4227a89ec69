//! `[server] lock_memory`: every page of the process locked in RAM (`mlockall`, present and
//! future pages), so node keys and kfrag secrets never reach swap.

/// Why memory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum MemoryLockError {
    /// The memlock limit is finite and the process lacks `CAP_IPC_LOCK`: locking future pages
    /// would make allocations fail once the limit is reached.
    #[error(
        "lock_memory needs CAP_IPC_LOCK or an unlimited memlock limit (systemd: \
         LimitMEMLOCK=infinity; shell: ulimit -l unlimited); the limit here is {limit_kib} KiB"
    )]
    LimitTooLow {
        /// The soft limit after raising it to the hard one, KiB.
        limit_kib: u64,
    },
    /// `mlockall` failed.
    #[error("mlockall failed: {0}")]
    Lock(std::io::Error),
    /// Memory locking is implemented for Linux only.
    #[cfg(not(target_os = "linux"))]
    #[error("lock_memory is supported on Linux only")]
    Unsupported,
}

/// Locks every present and future page of the process in RAM. Call before secrets are loaded.
pub fn lock_all() -> Result<(), MemoryLockError> {
    #[cfg(target_os = "linux")]
    {
        use rustix::mm::{mlockall, MlockAllFlags};
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

        let limit = getrlimit(Resource::Memlock);
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        let current = match setrlimit(Resource::Memlock, raised) {
            Ok(()) => limit.maximum,
            Err(_) => limit.current,
        };
        if let (Some(bytes), false) = (current, has_ipc_lock()) {
            return Err(MemoryLockError::LimitTooLow {
                limit_kib: bytes / 1024,
            });
        }
        mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE)
            .map_err(|e| MemoryLockError::Lock(e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    Err(MemoryLockError::Unsupported)
}

/// Whether the process's effective capabilities include `CAP_IPC_LOCK` (bit 14 of `CapEff` in
/// `/proc/self/status`).
#[cfg(target_os = "linux")]
fn has_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_or_says_why() {
        // Either outcome is legitimate on a test machine; what must hold is that an unlimited
        // limit or CAP_IPC_LOCK is required before anything is locked.
        match lock_all() {
            Ok(()) => {
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let locked_kib: u64 = status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmLck:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0);
                assert!(locked_kib > 0, "lock_all succeeded but VmLck is 0");
                rustix::mm::munlockall().expect("munlockall");
            }
            Err(MemoryLockError::LimitTooLow { .. }) => assert!(!has_ipc_lock()),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
}
