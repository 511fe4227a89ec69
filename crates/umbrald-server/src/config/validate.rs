//! Value ranges and consistency between values.

use super::{Config, PolicyCheck};

/// Most device pipelines `[gpu.tuning] pipelines` may ask for.
pub const MAX_GPU_PIPELINES: usize = 128;

/// A value out of range, or values inconsistent with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The keys involved.
    pub keys: &'static [&'static str],
    /// What is wrong.
    pub message: &'static str,
}

/// Every violation in `config`.
pub(crate) fn violations(config: &Config) -> Vec<Violation> {
    let l = &config.limits;
    let b = &config.batcher;
    let g = &config.gpu;
    let n = &config.nucypher;
    let upstream = n.upstream.as_deref().map(str::trim);
    let a = &config.access;
    let checks: [(bool, &'static [&'static str], &'static str); 25] = [
        (
            l.max_request_bytes >= 1024,
            &["limits.max_request_bytes"],
            "limits.max_request_bytes must be at least 1024",
        ),
        (
            l.max_request_bytes <= 1 << 30,
            &["limits.max_request_bytes"],
            "limits.max_request_bytes must be at most 1 GiB",
        ),
        (
            l.max_items_per_request >= 1,
            &["limits.max_items_per_request"],
            "limits.max_items_per_request must be at least 1",
        ),
        (
            l.max_policies_per_request >= 1,
            &["limits.max_policies_per_request"],
            "limits.max_policies_per_request must be at least 1",
        ),
        (
            l.max_streams_per_connection >= 1,
            &["limits.max_streams_per_connection"],
            "limits.max_streams_per_connection must be at least 1",
        ),
        (
            l.max_connections >= 1,
            &["limits.max_connections"],
            "limits.max_connections must be at least 1",
        ),
        (
            l.stream_read_timeout_ms >= 1,
            &["limits.stream_read_timeout_ms"],
            "limits.stream_read_timeout_ms must be at least 1",
        ),
        (
            l.idle_timeout_ms >= 1,
            &["limits.idle_timeout_ms"],
            "limits.idle_timeout_ms must be at least 1",
        ),
        (
            a.allowed_clients
                .iter()
                .all(|key| super::parse_sha256_hex(key).is_some()),
            &["access.allowed_clients"],
            "access.allowed_clients must hold SHA-256 public-key fingerprints, 64 hex digits \
             each (docs/SECURITY.md#access-control shows how to read one)",
        ),
        (
            a.max_clients >= 1,
            &["access.max_clients"],
            "access.max_clients must be at least 1",
        ),
        (
            b.max_batch_items >= 1,
            &["batcher.max_batch_items"],
            "batcher.max_batch_items must be at least 1",
        ),
        (
            b.max_queue_items >= l.max_items_per_request,
            &["batcher.max_queue_items", "limits.max_items_per_request"],
            "batcher.max_queue_items must be at least limits.max_items_per_request",
        ),
        (
            (0..=19).contains(&config.workers.nice),
            &["workers.nice"],
            "workers.nice must be within 0..=19",
        ),
        (
            (1..=8).contains(&g.tuning.batches_in_flight),
            &["gpu.tuning.batches_in_flight"],
            "gpu.tuning.batches_in_flight must be within 1..=8",
        ),
        (
            g.tuning.pipelines <= MAX_GPU_PIPELINES,
            &["gpu.tuning.pipelines"],
            "gpu.tuning.pipelines must be within 0..=128",
        ),
        (
            config.tls.cert.is_some() == config.tls.key.is_some(),
            &["tls.cert", "tls.key"],
            "tls.cert and tls.key must be given together",
        ),
        (
            g.audit_samples >= 1,
            &["gpu.audit_samples"],
            "gpu.audit_samples must be at least 1",
        ),
        (
            g.unhealthy_after >= 1,
            &["gpu.unhealthy_after"],
            "gpu.unhealthy_after must be at least 1",
        ),
        (
            g.reprobe_after_ms >= 1,
            &["gpu.reprobe_after_ms"],
            "gpu.reprobe_after_ms must be at least 1",
        ),
        (
            upstream.is_none() || n.https_listen.is_some(),
            &["nucypher.upstream", "nucypher.https_listen"],
            "nucypher.upstream needs nucypher.https_listen (it is reached through the HTTPS \
             endpoint)",
        ),
        (
            match upstream {
                None => true,
                Some(u) => u.starts_with("https://") || u.starts_with("http://"),
            },
            &["nucypher.upstream"],
            "nucypher.upstream must be an http:// or https:// URL",
        ),
        (
            !upstream.is_some_and(|u| u.starts_with("https://"))
                || n.upstream_public_key_sha256.is_some(),
            &["nucypher.upstream", "nucypher.upstream_public_key_sha256"],
            "an https:// nucypher.upstream needs nucypher.upstream_public_key_sha256 (the \
             SHA-256 of the public key its certificate holds; docs/NUCYPHER.md shows how to \
             read it)",
        ),
        (
            !config
                .audit
                .path
                .as_ref()
                .is_some_and(|p| p.as_os_str().is_empty()),
            &["audit.path"],
            "audit.path must not be empty (leave it unset for no audit log)",
        ),
        (
            config.audit.keep <= 1000,
            &["audit.keep"],
            "audit.keep must be at most 1000",
        ),
        (
            n.policy_check == PolicyCheck::None || upstream.is_some(),
            &["nucypher.policy_check", "nucypher.upstream"],
            "nucypher.policy_check = \"upstream\" needs nucypher.upstream",
        ),
    ];
    checks
        .into_iter()
        .filter(|(ok, _, _)| !ok)
        .map(|(_, keys, message)| Violation { keys, message })
        .collect()
}
