//! [`Client`]: one QUIC connection to one appliance, many requests pipelined on it, and a
//! transparent reconnect when the connection dies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, Endpoint, IdleTimeout, VarInt};
use umbrald_core::{CapsuleFrag, KeyFrag};
use umbrald_proto::{
    decode, encode, Item, Policy, Request, Response, CFRAG_PARTS_LEN, PROTOCOL_VERSION,
};

use crate::error::{ClientError, ServerError};
use crate::trust::{ClientIdentity, Trust, TrustError};

/// The outcome of one item of a request: the `CapsuleFrag` bytes (umbral-pre 0.11
/// MessagePack), or the server's reason for failing that item.
pub type ItemOutcome = Result<Vec<u8>, ServerError>;

/// Tunables of a [`Client`]. `Default` suits an appliance on a LAN.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The name sent in SNI and checked against the certificate when trusting a CA
    /// (ignored by fingerprint pinning).
    pub server_name: String,
    /// How long a handshake may take before the server counts as unreachable.
    pub connect_timeout: Duration,
    /// How long one request may wait for its response (stream open, send and receive).
    pub request_timeout: Duration,
    /// Idle time after which the connection is dropped (reconnected on the next request).
    pub idle_timeout: Duration,
    /// Keep-alive ping interval; `None` lets an idle connection time out.
    pub keep_alive: Option<Duration>,
    /// The largest response accepted, in bytes.
    pub max_response_bytes: usize,
    /// How many times a request is retried on a fresh connection when its connection is lost.
    /// Re-encryption is idempotent, so a retry is always safe.
    pub reconnect_attempts: u32,
    /// The client certificate and key to present when the server requires mutual TLS.
    pub identity: Option<ClientIdentity>,
    /// Ask for cfrags in their compact form (`compact_cfrags`: the capsule-specific 197 of
    /// their 381 bytes; the client completes them from the request's kfrags, so callers get
    /// the same whole cfrags either way). Halves the response's bytes; a server that predates
    /// the form answers whole cfrags.
    pub compact_cfrags: bool,
    /// Interleave concurrent requests' bytes packet by packet (QUIC fair queuing, the
    /// default) instead of sending each request whole before the next: `false` lets each of
    /// many concurrent large requests reach the server sooner.
    pub send_fairness: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            server_name: "localhost".to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(5)),
            max_response_bytes: 64 << 20,
            reconnect_attempts: 1,
            identity: None,
            compact_cfrags: true,
            send_fairness: true,
        }
    }
}

/// A re-encryption request before the client gives it a version and an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencryptRequest {
    /// The policies that items refer to by index.
    pub policies: Vec<Policy>,
    /// The capsules to re-encrypt.
    pub items: Vec<Item>,
    /// Server-side time budget in milliseconds, if any.
    pub deadline_ms: Option<u32>,
    /// Scheduling priority (higher first), if any.
    pub priority: Option<u8>,
}

impl ReencryptRequest {
    /// The wire request under `id`, asking for compact cfrags if `compact_cfrags`.
    fn into_wire(self, id: u64, compact_cfrags: bool) -> Request {
        Request {
            v: PROTOCOL_VERSION,
            id,
            policies: self.policies,
            items: self.items,
            deadline_ms: self.deadline_ms,
            priority: self.priority,
            compact_cfrags: compact_cfrags.then_some(true),
        }
    }

    /// A request that re-encrypts every capsule (umbral-pre `Capsule` bytes) under one policy.
    pub fn new(policy: Policy, capsules: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let items = capsules
            .into_iter()
            .map(|capsule| Item { capsule, policy: 0 })
            .collect();
        Self {
            policies: vec![policy],
            items,
            deadline_ms: None,
            priority: None,
        }
    }

    /// Sets the server-side deadline.
    pub fn with_deadline_ms(mut self, ms: u32) -> Self {
        self.deadline_ms = Some(ms);
        self
    }

    /// Sets the scheduling priority.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }
}

