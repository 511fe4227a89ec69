//! umbrald's scheduling decisions, free of I/O (as `quinn-proto` is to `quinn`).
//!
//! Nothing here reads a clock, spawns a thread or task, or touches the network or `/proc`:
//! time and observations are arguments, and the server's async scheduler task
//! (`umbrald-server`'s `dispatch` room) feeds them in and carries out the answers. Every rule
//! is unit-tested without a runtime.
//!
//! - [`batcher`]: the bounded, priority-ordered queue that forms batches.
//! - [`admission`]: the count of queued items against the queue's capacity, decided at once
//!   by the stream tasks.
//! - [`limits`]: per-client token buckets (requests and items per second) and requests in
//!   flight, in a table of bounded size.
//! - [`rates`]: the measured throughput of one CPU worker and of the GPU lane.
//! - [`idle`]: how many idle cores the machine had lately, and the gate that lets `auto`'s CPU
//!   workers use only those.
//! - [`split`]: the CPU/GPU split as one function, [`split::plan`], of the queue, the CPU
//!   pool, the GPU lane and the idle gate; and the CPU workers' priority when they scavenge.

pub mod admission;
pub mod batcher;
pub mod idle;
pub mod limits;
pub mod rates;
pub mod split;

pub use admission::Admission;
pub use batcher::{Batcher, BatcherConfig, Dequeued, QueueEntry};
pub use idle::{CpuTimes, IdleGate};
pub use limits::{ClientLimits, ClientTable, Refused};
pub use rates::Rates;
pub use split::{plan, CpuView, LaneView, Plan, View};
