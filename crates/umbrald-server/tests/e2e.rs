//! End-to-end tests: a real server on loopback (ephemeral ports), real QUIC clients, and
//! umbral-pre as the judge of every cfrag.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{error_code, metric, Fixture};
use umbrald_proto::{app_codes, Request, Response};
use umbrald_server::testing::TestClient;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cfrags_from_the_server_verify_and_decrypt() -> TestResult {
    let fx = Fixture::new(3, 2, 2);
    let server = common::start(common::config("decrypt", 2)).await;
    let client = common::client(&server).await;

    // Every kfrag re-encrypts capsule 0; capsule 1 through two of them.
    let req = fx.request(7, &[(0, 0), (0, 1), (0, 2), (1, 2), (1, 0)]);
    let resp = client.call(&req).await?;
    fx.check_all_ok(&req, &resp);
    let results = resp.results.as_ref().expect("results");
    let cfrag = |i: usize| results[i].cfrag.as_deref().expect("cfrag");
    // Any `threshold` cfrags of capsule 0 decrypt it.
    fx.decrypt_and_check(0, vec![fx.verify(0, cfrag(0)), fx.verify(0, cfrag(2))]);
    fx.decrypt_and_check(0, vec![fx.verify(0, cfrag(1)), fx.verify(0, cfrag(2))]);
    fx.decrypt_and_check(1, vec![fx.verify(1, cfrag(3)), fx.verify(1, cfrag(4))]);

    // An empty request is answered with empty results.
    let empty = client.call(&fx.request(8, &[])).await?;
    assert_eq!(
        (empty.id, empty.results.as_deref().map(<[_]>::len)),
        (8, Some(0))
    );

    client.close().await;
    server.shutdown().await;
    Ok(())
}

