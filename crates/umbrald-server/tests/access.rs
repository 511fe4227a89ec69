//! Access control (`[access]`): the client allowlist by public key on QUIC and HTTPS, per-client
//! limits answered `rate_limited` (HTTP 429 with Retry-After), requests in flight per client,
//! and reloading both while connections stay open.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::Fixture;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use umbral_pre::PublicKey;
use umbrald_client::{ClientIdentity, Fingerprint, Trust};
use umbrald_nucypher::NodeKeys;
use umbrald_proto::app_codes;
use umbrald_server::testing::TestClient;
use umbrald_server::{Config, Overrides, RunningServer};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Every network wait of these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A self-signed client certificate and its key.
struct Identity {
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl Identity {
    fn new() -> Self {
        let made =
            rcgen::generate_simple_self_signed(vec!["client".to_owned()]).expect("generates");
        Self {
            cert: made.cert.der().clone(),
            key_der: made.key_pair.serialize_der(),
            cert_pem: made.cert.pem(),
            key_pem: made.key_pair.serialize_pem(),
        }
    }

    /// SHA-256 of its public key, hex: what `allowed_clients` lists.
    fn key_sha256(&self) -> String {
        let key = umbrald_server::tls::public_key_fingerprint(&self.cert).expect("parses");
        hex::encode(key)
    }

    fn auth(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        (vec![self.cert.clone()], key)
    }
}

async fn quic(server: &RunningServer, id: Option<&Identity>) -> Result<TestClient, String> {
    let connect = TestClient::connect_with(
        server.local_addr(),
        server.cert_fingerprint(),
        id.map(Identity::auth),
    );
    match tokio::time::timeout(WAIT, connect).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".to_owned()),
    }
}

/// One request of `items` items on `client`: its error code, or `None` for results. `Err`
/// when the connection fails.
async fn call(client: &TestClient, fx: &Fixture, items: usize) -> Result<Option<String>, String> {
    let req = fx.request_n(7, items);
    let response = tokio::time::timeout(WAIT, client.call(&req))
        .await
        .map_err(|_| "no answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
    if response.error.is_none() {
        fx.check_all_ok(&req, &response);
    }
    Ok(response.error.map(|e| e.code))
}

/// Whether `id` (or no certificate) is served on QUIC: the handshake and one request.
async fn quic_served(server: &RunningServer, id: Option<&Identity>, fx: &Fixture) -> bool {
    match quic(server, id).await {
        Ok(client) => call(&client, fx, 1).await == Ok(None),
        Err(_) => false,
    }
}

/// POSTs `body` to `/reencrypt` presenting `id`: (status, head), or `None` when the TLS
/// handshake or the exchange fails.
async fn https_post(
    server: &RunningServer,
    id: Option<&Identity>,
    body: &[u8],
) -> Option<(u16, String)> {
    let identity = id.map(|id| {
        ClientIdentity::from_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).expect("identity")
    });
    let mut config = Trust::Fingerprint(Fingerprint(server.cert_fingerprint()))
        .client_config_with(identity.as_ref())
        .expect("tls config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let exchange = async {
        let tcp = TcpStream::connect(server.https_addr().expect("https"))
            .await
            .ok()?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect("umbrald".try_into().expect("name"), tcp)
            .await
            .ok()?;
        let head = format!(
            "POST /reencrypt HTTP/1.1\r\nHost: node\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.ok()?;
        tls.write_all(body).await.ok()?;
        tls.flush().await.ok()?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, text))
    };
    tokio::time::timeout(WAIT, exchange).await.ok().flatten()
}

/// A server with `tune` applied, serving NuCypher requests over HTTPS too.
async fn node(tag: &str, tune: impl FnOnce(&mut Config)) -> (RunningServer, PublicKey) {
    let keys = NodeKeys::random();
    let node_pk =
        PublicKey::try_from_compressed_bytes(keys.decrypting_public_key()).expect("node key");
    let mut config = common::config(tag, 1);
    config.nucypher.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    tune(&mut config);
    (common::start_node(config, keys).await, node_pk)
}