/// A re-encryption request encoded once (an `umbrald_proto::Request` with a fixed id) to be
/// sent many times with [`Client::reencrypt_prepared`]. Cheap to clone: clones share the bytes.
///
/// Every send carries the same id. That is harmless, since each request travels on its own
/// stream and the answer is matched by stream, the id being only checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    bytes: Arc<[u8]>,
    id: u64,
    items: usize,
    compact: bool,
}

impl PreparedRequest {
    /// Encodes `request` under `id`, asking for compact cfrags if `compact_cfrags` (see
    /// [`ClientOptions::compact_cfrags`]). [`Client::prepare`] takes both from the client.
    pub fn new(
        request: ReencryptRequest,
        id: u64,
        compact_cfrags: bool,
    ) -> Result<Self, ClientError> {
        let items = request.items.len();
        let request = request.into_wire(id, compact_cfrags);
        Ok(Self {
            bytes: encode(&request)?.into(),
            id,
            items,
            compact: compact_cfrags,
        })
    }

    /// The encoded request, as sent.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The request's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How many items (capsules) the request carries.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Whether the request asks for compact cfrags.
    pub fn compact_cfrags(&self) -> bool {
        self.compact
    }

    /// Checks raw response bytes against this request and summarizes them, as
    /// [`Client::reencrypt_prepared`] does with what the server answers.
    pub fn summarize(&self, response: &[u8]) -> Result<ReencryptSummary, ClientError> {
        let response: LeanResponse<'_> = decode(response)?;
        if response.v != PROTOCOL_VERSION {
            return Err(ClientError::UnexpectedResponse(format!(
                "protocol version {} (expected {PROTOCOL_VERSION})",
                response.v
            )));
        }
        let id = self.id;
        // A server that could not read the request far enough answers with id 0.
        if response.id != id && !(response.id == 0 && response.error.is_some()) {
            return Err(ClientError::UnexpectedResponse(format!(
                "response id {} for request {id}",
                response.id
            )));
        }
        let results = match (response.results, response.error) {
            (None, Some(error)) => return Err(ClientError::Server(error.into())),
            (Some(results), None) => results,
            _ => {
                return Err(ClientError::UnexpectedResponse(
                    "response has neither or both of results and error".to_owned(),
                ))
            }
        };
        if results.count != self.items {
            return Err(ClientError::UnexpectedResponse(format!(
                "{} results for {} items",
                results.count, self.items
            )));
        }
        if let Some((i, bad)) = results.first_bad {
            return Err(ClientError::UnexpectedResponse(format!("item {i}: {bad}")));
        }
        if results.parts > 0 && !self.compact {
            return Err(ClientError::UnexpectedResponse(
                "compact parts for a request that did not ask for them".to_owned(),
            ));
        }
        Ok(ReencryptSummary {
            ok: results.cfrags + results.parts,
            item_errors: results.item_errors,
        })
    }
}

/// What the answer to a [`PreparedRequest`] said, without the cfrags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReencryptSummary {
    /// Items answered with a cfrag (whole or compact).
    pub ok: usize,
    /// The error code of every failed item, in item order (the server's messages are dropped).
    pub item_errors: Vec<String>,
}

/// A [`Response`] read in place: the envelope, and the results only counted and checked.
#[derive(serde::Deserialize)]
struct LeanResponse<'a> {
    v: u32,
    id: u64,
    #[serde(default)]
    results: Option<LeanResults>,
    #[serde(default, borrow)]
    error: Option<LeanError<'a>>,
}

/// A request-level [`umbrald_proto::WireError`], borrowed.
#[derive(serde::Deserialize)]
struct LeanError<'a> {
    #[serde(borrow)]
    code: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    message: std::borrow::Cow<'a, str>,
}

impl From<LeanError<'_>> for ServerError {
    fn from(e: LeanError<'_>) -> Self {
        Self {
            code: e.code.into_owned(),
            message: e.message.into_owned(),
        }
    }
}

/// One [`umbrald_proto::ItemResult`], borrowed (an item error's message is skipped).
#[derive(serde::Deserialize)]
struct LeanItem<'a> {
    #[serde(default, borrow)]
    cfrag: Option<&'a [u8]>,
    #[serde(default, borrow)]
    parts: Option<&'a [u8]>,
    #[serde(default, borrow)]
    error: Option<LeanItemError<'a>>,
}

