//! umbrald's wire protocol (`umbrald/1`), shared by the server and the client.
//!
//! One QUIC bidirectional stream carries one request and one response. Both are MessagePack
//! maps with named fields (see `docs/PROTOCOL.md`). This crate holds the message types, the
//! stable error codes and the protocol constants; it knows nothing of sockets.

use serde::{Deserialize, Serialize};

/// ALPN protocol identifier negotiated in the TLS 1.3 handshake.
pub const ALPN: &[u8] = b"umbrald/1";

/// The only protocol version this crate speaks (`v` field).
pub const PROTOCOL_VERSION: u32 = 1;

/// The server's default UDP port.
pub const DEFAULT_PORT: u16 = 4433;

/// QUIC application error codes that the server puts on stream resets, stream stops and
/// connection closes. They carry no detail; a response, when one is sent, says more.
pub mod app_codes {
    /// Normal: a graceful connection close.
    pub const NO_ERROR: u32 = 0;
    /// The request was not completely received within the server's read timeout; the server
    /// reset the stream without a response.
    pub const REQUEST_TIMEOUT: u32 = 1;
    /// The request exceeded the server's byte limit; the server stopped reading it and answers
    /// `too_large` on the same stream.
    pub const TOO_LARGE: u32 = 2;
    /// The server is shutting down (connection close after in-flight requests are answered).
    pub const SHUTTING_DOWN: u32 = 3;
    /// The client did not take the response within the server's write timeout.
    pub const WRITE_TIMEOUT: u32 = 4;
    /// The client's certificate is no longer allowed (a reload of `[access] allowed_clients`
    /// removed it): the server closes the connection at the client's next request.
    pub const NOT_ALLOWED: u32 = 5;
}

/// A batched re-encryption request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version, [`PROTOCOL_VERSION`].
    pub v: u32,
    /// Caller-chosen identifier, echoed in the response.
    pub id: u64,
    /// The policies (kfrag and keys) that items refer to by index.
    pub policies: Vec<Policy>,
    /// The capsules to re-encrypt, each naming its policy.
    pub items: Vec<Item>,
    /// Time budget in milliseconds from when the server read the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u32>,
    /// Scheduling priority: higher is served first. Absent means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// `true` asks for each cfrag as its [`CFRAG_PARTS_LEN`] capsule-specific bytes
    /// ([`ItemResult::parts`]) instead of all 381: the rest of a cfrag is copied from the
    /// kfrag the request sent. Absent means `false`; a server that predates the field ignores
    /// it and answers whole cfrags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_cfrags: Option<bool>,
}

/// One re-encryption policy: a kfrag and the three public keys it is verified against.
/// All fields are umbral-pre 0.11 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `KeyFrag` (MessagePack, 310 bytes).
    #[serde(with = "serde_bytes")]
    pub kfrag: Vec<u8>,
    /// Alice's delegating public key (33-byte compressed point).
    #[serde(with = "serde_bytes")]
    pub delegating_pk: Vec<u8>,
    /// Bob's receiving public key (33-byte compressed point).
    #[serde(with = "serde_bytes")]
    pub receiving_pk: Vec<u8>,
    /// The kfrag signer's verifying key (33-byte compressed point).
    #[serde(with = "serde_bytes")]
    pub verifying_pk: Vec<u8>,
}

/// One capsule to re-encrypt under `policies[policy]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// `Capsule` (MessagePack, 105 bytes).
    #[serde(with = "serde_bytes")]
    pub capsule: Vec<u8>,
    /// Index into the request's `policies`.
    pub policy: u32,
}

/// The answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Protocol version, [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The request's `id` (0 when the request could not be read far enough to know it).
    pub id: u64,
    /// One entry per item, in item order; absent when `error` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<ItemResult>>,
    /// A request-level failure; absent when `results` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

/// Length of a cfrag's capsule-specific parts ([`ItemResult::parts`]): `E1`, `V1`, `E2`, `V2`
/// and `U2` (33-byte compressed points) and `z` (a 32-byte scalar), in that order.
pub const CFRAG_PARTS_LEN: usize = 5 * 33 + 32;

/// The outcome of one item: exactly one of `cfrag`, `parts` and `error` is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// `CapsuleFrag` (MessagePack, 381 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub cfrag: Option<Vec<u8>>,
    /// The cfrag's capsule-specific parts ([`CFRAG_PARTS_LEN`] bytes), answered instead of
    /// `cfrag` when the request set `compact_cfrags`. The kfrag's id, precursor, commitment
    /// and signature for the receiver complete it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub parts: Option<Vec<u8>>,
    /// Why this item failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

impl ItemResult {
    /// A successful item, answered as a whole cfrag.
    pub fn ok(cfrag: Vec<u8>) -> Self {
        Self {
            cfrag: Some(cfrag),
            parts: None,
            error: None,
        }
    }

    /// A successful item, answered as the cfrag's capsule-specific parts.
    pub fn ok_parts(parts: Vec<u8>) -> Self {
        Self {
            cfrag: None,
            parts: Some(parts),
            error: None,
        }
    }

    /// A failed item.
    pub fn err(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            cfrag: None,
            parts: None,
            error: Some(WireError::new(code, message)),
        }
    }
}

/// An error as it travels on the wire: a stable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Stable machine-readable code, one of [`ErrorCode`]'s strings.
    pub code: String,
    /// Human-readable detail; never contains secrets.
    pub message: String,
}

impl WireError {
    /// Builds a wire error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_str().to_owned(),
            message: message.into(),
        }
    }
}

