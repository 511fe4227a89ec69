//! Shared test fixtures: a real umbrald server in-process, fake nodes that proxy to it (slowly,
//! or tampering with the cfrag), and an address where nothing listens.

#![allow(dead_code)] // each test file uses a subset

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use umbrald_client::{Client, ClientOptions, Fingerprint, NodeSpec, Trust};
use umbrald_proto::{decode, encode, Response};
use umbrald_server::{Config, RunningServer, Server};

/// A fresh, unique temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "umbrald-client-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A real server on an ephemeral loopback port, one worker, metrics enabled.
pub async fn start_server(data_dir: &std::path::Path) -> RunningServer {
    Server::start(Config::ephemeral(data_dir, 1), None)
        .await
        .expect("server starts")
}

/// The node spec that pins `server`'s certificate.
pub fn spec_of(server: &RunningServer) -> NodeSpec {
    NodeSpec {
        addr: server.local_addr(),
        trust: Trust::Fingerprint(Fingerprint(server.cert_fingerprint())),
    }
}

/// A loopback address where (almost surely) nothing listens.
pub fn dead_addr() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe socket");
    socket.local_addr().expect("probe addr")
}

/// What a fake node does with each answer from the real server.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Flip the last byte of every cfrag (the low byte of the kfrag signature's `s`): the cfrag
    /// still parses but no longer verifies.
    pub tamper: bool,
}

/// A fake appliance: forwards each request to a real server and answers with its (possibly
/// delayed or tampered) response.
pub struct FakeNode {
    /// Where it listens.
    pub spec: NodeSpec,
    endpoint: quinn::Endpoint,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"fake node done");
    }
}

/// Starts a fake node in front of `upstream`.
pub fn fake_node(upstream: &RunningServer, behaviour: Behaviour) -> FakeNode {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert_der: CertificateDer<'static> = certified.cert.der().clone();
    let fingerprint = Fingerprint::of_der(cert_der.as_ref());
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key.into())
        .expect("server cert");
    crypto.alpn_protocols = vec![umbrald_proto::ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(crypto).expect("quic crypto");
    let config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr"))
        .expect("fake endpoint");
    let addr = endpoint.local_addr().expect("fake addr");
    let upstream = Client::new(
        upstream.local_addr(),
        &Trust::Fingerprint(Fingerprint(upstream.cert_fingerprint())),
        ClientOptions::default(),
    )
    .expect("upstream client");
    let accepting = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(request) = recv.read_to_end(1 << 20).await else {
                            return;
                        };
                        let Ok(raw) = upstream.round_trip_bytes(&request).await else {
                            return;
                        };
                        let answer = if behaviour.tamper { tamper(&raw) } else { raw };
                        tokio::time::sleep(behaviour.delay).await;
                        let _ = send.write_all(&answer).await;
                        let _ = send.finish();
                        // Keep the stream alive until the peer has read the answer.
                        let _ = send.stopped().await;
                    });
                }
            });
        }
    });
    FakeNode {
        spec: NodeSpec {
            addr,
            trust: Trust::Fingerprint(fingerprint),
        },
        endpoint,
    }
}

fn tamper(raw: &[u8]) -> Vec<u8> {
    let mut response: Response = decode(raw).expect("upstream response decodes");
    // The last byte of a whole cfrag (its kfrag signature) or of compact parts (`z`).
    for result in response.results.iter_mut().flatten() {
        if let Some(bytes) = result.cfrag.as_mut().or(result.parts.as_mut()) {
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x01;
            }
        }
    }
    encode(&response).expect("re-encode")
}