#[derive(serde::Deserialize)]
struct LeanItemError<'a> {
    #[serde(borrow)]
    code: std::borrow::Cow<'a, str>,
}

/// The `results` array, each element checked as it is read and none kept.
#[derive(Default)]
struct LeanResults {
    count: usize,
    cfrags: usize,
    parts: usize,
    /// The first result that is not exactly one of a cfrag, parts or an error of the right
    /// length.
    first_bad: Option<(usize, &'static str)>,
    item_errors: Vec<String>,
}

impl<'de> serde::Deserialize<'de> for LeanResults {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LeanResults;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of item results")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<LeanResults, A::Error> {
                let mut out = LeanResults::default();
                while let Some(item) = seq.next_element::<LeanItem<'de>>()? {
                    let bad = match (item.cfrag, item.parts, item.error) {
                        (Some(c), None, None) if c.len() == CapsuleFrag::ENCODED_LEN => {
                            out.cfrags += 1;
                            None
                        }
                        (Some(_), None, None) => Some("a cfrag of the wrong length"),
                        (None, Some(p), None) if p.len() == CFRAG_PARTS_LEN => {
                            out.parts += 1;
                            None
                        }
                        (None, Some(_), None) => Some("compact parts of the wrong length"),
                        (None, None, Some(e)) => {
                            out.item_errors.push(e.code.into_owned());
                            None
                        }
                        _ => Some("not exactly one of cfrag, parts and error"),
                    };
                    if let (Some(bad), None) = (bad, out.first_bad) {
                        out.first_bad = Some((out.count, bad));
                    }
                    out.count += 1;
                }
                Ok(out)
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

/// A connection to one umbrald appliance.
///
/// Cheap to clone; clones share the connection. Any number of tasks may call
/// [`Client::reencrypt`] at once: each request travels on its own QUIC stream, so they are
/// pipelined on one connection and answered in whatever order the server finishes them. When
/// the connection is lost (server restart, idle timeout, network change) the next request opens
/// a new one, and a request caught by the loss is retried once on it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    options: ClientOptions,
    endpoint: Endpoint,
    quic_config: quinn::ClientConfig,
    current: Mutex<Option<Connection>>,
    connecting: tokio::sync::Mutex<Option<FailedAttempt>>,
    next_id: AtomicU64,
    handshakes: Mutex<Vec<Duration>>,
}

/// The last failed handshake, so that tasks queued behind it fail at once instead of each
/// waiting out its own connect timeout.
struct FailedAttempt {
    ended: Instant,
    error: ClientError,
}

impl Client {
    /// Connects to the appliance at `addr` with default options and waits for the handshake.
    pub async fn connect(addr: SocketAddr, trust: Trust) -> Result<Self, ClientError> {
        Self::connect_with(addr, &trust, ClientOptions::default()).await
    }

    /// Connects with the given options and waits for the handshake.
    pub async fn connect_with(
        addr: SocketAddr,
        trust: &Trust,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let client = Self::new(addr, trust, options)?;
        client.ensure_connected().await?;
        Ok(client)
    }

