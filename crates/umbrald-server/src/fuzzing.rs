//! The pure steps of request handling, reachable without sockets, for the fuzz targets in
//! `fuzz/`. Not a stable API: it exists only with the `fuzzing` feature.

use std::time::Duration;

use umbrald_nucypher::NucypherError;
use umbrald_proto::{ErrorCode, Request};

use crate::ingress::{native, Limits};

/// Why the `umbrald/1` ingress refuses request bytes before queueing any work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeRefusal {
    /// The request's id when it could be read, else 0.
    pub id: u64,
    /// The error code the client is answered with.
    pub code: ErrorCode,
    /// The message the client is answered with.
    pub message: String,
}

/// Decodes and validates `umbrald/1` request bytes as the QUIC ingress does, under limits of
/// `max_items` items and `max_policies` policies per request.
pub fn native_request(
    bytes: &[u8],
    max_items: usize,
    max_policies: usize,
) -> Result<Request, NativeRefusal> {
    let limits = Limits {
        max_request_bytes: usize::MAX,
        max_items_per_request: max_items,
        max_policies_per_request: max_policies,
        max_connections: 1,
        stream_timeout: Duration::from_secs(1),
    };
    let refused = |r: crate::ingress::reply::Refusal| NativeRefusal {
        id: r.id,
        code: r.code,
        message: r.message,
    };
    let request = native::decode(bytes).map_err(refused)?;
    native::validate(&request, &limits).map_err(refused)?;
    Ok(request)
}

/// The HTTP status the HTTPS listener answers a NuCypher refusal with.
pub fn https_status(code: ErrorCode, cause: Option<&NucypherError>) -> u16 {
    crate::ingress::https::status_of(code, cause).as_u16()
}
