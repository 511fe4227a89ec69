//! NuCypher `ReencryptionRequest`s on the QUIC endpoint, in Rust only (the nucypher-core
//! client test is `nucypher_python.rs`): the golden request from nucypher-core 0.16, errors as
//! `umbrald/1` error maps, native requests on the same connection, and the side-by-side
//! throughput measurement (ignored by default; see `docs/PROTOCOL.md`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use umbral_pre::{DefaultDeserialize, PublicKey};
use umbrald_nucypher::{NodeKeys, ReencryptionRequest, ReencryptionResponse};
use umbrald_proto::Response;

const REQUEST: &[u8] =
    include_bytes!("../../umbrald-nucypher/tests/fixtures/reencryption_request.bin");
const KEYS: &str = include_str!("../../umbrald-nucypher/tests/fixtures/exchange_keys.json");

fn key(name: &str) -> Vec<u8> {
    let keys: serde_json::Value = serde_json::from_str(KEYS).expect("json");
    hex::decode(keys[name].as_str().expect("present")).expect("hex")
}

fn pk(name: &str) -> PublicKey {
    PublicKey::try_from_compressed_bytes(&key(name)).expect("pk")
}

/// The fixture's node (its decrypting key) with a fresh signing key.
fn fixture_node() -> NodeKeys {
    let signing: [u8; 32] = NodeKeys::random().secret_bytes()[32..]
        .try_into()
        .expect("32");
    let decrypting: [u8; 32] = key("ursula_decrypting_sk").try_into().expect("32");
    NodeKeys::from_be_bytes(&decrypting, &signing).expect("keys")
}