    /// Creates a client without connecting; the first request (or
    /// [`Client::ensure_connected`]) makes the handshake. Must be called inside a Tokio runtime.
    pub fn new(
        addr: SocketAddr,
        trust: &Trust,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let tls = trust.client_config_with(options.identity.as_ref())?;
        let quic_tls = QuicClientConfig::try_from(tls).map_err(|_| TrustError::NoQuicSuite)?;
        let mut quic_config = quinn::ClientConfig::new(Arc::new(quic_tls));
        quic_config.transport_config(Arc::new(transport_config(&options)));
        let bind: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = Endpoint::client(bind).map_err(ClientError::Bind)?;
        Ok(Self {
            inner: Arc::new(Inner {
                addr,
                options,
                endpoint,
                quic_config,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(None),
                next_id: AtomicU64::new(1),
                handshakes: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The appliance's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Makes sure a live connection exists, connecting (once, shared by concurrent callers) if
    /// needed.
    pub async fn ensure_connected(&self) -> Result<(), ClientError> {
        self.connection().await.map(drop)
    }

    /// The duration of every successful handshake so far, oldest first. Its length is the
    /// number of connections made: more than one means the client reconnected.
    pub fn handshake_times(&self) -> Vec<Duration> {
        lock(&self.inner.handshakes).clone()
    }

    /// Sends one re-encryption request and returns one outcome per item, in item order.
    ///
    /// `Err` means the request failed as a whole (transport, timeout, or a request-level
    /// rejection such as `overloaded`, see [`ClientError::Server`]); item-level failures such
    /// as an invalid capsule are `Err` entries inside the `Ok` vector. The returned cfrags are
    /// not verified: use [`crate::threshold`] or [`crate::actors::Bob`] for that.
    pub async fn reencrypt(
        &self,
        request: ReencryptRequest,
    ) -> Result<Vec<ItemOutcome>, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let request = request.into_wire(id, self.inner.options.compact_cfrags);
        let response = self.round_trip(&request).await?;
        check_response(response, &request)
    }

    /// Encodes `request` once, with a fixed id and this client's options (`compact_cfrags`
    /// as [`Client::reencrypt`] sets it), for [`Client::reencrypt_prepared`] to send any number
    /// of times.
    pub fn prepare(&self, request: ReencryptRequest) -> Result<PreparedRequest, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        PreparedRequest::new(request, id, self.inner.options.compact_cfrags)
    }

    /// Sends a [`PreparedRequest`] and returns only the outcome of each item: how many were
    /// answered and the codes of those that failed. For high-rate callers that do not need
    /// the cfrags (a load generator): the response is checked as [`Client::reencrypt`] checks
    /// it (version, id, one result per item, each exactly one of a whole cfrag, compact parts
    /// when asked for, or an error, of the right length) but read in place, without an
    /// allocation per item, and compact answers are not completed into cfrags. Nothing is
    /// verified cryptographically.
    ///
    /// Errors are those of [`Client::reencrypt`]: a request-level rejection is
    /// [`ClientError::Server`] with the server's code.
    pub async fn reencrypt_prepared(
        &self,
        request: &PreparedRequest,
    ) -> Result<ReencryptSummary, ClientError> {
        let raw = self.round_trip_bytes(request.bytes()).await?;
        request.summarize(&raw)
    }

    /// Sends a NuCypher `ReencryptionRequest` (`ReRq` 3.0 bytes, as nucypher-core writes them
    /// or [`umbrald_nucypher::build::encode_request`] builds them) to an appliance serving with
    /// node keys, and returns the cfrags of its `ReencryptionResponse` in capsule order, after
    /// checking the response's signature with the node's verifying key.
    ///
    /// The cfrags' own proofs are not checked here: Bob checks them against the policy's keys
    /// (`umbral_pre::CapsuleFrag::verify`). A refusal comes back as [`ClientError::Server`]
    /// with the `umbrald/1` error code (see `docs/PROTOCOL.md`).
    pub async fn reencrypt_nucypher(
        &self,
        request: &[u8],
        node_verifying_key: &[u8; 33],
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let parsed = umbrald_nucypher::ReencryptionRequest::parse(request)
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        let raw = self.round_trip_bytes(request).await?;
        if raw.starts_with(&umbrald_nucypher::RESPONSE_BRAND) {
            let response = umbrald_nucypher::ReencryptionResponse::parse(&raw)
                .map_err(|e| ClientError::UnexpectedResponse(e.to_string()))?;
            if !response.verify_signature(&parsed.capsules, node_verifying_key) {
                return Err(ClientError::UnexpectedResponse(
                    "the ReencryptionResponse's signature does not verify with the node's key"
                        .to_owned(),
                ));
            }
            return Ok(response.cfrags.iter().map(|c| c.to_vec()).collect());
        }
        match decode::<Response>(&raw)?.error {
            Some(error) => Err(ClientError::Server(error.into())),
            None => Err(ClientError::UnexpectedResponse(
                "neither a ReencryptionResponse nor an error".to_owned(),
            )),
        }
    }

    /// Sends an already-built request as is and returns the decoded response without checking
    /// it against the request. For tools and tests; applications want [`Client::reencrypt`].
    pub async fn round_trip(&self, request: &Request) -> Result<Response, ClientError> {
        let bytes = encode(request)?;
        let raw = self.round_trip_bytes(&bytes).await?;
        Ok(decode(&raw)?)
    }

    /// Sends raw request bytes on a new stream and returns the raw response bytes, retrying on
    /// a new connection when the connection is lost.
    pub async fn round_trip_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut retries_left = self.inner.options.reconnect_attempts;
        loop {
            let conn = self.connection().await?;
            let timeout = self.inner.options.request_timeout;
            let result = match tokio::time::timeout(timeout, self.exchange(&conn, bytes)).await {
                Ok(result) => result,
                Err(_) => Err(ClientError::Timeout(timeout)),
            };
            match result {
                Err(e) if e.is_connection_lost() && retries_left > 0 => {
                    tracing::debug!(addr = %self.inner.addr, error = %e, "connection lost; retrying");
                    retries_left -= 1;
                    self.forget(&conn);
                }
                Err(e) => {
                    if e.is_connection_lost() {
                        self.forget(&conn);
                    }
                    return Err(e);
                }
                Ok(response) => return Ok(response),
            }
        }
    }

    /// Closes the connection (if any) gracefully. Later requests reconnect.
    pub fn close(&self) {
        if let Some(conn) = lock(&self.inner.current).take() {
            conn.close(VarInt::from_u32(0), b"client closed");
        }
    }

    async fn exchange(&self, conn: &Connection, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        let addr = self.inner.addr;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|source| ClientError::Connection { addr, source })?;
        let written = match send.write_all(bytes).await {
            Ok(()) => send
                .finish()
                .map_err(|e| ClientError::Stream(e.to_string())),
            Err(quinn::WriteError::ConnectionLost(source)) => {
                return Err(ClientError::Connection { addr, source })
            }
            Err(quinn::WriteError::Stopped(code)) => Err(ClientError::StreamReset {
                code: code.into_inner(),
            }),
            Err(e) => Err(ClientError::Stream(e.to_string())),
        };
        // A server that rejects a request early (too large) may stop our send side and still
        // answer: prefer its answer over our write error.
        match read_to_end(&mut recv, self.inner.options.max_response_bytes).await {
            Ok(raw) => Ok(raw),
            Err(quinn::ReadToEndError::TooLong) => Err(ClientError::ResponseTooLarge(
                self.inner.options.max_response_bytes,
            )),
            Err(quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(source))) => {
                Err(ClientError::Connection { addr, source })
            }
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                written?;
                Err(ClientError::StreamReset {
                    code: code.into_inner(),
                })
            }
            Err(quinn::ReadToEndError::Read(e)) => {
                written?;
                Err(ClientError::Stream(e.to_string()))
            }
        }
    }

    fn live(&self) -> Option<Connection> {
        lock(&self.inner.current)
            .as_ref()
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }

    fn forget(&self, dead: &Connection) {
        let mut current = lock(&self.inner.current);
        if current.as_ref().map(Connection::stable_id) == Some(dead.stable_id()) {
            *current = None;
        }
    }

    async fn connection(&self) -> Result<Connection, ClientError> {
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let waited_since = Instant::now();
        let mut last_failure = self.inner.connecting.lock().await;
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        if let Some(failed) = last_failure.as_ref() {
            if failed.ended >= waited_since {
                if let Some(error) = duplicate(&failed.error) {
                    return Err(error);
                }
            }
        }
        match self.handshake().await {
            Ok(conn) => {
                *last_failure = None;
                *lock(&self.inner.current) = Some(conn.clone());
                Ok(conn)
            }
            Err(error) => {
                if let Some(copy) = duplicate(&error) {
                    *last_failure = Some(FailedAttempt {
                        ended: Instant::now(),
                        error: copy,
                    });
                }
                Err(error)
            }
        }
    }

    async fn handshake(&self) -> Result<Connection, ClientError> {
        let inner = &self.inner;
        let addr = inner.addr;
        let started = Instant::now();
        let connecting = inner
            .endpoint
            .connect_with(inner.quic_config.clone(), addr, &inner.options.server_name)
            .map_err(|source| ClientError::Connect { addr, source })?;
        let timeout = inner.options.connect_timeout;
        let conn = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => return Err(ClientError::ConnectTimeout { addr, timeout }),
            Ok(Err(source)) => return Err(ClientError::Connection { addr, source }),
            Ok(Ok(conn)) => conn,
        };
        let took = started.elapsed();
        lock(&inner.handshakes).push(took);
        tracing::debug!(%addr, ?took, "connected");
        Ok(conn)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(conn) = lock(&self.current).take() {
            conn.close(VarInt::from_u32(0), b"client dropped");
        }
    }
}

