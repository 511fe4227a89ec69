//! Dispatch: the async glue between ingress and the workers.
//!
//! One scheduler task ([`scheduler`]) owns the queue. It feeds what it observes (the queue,
//! the free CPU workers, the GPU lane, the idle cores) to the sans-IO
//! [`umbrald_scheduling::plan`] and carries out the plan: it forms the batches and hands them
//! to `exec`'s workers. [`alarm`] wakes it for the next due batch with sub-millisecond
//! precision; [`idle`] reads the machine's idle cores for `auto`'s idle gate.

pub(crate) mod alarm;
pub(crate) mod idle;
pub(crate) mod scheduler;

pub(crate) use scheduler::{spawn, GpuDispatch, Rejected, SchedulerHandle};
