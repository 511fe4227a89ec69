//! The HTTPS endpoint (`[nucypher] https_listen`) in Rust: the golden nucypher-core request over
//! HTTP/1.1 (TLS 1.3 and 1.2) and HTTP/2, Ursula's status for each fault, hostile bodies
//! (slow, cut short, oversized, mis-sized), forwarding to an upstream node with a pinned
//! public key, and the upstream policy check. The nucypher 7.6.1 client test is
//! `crates/umbrald/tests/nucypher_https.rs`.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use umbral_pre::{DefaultDeserialize, PublicKey};
use umbrald_client::{Fingerprint, Trust};
use umbrald_nucypher::{NodeKeys, ReencryptionRequest, ReencryptionResponse};
use umbrald_server::config::PolicyCheck;
use umbrald_server::RunningServer;

const REQUEST: &[u8] =
    include_bytes!("../../umbrald-nucypher/tests/fixtures/reencryption_request.bin");
const KEYS: &str = include_str!("../../umbrald-nucypher/tests/fixtures/exchange_keys.json");

fn key(name: &str) -> Vec<u8> {
    let keys: serde_json::Value = serde_json::from_str(KEYS).expect("json");
    hex::decode(keys[name].as_str().expect("present")).expect("hex")
}

/// The fixture's node (its decrypting key) with a fresh signing key.
fn fixture_node() -> NodeKeys {
    let signing: [u8; 32] = NodeKeys::random().secret_bytes()[32..]
        .try_into()
        .expect("32");
    let decrypting: [u8; 32] = key("ursula_decrypting_sk").try_into().expect("32");
    NodeKeys::from_be_bytes(&decrypting, &signing).expect("keys")
}

/// `REQUEST` with `from` replaced by `to` (same length).
fn replaced(from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = REQUEST
        .windows(from.len())
        .position(|w| w == from)
        .expect("present");
    let mut b = REQUEST.to_vec();
    b[at..at + from.len()].copy_from_slice(to);
    b
}

fn with_conditions() -> Vec<u8> {
    replaced(b"[null, null]", b"[{\"x\":true}]")
}

async fn https_node(
    tag: &str,
    keys: NodeKeys,
    tune: impl FnOnce(&mut umbrald_server::Config),
) -> RunningServer {
    let mut config = common::config(tag, 1);
    config.nucypher.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    tune(&mut config);
    common::start_node(config, keys).await
}