/// Reads `recv` to its end, at most `limit` bytes, appending its chunks in order to one
/// buffer. quinn's own `read_to_end` zero-fills a buffer of the final size and copies the
/// chunks into it; for responses of hundreds of KiB that fill costs a load generator much of its
/// CPU in page faults (docs/measurements/2026-11-performance-log.md).
async fn read_to_end(
    recv: &mut quinn::RecvStream,
    limit: usize,
) -> Result<Vec<u8>, quinn::ReadToEndError> {
    let mut out = Vec::new();
    while let Some(chunk) = recv
        .read_chunk(usize::MAX, true)
        .await
        .map_err(quinn::ReadToEndError::Read)?
    {
        if chunk.bytes.len() > limit - out.len() {
            return Err(quinn::ReadToEndError::TooLong);
        }
        out.extend_from_slice(&chunk.bytes);
    }
    Ok(out)
}

/// Checks that a response answers request `id` with `item_count` items and splits it into
/// per-item outcomes.
pub(crate) fn check_response(
    response: Response,
    request: &Request,
) -> Result<Vec<ItemOutcome>, ClientError> {
    let id = request.id;
    let item_count = request.items.len();
    if response.v != PROTOCOL_VERSION {
        return Err(ClientError::UnexpectedResponse(format!(
            "protocol version {} (expected {PROTOCOL_VERSION})",
            response.v
        )));
    }
    // A server that could not read the request far enough answers with id 0.
    if response.id != id && !(response.id == 0 && response.error.is_some()) {
        return Err(ClientError::UnexpectedResponse(format!(
            "response id {} for request {id}",
            response.id
        )));
    }
    match (response.results, response.error) {
        (None, Some(error)) => Err(ClientError::Server(error.into())),
        (Some(results), None) => {
            if results.len() != item_count {
                return Err(ClientError::UnexpectedResponse(format!(
                    "{} results for {item_count} items",
                    results.len()
                )));
            }
            let mut kfrags = KfragsOf::new(request);
            results
                .into_iter()
                .enumerate()
                .map(|(i, r)| match (r.cfrag, r.parts, r.error) {
                    (Some(cfrag), None, None) => Ok(Ok(cfrag)),
                    (None, Some(parts), None) => kfrags.complete(i, &parts).map(Ok),
                    (None, None, Some(error)) => Ok(Err(error.into())),
                    _ => Err(ClientError::UnexpectedResponse(format!(
                        "item {i} has not exactly one of cfrag, parts and error"
                    ))),
                })
                .collect()
        }
        _ => Err(ClientError::UnexpectedResponse(
            "response has neither or both of results and error".to_owned(),
        )),
    }
}

