//! The GPU lane end to end without a GPU: fake GPU backends injected through `EcBackend`
//! (wrong points, errors), the host-compiled kernels as a GPU-shaped backend, and `auto` on a
//! machine without a GPU. Every cfrag is checked by umbral-pre; the metrics must show what
//! happened.
//!
//! The one test that needs a real GPU is `#[ignore]`d (see `scripts/gpu-device-check.sh`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{metric, scrape, settles, Fixture};
use k256::Scalar;
use umbrald_core::backend::{BackendError, CpuBackend, EcBackend};
use umbrald_core::curve::Affine;
use umbrald_gpu::host::HostExecutor;
use umbrald_gpu::{DeviceInfo, GpuBackend, GpuOptions};
use umbrald_server::{no_gpu, GpuDevice, GpuProber};
use umbrald_server::{BackendKind, Config, Server, StartError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How a fake GPU misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Correct results (the CPU's).
    None,
    /// Every point negated: valid curve points, wrong ones (only the audit can tell).
    WrongPoints,
    /// Every call fails like a launch or driver error.
    Error,
    /// One result too few.
    Short,
    /// The call panics (as a CUDA library might).
    Panic,
}

/// A "GPU" that computes on the CPU and then applies its fault.
#[derive(Debug)]
struct FakeGpu {
    fault: Fault,
    calls: AtomicUsize,
    /// How long each call takes, like a device's latency.
    latency: Duration,
    /// Calls running now, and the most seen at once.
    active: AtomicUsize,
    most_active: Arc<AtomicUsize>,
}

impl FakeGpu {
    fn device(fault: Fault) -> GpuDevice {
        Self::build(fault, Duration::ZERO, Arc::default())
    }

    /// A correct GPU whose every call takes `latency`; `most_active` records the most calls
    /// seen running at once.
    fn slow(latency: Duration, most_active: Arc<AtomicUsize>) -> GpuDevice {
        Self::build(Fault::None, latency, most_active)
    }

    fn build(fault: Fault, latency: Duration, most_active: Arc<AtomicUsize>) -> GpuDevice {
        GpuDevice {
            backend: Arc::new(FakeGpu {
                fault,
                calls: AtomicUsize::new(0),
                latency,
                active: AtomicUsize::new(0),
                most_active,
            }),
            description: format!("fake GPU ({fault:?}, {latency:?} per call)"),
            stats: None,
            batch_items: 4096,
        }
    }

    fn spoil<T>(&self, mut out: Vec<T>, negate: impl Fn(&mut T)) -> Result<Vec<T>, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.latency.is_zero() {
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_active.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.latency);
            self.active.fetch_sub(1, Ordering::SeqCst);
        }
        match self.fault {
            Fault::None => {}
            Fault::WrongPoints => out.iter_mut().for_each(negate),
            Fault::Error => return Err(BackendError::Device("launch failed".into())),
            Fault::Short => {
                out.pop();
            }
            Fault::Panic => panic!("fake GPU driver panic"),
        }
        Ok(out)
    }
}

fn neg(p: &mut Option<Affine>) {
    *p = p.map(|p| p.neg());
}

impl EcBackend for FakeGpu {
    fn name(&self) -> &'static str {
        "fake-gpu"
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        let out = CpuBackend.mul_pairs(bases, scalars)?;
        self.spoil(out, |pair| pair.iter_mut().for_each(neg))
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        let out = CpuBackend.mul_u(scalars)?;
        self.spoil(out, neg)
    }
}

/// A prober whose `i`-th call returns `answers[min(i, len - 1)]`.
fn prober(answers: Vec<Option<Fault>>) -> (GpuProber, Arc<AtomicUsize>) {
    let probes = Arc::new(AtomicUsize::new(0));
    let counter = probes.clone();
    let prober: GpuProber = Arc::new(move || {
        let i = counter.fetch_add(1, Ordering::Relaxed);
        match answers[i.min(answers.len() - 1)] {
            Some(fault) => Ok(FakeGpu::device(fault)),
            None => Err("fake GPU gone".to_owned()),
        }
    });
    (prober, probes)
}

fn gpu_config(tag: &str, kind: BackendKind, unhealthy_after: u32, reprobe_ms: u64) -> Config {
    let mut c = common::config(tag, 2);
    c.workers.backend = kind;
    c.gpu.unhealthy_after = unhealthy_after;
    c.gpu.reprobe_after_ms = reprobe_ms;
    c
}

