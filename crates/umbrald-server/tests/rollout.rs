//! Rollouts without failed requests: a shutdown fails `/readyz` at once and serves on through
//! its drain delay, then refuses new connections and requests and answers those in flight (QUIC
//! and HTTPS); a certificate reload serves new handshakes the new pair while open connections
//! keep working, and a bad pair keeps the old one. The binary's signals are tested in
//! `crates/umbrald/tests/rollout.rs`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Fixture;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use umbrald_client::{Fingerprint, Trust};
use umbrald_nucypher::NodeKeys;
use umbrald_proto::app_codes;
use umbrald_server::testing::{TestClient, MAX_RESPONSE_BYTES};
use umbrald_server::{tls, Config};

const REQUEST: &[u8] =
    include_bytes!("../../umbrald-nucypher/tests/fixtures/reencryption_request.bin");
const KEYS: &str = include_str!("../../umbrald-nucypher/tests/fixtures/exchange_keys.json");

/// The node whose decrypting key the golden `REQUEST` was made for, with a fresh signing key.
fn fixture_node() -> NodeKeys {
    let keys: serde_json::Value = serde_json::from_str(KEYS).expect("json");
    let decrypting = hex::decode(keys["ursula_decrypting_sk"].as_str().expect("present"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let signing: [u8; 32] = NodeKeys::random().secret_bytes()[32..]
        .try_into()
        .expect("32");
    NodeKeys::from_be_bytes(&decrypting, &signing).expect("keys")
}

/// A test configuration with the HTTPS endpoint on an ephemeral port.
fn config(tag: &str) -> Config {
    let mut config = common::config(tag, 1);
    config.nucypher.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config
}

/// A TLS connection to the HTTPS endpoint at `addr` that accepts only the certificate `fp`.
async fn https_stream(addr: SocketAddr, fp: [u8; 32]) -> std::io::Result<TlsStream<TcpStream>> {
    let mut config = Trust::Fingerprint(Fingerprint(fp))
        .client_config()
        .expect("tls config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect("umbrald".try_into().expect("name"), tcp)
        .await
}

/// HTTP/1.1 with keep-alive over `tls`.
async fn http1(tls: TlsStream<TcpStream>) -> SendRequest<Full<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http/1.1");
    tokio::spawn(conn);
    sender
}

/// Posts the golden request on `sender`'s connection: the status.
async fn post(sender: &mut SendRequest<Full<Bytes>>) -> StatusCode {
    sender.ready().await.expect("connection usable");
    let request = Request::post("/reencrypt")
        .header(hyper::header::HOST, "node")
        .body(Full::new(Bytes::from_static(REQUEST)))
        .expect("request");
    let response = sender.send_request(request).await.expect("answered");
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

/// Polls `/readyz` until it answers 503; fails if that takes `within`.
async fn readyz_fails_within(metrics: SocketAddr, within: Duration) {
    let until = Instant::now() + within;
    while common::http_get(metrics, "/readyz").await.0 != 503 {
        assert!(
            Instant::now() < until,
            "/readyz still ready after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes a fresh self-signed pair to `cert` and `key` (either may be `None` to leave it);
/// returns the certificate's fingerprint.
fn write_pair(cert: Option<&Path>, key: Option<&Path>) -> [u8; 32] {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generates");
    if let Some(cert) = cert {
        std::fs::write(cert, pair.cert.pem()).expect("cert written");
    }
    if let Some(key) = key {
        std::fs::write(key, pair.key_pair.serialize_pem()).expect("key written");
    }
    tls::fingerprint(pair.cert.der())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_at_once_the_drain_serves_then_only_in_flight_work_finishes() {
    const DRAIN: Duration = Duration::from_millis(800);
    let fx = Fixture::new(1, 1, 2);
    let mut config = config("rollout-drain");
    config.server.drain_delay_ms = 800;
    config.limits.stream_read_timeout_ms = 10_000;
    let server = common::start_node(config, fixture_node()).await;
    let (addr, fp) = (server.local_addr(), server.cert_fingerprint());
    let https = server.https_addr().expect("https");
    let metrics = server.metrics_addr().expect("metrics");
    assert_eq!(common::http_get(metrics, "/readyz").await.0, 200);

    // Two requests in flight across the whole shutdown, each half sent: one on QUIC, one on
    // HTTPS.
    let client = common::client(&server).await;
    let request = fx.request_n(1, 2);
    let bytes = umbrald_proto::encode(&request).expect("encodes");
    let half = bytes.len() / 2;
    let (mut send, mut recv) = client.open().await.expect("stream");
    send.write_all(&bytes[..half]).await.expect("first half");
    let mut in_flight_https = https_stream(https, fp).await.expect("https connects");
    let head = format!(
        "POST /reencrypt HTTP/1.1\r\nHost: node\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        REQUEST.len()
    );
    in_flight_https
        .write_all(head.as_bytes())
        .await
        .expect("head");
    in_flight_https
        .write_all(&REQUEST[..REQUEST.len() / 2])
        .await
        .expect("first half");
    in_flight_https.flush().await.expect("flush");
    common::settles(&server, "umbrald_open_streams", 1.0).await;
    common::settles(&server, "umbrald_https_open_connections", 1.0).await;

    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    readyz_fails_within(metrics, DRAIN / 4).await;

    // Through the drain delay, new and open connections are served on both endpoints.
    let late = TestClient::connect(addr, fp)
        .await
        .expect("connects during the drain");
    let req = fx.request_n(2, 1);
    fx.check_all_ok(&req, &late.call(&req).await.expect("answered"));
    let req = fx.request_n(3, 1);
    fx.check_all_ok(&req, &client.call(&req).await.expect("answered"));
    let mut sender = http1(
        https_stream(https, fp)
            .await
            .expect("https during the drain"),
    )
    .await;
    assert_eq!(post(&mut sender).await, StatusCode::OK);
    assert_eq!(common::http_get(metrics, "/healthz").await.0, 200);
    assert!(
        started.elapsed() < DRAIN,
        "the checks took longer than the drain delay"
    );

    // After it, new connections are refused on both endpoints...
    tokio::time::sleep_until((started + DRAIN).into()).await;
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), TestClient::connect(addr, fp))
            .await
            .expect("a refused handshake is answered at once");
        if attempt.is_err() {
            break;
        }
        assert!(Instant::now() < until, "QUIC still accepts after the drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let until = Instant::now() + Duration::from_secs(3);
    while TcpStream::connect(https).await.is_ok() {
        assert!(
            Instant::now() < until,
            "HTTPS still accepts after the drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... an idle connection is closed ...
    let closed = tokio::time::timeout(Duration::from_secs(3), late.connection().closed())
        .await
        .expect("idle connection closed");
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c)
            if c.error_code == quinn::VarInt::from_u32(app_codes::SHUTTING_DOWN)),
        "{closed}"
    );

    // ... and the requests in flight are answered.
    send.write_all(&bytes[half..]).await.expect("second half");
    send.finish().expect("finish");
    let answer = recv
        .read_to_end(MAX_RESPONSE_BYTES)
        .await
        .expect("in-flight QUIC request answered");
    fx.check_all_ok(&request, &umbrald_proto::decode(&answer).expect("decodes"));
    in_flight_https
        .write_all(&REQUEST[REQUEST.len() / 2..])
        .await
        .expect("second half");
    let mut answer = Vec::new();
    let _ = in_flight_https.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "in-flight HTTPS request: {}",
        answer.lines().next().unwrap_or_default()
    );

    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .expect("shutdown task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_cuts_the_drain_short() {
    let mut config = common::config("rollout-hurry", 1);
    config.server.drain_delay_ms = 60_000;
    let server = common::start(config).await;
    let (addr, fp) = (server.local_addr(), server.cert_fingerprint());
    let metrics = server.metrics_addr().expect("metrics");
    let (hurry, hurried) = tokio::sync::oneshot::channel::<()>();
    let stopping = tokio::spawn(server.shutdown_with(async {
        let _ = hurried.await;
    }));
    readyz_fails_within(metrics, Duration::from_secs(1)).await;
    let client = TestClient::connect(addr, fp)
        .await
        .expect("still serving in the drain");
    let _ = hurry.send(());
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the drain was cut short")
        .expect("shutdown task");
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_new_handshakes_the_new_pair_and_open_connections_go_on() {
    let fx = Fixture::new(1, 1, 1);
    let dir = common::data_dir("rollout-reload-files");
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let first = write_pair(Some(&cert), Some(&key));
    let mut config = config("rollout-reload");
    config.tls.cert = Some(cert.clone());
    config.tls.key = Some(key.clone());
    let server = common::start_node(config, fixture_node()).await;
    assert_eq!(server.cert_fingerprint(), first);
    let (addr, https) = (server.local_addr(), server.https_addr().expect("https"));
    let metrics = server.metrics_addr().expect("metrics");
    let open = TestClient::connect(addr, first).await.expect("connects");
    let mut open_https = http1(https_stream(https, first).await.expect("https")).await;
    assert_eq!(post(&mut open_https).await, StatusCode::OK);

    let second = write_pair(Some(&cert), Some(&key));
    assert_eq!(server.reload_tls().expect("reloads"), second);
    assert_eq!(server.cert_fingerprint(), second);

    // Open connections go on with the pair they shook hands with...
    let req = fx.request_n(1, 1);
    fx.check_all_ok(&req, &open.call(&req).await.expect("open QUIC connection"));
    assert_eq!(post(&mut open_https).await, StatusCode::OK);
    // ... new handshakes present the new one, on both endpoints.
    assert!(TestClient::connect(addr, first).await.is_err(), "old pair");
    let fresh = TestClient::connect(addr, second).await.expect("new pair");
    fx.check_all_ok(&req, &fresh.call(&req).await.expect("answered"));
    assert!(
        https_stream(https, first).await.is_err(),
        "old pair on HTTPS"
    );
    let mut fresh_https = http1(https_stream(https, second).await.expect("new pair")).await;
    assert_eq!(post(&mut fresh_https).await, StatusCode::OK);

    let second_hex = tls::fingerprint_hex(&second);
    let (_, status) = common::http_get(metrics, "/status").await;
    assert!(
        status.contains(&format!("\"cert_sha256\":\"{second_hex}\"")),
        "{status}"
    );
    let text = common::scrape(&server).await;
    assert_eq!(
        common::metric(&text, "umbrald_tls_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        common::metric(
            &text,
            &format!("umbrald_tls_cert_info{{sha256=\"{second_hex}\"}}")
        ),
        1.0
    );

    // A bad pair keeps the current one: a certificate whose key is not the one on disk, then
    // a key file that is gone.
    write_pair(Some(&cert), None);
    assert!(server.reload_tls().is_err(), "mismatched key accepted");
    std::fs::remove_file(&key).expect("key removed");
    assert!(server.reload_tls().is_err(), "missing key accepted");
    assert_eq!(server.cert_fingerprint(), second);
    let again = TestClient::connect(addr, second)
        .await
        .expect("the pair in use still serves");
    fx.check_all_ok(&req, &again.call(&req).await.expect("answered"));
    let mut again_https = http1(https_stream(https, second).await.expect("https")).await;
    assert_eq!(post(&mut again_https).await, StatusCode::OK);
    let text = common::scrape(&server).await;
    assert_eq!(
        common::metric(&text, "umbrald_tls_reloads_total{result=\"failed\"}"),
        2.0
    );

    open.close().await;
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).ok();
}