/// The kfrags of a request's policies, each parsed when an item first needs it, to complete
/// compact answers into whole cfrags.
struct KfragsOf<'r> {
    request: &'r Request,
    parsed: Vec<Option<KeyFrag>>,
}

impl<'r> KfragsOf<'r> {
    fn new(request: &'r Request) -> Self {
        Self {
            request,
            parsed: vec![None; request.policies.len()],
        }
    }

    /// Item `i`'s whole cfrag (umbral-pre bytes) from its capsule-specific `parts`.
    fn complete(&mut self, i: usize, parts: &[u8]) -> Result<Vec<u8>, ClientError> {
        let unexpected =
            |what: String| ClientError::UnexpectedResponse(format!("item {i}: {what}"));
        let p = self
            .request
            .items
            .get(i)
            .map_or(usize::MAX, |item| item.policy as usize);
        let (Some(slot), Some(policy)) = (self.parsed.get_mut(p), self.request.policies.get(p))
        else {
            return Err(unexpected(
                "a compact answer for an item without a policy".to_owned(),
            ));
        };
        let kfrag = match slot {
            Some(kfrag) => kfrag,
            None => slot.insert(KeyFrag::from_bytes(&policy.kfrag).map_err(|e| {
                unexpected(format!("a compact answer for an unreadable kfrag: {e}"))
            })?),
        };
        CapsuleFrag::from_parts(parts, kfrag)
            .map(|cfrag| cfrag.to_bytes().to_vec())
            .map_err(|e| unexpected(e.to_string()))
    }
}

