//! The audit log: one JSON line per answered request over every transport, size rotation,
//! fail-closed refusal and recovery, fail-open loss counting, and no secret in the log or the
//! server's own log output.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use umbral_pre::PublicKey;
use umbrald_client::{Fingerprint, Trust};
use umbrald_nucypher::{NodeKeys, ReencryptionRequest};
use umbrald_proto::Response;
use umbrald_server::RunningServer;

/// Everything the server logged in this test binary, at debug level and above.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A NuCypher node with an HTTPS endpoint and an audit log at `path`.
async fn audited_node(
    tag: &str,
    keys: NodeKeys,
    path: &Path,
    tune: impl FnOnce(&mut umbrald_server::Config),
) -> RunningServer {
    captured_logs();
    let mut config = common::config(tag, 1);
    config.nucypher.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.audit.path = Some(path.to_owned());
    tune(&mut config);
    common::start_node(config, keys).await
}

fn audit_dir(tag: &str) -> PathBuf {
    let dir = common::data_dir(&format!("auditlog-{tag}"));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// POSTs `body` to `/reencrypt` over HTTPS/1.1: (status, body).
async fn post(server: &RunningServer, body: &[u8]) -> (u16, Vec<u8>) {
    let mut config = Trust::Fingerprint(Fingerprint(server.cert_fingerprint()))
        .client_config()
        .expect("tls config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(server.https_addr().expect("https"))
        .await
        .expect("connect");
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect("umbrald".try_into().expect("name"), tcp)
        .await
        .expect("handshake");
    let head = format!(
        "POST /reencrypt HTTP/1.1\r\nHost: node\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    tls.write_all(body).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let status = String::from_utf8_lossy(&answer[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer.get(split + 4..).unwrap_or_default().to_vec())
}

/// The records in `path`, waiting up to five seconds for at least `want` of them.
async fn records(path: &Path, want: usize) -> Vec<serde_json::Value> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= want || Instant::now() > until {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn native_fingerprint(policies: &[umbrald_proto::Policy]) -> String {
    let mut h = Sha256::new();
    for p in policies {
        for key in [&p.delegating_pk, &p.receiving_pk, &p.verifying_pk] {
            h.update((key.len() as u64).to_be_bytes());
            h.update(key);
        }
    }
    hex::encode(h.finalize())
}

fn nucypher_fingerprint(request: &[u8]) -> (String, String) {
    let req = ReencryptionRequest::parse(request).expect("request");
    let mut h = Sha256::new();
    for key in [&req.publisher_verifying_key[..], &req.bob_verifying_key[..]] {
        h.update((key.len() as u64).to_be_bytes());
        h.update(key);
    }
    (hex::encode(h.finalize()), hex::encode(req.hrac))
}

fn check_common(record: &serde_json::Value) {
    let time = record["time"].as_str().expect("time");
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    let client = record["client"].as_str().expect("client");
    assert!(client.starts_with("127.0.0.1:"), "{client}");
    assert!(record["latency_us"].as_u64().is_some(), "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_recorded_over_every_transport() {
    let dir = audit_dir("full");
    let path = dir.join("audit.log");
    let node = NodeKeys::random();
    let node_pk = PublicKey::try_from_compressed_bytes(node.decrypting_public_key()).expect("pk");
    let server = audited_node("audit-full", node, &path, |_| {}).await;
    let client = common::client(&server).await;
    let fx = common::Fixture::new(2, 1, 3);

    let req = fx.request_n(7, 3);
    let resp = client.call(&req).await.expect("answered");
    fx.check_all_ok(&req, &resp);
    let garbage = client.call_raw(b"not msgpack").await.expect("answered");
    let garbage: Response = umbrald_proto::decode(&garbage).expect("response");
    assert_eq!(common::error_code(&garbage), Some("malformed"));
    let nucypher = fx.nucypher_request(&node_pk);
    let answer = client.call_raw(&nucypher).await.expect("answered");
    assert!(answer.starts_with(b"ReRs"));
    let (status, _) = post(&server, &nucypher).await;
    assert_eq!(status, 200);

    let lines = records(&path, 4).await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    for record in &lines {
        check_common(record);
    }
    let (native, malformed, quic, https) = (&lines[0], &lines[1], &lines[2], &lines[3]);
    assert_eq!(native["protocol"], "quic-native");
    assert_eq!(native["outcome"], "ok");
    assert_eq!(native["items"], 3);
    assert_eq!(
        native["policy_fingerprint"],
        native_fingerprint(&req.policies)
    );
    assert!(native["hrac"].is_null());
    assert_eq!(malformed["protocol"], "quic-native");
    assert_eq!(malformed["outcome"], "malformed");
    assert!(malformed["policy_fingerprint"].is_null());
    let (fingerprint, hrac) = nucypher_fingerprint(&nucypher);
    for (record, protocol) in [(quic, "quic-nucypher"), (https, "https-nucypher")] {
        assert_eq!(record["protocol"], protocol);
        assert_eq!(record["outcome"], "ok");
        assert_eq!(record["items"], 3);
        assert_eq!(record["policy_fingerprint"], fingerprint);
        assert_eq!(record["hrac"], hrac);
    }
    common::settles(&server, "umbrald_audit_records_total", 4.0).await;
    common::settles(&server, "umbrald_audit_dropped_total", 0.0).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_rotates_by_size_keeping_n() {
    let dir = audit_dir("rotate");
    let path = dir.join("audit.log");
    let server = audited_node("audit-rotate", NodeKeys::random(), &path, |c| {
        c.audit.max_bytes = 700;
        c.audit.keep = 2;
    })
    .await;
    let client = common::client(&server).await;
    let fx = common::Fixture::new(1, 1, 1);
    for id in 0..12 {
        let req = fx.request_n(id, 1);
        client.call(&req).await.expect("answered");
    }
    common::settles(&server, "umbrald_audit_records_total", 12.0).await;
    let mut files = vec![path.clone()];
    for n in 1..=2 {
        files.push(PathBuf::from(format!("{}.{n}", path.display())));
    }
    for file in &files {
        let text = std::fs::read_to_string(file).expect("file kept");
        assert!(
            text.len() <= 700,
            "{} has {} bytes",
            file.display(),
            text.len()
        );
        for line in text.lines() {
            let _: serde_json::Value = serde_json::from_str(line).expect("json line");
        }
    }
    assert!(!Path::new(&format!("{}.3", path.display())).exists());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_until_the_log_is_writable_again() {
    let dir = audit_dir("closed");
    let missing = dir.join("missing");
    let path = missing.join("audit.log");
    let node = NodeKeys::random();
    let node_pk = PublicKey::try_from_compressed_bytes(node.decrypting_public_key()).expect("pk");
    let server = audited_node("audit-closed", node, &path, |c| {
        c.audit.fail_closed = true;
    })
    .await;
    let client = common::client(&server).await;
    let fx = common::Fixture::new(1, 1, 1);
    // The writer finds the directory missing at start.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = client.call(&fx.request_n(1, 1)).await.expect("answered");
    assert_eq!(common::error_code(&resp), Some("internal"));
    let message = resp.error.as_ref().map(|e| e.message.clone());
    assert_eq!(message.as_deref(), Some("audit log unavailable"));
    let (status, body) = post(&server, &fx.nucypher_request(&node_pk)).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));

    std::fs::create_dir_all(&missing).expect("dir");
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let req = fx.request_n(2, 1);
        let resp = client.call(&req).await.expect("answered");
        if resp.error.is_none() {
            fx.check_all_ok(&req, &resp);
            break;
        }
        assert!(Instant::now() < until, "still refused: {resp:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The refusals' own records, written once the log recovered, may come first.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = records(&path, 1).await;
        if lines.iter().any(|r| r["outcome"] == "ok") {
            break;
        }
        assert!(Instant::now() < until, "{lines:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_serves_and_counts_the_lost_records() {
    let dir = audit_dir("open");
    let path = dir.join("missing").join("audit.log");
    let server = audited_node("audit-open", NodeKeys::random(), &path, |_| {}).await;
    let client = common::client(&server).await;
    let fx = common::Fixture::new(1, 1, 1);
    for id in 0..3 {
        let req = fx.request_n(id, 1);
        let resp = client.call(&req).await.expect("answered");
        fx.check_all_ok(&req, &resp);
    }
    common::settles(&server, "umbrald_audit_dropped_total", 3.0).await;
    common::settles(&server, "umbrald_audit_records_total", 0.0).await;
    server.shutdown().await;
}

/// The secret key share inside an umbral-pre kfrag's MessagePack encoding (`[params, id, key,
/// precursor, proof]`, each byte string with a two-byte `bin 8` header).
fn kfrag_secret(kfrag: &[u8]) -> &[u8] {
    assert_eq!(kfrag.len(), 310, "umbral-pre kfrag encoding");
    assert_eq!(&kfrag[71..73], &[0xc4, 0x20], "key header");
    &kfrag[73..105]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_audit_log_or_the_server_log() {
    let logs = captured_logs();
    let dir = audit_dir("secrets");
    let path = dir.join("audit.log");
    let node = NodeKeys::random();
    let node_secret = node.secret_bytes();
    let node_pk = PublicKey::try_from_compressed_bytes(node.decrypting_public_key()).expect("pk");
    let server = audited_node("audit-secrets", node, &path, |_| {}).await;
    let client = common::client(&server).await;
    let fx = common::Fixture::new(2, 1, 2);
    let req = fx.request_n(1, 2);
    client.call(&req).await.expect("answered");
    let nucypher = fx.nucypher_request(&node_pk);
    client.call_raw(&nucypher).await.expect("answered");
    assert_eq!(post(&server, &nucypher).await.0, 200);
    // A refused one too: its error paths log.
    let mut bad = nucypher.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    client.call_raw(&bad).await.expect("answered");
    assert_eq!(records(&path, 4).await.len(), 4);
    server.shutdown().await;

    let mut secrets: Vec<Vec<u8>> = vec![node_secret[..32].to_vec(), node_secret[32..].to_vec()];
    for policy in &fx.policies {
        secrets.push(kfrag_secret(&policy.kfrag).to_vec());
        secrets.push(policy.kfrag.clone());
    }
    let audit = std::fs::read_to_string(&path).expect("audit log");
    let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(!logged.is_empty(), "no server log captured");
    for secret in &secrets {
        for text in [&audit, &logged] {
            for form in [hex::encode(secret), hex::encode_upper(secret)] {
                assert!(!text.contains(&form), "a secret appears: {form}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtls_client_is_recorded_by_its_key() {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let client_key = KeyPair::generate().expect("key");
    let mut client_params = CertificateParams::new(vec!["client".to_owned()]).expect("params");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("cert");

    let dir = audit_dir("mtls");
    let path = dir.join("audit.log");
    let ca_path = dir.join("client-ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("ca file");
    let server = audited_node("audit-mtls", NodeKeys::random(), &path, |c| {
        c.tls.client_ca = Some(ca_path);
    })
    .await;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der()));
    let client = umbrald_server::testing::TestClient::connect_with(
        server.local_addr(),
        server.cert_fingerprint(),
        Some((vec![client_cert.der().clone()], key)),
    )
    .await
    .expect("connects");
    let fx = common::Fixture::new(1, 1, 1);
    let req = fx.request_n(1, 1);
    fx.check_all_ok(&req, &client.call(&req).await.expect("answered"));
    let lines = records(&path, 1).await;
    let want = format!(
        "spki-sha256:{}",
        hex::encode(Sha256::digest(client_key.public_key_der()))
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["client"], want.as_str());
    server.shutdown().await;
}
