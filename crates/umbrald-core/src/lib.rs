//! The sans-IO core of umbrald: the umbral-pre 0.11 wire codec, the batched re-encryption
//! engine, and the elliptic-curve backends it runs on.
//!
//! Nothing here touches a socket, a clock or a thread pool: callers hand in bytes and get
//! bytes back. The server crate schedules batches onto threads; the GPU crate provides another
//! [`backend::EcBackend`].
//!
//! ```
//! # use umbrald_core::Engine;
//! let engine = Engine::cpu();
//! assert_eq!(engine.backend_name(), "cpu");
//! ```

pub mod backend;
pub mod codec;
#[cfg(feature = "ctime-taint")]
#[doc(hidden)]
pub mod ctime_hook;
pub mod curve;
mod engine;
mod error;
pub mod hash;
mod kfrag_cache;

/// Marks a value derived from a secret but public by design (a flag the code branches on) as
/// such for the constant-time check (`crates/umbrald-ctime`), as libsecp256k1's
/// `secp256k1_declassify`. A no-op, compiled away, unless the test-only `ctime-taint` feature
/// is on.
#[inline(always)]
pub fn declassify<T: Copy>(value: T) -> T {
    #[cfg(feature = "ctime-taint")]
    let value = ctime_hook::declassify(value);
    value
}

/// [`declassify`] for values in place: a device's output read back to the host (the cfrag's
/// points and their flags), public by design once computed.
#[inline(always)]
pub fn declassify_in_place<T: Copy>(values: &mut [T]) {
    #[cfg(feature = "ctime-taint")]
    ctime_hook::declassify_in_place(values);
    #[cfg(not(feature = "ctime-taint"))]
    let _ = values;
}

pub use codec::{Capsule, CapsuleFrag, CodecError, KeyFrag, PublicKey, VerifiedKeyFrag};
pub use engine::{cfrag_parts_on_cpu, reencrypt_capsule_on_cpu, Engine, ReencryptItem};
pub use error::ItemError;
