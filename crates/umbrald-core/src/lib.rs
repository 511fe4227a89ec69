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
pub mod curve;
mod engine;
mod error;
pub mod hash;
mod kfrag_cache;

pub use codec::{Capsule, CapsuleFrag, CodecError, KeyFrag, PublicKey, VerifiedKeyFrag};
pub use engine::{cfrag_parts_on_cpu, reencrypt_capsule_on_cpu, Engine, ReencryptItem};
pub use error::ItemError;