/// The stable error codes of `umbrald/1`. Each is also a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is not a valid MessagePack request map.
    Malformed,
    /// The request's `v` is not one this server speaks.
    UnsupportedVersion,
    /// The request exceeds a configured limit (bytes or items).
    TooLarge,
    /// A capsule failed to parse or its validity check failed.
    InvalidCapsule,
    /// A kfrag or policy key failed to parse.
    InvalidKfrag,
    /// A kfrag's commitment or signature did not verify against the policy keys.
    KfragVerificationFailed,
    /// The server's queue is full; retry later.
    Overloaded,
    /// The request's deadline passed before its items were computed.
    DeadlineExceeded,
    /// A condition-carrying NuCypher request; conditions are not evaluated yet.
    ConditionsUnsupported,
    /// A server-side failure that is not the client's fault.
    Internal,
    /// The client exceeded its own limit (`[access]`: requests or items per second, or
    /// requests in flight); nothing was computed. Retry after a pause.
    RateLimited,
}

impl ErrorCode {
    /// Every code, for metric pre-registration and docs.
    pub const ALL: [ErrorCode; 11] = [
        Self::Malformed,
        Self::UnsupportedVersion,
        Self::TooLarge,
        Self::InvalidCapsule,
        Self::InvalidKfrag,
        Self::KfragVerificationFailed,
        Self::Overloaded,
        Self::DeadlineExceeded,
        Self::ConditionsUnsupported,
        Self::Internal,
        Self::RateLimited,
    ];

    /// The code's wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedVersion => "unsupported_version",
            Self::TooLarge => "too_large",
            Self::InvalidCapsule => "invalid_capsule",
            Self::InvalidKfrag => "invalid_kfrag",
            Self::KfragVerificationFailed => "kfrag_verification_failed",
            Self::Overloaded => "overloaded",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::ConditionsUnsupported => "conditions_unsupported",
            Self::Internal => "internal",
            Self::RateLimited => "rate_limited",
        }
    }

    /// Parses a wire string; `None` for codes this version does not know.
    pub fn from_wire(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// Failure to encode or decode a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The bytes are not a MessagePack map of the expected shape.
    #[error("malformed message: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// Serialization failed (should not happen for well-formed values).
    #[error("cannot encode message: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Encodes a message as a MessagePack map with named fields.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    Ok(rmp_serde::to_vec_named(msg)?)
}

/// Decodes a message from MessagePack bytes.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ProtoError> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// Just the envelope of a request: enough to answer `unsupported_version` with the right `id`
/// when the rest of the message is of an unknown shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    /// Protocol version.
    pub v: u32,
    /// Request id (0 when absent).
    #[serde(default)]
    pub id: u64,
}

mod opt_bytes {
    //! `Option<Vec<u8>>` as MessagePack bin.
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<serde_bytes::ByteBuf>::deserialize(d)?.map(|b| b.into_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_as_named_map() {
        let req = Request {
            v: 1,
            id: 7,
            policies: vec![Policy {
                kfrag: vec![1; 310],
                delegating_pk: vec![2; 33],
                receiving_pk: vec![3; 33],
                verifying_pk: vec![4; 33],
            }],
            items: vec![Item {
                capsule: vec![5; 105],
                policy: 0,
            }],
            deadline_ms: Some(100),
            priority: None,
            compact_cfrags: None,
        };
        let bytes = encode(&req).expect("encode");
        // A map (fixmap marker 0x8_), not an array.
        assert_eq!(bytes[0] & 0xf0, 0x80);
        let back: Request = decode(&bytes).expect("decode");
        assert_eq!(back, req);
        let env: Envelope = decode(&bytes).expect("envelope");
        assert_eq!(env, Envelope { v: 1, id: 7 });
    }

    #[test]
    fn response_results_round_trip() {
        let resp = Response {
            v: 1,
            id: 9,
            results: Some(vec![
                ItemResult::ok(vec![9; 381]),
                ItemResult::err(ErrorCode::InvalidCapsule, "bad point"),
            ]),
            error: None,
        };
        let back: Response = decode(&encode(&resp).expect("encode")).expect("decode");
        assert_eq!(back, resp);
    }

    #[test]
    fn compact_fields_are_optional_in_both_directions() {
        // The request as a server without the field sees it: the extra key is skipped.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct OlderRequest {
            v: u32,
            id: u64,
            items: Vec<Item>,
        }
        let req = Request {
            v: 1,
            id: 3,
            policies: vec![],
            items: vec![Item {
                capsule: vec![5; 105],
                policy: 0,
            }],
            deadline_ms: None,
            priority: None,
            compact_cfrags: Some(true),
        };
        let bytes = encode(&req).expect("encode");
        let older: OlderRequest = decode(&bytes).expect("an older server reads it");
        assert_eq!((older.id, older.items.len()), (3, 1));
        assert_eq!(decode::<Request>(&bytes).expect("decode"), req);
        // Unset, the field is not written at all: the bytes are those of before.
        let plain = Request {
            compact_cfrags: None,
            ..req
        };
        assert!(!encode(&plain)
            .expect("encode")
            .windows(14)
            .any(|w| w == b"compact_cfrags"));

        let resp = Response {
            v: 1,
            id: 3,
            results: Some(vec![
                ItemResult::ok_parts(vec![7; CFRAG_PARTS_LEN]),
                ItemResult::ok(vec![9; 381]),
            ]),
            error: None,
        };
        let back: Response = decode(&encode(&resp).expect("encode")).expect("decode");
        assert_eq!(back, resp);
    }

    #[test]
    fn error_codes_round_trip_through_strings() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::from_wire("nope"), None);
        // The wire strings are stable: clients of every version match on them.
        let wire: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            wire,
            [
                "malformed",
                "unsupported_version",
                "too_large",
                "invalid_capsule",
                "invalid_kfrag",
                "kfrag_verification_failed",
                "overloaded",
                "deadline_exceeded",
                "conditions_unsupported",
                "internal",
                "rate_limited",
            ]
        );
    }
}
