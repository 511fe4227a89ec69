//! Hostile clients on loopback, one attack class at a time, each bounded in time, while a
//! well-behaved client (`umbrald-client`, its own connection) sends single-capsule requests
//! all along: it must see no error, and the server must serve after every class.
//!
//! The attack code is the `hostile_mix` example's (`examples/hostile_mix/attacks.rs`), which
//! runs all classes at once for the measured figure in `docs/RELIABILITY.md`.

mod common;

#[path = "../examples/hostile_mix/attacks.rs"]
mod attacks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attacks::{Tally, Target};
use common::{metric, Fixture};
use tokio::time::Instant;
use umbrald_client::{Client, ClientOptions, Fingerprint, ReencryptRequest, Trust};
use umbrald_nucypher::NodeKeys;

/// Limits small enough that every class reaches them within its second or two.
const MAX_STREAMS: u32 = 8;
const MAX_CONNECTIONS: usize = 24;
const STREAM_TIMEOUT_MS: u64 = 400;
const IDLE_TIMEOUT_MS: u64 = 1_000;
/// How long each class runs.
const PHASE: Duration = Duration::from_millis(1_500);

/// The good client's record: requests, errors and the slowest answer.
#[derive(Default)]
struct Good {
    answered: AtomicU64,
    errors: Mutex<Vec<String>>,
    slowest_us: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_disturb_a_good_one() {
    let fx = Arc::new(Fixture::new(1, 1, 2));
    let mut config = common::config("hostile", 1);
    config.limits.max_streams_per_connection = MAX_STREAMS;
    config.limits.max_connections = MAX_CONNECTIONS;
    config.limits.stream_read_timeout_ms = STREAM_TIMEOUT_MS;
    config.limits.idle_timeout_ms = IDLE_TIMEOUT_MS;
    config.limits.max_items_per_request = 64;
    config.nucypher.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = common::start_node(config, NodeKeys::random()).await;
    let target = Target {
        quic: server.local_addr(),
        https: server.https_addr(),
        fingerprint: server.cert_fingerprint(),
    };

    // The good client: one connection, opened before any attack, kept alive by pings.
    let options = ClientOptions {
        request_timeout: Duration::from_secs(5),
        keep_alive: Some(Duration::from_millis(300)),
        ..ClientOptions::default()
    };
    let trust = Trust::Fingerprint(Fingerprint(target.fingerprint));
    let client = Client::connect_with(target.quic, &trust, options)
        .await
        .expect("good client connects");
    let good = Arc::new(Good::default());
    let stop = Arc::new(AtomicBool::new(false));
    let good_task = {
        let (good, stop, fx, client) = (good.clone(), stop.clone(), fx.clone(), client.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let capsule = fx.capsule_bytes[i % 2].clone();
                let request = ReencryptRequest::new(fx.policies[0].clone(), [capsule]);
                let started = Instant::now();
                match client.reencrypt(request).await {
                    Ok(items) if items.len() == 1 && items[0].is_ok() => {
                        good.answered.fetch_add(1, Ordering::Relaxed);
                    }
                    other => good.errors.lock().expect("lock").push(format!("{other:?}")),
                }
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                good.slowest_us.fetch_max(us, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // Served between classes: the good client's count goes up.
    let mut last = 0;
    let mut progressed = |class: &str| {
        let now = good.answered.load(Ordering::Relaxed);
        assert!(now > last, "the good client was not served during {class}");
        last = now;
    };

    // Stalled, half-written streams on 4 connections: reset after the read timeout.
    let tally = Arc::new(Tally::default());
    attacks::stalled_streams(target, 4, Instant::now() + PHASE, tally.clone()).await;
    let (opened, reset, _) = tally.get();
    assert!(
        opened >= u64::from(MAX_STREAMS) * 4,
        "streams opened: {opened}"
    );
    assert!(reset > 0, "no stalled stream was reset");
    progressed("stalled streams");

    // A stream flood on one connection: about the stream credit open at once. The attacker
    // counts a stream closed only once its reader task ran, which can be after the server
    // granted the credit back, hence the slack; without the limit it opens thousands.
    let tally = Arc::new(Tally::default());
    let most = attacks::stream_flood(target, 0, Instant::now() + PHASE, tally.clone()).await;
    let (sent, answered, _) = tally.get();
    assert!(
        most <= 4 * u64::from(MAX_STREAMS),
        "{most} streams open at once"
    );
    assert!(
        sent > 0 && answered > 0,
        "flood: {sent} sent, {answered} answered"
    );
    progressed("the stream flood");

    // Connections past max_connections: the excess is refused, the good one keeps its own.
    let tally = Arc::new(Tally::default());
    attacks::connection_flood(
        target,
        2 * MAX_CONNECTIONS,
        Instant::now() + PHASE,
        tally.clone(),
    )
    .await;
    let (tried, refused, admitted) = tally.get();
    assert!(refused > 0, "no connection refused of {tried}");
    assert!(
        admitted <= (MAX_CONNECTIONS as u64) * tried.div_ceil(2 * MAX_CONNECTIONS as u64),
        "{admitted} admitted of {tried}"
    );
    progressed("the connection flood");

    // Declared-huge lengths: answered with an error, none served.
    let tally = Arc::new(Tally::default());
    attacks::huge_lengths(target, 0, Instant::now() + PHASE, tally.clone()).await;
    let (sent, rebuffed, through) = tally.get();
    assert!(
        sent >= 3 && through == 0,
        "huge: {sent} sent, {through} served"
    );
    // Every request sent was answered with an error (`through` counts the others); a refused
    // connection attempt counts as rebuffed too, without a request.
    assert!(rebuffed >= sent, "huge: {sent} sent, {rebuffed} rebuffed");
    progressed("declared-huge lengths");

    // Slow readers: 64 requests of 64 capsules whose answers (~13 KiB each, compact) are never
    // read past a 1 KiB window; the server gives up after its write timeout.
    let mut big = fx.request_n(1, 64);
    big.compact_cfrags = Some(true);
    let big = umbrald_proto::encode(&big).expect("encode");
    let tally = Arc::new(Tally::default());
    attacks::slow_readers(target, big, Instant::now() + PHASE, tally.clone()).await;
    assert!(tally.get().0 > 0);
    progressed("slow readers");

    // Random datagrams at the QUIC port.
    let tally = Arc::new(Tally::default());
    attacks::random_datagrams(target, 5_000, Instant::now() + PHASE, tally.clone()).await;
    assert!(tally.get().0 > 1_000, "datagrams sent: {}", tally.get().0);
    progressed("random datagrams");

    // 0-RTT: the server's TLS configuration offers none (max_early_data_size 0).
    let accepted = attacks::zero_rtt(target).await.expect("0-RTT attempt runs");
    assert!(!accepted, "the server accepted 0-RTT data");

    // HTTPS: slowloris headers, one byte per 100 ms: closed after the header read timeout.
    let tally = Arc::new(Tally::default());
    let interval = Duration::from_millis(100);
    let started = Instant::now();
    attacks::slowloris_headers(target, 4, interval, started + PHASE, tally.clone()).await;
    let (conns, closed, _) = tally.get();
    assert!(closed >= 4, "slowloris heads: {closed} of {conns} closed");
    progressed("slowloris headers");

    // HTTPS: slowloris bodies: 408 after the body timeout.
    let tally = Arc::new(Tally::default());
    attacks::slowloris_bodies(target, 4, interval, Instant::now() + PHASE, tally.clone()).await;
    let (conns, timed_out, _) = tally.get();
    assert!(
        timed_out >= 4,
        "slowloris bodies: {timed_out} of {conns} answered 408"
    );
    progressed("slowloris bodies");

    // HTTPS: idle TCP connections past the limit, dropped after the handshake timeout.
    let tally = Arc::new(Tally::default());
    attacks::idle_tcp(
        target,
        2 * MAX_CONNECTIONS,
        Instant::now() + PHASE,
        tally.clone(),
    )
    .await;
    let (conns, dropped, _) = tally.get();
    assert!(
        dropped >= MAX_CONNECTIONS as u64,
        "idle TCP: {dropped} of {conns} dropped"
    );
    progressed("idle TCP connections");

    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(10), good_task)
        .await
        .expect("good client ends")
        .expect("good client task");
    let errors = good.errors.lock().expect("lock").clone();
    assert!(errors.is_empty(), "good client errors: {errors:?}");
    eprintln!(
        "good client: {} answered, slowest {} µs",
        good.answered.load(Ordering::Relaxed),
        good.slowest_us.load(Ordering::Relaxed)
    );

    // Still serving, and every attack connection gone once its timeouts ran.
    let req = fx.request_n(9, 2);
    let fresh = common::client(&server).await;
    let resp = tokio::time::timeout(Duration::from_secs(5), fresh.call(&req))
        .await
        .expect("answered in time")
        .expect("answered");
    fx.check_all_ok(&req, &resp);
    fresh.close().await;
    client.close();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = common::scrape(&server).await;
        let (quic, https) = (
            metric(&text, "umbrald_open_connections"),
            metric(&text, "umbrald_https_open_connections"),
        );
        if quic == 0.0 && https == 0.0 {
            assert!(metric(&text, "umbrald_streams_reset_total") > 0.0);
            assert!(metric(&text, "umbrald_connections_refused_total") > 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "connections left open: {quic} QUIC, {https} HTTPS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}