/// `compact_cfrags`: each cfrag comes back as its 197 capsule-specific bytes, which the
/// request's kfrags complete into cfrags that umbral-pre verifies and decrypts with; a bad
/// item is still its own error; the response is about half the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_answers_complete_into_verifying_cfrags() -> TestResult {
    let fx = Fixture::new(3, 2, 2);
    let server = common::start(common::config("compact", 2)).await;
    let client = common::client(&server).await;

    let whole = fx.request(11, &[(0, 0), (0, 1), (1, 2), (1, 0)]);
    let compact = Request {
        id: 12,
        compact_cfrags: Some(true),
        ..whole.clone()
    };
    let whole_resp = client.call(&whole).await?;
    let compact_resp = client.call(&compact).await?;
    fx.check_all_ok(&whole, &whole_resp);
    fx.check_all_ok(&compact, &compact_resp);
    let results = compact_resp.results.as_ref().expect("results");
    // The protocol's length is the codec's.
    assert_eq!(
        umbrald_proto::CFRAG_PARTS_LEN,
        umbrald_core::CapsuleFrag::PARTS_LEN
    );
    assert!(results.iter().all(|r| r.cfrag.is_none()
        && r.parts.as_ref().map(Vec::len) == Some(umbrald_proto::CFRAG_PARTS_LEN)));
    let cfrag = |i: usize| {
        let parts = results[i].parts.as_deref().expect("parts");
        fx.complete(&compact, &compact.items[i], parts)
    };
    fx.decrypt_and_check(0, vec![fx.verify(0, &cfrag(0)), fx.verify(0, &cfrag(1))]);
    fx.decrypt_and_check(1, vec![fx.verify(1, &cfrag(2)), fx.verify(1, &cfrag(3))]);
    let size = |r: &Response| umbrald_proto::encode(r).expect("encode").len() as f64;
    let ratio = size(&compact_resp) / size(&whole_resp);
    assert!(
        ratio < 0.6,
        "compact response is {ratio:.2} of the whole one"
    );

    // A bad capsule among compact items fails alone.
    let mut mixed = fx.request(13, &[(0, 0), (1, 1)]);
    mixed.compact_cfrags = Some(true);
    mixed.items[1].capsule[3] ^= 0x55;
    let resp = client.call(&mixed).await?;
    let results = resp.results.expect("results");
    assert_eq!(results[0].parts.as_ref().map(Vec::len), Some(197));
    let code = results[1].error.as_ref().map(|e| e.code.as_str());
    assert_eq!(code, Some("invalid_capsule"));
    assert!(results[1].parts.is_none() && results[1].cfrag.is_none());

    client.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_connections_with_mixed_batch_sizes() -> TestResult {
    let fx = Arc::new(Fixture::new(2, 1, 3));
    let server = common::start(common::config("fifty", 2)).await;
    let (addr, fp) = (server.local_addr(), server.cert_fingerprint());
    let sizes = [1usize, 3, 8, 17, 64, 2, 5];
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0..50u64 {
        let fx = fx.clone();
        tasks.spawn(async move {
            let client = TestClient::connect(addr, fp).await.expect("connects");
            // Two requests in flight on each connection.
            let a = fx.request_n(conn * 2, sizes[conn as usize % sizes.len()]);
            let b = fx.request_n(conn * 2 + 1, sizes[(conn as usize + 3) % sizes.len()]);
            let (ra, rb) = tokio::join!(client.call(&a), client.call(&b));
            fx.check_all_ok(&a, &ra.expect("answer a"));
            fx.check_all_ok(&b, &rb.expect("answer b"));
            client.close().await;
            a.items.len() + b.items.len()
        });
    }
    let mut items = 0;
    while let Some(done) = tasks.join_next().await {
        items += done?;
    }
    let text = common::scrape(&server).await;
    assert_eq!(
        metric(&text, r#"umbrald_items_total{code="none",outcome="ok"}"#),
        items as f64
    );
    assert_eq!(
        metric(&text, r#"umbrald_requests_total{code="none",outcome="ok"}"#),
        100.0
    );
    // Items were batched, not computed one by one.
    let batches = metric(&text, "umbrald_batch_size_items_count");
    assert!(
        batches < items as f64,
        "{batches} batches for {items} items"
    );
    server.shutdown().await;
    Ok(())
}

/// Sends raw bytes on a new stream, tolerating a stop of our sending side, and returns the
/// decoded response.
async fn raw_call(client: &TestClient, bytes: &[u8]) -> Response {
    let (mut send, mut recv) = client.open().await.expect("stream");
    match send.write_all(bytes).await {
        Ok(()) => send.finish().expect("finish"),
        Err(quinn::WriteError::Stopped(code)) => {
            assert_eq!(code.into_inner(), u64::from(app_codes::TOO_LARGE));
        }
        Err(e) => panic!("write failed: {e}"),
    }
    let bytes = recv.read_to_end(1 << 20).await.expect("response");
    umbrald_proto::decode(&bytes).expect("response decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_traffic_is_answered_while_a_good_client_keeps_working() -> TestResult {
    let fx = Arc::new(Fixture::new(2, 2, 2));
    let mut config = common::config("bad", 2);
    config.limits.max_request_bytes = 16 * 1024;
    config.limits.max_items_per_request = 8;
    config.limits.max_streams_per_connection = 4;
    config.limits.stream_read_timeout_ms = 300;
    let server = common::start(config).await;

    // A well-behaved client on its own connection, checking every answer, all along.
    let good = common::client(&server).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let good_task = {
        let (fx, stop) = (fx.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answered = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || answered < 3 {
                let req = fx.request_n(u64::from(answered), 4);
                let resp = good.call(&req).await.expect("good client answered");
                fx.check_all_ok(&req, &resp);
                answered += 1;
            }
            good.close().await;
            answered
        })
    };

    let bad = common::client(&server).await;
    // Not MessagePack at all.
    let resp = raw_call(&bad, b"\xc1 definitely not a request").await;
    assert_eq!((resp.id, error_code(&resp)), (0, Some("malformed")));
    // MessagePack, but not a request.
    let resp = raw_call(&bad, &umbrald_proto::encode(&vec![1u8, 2, 3])?).await;
    assert_eq!(error_code(&resp), Some("malformed"));
    // Oversized: 64 KiB against a 16 KiB limit.
    let resp = raw_call(&bad, &vec![0x90; 64 * 1024]).await;
    assert_eq!(error_code(&resp), Some("too_large"));
    // Unknown version, id echoed.
    let mut req = fx.request_n(41, 1);
    req.v = 2;
    let resp = bad.call(&req).await?;
    assert_eq!(
        (resp.id, error_code(&resp)),
        (41, Some("unsupported_version"))
    );
    // Too many items.
    let resp = bad.call(&fx.request_n(42, 9)).await?;
    assert_eq!((resp.id, error_code(&resp)), (42, Some("too_large")));
    // An item naming a policy that is not there.
    let mut req = fx.request_n(43, 1);
    req.items[0].policy = 9;
    assert_eq!(error_code(&bad.call(&req).await?), Some("malformed"));

    // Item-level failures do not fail their neighbours.
    let mut req = fx.request(44, &[(0, 0), (1, 0), (0, 1), (1, 1)]);
    req.items[1].capsule = vec![0x42; 105];
    req.policies[1].kfrag = vec![7; 310];
    let resp = bad.call(&req).await?;
    let results = resp.results.expect("item results");
    fx.verify(0, results[0].cfrag.as_deref().expect("item 0 fine"));
    assert_eq!(
        results[1].error.as_ref().map(|e| e.code.as_str()),
        Some("invalid_capsule")
    );
    assert_eq!(
        results[2].error.as_ref().map(|e| e.code.as_str()),
        Some("invalid_kfrag")
    );
    assert_eq!(
        results[3].error.as_ref().map(|e| e.code.as_str()),
        Some("invalid_kfrag")
    );
    // Policies interleaved item by item: each item still gets its own policy's outcome.
    let mut req = fx.request(47, &[(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)]);
    req.policies[1].kfrag = vec![7; 310];
    let resp = bad.call(&req).await?;
    let results = resp.results.expect("item results");
    for (i, capsule) in [(0, 0), (2, 1), (4, 0)] {
        fx.verify(capsule, results[i].cfrag.as_deref().expect("good policy"));
    }
    for i in [1, 3] {
        assert_eq!(
            results[i].error.as_ref().map(|e| e.code.as_str()),
            Some("invalid_kfrag"),
            "item {i}"
        );
    }
    // A kfrag checked against the wrong receiving key.
    let mut req = fx.request(45, &[(0, 0)]);
    req.policies[0].receiving_pk = fx.alice_pk.to_compressed_bytes().to_vec();
    let resp = bad.call(&req).await?;
    let results = resp.results.expect("item results");
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code.as_str()),
        Some("kfrag_verification_failed")
    );

    // An abandoned, half-written stream is reset after the read timeout.
    let (mut send, mut recv) = bad.open().await?;
    send.write_all(&umbrald_proto::encode(&fx.request_n(46, 2))?[..20])
        .await?;
    let started = Instant::now();
    match recv.read_to_end(1 << 20).await {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            assert_eq!(code.into_inner(), u64::from(app_codes::REQUEST_TIMEOUT));
        }
        other => panic!("expected a reset, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(send);

    // Stream credit: with 4 streams open, a fifth cannot be opened until one finishes.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::time::timeout(Duration::from_secs(2), bad.open()).await??);
    }
    let fifth = tokio::time::timeout(Duration::from_millis(150), bad.open()).await;
    assert!(fifth.is_err(), "fifth stream opened beyond the limit");
    for (mut send, mut recv) in held {
        // Abandon them explicitly (a plain drop would finish them as empty requests).
        send.reset(0u32.into())?;
        recv.stop(0u32.into())?;
    }

    // The bad connection still works for good requests.
    let req = fx.request_n(47, 2);
    fx.check_all_ok(&req, &bad.call(&req).await?);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = good_task.await?;
    assert!(answered >= 3);
    let text = common::scrape(&server).await;
    assert!(metric(&text, "umbrald_streams_reset_total") >= 1.0);
    assert_eq!(
        metric(
            &text,
            r#"umbrald_requests_total{code="malformed",outcome="error"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"umbrald_requests_total{code="too_large",outcome="error"}"#
        ),
        2.0
    );
    bad.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_answered_at_once_and_the_queue_stays_bounded() -> TestResult {
    let fx = Arc::new(Fixture::new(1, 1, 1));
    let mut config = common::config("overload", 1);
    // Batches form only after 400 ms (the queue never reaches a full batch), so the first two
    // requests fill the 8-item queue and everything after them must be refused at once.
    config.batcher.max_batch_items = 64;
    config.batcher.max_queue_delay_us = 400_000;
    config.batcher.max_queue_items = 8;
    config.limits.max_items_per_request = 4;
    let server = common::start(config).await;
    let client = Arc::new(common::client(&server).await);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..30u64 {
        let (client, fx) = (client.clone(), fx.clone());
        tasks.spawn(async move {
            let req = fx.request_n(id, 4);
            let started = Instant::now();
            let resp = client.call(&req).await.expect("answered");
            (req, resp, started.elapsed())
        });
    }
    let (mut ok, mut overloaded) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (req, resp, took) = done?;
        match error_code(&resp) {
            None => {
                fx.check_all_ok(&req, &resp);
                ok += 1;
            }
            Some("overloaded") => {
                assert!(
                    took < Duration::from_millis(350),
                    "overloaded after {took:?}"
                );
                overloaded += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(ok >= 2, "{ok} ok");
    assert!(overloaded >= 20, "{overloaded} overloaded");
    let text = common::scrape(&server).await;
    assert!(metric(&text, "umbrald_queue_depth_max") <= 8.0);
    assert_eq!(metric(&text, "umbrald_queue_depth"), 0.0);
    assert_eq!(
        metric(
            &text,
            r#"umbrald_requests_total{code="overloaded",outcome="error"}"#
        ),
        f64::from(overloaded)
    );
    // After the burst the server takes work again.
    let req = fx.request_n(99, 4);
    fx.check_all_ok(&req, &client.call(&req).await?);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_honoured_without_silent_work() -> TestResult {
    let fx = Fixture::new(1, 1, 1);
    let mut config = common::config("deadline", 1);
    config.batcher.max_batch_items = 64;
    config.batcher.max_queue_delay_us = 300_000;
    let server = common::start(config).await;
    let client = common::client(&server).await;

    let with_deadline = |id, ms| Request {
        deadline_ms: Some(ms),
        ..fx.request_n(id, 3)
    };
    let patient = fx.request_n(3, 1);
    let started = Instant::now();
    let (zero_req, short_req) = (with_deadline(1, 0), with_deadline(2, 30));
    let (zero, short, ok) = tokio::join!(
        client.call(&zero_req),
        client.call(&short_req),
        client.call(&patient)
    );
    let (zero, short) = (zero?, short?);
    assert_eq!((zero.id, error_code(&zero)), (1, Some("deadline_exceeded")));
    assert_eq!(
        (short.id, error_code(&short)),
        (2, Some("deadline_exceeded"))
    );
    fx.check_all_ok(&patient, &ok?);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "batch waited for the delay"
    );

    // The expired items were dropped from the queue, never computed: one batch of one item.
    let text = common::scrape(&server).await;
    assert_eq!(metric(&text, "umbrald_batch_size_items_sum"), 1.0);
    assert_eq!(
        metric(
            &text,
            r#"umbrald_items_total{code="deadline_exceeded",outcome="error"}"#
        ),
        6.0
    );
    client.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_traffic() -> TestResult {
    let fx = Fixture::new(1, 1, 2);
    let server = common::start(common::config("metrics", 1)).await;
    let addr = server.metrics_addr().expect("metrics enabled");
    assert_eq!(common::http_get(addr, "/healthz").await.0, 200);
    assert_eq!(common::http_get(addr, "/readyz").await.0, 200);
    assert_eq!(common::http_get(addr, "/nope").await.0, 404);

    let before = common::scrape(&server).await;
    assert_eq!(metric(&before, "umbrald_open_connections"), 0.0);
    assert_eq!(
        metric(&before, r#"umbrald_backend_info{backend="cpu"}"#),
        1.0
    );
    assert_eq!(metric(&before, "umbrald_workers"), 1.0);
    assert_eq!(metric(&before, "umbrald_ready"), 1.0);

    let client = common::client(&server).await;
    for (id, n) in [(1, 1), (2, 4), (3, 5)] {
        let req = fx.request_n(id, n);
        fx.check_all_ok(&req, &client.call(&req).await?);
    }
    let _ = client.call_raw(b"junk").await?;
    let mut req = fx.request_n(4, 2);
    req.items[0].capsule = vec![1; 3];
    client.call(&req).await?;

    let after = common::scrape(&server).await;
    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    assert_eq!(
        delta(r#"umbrald_requests_total{code="none",outcome="ok"}"#),
        4.0
    );
    assert_eq!(
        delta(r#"umbrald_requests_total{code="malformed",outcome="error"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"umbrald_items_total{code="none",outcome="ok"}"#),
        11.0
    );
    assert_eq!(
        delta(r#"umbrald_items_total{code="invalid_capsule",outcome="error"}"#),
        1.0
    );
    assert_eq!(delta("umbrald_request_duration_seconds_count"), 5.0);
    assert_eq!(delta("umbrald_batch_size_items_sum"), 12.0);
    assert!(delta("umbrald_batch_compute_seconds_sum") > 0.0);
    // The workers' CPU time is counted (and is part of the process's); no GPU lane here.
    let workers_cpu = delta(r#"umbrald_thread_cpu_seconds_total{group="cpu_workers"}"#);
    assert!(workers_cpu > 0.0, "{workers_cpu}");
    assert!(workers_cpu <= delta("umbrald_cpu_seconds_total"));
    assert_eq!(
        delta(r#"umbrald_thread_cpu_seconds_total{group="gpu_host"}"#),
        0.0
    );
    assert_eq!(delta("umbrald_queue_wait_seconds_count"), 12.0);
    assert_eq!(metric(&after, "umbrald_open_connections"), 1.0);
    assert_eq!(metric(&after, "umbrald_connections_total"), 1.0);
    common::settles(&server, "umbrald_inflight_requests", 0.0).await;

    client.close().await;
    common::settles(&server, "umbrald_open_connections", 0.0).await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_in_flight_requests() -> TestResult {
    let fx = Arc::new(Fixture::new(1, 1, 1));
    let mut config = common::config("shutdown", 1);
    config.batcher.max_queue_delay_us = 300_000;
    config.batcher.max_batch_items = 64;
    let server = common::start(config).await;
    let (addr, fp) = (server.local_addr(), server.cert_fingerprint());
    let client = Arc::new(common::client(&server).await);
    let in_flight = {
        let (client, fx) = (client.clone(), fx.clone());
        tokio::spawn(async move {
            let req = fx.request_n(1, 3);
            let resp = client.call(&req).await.expect("in-flight request answered");
            fx.check_all_ok(&req, &resp);
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    server.shutdown().await;
    in_flight.await?;
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing listens any more.
    let late = tokio::time::timeout(Duration::from_secs(3), TestClient::connect(addr, fp)).await;
    assert!(!matches!(late, Ok(Ok(_))), "connected after shutdown");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate() -> TestResult {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(vec!["client".to_owned()])?;
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca, &ca_key)?;

    let mut config = common::config("mtls", 1);
    std::fs::create_dir_all(&config.server.data_dir)?;
    let ca_path = config.server.data_dir.join("client-ca.pem");
    std::fs::write(&ca_path, ca.pem())?;
    config.tls.client_ca = Some(ca_path);
    let server = common::start(config).await;
    let (addr, fp) = (server.local_addr(), server.cert_fingerprint());
    let fx = Fixture::new(1, 1, 1);
    let req = fx.request_n(1, 1);

    // Without a certificate: the handshake or the first request fails.
    let anonymous = async {
        let client = TestClient::connect(addr, fp).await?;
        client.call(&req).await
    };
    let refused = tokio::time::timeout(Duration::from_secs(5), anonymous).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "served a client without a certificate"
    );

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der()));
    let client =
        TestClient::connect_with(addr, fp, Some((vec![client_cert.der().clone()], key))).await?;
    fx.check_all_ok(&req, &client.call(&req).await?);
    client.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_fingerprint_is_rejected_by_the_client() -> TestResult {
    let server = common::start(common::config("pin", 1)).await;
    let mut wrong = server.cert_fingerprint();
    wrong[0] ^= 1;
    let attempt = TestClient::connect(server.local_addr(), wrong).await;
    assert!(attempt.is_err(), "pinned a different certificate");
    server.shutdown().await;
    Ok(())
}