fn tls_client(server_fp: [u8; 32], alpn: &[u8], tls12: bool) -> TlsConnector {
    let mut config = Trust::Fingerprint(Fingerprint(server_fp))
        .client_config()
        .expect("tls config");
    config.alpn_protocols = vec![alpn.to_vec()];
    if tls12 {
        // The pinned verifier, on a TLS 1.2 only configuration.
        let verifier = Fingerprint(server_fp).verifier();
        config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    TlsConnector::from(Arc::new(config))
}

/// Writes `head` then `body` on a fresh TLS connection and reads until the server closes it
/// (or 10 s pass): (status, headers and body text, raw body bytes).
async fn exchange(
    server: &RunningServer,
    head: &str,
    body: &[u8],
    tls12: bool,
) -> (u16, String, Vec<u8>) {
    let addr = server.https_addr().expect("https");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut tls = tls_client(server.cert_fingerprint(), b"http/1.1", tls12)
        .connect("umbrald".try_into().expect("name"), tcp)
        .await
        .expect("handshake");
    // The server may answer and close before the whole body is written (413).
    let _ = tls.write_all(head.as_bytes()).await;
    let _ = tls.write_all(body).await;
    let _ = tls.flush().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> (u16, String, Vec<u8>) {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let body = answer.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head + "\n" + &String::from_utf8_lossy(&body), body)
}

fn post_head(len: usize, version: &str) -> String {
    format!(
        "POST /reencrypt {version}\r\nHost: node\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

async fn post(server: &RunningServer, body: &[u8]) -> (u16, String, Vec<u8>) {
    exchange(server, &post_head(body.len(), "HTTP/1.1"), body, false).await
}

fn check_response(bytes: &[u8], vk: &[u8; 33]) {
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let resp = ReencryptionResponse::parse(bytes).expect("a ReRs 3.0 message");
    assert_eq!(resp.cfrags.len(), req.capsules.len());
    assert!(resp.verify_signature(&req.capsules, vk));
    let pk = |name| PublicKey::try_from_compressed_bytes(&key(name)).expect("pk");
    for (capsule, cfrag) in req.capsules.iter().zip(&resp.cfrags) {
        umbral_pre::CapsuleFrag::from_bytes(cfrag)
            .expect("cfrag")
            .verify(
                &umbral_pre::Capsule::from_bytes(capsule).expect("capsule"),
                &pk("publisher_verifying_pk"),
                &pk("policy_pk"),
                &pk("bob_pk"),
            )
            .map_err(|(e, _)| e)
            .expect("cfrag verifies under the policy's keys");
    }
}

/// An HTTP/2 (or HTTP/1.1) client pinned to `server`'s certificate.
fn hyper_client(
    server: &RunningServer,
    http2: bool,
) -> Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
> {
    let mut tls = Trust::Fingerprint(Fingerprint(server.cert_fingerprint()))
        .client_config()
        .expect("tls");
    tls.alpn_protocols.clear();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let connector = if http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(connector)
}

async fn hyper_post(
    client: &Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
    server: &RunningServer,
    path: &str,
    body: &[u8],
) -> (StatusCode, hyper::HeaderMap, Bytes) {
    let addr = server.https_addr().expect("https");
    let request = Request::post(format!("https://{addr}{path}"))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let response = client.request(request).await.expect("answered");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_request_over_http1_tls13_tls12_and_http2() {
    let node = fixture_node();
    let vk = *node.verifying_public_key();
    let server = https_node("https-golden", node, |_| {}).await;

    let (status, text, body) = post(&server, REQUEST).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/octet-stream"),
        "{text}"
    );
    check_response(&body, &vk);

    let (status, text, body) = exchange(
        &server,
        &post_head(REQUEST.len(), "HTTP/1.1"),
        REQUEST,
        true,
    )
    .await;
    assert_eq!(status, 200, "TLS 1.2: {text}");
    check_response(&body, &vk);

    // HTTP/1.0 clients are answered too.
    let (status, text, body) = exchange(
        &server,
        &post_head(REQUEST.len(), "HTTP/1.0"),
        REQUEST,
        false,
    )
    .await;
    assert_eq!(status, 200, "HTTP/1.0: {text}");
    check_response(&body, &vk);

    for http2 in [true, false] {
        let client = hyper_client(&server, http2);
        // Several requests on one kept-alive connection (multiplexed on HTTP/2).
        let answers = futures_join(&client, &server, 4).await;
        for (status, headers, body) in answers {
            assert_eq!(status, StatusCode::OK, "http2 {http2}");
            assert_eq!(headers["content-type"], "application/octet-stream");
            check_response(&body, &vk);
        }
    }

    let metrics = common::scrape(&server).await;
    assert_eq!(
        common::metric(
            &metrics,
            "umbrald_https_requests_total{route=\"reencrypt\",status=\"200\"}"
        ),
        11.0,
        "{metrics}"
    );
    assert_eq!(
        common::metric(
            &metrics,
            "umbrald_nucypher_requests_total{code=\"none\",outcome=\"ok\"}"
        ),
        11.0
    );
    let (_, status) = common::http_get(server.metrics_addr().expect("metrics"), "/status").await;
    let https = server.https_addr().expect("https").to_string();
    assert!(
        status.contains(&format!("\"listen\":\"{https}\"")),
        "{status}"
    );
    assert!(status.contains("\"upstream\":null"), "{status}");
    server.shutdown().await;
}

async fn futures_join(
    client: &Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
    server: &RunningServer,
    n: usize,
) -> Vec<(StatusCode, hyper::HeaderMap, Bytes)> {
    let mut answers = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..n {
        pending.push(hyper_post(client, server, "/reencrypt", REQUEST));
    }
    for answer in pending {
        answers.push(answer.await);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_gets_ursulas_status_and_the_server_keeps_serving() {
    let node = fixture_node();
    let vk = *node.verifying_public_key();
    let server = https_node("https-faults", node, |_| {}).await;

    // A kfrag the node's key does not decrypt: 403 (another node's server).
    let other = https_node("https-faults-other", NodeKeys::random(), |_| {}).await;
    let (status, text, _) = post(&other, REQUEST).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("invalid_kfrag"), "{text}");
    other.shutdown().await;

    // The publisher's signature does not verify (another publisher key claimed): 401.
    let forged = replaced(&key("publisher_verifying_pk"), &key("bob_verifying_pk"));
    let (status, text, _) = post(&server, &forged).await;
    assert_eq!(status, 401, "{text}");

    // Conditions: 400 with the code.
    let (status, text, _) = post(&server, &with_conditions()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("conditions_unsupported"), "{text}");

    // Malformed, unsupported version, garbage: 400.
    let mut v4 = REQUEST.to_vec();
    v4[5] = 4;
    for (bad, code) in [
        (&b"ReRq\x00\x03"[..], "malformed"),
        (&v4[..], "unsupported_version"),
        (&b"GET / HTTP/1.1\r\n"[..], "malformed"),
        (&REQUEST[..REQUEST.len() - 1], "malformed"),
    ] {
        let (status, text, _) = post(&server, bad).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(code), "{code}: {text}");
    }

    // 10 MB: 413, declared or chunked, after the body was read through (a client that sends
    // the whole body before reading, as Python's requests does, sees the answer).
    let big = vec![0u8; 10 << 20];
    let (status, text, _) = exchange(&server, &post_head(big.len(), "HTTP/1.1"), &big, false).await;
    assert_eq!(status, 413, "{text}");
    // Declared too large even to read through: answered at once.
    let (status, text, _) = exchange(&server, &post_head(1 << 30, "HTTP/1.1"), &[], false).await;
    assert_eq!(status, 413, "{text}");
    let mut chunked = Vec::new();
    for chunk in big.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /reencrypt HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n";
    let (status, text, _) = exchange(&server, head, &chunked, false).await;
    assert_eq!(status, 413, "{text}");

    // Other methods and paths.
    let get = "GET /reencrypt HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n";
    let (status, text, _) = exchange(&server, get, &[], false).await;
    assert_eq!(status, 405, "{text}");
    assert!(text.to_ascii_lowercase().contains("allow: post"), "{text}");
    let other_path = "GET /public_information HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n";
    let (status, text, _) = exchange(&server, other_path, &[], false).await;
    assert_eq!(status, 404, "{text}");

    // A body slower than the stream timeout (2 s in tests): 408.
    let (status, text, _) = exchange(
        &server,
        &post_head(REQUEST.len(), "HTTP/1.1"),
        &REQUEST[..10],
        false,
    )
    .await;
    assert_eq!(status, 408, "{text}");

    // A body cut short by the client closing: no answer is owed, nothing breaks.
    {
        let addr = server.https_addr().expect("https");
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut tls = tls_client(server.cert_fingerprint(), b"http/1.1", false)
            .connect("umbrald".try_into().expect("name"), tcp)
            .await
            .expect("handshake");
        tls.write_all(post_head(REQUEST.len(), "HTTP/1.1").as_bytes())
            .await
            .expect("head");
        tls.write_all(&REQUEST[..REQUEST.len() / 2])
            .await
            .expect("half");
        tls.shutdown().await.expect("close");
    }

    // A Content-Length shorter than the body: the request is cut at the declared length
    // (400), and the rest is not a valid request.
    let head = post_head(REQUEST.len() - 3, "HTTP/1.1").replace("Connection: close\r\n", "");
    let (status, text, _) = exchange(&server, &head, REQUEST, false).await;
    assert_eq!(status, 400, "{text}");

    // Still serving.
    let (status, text, body) = post(&server, REQUEST).await;
    assert_eq!(status, 200, "{text}");
    check_response(&body, &vk);

    let metrics = common::scrape(&server).await;
    for (status, want) in [("400", 7.0), ("401", 1.0), ("408", 1.0), ("413", 3.0)] {
        let series =
            format!("umbrald_https_requests_total{{route=\"reencrypt\",status=\"{status}\"}}");
        assert!(
            common::metric(&metrics, &series) >= want,
            "{series}: {metrics}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let node = fixture_node();
    let server = https_node("https-overload", node, |c| {
        c.batcher.max_queue_items = 4;
        c.limits.max_items_per_request = 4;
    })
    .await;
    let capsules = ReencryptionRequest::parse(REQUEST)
        .expect("parses")
        .capsules
        .len();
    assert!(capsules <= 4, "the fixture fits the queue");
    let client = hyper_client(&server, true);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = client.clone();
        let addr = server.https_addr().expect("https");
        tasks.push(tokio::spawn(async move {
            let request = Request::post(format!("https://{addr}/reencrypt"))
                .body(Full::new(Bytes::from_static(REQUEST)))
                .expect("request");
            let response = client.request(request).await.expect("answered");
            (
                response.status(),
                response.headers().get("retry-after").cloned(),
            )
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    let busy: Vec<_> = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !busy.is_empty(),
        "some requests find the queue full: {statuses:?}"
    );
    assert!(busy
        .iter()
        .all(|(_, retry)| retry.as_ref().is_some_and(|v| v == "1")));
    assert!(statuses
        .iter()
        .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::SERVICE_UNAVAILABLE));
    server.shutdown().await;
}

/// A stand-in for the operator's Ursula on loopback (HTTPS, its own self-signed certificate):
/// it records each request's method and path and answers `upstream <path>`, or for
/// `/reencrypt` the status its `reencrypt_status` holds (402 for an unpaid policy, as nucypher
/// does).
struct StandInUrsula {
    addr: SocketAddr,
    fingerprint: [u8; 32],
    seen: Arc<Mutex<Vec<String>>>,
    reencrypt_status: Arc<Mutex<u16>>,
}

async fn stand_in_ursula() -> StandInUrsula {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let der = cert.der().to_vec();
    let fingerprint = umbrald_server::tls::public_key_fingerprint(&der).expect("parses");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![der.into()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("cert");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reencrypt_status = Arc::new(Mutex::new(200));
    let (seen2, status2) = (seen.clone(), reencrypt_status.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, seen, status) = (acceptor.clone(), seen2.clone(), status2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (seen, status) = (seen.clone(), status.clone());
                        async move {
                            let line = format!("{} {}", req.method(), req.uri().path());
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().len())
                                .unwrap_or(0);
                            seen.lock().expect("lock").push(format!("{line} {body}"));
                            let code = if line.ends_with("/reencrypt") {
                                *status.lock().expect("lock")
                            } else {
                                200
                            };
                            let mut response =
                                Response::new(Full::new(Bytes::from(format!("upstream {line}"))));
                            *response.status_mut() = StatusCode::from_u16(code).expect("status");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    StandInUrsula {
        addr,
        fingerprint,
        seen,
        reencrypt_status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_in_forwards_other_paths_and_conditions_to_the_pinned_upstream() {
    let ursula = stand_in_ursula().await;
    let node = fixture_node();
    let vk = *node.verifying_public_key();
    let upstream = format!("https://{}", ursula.addr);
    let pin = hex::encode(ursula.fingerprint);
    let server = https_node("https-dropin", node, |c| {
        c.nucypher.upstream = Some(upstream.clone());
        c.nucypher.upstream_public_key_sha256 = Some(pin.clone());
    })
    .await;
    let client = hyper_client(&server, false);

    // Other paths: answered by the upstream, methods and bodies kept.
    let addr = server.https_addr().expect("https");
    for (method, path) in [
        ("GET", "/public_information"),
        ("GET", "/status/?json=true"),
        ("POST", "/node_metadata"),
        ("GET", "/ping"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(format!("https://{addr}{path}"))
            .body(Full::new(Bytes::from_static(b"abc")))
            .expect("request");
        let response = client.request(request).await.expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let path_only = path.split('?').next().expect("path");
        assert_eq!(body, format!("upstream {method} {path_only}").as_bytes());
    }
    // A request with conditions goes to the node, which evaluates them.
    let conditions = with_conditions();
    let (status, _, body) = hyper_post(&client, &server, "/reencrypt", &conditions).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"upstream POST /reencrypt");
    // A request without conditions is served here.
    let (status, _, body) = hyper_post(&client, &server, "/reencrypt", REQUEST).await;
    assert_eq!(status, StatusCode::OK);
    check_response(&body, &vk);
    let seen = ursula.seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![
            "GET /public_information 3".to_owned(),
            "GET /status/ 3".to_owned(),
            "POST /node_metadata 3".to_owned(),
            "GET /ping 3".to_owned(),
            format!("POST /reencrypt {}", conditions.len()),
        ]
    );
    let metrics = common::scrape(&server).await;
    assert_eq!(
        common::metric(
            &metrics,
            "umbrald_https_requests_total{route=\"forwarded\",status=\"200\"}"
        ),
        5.0,
        "{metrics}"
    );
    let (_, status) = common::http_get(server.metrics_addr().expect("metrics"), "/status").await;
    assert!(
        status.contains(&format!("\"upstream\":\"{upstream}/\"")),
        "{status}"
    );
    server.shutdown().await;

    // A certificate with another key than the pinned one: the upstream is not reached (502).
    let server = https_node("https-dropin-pin", fixture_node(), |c| {
        c.nucypher.upstream = Some(upstream.clone());
        c.nucypher.upstream_public_key_sha256 = Some("00".repeat(32));
    })
    .await;
    let client = hyper_client(&server, false);
    let (status, _, body) = hyper_post(&client, &server, "/node_metadata", b"").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body:?}");
    assert_eq!(
        ursula.seen.lock().expect("lock").len(),
        5,
        "nothing reached the node"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_check_serves_a_policy_only_once_the_upstream_served_it() {
    let ursula = stand_in_ursula().await;
    let node = fixture_node();
    let vk = *node.verifying_public_key();
    let server = https_node("https-policy", node, |c| {
        c.nucypher.upstream = Some(format!("https://{}", ursula.addr));
        c.nucypher.upstream_public_key_sha256 = Some(hex::encode(ursula.fingerprint));
        c.nucypher.policy_check = PolicyCheck::Upstream;
    })
    .await;
    let client = hyper_client(&server, false);

    // Unpaid: the node's 402 is the answer, every time.
    *ursula.reencrypt_status.lock().expect("lock") = 402;
    for _ in 0..2 {
        let (status, _, _) = hyper_post(&client, &server, "/reencrypt", REQUEST).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    }
    // Paid: the node answers the first request; umbrald serves the policy's next ones.
    *ursula.reencrypt_status.lock().expect("lock") = 200;
    let (status, _, body) = hyper_post(&client, &server, "/reencrypt", REQUEST).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"upstream POST /reencrypt");
    for _ in 0..3 {
        let (status, _, body) = hyper_post(&client, &server, "/reencrypt", REQUEST).await;
        assert_eq!(status, StatusCode::OK);
        check_response(&body, &vk);
    }
    assert_eq!(ursula.seen.lock().expect("lock").len(), 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_needs_node_keys() {
    let mut config = common::config("https-nokeys", 1);
    config.nucypher.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let err = umbrald_server::Server::start(config, None)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("--node-keys"), "{err}");
}

/// Capsules per request in the throughput measurement.
const PER_REQUEST: usize = 64;

/// HTTPS `/reencrypt` against the QUIC NuCypher path, same server, same requests (64 capsules,
/// one policy), alternating rounds; the client runs in this process on the same cores.
/// Run: `cargo test --release -p umbrald-server --test https -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; run it explicitly"]
async fn throughput_https_vs_quic() {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let node = NodeKeys::random();
    let node_pk = PublicKey::try_from_compressed_bytes(node.decrypting_public_key()).expect("pk");
    let mut config = common::config("https-bench", workers);
    config.nucypher.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = common::start_node(config, node).await;
    let quic = Arc::new(common::client(&server).await);
    let https = hyper_client(&server, false);
    let fx = common::Fixture::new(1, 1, PER_REQUEST);
    let request = Bytes::from(fx.nucypher_request(&node_pk));
    let addr = server.https_addr().expect("https");

    let in_flight = 4 * workers;
    let round = Duration::from_secs(2);
    let rounds: usize = std::env::var("UMBRALD_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(8);
    // (capsules, wall time, CPU time of this process) per transport.
    let mut totals = [(0usize, Duration::ZERO, Duration::ZERO); 2];
    for r in 0..rounds {
        let which = r % 2;
        let cpu_before = common::process_cpu();
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (quic, https, request) = (quic.clone(), https.clone(), request.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = 0usize;
                while started.elapsed() < round {
                    let answer = if which == 0 {
                        Bytes::from(quic.call_raw(&request).await.expect("answered"))
                    } else {
                        let post = Request::post(format!("https://{addr}/reencrypt"))
                            .body(Full::new(request.clone()))
                            .expect("request");
                        let response = https.request(post).await.expect("answered");
                        assert_eq!(response.status(), StatusCode::OK);
                        response
                            .into_body()
                            .collect()
                            .await
                            .expect("body")
                            .to_bytes()
                    };
                    assert!(answer.starts_with(b"ReRs") && answer.len() > PER_REQUEST * 381);
                    done += PER_REQUEST;
                }
                done
            }));
        }
        let mut capsules = 0;
        for t in tasks {
            capsules += t.await.expect("task");
        }
        let elapsed = started.elapsed();
        let cpu = common::process_cpu().saturating_sub(cpu_before);
        totals[which].0 += capsules;
        totals[which].1 += elapsed;
        totals[which].2 += cpu;
        println!(
            "round {r}: {:<5} {:>8.0} capsules/s, {:>6.1} µs CPU per capsule",
            if which == 0 { "quic" } else { "https" },
            capsules as f64 / elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / capsules as f64
        );
    }
    let rate = |(n, t, _): (usize, Duration, Duration)| n as f64 / t.as_secs_f64();
    let cpu = |(n, _, c): (usize, Duration, Duration)| c.as_secs_f64() * 1e6 / n as f64;
    let (quic_rate, https_rate) = (rate(totals[0]), rate(totals[1]));
    println!(
        "workers {workers}, {in_flight} requests in flight, {PER_REQUEST} capsules each: \
         QUIC {quic_rate:.0}/s ({:.1} µs CPU each), HTTPS {https_rate:.0}/s ({:.1} µs CPU \
         each); HTTPS ÷ QUIC throughput {:.3}; per core {:.0} capsules/s over HTTPS",
        cpu(totals[0]),
        cpu(totals[1]),
        https_rate / quic_rate,
        https_rate / workers as f64,
    );
    server.shutdown().await;
}
