//! Observe: what the server counts ([`metrics`]) and the HTTP endpoint that shows it with the
//! health checks ([`http`]), and the audit log ([`audit`]). A leaf every room may use.

pub(crate) mod audit;
pub(crate) mod http;
pub mod metrics;