fn error_map(bytes: &[u8]) -> (u64, String, String) {
    let resp: Response = umbrald_proto::decode(bytes).expect("an umbrald/1 response");
    assert!(resp.results.is_none());
    let err = resp.error.expect("error");
    (resp.id, err.code, err.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_request_gets_a_verifiable_response_beside_native_requests() {
    let node = fixture_node();
    let vk = *node.verifying_public_key();
    let config = common::config("nucypher-golden", 1);
    let server = common::start_node(config, node).await;
    let client = common::client(&server).await;

    let fx = common::Fixture::new(2, 2, 4);
    let native = fx.request_n(5, 4);
    let (raw, native_resp) = tokio::join!(client.call_raw(REQUEST), client.call(&native));
    fx.check_all_ok(&native, &native_resp.expect("native answered"));

    let raw = raw.expect("answered");
    let req = ReencryptionRequest::parse(REQUEST).expect("parses");
    let resp = ReencryptionResponse::parse(&raw).expect("a ReRs 3.0 message");
    assert!(resp.verify_signature(&req.capsules, &vk));
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

    // Errors are error maps, and the connection goes on.
    let mut v4 = REQUEST.to_vec();
    v4[5] = 4;
    let (id, code, message) = error_map(&client.call_raw(&v4).await.expect("answered"));
    assert_eq!((id, code.as_str()), (0, "unsupported_version"), "{message}");
    let with_conditions: Vec<u8> = {
        let at = REQUEST
            .windows(12)
            .position(|w| w == b"[null, null]")
            .expect("conditions");
        let mut b = REQUEST.to_vec();
        b[at..at + 12].copy_from_slice(b"[{\"x\":true}]");
        b
    };
    let (_, code, _) = error_map(&client.call_raw(&with_conditions).await.expect("answered"));
    assert_eq!(code, "conditions_unsupported");
    let (_, code, _) = error_map(&client.call_raw(b"ReRq\x00\x03").await.expect("answered"));
    assert_eq!(code, "malformed");
    let native_resp = client.call(&native).await.expect("native answered");
    fx.check_all_ok(&native, &native_resp);

    let metrics = common::scrape(&server).await;
    assert!(
        metrics.contains("conditions_unsupported"),
        "counted by code"
    );
    // NuCypher requests are also counted on their own: one answered, four refused; the two
    // native requests are not among them.
    let nucypher = |outcome: &str, code: &str| {
        let line =
            format!("umbrald_nucypher_requests_total{{code=\"{code}\",outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map(|v| v.trim().to_owned())
    };
    assert_eq!(nucypher("ok", "none").as_deref(), Some("1"), "{metrics}");
    assert_eq!(
        nucypher("error", "conditions_unsupported").as_deref(),
        Some("1")
    );
    assert_eq!(
        nucypher("error", "unsupported_version").as_deref(),
        Some("1")
    );
    assert_eq!(nucypher("error", "malformed").as_deref(), Some("1"));
    client.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_node_and_no_node_keys_are_refused() {
    let config = common::config("nucypher-other", 1);
    let server = common::start_node(config, NodeKeys::random()).await;
    let client = common::client(&server).await;
    let (id, code, message) = error_map(&client.call_raw(REQUEST).await.expect("answered"));
    assert_eq!((id, code.as_str()), (0, "invalid_kfrag"));
    assert!(message.contains("another node"), "{message}");
    client.close().await;
    server.shutdown().await;

    let server = common::start(common::config("nucypher-none", 1)).await;
    let client = common::client(&server).await;
    let (_, code, message) = error_map(&client.call_raw(REQUEST).await.expect("answered"));
    assert_eq!(code, "unsupported_version");
    assert!(message.contains("without node keys"), "{message}");
    let status = common::http_get(server.metrics_addr().expect("metrics"), "/status").await;
    assert_eq!(status.0, 200);
    assert!(status.1.contains("\"nucypher\":null"), "{}", status.1);
    client.close().await;
    server.shutdown().await;
}

/// Capsules per request in the throughput comparison.
const PER_REQUEST: usize = 64;

/// Side by side: NuCypher requests of 64 capsules against native requests of 64 items, same
/// server, same connection, alternating rounds. Prints capsules per second for each.
/// Run: `cargo test --release -p umbrald-server --test nucypher -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; run it explicitly"]
async fn throughput_nucypher_vs_native() {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let node = NodeKeys::random();
    let node_pk = PublicKey::try_from_compressed_bytes(node.decrypting_public_key()).expect("pk");
    let config = common::config("nucypher-bench", workers);
    let server = common::start_node(config, node).await;
    let client = Arc::new(common::client(&server).await);

    let fx = common::Fixture::new(1, 1, PER_REQUEST);
    let native = Arc::new(umbrald_proto::encode(&fx.request_n(1, PER_REQUEST)).expect("encode"));
    let nucypher = Arc::new(fx.nucypher_request(&node_pk));
    // Both work before measuring.
    let r = client.call_raw(&nucypher).await.expect("answered");
    assert!(r.starts_with(b"ReRs"), "{:?}", String::from_utf8_lossy(&r));
    let r: Response = umbrald_proto::decode(&client.call_raw(&native).await.expect("answered"))
        .expect("response");
    assert!(r.results.is_some());

    let in_flight = 4 * workers;
    let round = Duration::from_secs(2);
    // (capsules, wall time, CPU time of this process) per mode. CPU time per capsule is the
    // figure that other load on the machine does not distort.
    let mut totals = [(0usize, Duration::ZERO, Duration::ZERO); 2];
    for r in 0..8 {
        let which = r % 2;
        let payload = if which == 0 {
            native.clone()
        } else {
            nucypher.clone()
        };
        let cpu_before = common::process_cpu();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let client = client.clone();
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = 0usize;
                while started.elapsed() < round {
                    let out = client.call_raw(&payload).await.expect("answered");
                    assert!(out.len() > PER_REQUEST * 381, "a full answer");
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
            "round {r}: {:<8} {:>8.0} capsules/s, {:>6.1} µs CPU per capsule",
            if which == 0 { "native" } else { "nucypher" },
            capsules as f64 / elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / capsules as f64
        );
    }
    let rate = |(n, t, _): (usize, Duration, Duration)| n as f64 / t.as_secs_f64();
    let cpu = |(n, _, c): (usize, Duration, Duration)| c.as_secs_f64() * 1e6 / n as f64;
    let (native_rate, nucypher_rate) = (rate(totals[0]), rate(totals[1]));
    println!(
        "workers {workers}, {in_flight} requests in flight, {PER_REQUEST} capsules each: \
         native {native_rate:.0}/s ({:.1} µs CPU each), nucypher {nucypher_rate:.0}/s \
         ({:.1} µs CPU each); throughput ratio {:.3}, CPU ratio {:.3}",
        cpu(totals[0]),
        cpu(totals[1]),
        nucypher_rate / native_rate,
        cpu(totals[1]) / cpu(totals[0]),
    );
    server.shutdown().await;
}
