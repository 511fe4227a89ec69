//! Test-only hook for the constant-time check (`examples/ctime.rs`, `scripts/check-ctime.sh`),
//! compiled only with the `ctime-taint` feature, never in a production build.
//!
//! The check marks every secret scalar undefined for valgrind memcheck ("secret taint", as
//! libsecp256k1's `ctime_tests`). The kfrag's key lives behind [`crate::VerifiedKeyFrag`] and
//! the proof nonces are drawn inside the engine, so this module gives the check their
//! addresses, and the addresses of the few secret-derived flags that are public by design
//! ([`crate::declassify`]); it reads no value and changes no behaviour.

use std::sync::OnceLock;

use k256::Scalar;

/// Called with every batch's freshly drawn nonces, before any use of them.
pub static ON_NONCES: OnceLock<fn(&[Scalar])> = OnceLock::new();

/// Called by [`crate::declassify`] with the address and size of a value that is derived from a
/// secret but public by design (see `docs/measurements/2026-12-07-ctime/README.md`).
pub static ON_DECLASSIFY: OnceLock<fn(*const u8, usize)> = OnceLock::new();

/// Runs [`ON_DECLASSIFY`], if set, on a copy of `value` and returns the copy (its address
/// escapes mutably, so the compiler reads it back rather than reusing a register).
pub(crate) fn declassify<T: Copy>(value: T) -> T {
    let mut copy = value;
    if let Some(hook) = ON_DECLASSIFY.get() {
        hook(&mut copy as *mut T as *const u8, std::mem::size_of::<T>());
    }
    copy
}

/// Runs [`ON_DECLASSIFY`], if set, on `values` where they are (a mutable borrow, so the compiler
/// reads them back from memory after the hook).
pub(crate) fn declassify_in_place<T: Copy>(values: &mut [T]) {
    if let Some(hook) = ON_DECLASSIFY.get() {
        hook(
            values.as_mut_ptr() as *const u8,
            std::mem::size_of_val(values),
        );
    }
}

/// Runs [`ON_NONCES`], if set.
pub(crate) fn nonces_drawn(nonces: &[Scalar]) {
    if let Some(hook) = ON_NONCES.get() {
        hook(nonces);
    }
}

/// The kfrag's secret scalar `rk`, by reference (so the check can taint it in place).
pub fn kfrag_key(kfrag: &crate::KeyFrag) -> &Scalar {
    &kfrag.key
}
