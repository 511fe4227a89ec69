//! Fault injection for tests, compiled only with the `fault-injection` feature (never in a
//! default build): capsules that, once armed, make the CPU worker that computes a batch holding
//! one of them panic inside the batch's computation.

use std::sync::{Mutex, PoisonError};

/// Armed capsules, by their bytes as received.
static POISONED_CAPSULES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Makes every CPU-worker batch that holds an item with exactly these capsule bytes panic,
/// until [`disarm`]. Process-wide: use capsules no other test sends.
pub fn panic_on_capsule(capsule: &[u8]) {
    poisoned().push(capsule.to_vec());
}

/// Stops panicking on `capsule`.
pub fn disarm(capsule: &[u8]) {
    poisoned().retain(|c| c != capsule);
}

/// Panics when any of `capsules` is armed (called by a CPU worker inside its batch's
/// computation).
pub(crate) fn panic_if_armed<'a>(mut capsules: impl Iterator<Item = &'a [u8]>) {
    let armed = {
        let poisoned = poisoned();
        !poisoned.is_empty() && capsules.any(|c| poisoned.iter().any(|p| p == c))
    };
    if armed {
        panic!("injected fault: a worker panics on an armed capsule");
    }
}

fn poisoned() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    POISONED_CAPSULES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}
