//! A minimal `umbrald/1` client for tests, examples and measurements: it pins the server's
//! certificate by SHA-256 fingerprint and sends one request per bidirectional stream.
//!
//! This is not the client library (that is `umbrald-client`): no retries, no threshold logic,
//! no connection pooling. It exists so that the server can be exercised end to end, including
//! with deliberately broken traffic ([`TestClient::open`] hands out raw streams).

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{Connection, Endpoint, RecvStream, SendStream};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use umbrald_proto::{Request, Response};

use crate::tls;

/// Largest response the test client reads.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why a test-client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestClientError {
    /// Building the TLS configuration failed.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The client socket could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
    /// The connection attempt failed before the handshake.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing the request failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// The stream was already closed.
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    /// Reading the response failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadToEndError),
    /// Encoding the request or decoding the response failed.
    #[error("proto: {0}")]
    Proto(#[from] umbrald_proto::ProtoError),
}

/// One QUIC connection to a server, with its own client endpoint.
#[derive(Debug)]
pub struct TestClient {
    endpoint: Endpoint,
    conn: Connection,
}

impl TestClient {
    /// Connects to `addr`, accepting only a server certificate whose SHA-256 is `fingerprint`.
    pub async fn connect(addr: SocketAddr, fingerprint: [u8; 32]) -> Result<Self, TestClientError> {
        Self::connect_with(addr, fingerprint, None).await
    }

    /// Like [`TestClient::connect`], presenting a client certificate chain and key when given
    /// (for servers that require mutual TLS).
    pub async fn connect_with(
        addr: SocketAddr,
        fingerprint: [u8; 32],
        client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Self, TestClientError> {
        let verifier = tls::PinnedVerifier::new(tls::Pin::Certificate(fingerprint));
        let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut crypto = match client_auth {
            Some((certs, key)) => builder.with_client_auth_cert(certs, key)?,
            None => builder.with_no_client_auth(),
        };
        crypto.alpn_protocols = vec![umbrald_proto::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let bind: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        };
        let mut endpoint = Endpoint::client(bind)?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let conn = endpoint.connect(addr, "localhost")?.await?;
        Ok(Self { endpoint, conn })
    }

    /// Sends `req` on a new stream and decodes the response.
    pub async fn call(&self, req: &Request) -> Result<Response, TestClientError> {
        let bytes = self.call_raw(&umbrald_proto::encode(req)?).await?;
        Ok(umbrald_proto::decode(&bytes)?)
    }

    /// Sends raw bytes as a request on a new stream and returns the raw response bytes.
    pub async fn call_raw(&self, request: &[u8]) -> Result<Vec<u8>, TestClientError> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        send.write_all(request).await?;
        send.finish()?;
        Ok(recv.read_to_end(MAX_RESPONSE_BYTES).await?)
    }

    /// Opens a raw stream for tests that misbehave on purpose.
    pub async fn open(&self) -> Result<(SendStream, RecvStream), TestClientError> {
        Ok(self.conn.open_bi().await?)
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Closes the connection and waits for the close to reach the server.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"done");
        self.endpoint.wait_idle().await;
    }
}

/// Items of one batch, built outside the clock as the server builds them from requests, for
/// measuring the server's own per-item work around [`umbrald_core::Engine::reencrypt_batch`]:
/// the per-item checks, the policy lookup and the hand-over of every result to its request —
/// the work a GPU-lane host thread does besides the engine's (the `throughput` and
/// `host_part` examples).
#[derive(Debug)]
pub struct PreparedBatch {
    items: Vec<crate::work::WorkItem>,
    answers: Vec<tokio::sync::oneshot::Receiver<Vec<umbrald_proto::ItemResult>>>,
}

impl PreparedBatch {
    /// `capsules` split into requests of `per_request` items (at least 1), each request naming
    /// `policy` (its own copy, as on the wire) and asking for compact cfrags when `compact`.
    pub fn new(
        capsules: &[Vec<u8>],
        policy: &umbrald_proto::Policy,
        per_request: usize,
        compact: bool,
    ) -> Self {
        let mut items = Vec::with_capacity(capsules.len());
        let mut answers = Vec::new();
        for (id, chunk) in (0u64..).zip(capsules.chunks(per_request.max(1))) {
            let request = Request {
                v: umbrald_proto::PROTOCOL_VERSION,
                id,
                policies: vec![policy.clone()],
                items: chunk
                    .iter()
                    .map(|capsule| umbrald_proto::Item {
                        capsule: capsule.clone(),
                        policy: 0,
                    })
                    .collect(),
                deadline_ms: None,
                priority: None,
                compact_cfrags: Some(compact),
            };
            let (_, rx, work) =
                crate::ingress::native::into_work(request, std::time::Instant::now());
            items.extend(work);
            answers.push(rx);
        }
        Self { items, answers }
    }

    /// Items in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch has no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Computes the batch as a worker does; returns the items given to the engine.
    pub fn process(&self, engine: &umbrald_core::Engine) -> usize {
        crate::exec::compute::process(engine, self.items.iter(), std::time::Instant::now())
    }

    /// Drops the items (what the worker does after a batch) and returns how many successful
    /// results the requests received.
    pub fn finish(self) -> usize {
        let Self { items, answers } = self;
        drop(items);
        answers
            .into_iter()
            .filter_map(|mut rx| rx.try_recv().ok())
            .flatten()
            .filter(|r| r.error.is_none())
            .count()
    }
}