fn transport_config(options: &ClientOptions) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    let idle_ms = u32::try_from(options.idle_timeout.as_millis()).unwrap_or(u32::MAX);
    transport.max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(idle_ms))));
    transport.keep_alive_interval(options.keep_alive);
    // The server never opens streams towards us.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(0));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    transport.send_fairness(options.send_fairness);
    transport
}

/// A copy of a connect failure for the tasks that queued behind it (`None` for kinds that
/// cannot be copied; those tasks then try for themselves).
fn duplicate(error: &ClientError) -> Option<ClientError> {
    match error {
        ClientError::ConnectTimeout { addr, timeout } => Some(ClientError::ConnectTimeout {
            addr: *addr,
            timeout: *timeout,
        }),
        ClientError::Connection { addr, source } => Some(ClientError::Connection {
            addr: *addr,
            source: source.clone(),
        }),
        ClientError::Connect { addr, source } => Some(ClientError::Connect {
            addr: *addr,
            source: source.clone(),
        }),
        _ => None,
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain replacements).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use umbrald_proto::{ErrorCode, ItemResult, WireError};

    /// A request of `items` items (policy 0, which need not be a real kfrag).
    fn request(id: u64, items: usize) -> Request {
        Request {
            v: PROTOCOL_VERSION,
            id,
            policies: vec![Policy {
                kfrag: vec![],
                delegating_pk: vec![],
                receiving_pk: vec![],
                verifying_pk: vec![],
            }],
            items: (0..items)
                .map(|_| Item {
                    capsule: vec![],
                    policy: 0,
                })
                .collect(),
            deadline_ms: None,
            priority: None,
            compact_cfrags: None,
        }
    }

    fn response(id: u64, results: Option<Vec<ItemResult>>, error: Option<WireError>) -> Response {
        Response {
            v: PROTOCOL_VERSION,
            id,
            results,
            error,
        }
    }

    #[test]
    fn results_split_into_item_outcomes() {
        let resp = response(
            5,
            Some(vec![
                ItemResult::ok(vec![1; 381]),
                ItemResult::err(ErrorCode::InvalidCapsule, "bad"),
            ]),
            None,
        );
        let outcomes = check_response(resp, &request(5, 2)).expect("ok");
        assert_eq!(outcomes[0], Ok(vec![1; 381]));
        let err = outcomes[1].clone().expect_err("item error");
        assert_eq!(err.known_code(), Some(ErrorCode::InvalidCapsule));
    }

    #[test]
    fn request_level_error_is_a_server_error_even_with_id_zero() {
        let err = check_response(
            response(0, None, Some(WireError::new(ErrorCode::Malformed, "junk"))),
            &request(5, 1),
        )
        .expect_err("rejected");
        assert!(matches!(err, ClientError::Server(ref e) if e.code == "malformed"));
        assert_eq!(err.label(), "malformed");
    }

    #[test]
    fn mismatched_responses_are_rejected() {
        let one = || Some(vec![ItemResult::ok(vec![1])]);
        assert!(matches!(
            check_response(response(6, one(), None), &request(5, 1)),
            Err(ClientError::UnexpectedResponse(_))
        ));
        assert!(matches!(
            check_response(response(5, one(), None), &request(5, 2)),
            Err(ClientError::UnexpectedResponse(_))
        ));
        assert!(matches!(
            check_response(response(5, None, None), &request(5, 1)),
            Err(ClientError::UnexpectedResponse(_))
        ));
        let both = ItemResult {
            cfrag: Some(vec![1]),
            parts: None,
            error: Some(WireError::new(ErrorCode::Internal, "x")),
        };
        assert!(matches!(
            check_response(response(5, Some(vec![both]), None), &request(5, 1)),
            Err(ClientError::UnexpectedResponse(_))
        ));
        let cfrag_and_parts = ItemResult {
            cfrag: Some(vec![1]),
            parts: Some(vec![2]),
            error: None,
        };
        assert!(matches!(
            check_response(
                response(5, Some(vec![cfrag_and_parts]), None),
                &request(5, 1)
            ),
            Err(ClientError::UnexpectedResponse(_))
        ));
        let mut wrong_version = response(5, one(), None);
        wrong_version.v = 2;
        assert!(check_response(wrong_version, &request(5, 1)).is_err());
    }

    /// Compact answers come back as umbral-pre's own cfrag bytes, each completed from the
    /// kfrag of its item's policy; parts that do not fit are an unexpected response.
    #[test]
    fn compact_answers_are_completed_from_the_request_kfrags() {
        use umbral_pre::{DefaultSerialize, SecretKey, Signer};
        let alice = SecretKey::random();
        let bob = SecretKey::random().public_key();
        let signer = Signer::new(SecretKey::random());
        let (capsule, _) = umbral_pre::encrypt(&alice.public_key(), b"compact").expect("encrypt");
        let kfrags = umbral_pre::generate_kfrags(&alice, &bob, &signer, 2, 2, true, true);
        let policy = |k: usize| Policy {
            kfrag: kfrags[k].to_bytes().expect("kfrag").to_vec(),
            delegating_pk: vec![],
            receiving_pk: vec![],
            verifying_pk: vec![],
        };
        // Items 0 and 2 under policy 1, item 1 under policy 0.
        let mut req = request(8, 3);
        req.policies = vec![policy(0), policy(1)];
        for (item, p) in req.items.iter_mut().zip([1, 0, 1]) {
            item.policy = p;
        }
        let expected: Vec<Vec<u8>> = [1, 0, 1]
            .into_iter()
            .map(|k| {
                let cfrag = umbral_pre::reencrypt(&capsule, kfrags[k].clone());
                cfrag.to_bytes().expect("cfrag").to_vec()
            })
            .collect();
        let parts = |bytes: &[u8]| {
            let parts = CapsuleFrag::from_bytes(bytes).expect("parse").to_parts();
            ItemResult::ok_parts(parts.to_vec())
        };
        let results = vec![
            parts(&expected[0]),
            parts(&expected[1]),
            ItemResult::ok(expected[2].clone()),
        ];
        let outcomes = check_response(response(8, Some(results), None), &req).expect("ok");
        let got: Vec<Vec<u8>> = outcomes.into_iter().map(|o| o.expect("cfrag")).collect();
        assert_eq!(got, expected);

        let short = ItemResult::ok_parts(vec![1; 196]);
        let short = vec![short, parts(&expected[1]), parts(&expected[2])];
        assert!(matches!(
            check_response(response(8, Some(short), None), &req),
            Err(ClientError::UnexpectedResponse(_))
        ));
        // A compact answer for a policy whose kfrag does not parse.
        let fake = request(9, 1);
        let answer = vec![parts(&expected[0])];
        assert!(matches!(
            check_response(response(9, Some(answer), None), &fake),
            Err(ClientError::UnexpectedResponse(_))
        ));
    }

    #[tokio::test]
    async fn nothing_listening_fails_within_the_connect_timeout() {
        // Bind a UDP socket and drop it so that the port is (almost surely) unused.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("probe")
            .port();
        let addr: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, port).into();
        let options = ClientOptions {
            connect_timeout: Duration::from_millis(200),
            ..Default::default()
        };
        let started = Instant::now();
        let err = Client::connect_with(
            addr,
            &Trust::Fingerprint(crate::Fingerprint([0; 32])),
            options,
        )
        .await
        .expect_err("nobody there");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(
            err,
            ClientError::ConnectTimeout { .. } | ClientError::Connection { .. }
        ));
        assert_eq!(
            err.label(),
            if matches!(err, ClientError::ConnectTimeout { .. }) {
                "connect"
            } else {
                "connection"
            }
        );
    }
}
