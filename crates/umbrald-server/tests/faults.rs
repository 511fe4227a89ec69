//! Injected faults: a worker that panics (through the `fault-injection` hook), a data
//! directory that cannot be written at start, and an audit log whose writes fail while the
//! server runs. Each checks what the client sees and that nothing else is lost.
//!
//! The audit log's other faults (a missing directory with and without `fail_closed`) are in
//! `tests/audit.rs`; the GPU's (wrong results, failing calls, a device gone) in
//! `tests/gpu_lane.rs`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{error_code, metric, Fixture};
use umbrald_server::{fault_injection, Server, StartError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Every network wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(5);

/// One worker, one item per batch: the poisoned capsule's batch holds it alone, so its
/// neighbours in the same request and the other client's requests are never in it. With a
/// single worker, anything served after the panic proves that the worker thread lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_worker_answers_its_batch_internal_and_serves_on() -> TestResult {
    let fx = Arc::new(Fixture::new(1, 1, 3));
    let mut config = common::config("fault-panic", 1);
    config.batcher.max_batch_items = 1;
    let server = common::start(config).await;
    let poisoned = fx.capsule_bytes[2].clone();
    fault_injection::panic_on_capsule(&poisoned);

    // A well-behaved client on its own connection, checking every answer, all along.
    let good = common::client(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let good_errors = Arc::new(AtomicU64::new(0));
    let good_task = {
        let (fx, stop, errors) = (fx.clone(), stop.clone(), good_errors.clone());
        tokio::spawn(async move {
            let mut answered = 0u64;
            while !stop.load(Ordering::Relaxed) || answered < 3 {
                let req = fx.request(answered, &[((answered % 2) as usize, 0)]);
                match tokio::time::timeout(WAIT, good.call(&req)).await {
                    Ok(Ok(resp)) if resp.error.is_none() => fx.check_all_ok(&req, &resp),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                answered += 1;
            }
            good.close().await;
            answered
        })
    };

    let bad = common::client(&server).await;
    for id in 0..3u64 {
        // The poisoned item between two good ones: one batch each.
        let req = fx.request(100 + id, &[(0, 0), (2, 0), (1, 0)]);
        let resp = tokio::time::timeout(WAIT, bad.call(&req)).await??;
        assert!(resp.error.is_none(), "request error: {:?}", resp.error);
        let results = resp.results.as_ref().ok_or("no results")?;
        assert_eq!(
            results[1].error.as_ref().map(|e| e.code.as_str()),
            Some("internal"),
            "the panicking batch"
        );
        fx.verify(0, results[0].cfrag.as_deref().ok_or("item 0")?);
        fx.verify(1, results[2].cfrag.as_deref().ok_or("item 2")?);
    }
    fault_injection::disarm(&poisoned);
    // The same capsule is served once the fault is gone: the one worker still runs.
    let req = fx.request(200, &[(2, 0)]);
    let resp = tokio::time::timeout(WAIT, bad.call(&req)).await??;
    fx.check_all_ok(&req, &resp);

    stop.store(true, Ordering::Relaxed);
    let answered = tokio::time::timeout(WAIT, good_task).await??;
    assert!(answered >= 3);
    assert_eq!(good_errors.load(Ordering::Relaxed), 0, "good client errors");
    let text = common::scrape(&server).await;
    assert_eq!(metric(&text, "umbrald_worker_panics_total"), 3.0);
    assert_eq!(metric(&text, "umbrald_workers"), 1.0);
    assert_eq!(
        metric(
            &text,
            r#"umbrald_items_total{code="internal",outcome="error"}"#
        ),
        3.0
    );
    bad.close().await;
    server.shutdown().await;
    Ok(())
}

/// A data directory that cannot be created (a file stands in its way: refused even to root)
/// stops the start with a typed error that names the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_data_dir_stops_the_start_with_a_typed_error() -> TestResult {
    let base = common::data_dir("fault-datadir");
    std::fs::create_dir_all(&base)?;
    let blocker = base.join("a-file");
    std::fs::write(&blocker, b"not a directory")?;
    let data_dir = blocker.join("data");
    let mut config = common::config("fault-datadir-unused", 1);
    config.server.data_dir = data_dir.clone();
    let started = tokio::time::timeout(WAIT, Server::start(config, None)).await?;
    let err = match started {
        Ok(server) => {
            server.shutdown().await;
            return Err("the server started without a writable data directory".into());
        }
        Err(e) => e,
    };
    assert!(matches!(err, StartError::Tls(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&*blocker.to_string_lossy()),
        "the message names the path: {message}"
    );
    Ok(())
}

/// An audit log whose writes fail while the server runs (`/dev/full`: it opens, every write
/// fails with ENOSPC). Without `fail_closed` every request is served and each lost record is
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_that_cannot_be_written_serves_on_and_counts_the_loss() -> TestResult {
    let dev_full = std::path::Path::new("/dev/full");
    if !dev_full.exists() {
        eprintln!("skipped: no /dev/full");
        return Ok(());
    }
    let fx = Fixture::new(1, 1, 1);
    let mut config = common::config("fault-audit-full", 1);
    config.audit.path = Some(dev_full.to_owned());
    let server = common::start(config).await;
    let client = common::client(&server).await;
    for id in 0..4 {
        let req = fx.request_n(id, 1);
        let resp = tokio::time::timeout(WAIT, client.call(&req)).await??;
        assert_eq!(error_code(&resp), None);
        fx.check_all_ok(&req, &resp);
    }
    let until = Instant::now() + WAIT;
    loop {
        let text = common::scrape(&server).await;
        let (dropped, written) = (
            metric(&text, "umbrald_audit_dropped_total"),
            metric(&text, "umbrald_audit_records_total"),
        );
        assert_eq!(written, 0.0, "a record reached /dev/full");
        if dropped == 4.0 {
            break;
        }
        assert!(Instant::now() < until, "{dropped} records counted lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.close().await;
    server.shutdown().await;
    Ok(())
}