const FALLBACK_AUDIT: &str = r#"umbrald_gpu_fallbacks_total{reason="audit_mismatch"}"#;
const FALLBACK_ERROR: &str = r#"umbrald_gpu_fallbacks_total{reason="device_error"}"#;
const FALLBACK_INVALID: &str = r#"umbrald_gpu_fallbacks_total{reason="invalid_output"}"#;
const ITEMS_OK: &str = r#"umbrald_items_total{code="none",outcome="ok"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_points_are_caught_recomputed_and_the_gpu_recovers() -> TestResult {
    let fx = Fixture::new(3, 2, 4);
    // The first GPU returns wrong points; the re-probe finds a good one.
    let (prober, probes) = prober(vec![Some(Fault::WrongPoints), Some(Fault::None)]);
    let config = gpu_config("gpu-wrong", BackendKind::Gpu, 2, 200);
    let server = Server::start_with_gpu(config, prober).await?;
    assert_eq!(server.backend(), "gpu");
    let client = common::client(&server).await;

    let req = fx.request_n(1, 12);
    let resp = client.call(&req).await?;
    // Every cfrag verifies under umbral-pre: the wrong points never reached the client.
    fx.check_all_ok(&req, &resp);
    let text = scrape(&server).await;
    // mul_pairs and mul_u both failed their audit: two faults in a row, so unhealthy.
    assert_eq!(metric(&text, FALLBACK_AUDIT), 2.0);
    assert_eq!(metric(&text, "umbrald_gpu_audit_failures_total"), 2.0);
    assert!(metric(&text, "umbrald_gpu_audited_outputs_total") >= 2.0);
    assert_eq!(metric(&text, "umbrald_gpu_batches_total"), 0.0);
    assert_eq!(metric(&text, "umbrald_backend_info{backend=\"gpu\"}"), 1.0);

    // After the backoff the re-probe finds a healthy GPU, which serves again.
    settles(&server, "umbrald_gpu_healthy", 1.0).await;
    assert_eq!(
        metric(
            &scrape(&server).await,
            r#"umbrald_gpu_reprobes_total{result="ok"}"#
        ),
        1.0
    );
    assert_eq!(probes.load(Ordering::Relaxed), 2);
    let req = fx.request_n(2, 9);
    let resp = client.call(&req).await?;
    fx.check_all_ok(&req, &resp);
    settles(&server, "umbrald_gpu_batches_total", 1.0).await;
    let text = scrape(&server).await;
    assert_eq!(metric(&text, "umbrald_gpu_items_total"), 9.0);
    assert_eq!(metric(&text, FALLBACK_AUDIT), 2.0, "no new fallback");
    assert_eq!(metric(&text, ITEMS_OK), 21.0);
    // Every device call is timed, the rejected ones too: one of each kind per batch.
    for call in ["pairs", "fixed"] {
        let series = format!("umbrald_gpu_call_seconds_count{{call=\"{call}\"}}");
        assert_eq!(metric(&text, &series), 2.0, "{series}");
    }

    client.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_errors_fall_back_and_the_cpu_serves_while_unhealthy() -> TestResult {
    let fx = Fixture::new(2, 1, 3);
    // The GPU fails every launch, and every re-probe finds nothing.
    let (prober, probes) = prober(vec![Some(Fault::Error), None]);
    let config = gpu_config("gpu-error", BackendKind::Gpu, 1, 50);
    let server = Server::start_with_gpu(config, prober).await?;
    let client = common::client(&server).await;

    let req = fx.request_n(1, 5);
    let resp = client.call(&req).await?;
    fx.check_all_ok(&req, &resp);
    let text = scrape(&server).await;
    assert_eq!(metric(&text, FALLBACK_ERROR), 1.0);
    assert_eq!(metric(&text, "umbrald_gpu_healthy"), 0.0);
    assert_eq!(metric(&text, "umbrald_gpu_audit_failures_total"), 0.0);

    // While unhealthy the CPU workers take the batches: no further GPU fallbacks.
    for id in 2..5 {
        let req = fx.request_n(id, 7);
        let resp = client.call(&req).await?;
        fx.check_all_ok(&req, &resp);
    }
    let text = scrape(&server).await;
    assert_eq!(metric(&text, FALLBACK_ERROR), 1.0);
    assert_eq!(metric(&text, "umbrald_gpu_batches_total"), 0.0);
    assert_eq!(metric(&text, ITEMS_OK), 26.0);

    // Re-probes keep failing, with backoff, and are counted.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while metric(
        &scrape(&server).await,
        r#"umbrald_gpu_reprobes_total{result="failed"}"#,
    ) < 2.0
    {
        assert!(std::time::Instant::now() < until, "no re-probes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(probes.load(Ordering::Relaxed) >= 3);
    assert_eq!(metric(&scrape(&server).await, "umbrald_gpu_healthy"), 0.0);

    client.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_results_are_invalid_output() -> TestResult {
    let fx = Fixture::new(2, 1, 2);
    let (prober, _) = prober(vec![Some(Fault::Short)]);
    // Never unhealthy within this test: every batch reaches the GPU and falls back.
    let config = gpu_config("gpu-short", BackendKind::Gpu, 100, 60_000);
    let server = Server::start_with_gpu(config, prober).await?;
    let client = common::client(&server).await;
    for id in 0..3 {
        let req = fx.request_n(id, 4);
        let resp = client.call(&req).await?;
        fx.check_all_ok(&req, &resp);
    }
    let text = scrape(&server).await;
    assert_eq!(metric(&text, FALLBACK_INVALID), 6.0, "two calls per batch");
    assert_eq!(metric(&text, "umbrald_gpu_healthy"), 1.0);
    assert_eq!(metric(&text, "umbrald_gpu_batches_total"), 0.0);
    client.close().await;
    server.shutdown().await;
    Ok(())
}

/// A GPU batch large enough to be split over the GPU worker's host threads: one device call per
/// part, the parts at once on the worker's long-lived host threads, every result correct,
/// counted once; a second batch on the same threads likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_gpu_batches_split_over_host_threads() -> TestResult {
    let fx = Fixture::new(2, 1, 3);
    let most_active = Arc::new(AtomicUsize::new(0));
    let seen = most_active.clone();
    let prober: GpuProber =
        Arc::new(move || Ok(FakeGpu::slow(Duration::from_millis(100), seen.clone())));
    let mut config = gpu_config("gpu-split", BackendKind::Gpu, 3, 60_000);
    config.gpu.tuning.host_threads = 3;
    let server = Server::start_with_gpu(config, prober).await?;
    let client = common::client(&server).await;
    for (id, done) in [(1, 3100.0), (2, 6200.0)] {
        let req = fx.request_n(id, 3100);
        let resp = client.call(&req).await?;
        fx.check_all_ok(&req, &resp);
        settles(&server, "umbrald_gpu_items_total", done).await;
    }
    let text = scrape(&server).await;
    assert_eq!(metric(&text, "umbrald_gpu_batches_total"), 2.0);
    // Three parts of at least 1024 items per batch: three device calls of each kind, all
    // audited, the three parts' calls on the device at once.
    assert_eq!(metric(&text, "umbrald_gpu_audited_outputs_total"), 24.0);
    assert_eq!(most_active.load(Ordering::SeqCst), 3, "parts at once");
    assert!(
        metric(
            &text,
            r#"umbrald_thread_cpu_seconds_total{group="gpu_host"}"#
        ) > 0.0
    );
    client.close().await;
    server.shutdown().await;
    Ok(())
}

/// With `[gpu] batches_in_flight = 2` a second batch's device calls run while the first's are
/// still on the device; with 1 they never do. Every cfrag still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_batches_in_flight_overlap_on_the_device() -> TestResult {
    let fx = Arc::new(Fixture::new(2, 1, 3));
    for in_flight in [1, 2] {
        let most_active = Arc::new(AtomicUsize::new(0));
        let seen = most_active.clone();
        let prober: GpuProber =
            Arc::new(move || Ok(FakeGpu::slow(Duration::from_millis(150), seen.clone())));
        let mut config = gpu_config(
            &format!("gpu-in-flight-{in_flight}"),
            BackendKind::Gpu,
            3,
            60_000,
        );
        config.gpu.tuning.batches_in_flight = in_flight;
        config.gpu.tuning.host_threads = 1;
        let server = Server::start_with_gpu(config, prober).await?;
        let client = Arc::new(common::client(&server).await);
        // Requests sent one after another while the first batch is on the device: with room
        // for a second batch in flight, the scheduler hands it over at once.
        let mut calls = tokio::task::JoinSet::new();
        for id in 1..=4u64 {
            let (client, fx) = (client.clone(), fx.clone());
            calls.spawn(async move {
                let req = fx.request_n(id, 5);
                let resp = client.call(&req).await.expect("answered");
                fx.check_all_ok(&req, &resp);
            });
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        while let Some(done) = calls.join_next().await {
            done?;
        }
        settles(&server, "umbrald_gpu_items_total", 20.0).await;
        let text = scrape(&server).await;
        assert_eq!(metric(&text, FALLBACK_ERROR), 0.0);
        assert_eq!(metric(&text, ITEMS_OK), 20.0);
        assert_eq!(
            most_active.load(Ordering::SeqCst),
            in_flight,
            "device calls at once with batches_in_flight = {in_flight}"
        );
        server.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_backend_is_a_device_error() -> TestResult {
    let fx = Fixture::new(2, 1, 2);
    let (prober, _) = prober(vec![Some(Fault::Panic)]);
    let config = gpu_config("gpu-panic", BackendKind::Gpu, 100, 60_000);
    let server = Server::start_with_gpu(config, prober).await?;
    let client = common::client(&server).await;
    let req = fx.request_n(1, 5);
    let resp = client.call(&req).await?;
    fx.check_all_ok(&req, &resp);
    let text = scrape(&server).await;
    assert_eq!(metric(&text, FALLBACK_ERROR), 2.0);
    assert_eq!(metric(&text, ITEMS_OK), 5.0);
    client.close().await;
    server.shutdown().await;
    Ok(())
}

/// The kernels compiled for the host, behind the real `GpuBackend` (packing, unpacking,
/// timing) and the lane's guard (the audit): a GPU-shaped backend. With `auto` and the idle gate off, the GPU worker
/// and the CPU workers both take work, each its measured rate's share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_shares_work_between_gpu_and_cpu_workers() -> TestResult {
    let text = auto_with_host_kernels("gpu-auto", false).await?;
    let gpu_items = metric(&text, "umbrald_gpu_items_total");
    assert!(gpu_items > 0.0, "the GPU worker took work\n{text}");
    assert!(gpu_items < 480.0, "the CPU workers took work too\n{text}");
    assert!(metric(&text, r#"umbrald_lane_rate_items_per_second{lane="cpu"}"#) > 0.0);
    Ok(())
}

/// With the idle gate (the default) the CPU workers take work only for idle cores, which a
/// loaded 2-core machine may not have: whoever computes them, every item is answered right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_with_the_idle_gate_answers_everything() -> TestResult {
    let text = auto_with_host_kernels("gpu-auto-idle", true).await?;
    assert!(metric(&text, "umbrald_gpu_items_total") > 0.0, "{text}");
    Ok(())
}

/// A prober that finds the GPU backend over the host-compiled kernels, with these options.
fn host_kernels(opts: GpuOptions) -> GpuProber {
    Arc::new(move || {
        let gpu =
            GpuBackend::with_executor(Box::new(HostExecutor::new()), DeviceInfo::emulated(), &opts);
        Ok(GpuDevice {
            description: gpu.info().to_string(),
            stats: Some(gpu.stats()),
            batch_items: 256,
            backend: Arc::new(gpu),
        })
    })
}

/// Serves 480 capsules (4 connections × 3 requests × 40) with `auto` over the host-compiled
/// kernels, checks every cfrag and that nothing fell back, and returns the metrics.
async fn auto_with_host_kernels(
    tag: &str,
    idle_only: bool,
) -> Result<String, Box<dyn std::error::Error>> {
    let fx = Arc::new(Fixture::new(4, 2, 6));
    let prober = host_kernels(GpuOptions::default());
    let mut config = gpu_config(tag, BackendKind::Auto, 3, 60_000);
    config.batcher.max_batch_items = 16;
    config.gpu.tuning.auto_cpu_idle_only = idle_only;
    // Every offload of the GPU backend on: check products and point decompression.
    config.gpu.tuning.decompress = true;
    let server = Server::start_with_gpu(config, prober).await?;
    assert_eq!(server.backend(), "gpu+cpu");
    let (addr, fp) = (server.local_addr(), server.cert_fingerprint());
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0..4u64 {
        let fx = fx.clone();
        tasks.spawn(async move {
            let client = umbrald_server::testing::TestClient::connect(addr, fp)
                .await
                .expect("connects");
            for r in 0..3 {
                let req = fx.request_n(conn * 10 + r, 40);
                let resp = client.call(&req).await.expect("answer");
                fx.check_all_ok(&req, &resp);
            }
            client.close().await;
        });
    }
    while let Some(done) = tasks.join_next().await {
        done?;
    }
    let text = scrape(&server).await;
    assert_eq!(metric(&text, ITEMS_OK), 480.0);
    assert!(metric(&text, "umbrald_gpu_kernel_seconds_total") > 0.0);
    // The host threads' share around the device calls: packing and reading back, the audit.
    assert!(metric(&text, "umbrald_gpu_layout_seconds_total") > 0.0);
    assert!(metric(&text, "umbrald_gpu_audit_seconds_total") > 0.0);
    assert!(
        metric(
            &text,
            r#"umbrald_thread_cpu_seconds_total{group="gpu_host"}"#
        ) > 0.0
    );
    for reason in [
        "audit_mismatch",
        "device_error",
        "invalid_output",
        "unhealthy",
    ] {
        let series = format!("umbrald_gpu_fallbacks_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), 0.0, "{series}");
    }
    assert!(metric(&text, r#"umbrald_lane_rate_items_per_second{lane="gpu"}"#) > 0.0);
    server.shutdown().await;
    Ok(text)
}

/// The step-by-step device calls through the lane (host-compiled kernels as the device,
/// every offload on, `one_call` off): the tampered capsules are answered `invalid_capsule` and
/// every other cfrag verifies under umbral-pre, whole and compact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_by_step_calls_reject_exactly_the_tampered_capsules() -> TestResult {
    tampered_capsules_through_the_lane("gpu-steps", Finish::Host).await
}

/// `one_call` through the lane: whole capsules re-encrypted in one call of the host-compiled
/// kernels; the tampered capsules, rejected there, are checked again and refused; every other
/// cfrag verifies, whole and compact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_rejects_exactly_the_tampered_capsules() -> TestResult {
    tampered_capsules_through_the_lane("gpu-one-call", Finish::OneCall).await
}

/// Where a lane test's cfrags are finished.
#[derive(Clone, Copy, PartialEq)]
enum Finish {
    /// The host, from the device's products.
    Host,
    /// The device, whole capsules in one call (`one_call`).
    OneCall,
}

async fn tampered_capsules_through_the_lane(tag: &str, finish: Finish) -> TestResult {
    let one_call = finish == Finish::OneCall;
    let fx = Arc::new(Fixture::new(2, 2, 6));
    let prober = host_kernels(GpuOptions {
        one_call,
        ..GpuOptions::default()
    });
    let mut config = gpu_config(tag, BackendKind::Gpu, 3, 60_000);
    config.gpu.tuning.one_call = one_call;
    config.gpu.tuning.decompress = true;
    let server = Server::start_with_gpu(config, prober).await?;
    let client = umbrald_server::testing::TestClient::connect(
        server.local_addr(),
        server.cert_fingerprint(),
    )
    .await?;
    for (id, compact) in [(1, false), (2, true)] {
        let mut req = fx.request_n(id, 36);
        req.compact_cfrags = Some(compact);
        let tampered = [0, 7, 8, 20, 35];
        for &i in &tampered {
            let last = req.items[i].capsule.len() - 1;
            req.items[i].capsule[last] ^= 1; // s changed: the capsule's equation fails
        }
        let resp = client.call(&req).await?;
        let results = resp.results.as_ref().ok_or("no results")?;
        assert_eq!(results.len(), req.items.len());
        let mut good = req.clone();
        good.items.clear();
        let mut good_results = Vec::new();
        for (i, (item, result)) in req.items.iter().zip(results).enumerate() {
            if tampered.contains(&i) {
                let code = result.error.as_ref().map(|e| e.code.as_str());
                assert_eq!(code, Some("invalid_capsule"), "item {i}: {result:?}");
            } else {
                good.items.push(item.clone());
                good_results.push(result.clone());
            }
        }
        let good_resp = umbrald_proto::Response {
            results: Some(good_results),
            ..resp.clone()
        };
        fx.check_all_ok(&good, &good_resp);
    }
    client.close().await;
    let text = scrape(&server).await;
    assert_eq!(metric(&text, ITEMS_OK), 62.0);
    assert!(metric(&text, "umbrald_gpu_kernel_seconds_total") > 0.0);
    // With `one_call` every batch's cfrags came from the one call, never the pairs.
    let called = |call: &str| {
        text.contains(&format!(
            "umbrald_gpu_call_seconds_count{{call=\"{call}\"}}"
        ))
    };
    assert_eq!(called("one_call"), one_call);
    assert_eq!(called("pairs"), finish == Finish::Host);
    for reason in ["audit_mismatch", "device_error", "invalid_output"] {
        let series = format!("umbrald_gpu_fallbacks_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), 0.0, "{series}");
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_without_a_gpu_fails_to_start_with_the_reason() {
    let config = gpu_config("gpu-none", BackendKind::Gpu, 3, 1000);
    let err = Server::start_with_gpu(config, no_gpu("no CUDA driver (libcuda not found)"))
        .await
        .expect_err("no GPU");
    assert!(matches!(err, StartError::Backend(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("gpu") && text.contains("no CUDA driver"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_without_a_gpu_serves_on_the_cpu() -> TestResult {
    let fx = Fixture::new(2, 1, 2);
    let config = gpu_config("auto-none", BackendKind::Auto, 3, 1000);
    let server = Server::start_with_gpu(config, no_gpu("no CUDA driver")).await?;
    assert_eq!(server.backend(), "cpu");
    let client = common::client(&server).await;
    let req = fx.request_n(1, 6);
    let resp = client.call(&req).await?;
    fx.check_all_ok(&req, &resp);
    let text = scrape(&server).await;
    assert_eq!(metric(&text, r#"umbrald_backend_info{backend="cpu"}"#), 1.0);
    assert_eq!(metric(&text, "umbrald_gpu_healthy"), 0.0);
    assert_eq!(metric(&text, "umbrald_gpu_batches_total"), 0.0);
    client.close().await;
    server.shutdown().await;
    Ok(())
}

/// The real CUDA probe, as `umbrald serve --backend auto` runs it: on a machine without a GPU
/// (CI) the server starts on the CPU; with one, on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_with_the_cuda_probe_serves() -> TestResult {
    let fx = Fixture::new(2, 1, 2);
    let mut config = common::config("auto-cuda", 2);
    config.workers.backend = BackendKind::Auto;
    let server = Server::start(config, None).await?;
    assert!(matches!(server.backend(), "cpu" | "gpu+cpu"));
    let client = common::client(&server).await;
    let req = fx.request_n(1, 3);
    let resp = client.call(&req).await?;
    fx.check_all_ok(&req, &resp);
    let text = scrape(&server).await;
    let series = format!("umbrald_backend_info{{backend=\"{}\"}}", server.backend());
    assert_eq!(metric(&text, &series), 1.0);
    client.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CUDA GPU"]
async fn gpu_backend_serves_end_to_end() -> TestResult {
    for one_call in [false, true] {
        gpu_serves_end_to_end(one_call).await?;
    }
    Ok(())
}

async fn gpu_serves_end_to_end(one_call: bool) -> TestResult {
    let fx = Arc::new(Fixture::new(3, 2, 8));
    let mut config = common::config("gpu-real", 2);
    config.workers.backend = BackendKind::Gpu;
    config.gpu.tuning.one_call = one_call;
    let server = Server::start(config, None).await?;
    assert_eq!(server.backend(), "gpu");
    let client = common::client(&server).await;
    for (id, n) in [(1u64, 1usize), (2, 100), (3, 1000)] {
        let req = fx.request_n(id, n);
        let resp = client.call(&req).await?;
        fx.check_all_ok(&req, &resp);
    }
    settles(&server, "umbrald_gpu_items_total", 1101.0).await;
    let text = scrape(&server).await;
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| l.starts_with("umbrald_gpu") || l.starts_with("umbrald_lane"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for reason in [
        "audit_mismatch",
        "device_error",
        "invalid_output",
        "unhealthy",
    ] {
        let series = format!("umbrald_gpu_fallbacks_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), 0.0, "{series}");
    }
    assert!(metric(&text, "umbrald_gpu_kernel_seconds_total") > 0.0);
    assert!(metric(&text, "umbrald_gpu_layout_seconds_total") > 0.0);
    assert_eq!(metric(&text, "umbrald_gpu_healthy"), 1.0);
    client.close().await;
    server.shutdown().await;
    Ok(())
}

#[test]
fn gpu_options_parse_and_validate() {
    let c = Config::from_toml(
        "[workers]\nbackend = \"auto\"\n[batcher]\ngpu_max_batch_items = 4096\n\
         [gpu]\ndevice = 1\naudit_samples = 4\nunhealthy_after = 5\nreprobe_after_ms = 250\n",
    )
    .expect("parses");
    c.validate().expect("valid");
    assert_eq!(c.workers.backend, BackendKind::Auto);
    assert_eq!(c.batcher.gpu_max_batch_items, 4096);
    assert_eq!(
        (c.gpu.device, c.gpu.audit_samples, c.gpu.unhealthy_after),
        (1, 4, 5)
    );
    assert_eq!(c.gpu.reprobe_after_ms, 250);
    for bad in [
        "[gpu]\naudit_samples = 0\n",
        "[gpu]\nunhealthy_after = 0\n",
        "[gpu]\nreprobe_after_ms = 0\n",
    ] {
        let c = Config::from_toml(bad).expect("parses");
        assert!(c.validate().is_err(), "{bad}");
    }
    assert!(
        Config::from_toml("[gpu]\naudit = 1\n").is_err(),
        "unknown key"
    );
    // host_threads 0 (the default): one per worker thread.
    let c = Config::from_toml("[gpu.tuning]\nhost_threads = 0\n[workers]\nthreads = 6\n")
        .expect("parses");
    c.validate().expect("valid");
    assert_eq!(c.gpu_host_threads(), 6);
    let c = Config::from_toml("[gpu.tuning]\nhost_threads = 2\n").expect("parses");
    assert_eq!(c.gpu_host_threads(), 2);
    let defaults = Config::default().gpu.tuning;
    assert!(defaults.capsule_checks);
    assert!(defaults.decompress);
    assert!(defaults.table_in_shared);
    assert!(defaults.one_call);
    // The options measured and kept off are gone.
    for gone in [
        "[gpu.tuning]\noverlap_calls = true\n",
        "[gpu.tuning]\ncfrag_parts = true\n",
        "[gpu]\noverlap_calls = true\n",
        "[gpu]\ncfrag_parts = true\n",
    ] {
        assert!(Config::from_toml(gone).is_err(), "{gone}");
    }
    let c = Config::from_toml("[gpu.tuning]\none_call = false\n").expect("parses");
    assert!(!c.gpu_section().tuning.one_call);
    assert_eq!(defaults.batches_in_flight, 1);
    let c = Config::from_toml("[gpu.tuning]\nbatches_in_flight = 3\n").expect("parses");
    c.validate().expect("valid");
    assert_eq!(c.gpu_section().tuning.batches_in_flight, 3);
    for bad in [
        "[gpu.tuning]\nbatches_in_flight = 0\n",
        "[gpu.tuning]\nbatches_in_flight = 9\n",
    ] {
        let c = Config::from_toml(bad).expect("parses");
        assert!(c.validate().is_err(), "{bad}");
    }
    // Pipelines: one per host thread up to 8 by default, or as configured up to 128.
    assert_eq!(defaults.pipelines, 0);
    for (toml, pipelines) in [
        ("[gpu.tuning]\nhost_threads = 3\n", 3),
        ("[gpu.tuning]\nhost_threads = 16\n", 8),
        ("[gpu.tuning]\nhost_threads = 16\npipelines = 16\n", 16),
        ("[gpu.tuning]\nhost_threads = 2\npipelines = 32\n", 32),
        ("[gpu.tuning]\nhost_threads = 16\npipelines = 128\n", 128),
    ] {
        let c = Config::from_toml(toml).expect("parses");
        c.validate().expect("valid");
        assert_eq!(c.gpu_section().tuning.pipelines, pipelines, "{toml}");
    }
    let c = Config::from_toml("[gpu.tuning]\npipelines = 129\n").expect("parses");
    assert!(c.validate().is_err());
    let c = Config::from_toml("[gpu.tuning]\ncapsule_checks = false\n").expect("parses");
    assert!(!c.gpu_section().tuning.capsule_checks);
}