/// Scrapes until `series` reaches at least `least`, failing after the wait.
async fn reaches(server: &RunningServer, series: &str, least: f64) {
    let until = std::time::Instant::now() + WAIT;
    loop {
        let got = common::metric(&common::scrape(server).await, series);
        if got >= least {
            return;
        }
        assert!(std::time::Instant::now() < until, "{series} is {got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_client_keys_are_served_on_quic_and_https() -> TestResult {
    let (listed, unlisted) = (Identity::new(), Identity::new());
    let (server, node_pk) = node("allowlist", |c| {
        c.access.allowed_clients = vec![format!("sha256:{}", listed.key_sha256())];
    })
    .await;
    let fx = Fixture::new(1, 1, 2);

    assert!(quic_served(&server, Some(&listed), &fx).await, "listed key");
    assert!(
        !quic_served(&server, Some(&unlisted), &fx).await,
        "unlisted key served"
    );
    assert!(
        !quic_served(&server, None, &fx).await,
        "no certificate served"
    );

    let body = fx.nucypher_request(&node_pk);
    let (status, text) = https_post(&server, Some(&listed), &body)
        .await
        .expect("listed key answered");
    assert_eq!(status, 200, "{text}");
    assert_eq!(https_post(&server, Some(&unlisted), &body).await, None);
    assert_eq!(https_post(&server, None, &body).await, None);

    reaches(
        &server,
        "umbrald_access_refused_total{reason=\"not_allowed\"}",
        2.0,
    )
    .await;
    reaches(
        &server,
        "umbrald_access_refused_total{reason=\"no_certificate\"}",
        2.0,
    )
    .await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_rates_is_rate_limited_while_another_is_served() -> TestResult {
    let (fast, calm, bulk) = (Identity::new(), Identity::new(), Identity::new());
    let (server, node_pk) = node("rates", |c| {
        c.access.allowed_clients = [&fast, &calm, &bulk]
            .iter()
            .map(|id| id.key_sha256())
            .collect();
        c.access.requests_per_s = 1;
        c.access.request_burst = 2;
        c.access.items_per_s = 1;
        c.access.item_burst = 10;
    })
    .await;
    let fx = Fixture::new(1, 1, 4);

    // Two requests of the burst, then `rate_limited` on the same connection, which stays up.
    let client = quic(&server, Some(&fast)).await?;
    assert_eq!(call(&client, &fx, 1).await?, None);
    assert_eq!(call(&client, &fx, 1).await?, None);
    assert_eq!(
        call(&client, &fx, 1).await?.as_deref(),
        Some("rate_limited")
    );
    // The same key on HTTPS is the same client: 429 with Retry-After.
    let body = fx.nucypher_request(&node_pk);
    let (status, text) = https_post(&server, Some(&fast), &body)
        .await
        .expect("answered");
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("rate_limited: "), "{text}");
    let retry_after = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(str::to_owned)
        })
        .expect("Retry-After");
    assert_eq!(retry_after.trim(), "1", "{text}");

    // Another key has its own buckets.
    let other = quic(&server, Some(&calm)).await?;
    assert_eq!(call(&other, &fx, 1).await?, None);
    let (status, text) = https_post(&server, Some(&calm), &body)
        .await
        .expect("answered");
    assert_eq!(status, 200, "{text}");

    // Items: 8 of the burst of 10, then 4 find 2 left (the request bucket still holds one).
    let items = quic(&server, Some(&bulk)).await?;
    assert_eq!(call(&items, &fx, 8).await?, None);
    assert_eq!(call(&items, &fx, 4).await?.as_deref(), Some("rate_limited"));

    let metrics = common::scrape(&server).await;
    assert_eq!(
        common::metric(
            &metrics,
            r#"umbrald_requests_total{code="rate_limited",outcome="error"}"#
        ),
        3.0
    );
    client.close().await;
    other.close().await;
    items.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded_per_client() -> TestResult {
    let (busy, other) = (Identity::new(), Identity::new());
    let (server, _) = node("inflight", |c| {
        c.access.allowed_clients = vec![busy.key_sha256(), other.key_sha256()];
        c.access.max_in_flight = 1;
    })
    .await;
    let fx = Arc::new(Fixture::new(1, 1, 4));
    let client = Arc::new(quic(&server, Some(&busy)).await?);

    // A large request keeps the client's one slot while it is computed on one worker.
    let large = {
        let (client, fx) = (client.clone(), fx.clone());
        tokio::spawn(async move { call(&client, &fx, 1000).await })
    };
    common::settles(&server, "umbrald_inflight_requests", 1.0).await;
    assert_eq!(
        call(&client, &fx, 1).await?.as_deref(),
        Some("rate_limited")
    );
    let second = quic(&server, Some(&other)).await?;
    let other_answer = {
        let fx = fx.clone();
        tokio::spawn(async move { call(&second, &fx, 1).await })
    };
    assert_eq!(large.await?, Ok(None), "the large request is answered");
    assert_eq!(
        other_answer.await?,
        Ok(None),
        "another client is not limited"
    );
    assert_eq!(call(&client, &fx, 1).await?, None, "the slot is free again");
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_limits_and_the_allowlist_without_dropping_connections() -> TestResult {
    let (first, second) = (Identity::new(), Identity::new());
    let (server, _) = node("reload", |c| {
        c.access.allowed_clients = vec![first.key_sha256()];
    })
    .await;
    let fx = Fixture::new(1, 1, 2);
    let client = quic(&server, Some(&first)).await?;
    for _ in 0..3 {
        assert_eq!(call(&client, &fx, 1).await?, None, "no limit yet");
    }

    // The same reload SIGHUP runs: the file as at start.
    let dir = common::data_dir("reload-file");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("umbrald.toml");
    let mut overrides = Overrides::default();
    overrides.config = Some(file.clone());
    let access = |allowed: &[&Identity], rate: u32| {
        let keys: Vec<String> = allowed
            .iter()
            .map(|id| format!("\"{}\"", id.key_sha256()))
            .collect();
        format!(
            "[access]\nallowed_clients = [{}]\nrequests_per_s = {rate}\nrequest_burst = 1\n",
            keys.join(", ")
        )
    };
    std::fs::write(&file, access(&[&first], 1))?;
    let reloader = server.tls_reloader();
    reloader.reload_from(&overrides)?;
    assert_eq!(call(&client, &fx, 1).await?, None, "a full bucket of 1");
    assert_eq!(
        call(&client, &fx, 1).await?.as_deref(),
        Some("rate_limited"),
        "the new limit, on the connection opened before"
    );

    // A bad file keeps what is in force.
    std::fs::write(&file, "[access]\nallowed_clients = [\"not hex\"]\n")?;
    assert!(reloader.reload_from(&overrides).is_err());
    std::fs::write(&file, "[access\n")?;
    assert!(reloader.reload_from(&overrides).is_err());
    assert_eq!(
        call(&client, &fx, 1).await?.as_deref(),
        Some("rate_limited"),
        "limits kept"
    );
    assert!(
        !quic_served(&server, Some(&second), &fx).await,
        "allowlist kept"
    );
    let metrics = common::scrape(&server).await;
    assert_eq!(
        common::metric(&metrics, "umbrald_access_reloads_total{result=\"failed\"}"),
        2.0
    );
    assert_eq!(
        common::metric(&metrics, "umbrald_access_reloads_total{result=\"ok\"}"),
        1.0
    );

    // Limits off, and the allowlist now holds only the second key: it connects, and the first
    // key's open connection is closed at its next request.
    std::fs::write(&file, access(&[&second], 0))?;
    reloader.reload_from(&overrides)?;
    assert!(
        quic_served(&server, Some(&second), &fx).await,
        "newly listed"
    );
    let revoked = call(&client, &fx, 1).await;
    assert!(revoked.is_err(), "{revoked:?}");
    let closed = client.connection().close_reason();
    assert!(
        matches!(
            closed,
            Some(quinn::ConnectionError::ApplicationClosed(ref close))
                if close.error_code == quinn::VarInt::from_u32(app_codes::NOT_ALLOWED)
        ),
        "{closed:?}"
    );
    assert!(
        !quic_served(&server, Some(&first), &fx).await,
        "first key refused"
    );
    reaches(
        &server,
        "umbrald_access_refused_total{reason=\"revoked\"}",
        1.0,
    )
    .await;
    server.shutdown().await;
    Ok(())
}
