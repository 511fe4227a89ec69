//! The load generator, run briefly against a real server in each mode; its JSON is parsed back
//! and checked for sane values.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use serde_json::Value;

use super::{run_against, run_against_replicas, BenchArgs};
use crate::error::CliError;
use crate::local::LocalAppliances;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(list: &[&str]) -> BenchArgs {
    Cli::try_parse_from(std::iter::once("bench").chain(list.iter().copied()))
        .expect("bench arguments parse")
        .bench
}

/// A fresh, unique temporary directory.
fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "umbrald-bench-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

fn check_percentiles(v: &Value, which: &str) {
    let p = |q: &str| num(v, &format!("/latency_ms/{which}/{q}"));
    assert!(p("p50") > 0.0, "{which} p50");
    assert!(p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("p999"));
    assert!(
        p("p999") <= p("max") * 1.001 + 1e-9,
        "{which}: p99.9 <= max"
    );
    assert!(
        p("max") < 5_000.0,
        "{which}: no request anywhere near the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_and_open_loop_produce_sane_json() {
    let dir = temp_dir("bench");
    let server = LocalAppliances::start(1, 1)
        .await
        .expect("appliance starts");
    let node = server.specs().remove(0);
    let metrics = server.metrics_url(0).expect("metrics enabled");
    let fp = node.trust.clone();
    let umbrald_client::Trust::Fingerprint(fp) = fp else {
        unreachable!()
    };
    let (addr, fp) = (node.addr.to_string(), fp.to_string());

    // Closed loop.
    let json_path = dir.join("closed.json");
    let hlog_path = dir.join("closed.hlog");
    let closed = args(&[
        "--addr",
        &addr,
        "--fingerprint",
        &fp,
        "--concurrency",
        "4",
        "--batch",
        "4",
        "--connections",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--no-progress",
        "--metrics-url",
        &metrics,
        "--json",
        json_path.to_str().expect("path"),
        "--hlog",
        hlog_path.to_str().expect("path"),
    ]);
    let mut out = Vec::new();
    run_against(&closed, &node, &mut out)
        .await
        .expect("closed loop runs");
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.contains("closed loop, concurrency 4"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json file"))
        .expect("json");
    assert_eq!(v["kind"], "run");
    assert_eq!(v["mode"], "closed");
    assert_eq!(v["batch"], 4);
    let answered = num(&v, "/requests/answered");
    assert!(answered >= 4.0, "{v:#}");
    assert_eq!(num(&v, "/requests/failed"), 0.0);
    let (rps, ips) = (num(&v, "/requests_per_s"), num(&v, "/items_per_s"));
    assert!(
        rps > 0.0 && (ips - 4.0 * rps).abs() < 1e-6 * ips.max(1.0),
        "items/s = 4 x req/s"
    );
    check_percentiles(&v, "corrected");
    check_percentiles(&v, "uncorrected");
    assert!(num(&v, "/latency_ms/corrected/count") >= num(&v, "/latency_ms/uncorrected/count"));
    assert!(num(&v, "/latency_ms/expected_interval_ms") > 0.0);
    assert_eq!(num(&v, "/handshake_ms/count"), 2.0);
    assert!(num(&v, "/handshake_ms/min") > 0.0);
    assert!(
        num(&v, "/server/queue_wait_ms/count") >= answered * 4.0,
        "server saw every item: {v:#}"
    );
    assert!(num(&v, "/server/batch_size_items/mean") >= 1.0);
    assert!(num(&v, "/server/batch_compute_ms/mean") > 0.0);
    let hlog = std::fs::read(&hlog_path).expect("hlog");
    let intervals: Vec<_> =
        hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog)
            .filter_map(|entry| match entry {
                Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(i)) => {
                    Some(i.tag().map(|t| t.as_str().to_owned()))
                }
                _ => None,
            })
            .collect();
    assert!(
        intervals.contains(&Some("corrected".to_owned())),
        "{intervals:?}"
    );
    assert!(intervals.contains(&Some("uncorrected".to_owned())));

    // Open loop, JSON to stdout.
    let open = args(&[
        "--addr",
        &addr,
        "--fingerprint",
        &fp,
        "--rate",
        "40",
        "--batch",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--no-progress",
        "--json",
        "-",
    ]);
    let mut out = Vec::new();
    let result = run_against(&open, &node, &mut out)
        .await
        .expect("open loop runs");
    let v: Value = serde_json::from_slice(&out).expect("stdout is only JSON");
    let returned = serde_json::to_value(&result).expect("value");
    assert_eq!(
        v["requests"], returned["requests"],
        "stdout JSON is the returned report"
    );
    assert_eq!(v["mode"], "open");
    assert_eq!(num(&v, "/target_rate"), 40.0);
    // 40 scheduled in a 1 s window; allow for a slow CI machine.
    let issued = num(&v, "/requests/issued");
    assert!((38.0..=41.0).contains(&issued), "issued {issued}");
    assert_eq!(
        num(&v, "/requests/answered")
            + num(&v, "/requests/failed")
            + num(&v, "/requests/unfinished"),
        issued
    );
    assert!(num(&v, "/achieved_rate") > 30.0, "{v:#}");
    check_percentiles(&v, "corrected");
    check_percentiles(&v, "uncorrected");
    // From the schedule is never shorter than from the send.
    assert!(num(&v, "/latency_ms/corrected/p50") >= num(&v, "/latency_ms/uncorrected/p50"));
    assert!(v["latency_ms"]["expected_interval_ms"].is_null());
    assert!(v["server"].is_null(), "no --metrics-url");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_raises_the_rate_and_finds_a_knee() {
    let server = LocalAppliances::start(1, 1)
        .await
        .expect("appliance starts");
    let node = server.specs().remove(0);
    let umbrald_client::Trust::Fingerprint(fp) = node.trust.clone() else {
        unreachable!()
    };
    let sweep = args(&[
        "--addr",
        &node.addr.to_string(),
        "--fingerprint",
        &fp.to_string(),
        "--sweep",
        "--rate",
        "20",
        "--sweep-factor",
        "2",
        "--sweep-steps",
        "2",
        "--p99-bound",
        "2s",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--no-progress",
    ]);
    let mut out = Vec::new();
    let result = run_against(&sweep, &node, &mut out)
        .await
        .expect("sweep runs");
    let text = String::from_utf8(out).expect("utf8");
    let v = serde_json::to_value(&result).expect("json");
    assert_eq!(v["kind"], "sweep");
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{text}");
    assert_eq!(num(&steps[0], "/target_rate"), 20.0);
    assert_eq!(num(&steps[1], "/target_rate"), 40.0);
    assert_eq!(num(&v, "/knee/rate"), 40.0, "{text}");
    assert!(text.contains("knee: 40.0 req/s"), "{text}");
    server.shutdown().await;
}

/// Three in-process appliances presenting the first one's certificate.
async fn shared_certificate_replicas(dir: &std::path::Path) -> Vec<umbrald_server::RunningServer> {
    use umbrald_server::{Config, Server};
    let first = Server::start(Config::ephemeral(dir.join("0"), 1), None)
        .await
        .expect("appliance starts");
    let mut servers = vec![first];
    for i in 1..3 {
        let mut config = Config::ephemeral(dir.join(i.to_string()), 1);
        config.tls.cert = Some(dir.join("0/cert.pem"));
        config.tls.key = Some(dir.join("0/key.pem"));
        servers.push(Server::start(config, None).await.expect("appliance starts"));
    }
    servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_addresses_spread_over_replicas_and_report_each() {
    let dir = temp_dir("replicas");
    let servers = shared_certificate_replicas(&dir).await;
    let fp = umbrald_client::Fingerprint(servers[0].cert_fingerprint()).to_string();
    let nodes: Vec<umbrald_client::NodeSpec> = servers
        .iter()
        .map(|s| umbrald_client::NodeSpec {
            addr: s.local_addr(),
            trust: umbrald_client::Trust::Fingerprint(umbrald_client::Fingerprint(
                s.cert_fingerprint(),
            )),
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let mut list = Vec::new();
    for addr in &addrs {
        list.extend(["--addr", addr.as_str()]);
    }
    list.extend([
        "--fingerprint",
        fp.as_str(),
        "--concurrency",
        "6",
        "--batch",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--no-progress",
    ]);
    let mut out = Vec::new();
    let result = run_against_replicas(&args(&list), &nodes, &mut out)
        .await
        .expect("runs over the replicas");
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.contains("(3 replicas)"), "{text}");
    assert!(text.contains("failover        0 requests"), "{text}");
    let v = serde_json::to_value(&result).expect("json");
    assert_eq!(num(&v, "/requests/failed"), 0.0, "{v:#}");
    let replicas = v["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 3, "{v:#}");
    let mut attempts = 0.0;
    for (replica, addr) in replicas.iter().zip({
        let mut sorted = addrs.clone();
        sorted.sort_by_key(|a| a.parse::<std::net::SocketAddr>().expect("addr"));
        sorted
    }) {
        assert_eq!(replica["addr"], addr.as_str());
        assert!(
            num(replica, "/answered") > 0.0,
            "every replica served: {v:#}"
        );
        assert!(num(replica, "/latency_ms/p50") > 0.0);
        attempts += num(replica, "/requests");
    }
    assert_eq!(attempts, num(&v, "/requests/answered"), "one attempt each");
    assert_eq!(num(&v, "/failover/requests"), 0.0);
    assert_eq!(num(&v, "/failover/lost"), 0.0);

    // Replicas that present different certificates are not one appliance.
    let mut mixed = nodes.clone();
    mixed[1].trust = umbrald_client::Trust::Fingerprint(umbrald_client::Fingerprint([9; 32]));
    let err = run_against_replicas(&args(&list), &mixed, &mut Vec::new())
        .await
        .expect_err("refused");
    assert!(matches!(err, CliError::Usage(_)), "{err}");
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test]
async fn nonsense_arguments_are_usage_errors() {
    let node = umbrald_client::NodeSpec {
        addr: "127.0.0.1:9".parse().expect("addr"),
        trust: umbrald_client::Trust::Fingerprint(umbrald_client::Fingerprint([0; 32])),
    };
    for bad in [
        &["--batch", "0"][..],
        &["--rate=-3"],
        &["--duration", "0s"],
        &["--sweep", "--sweep-factor", "1"],
    ] {
        let err = run_against(&args(bad), &node, &mut Vec::new())
            .await
            .expect_err("refused");
        assert!(matches!(err, CliError::Usage(_)), "{bad:?}: {err}");
    }
    assert!(Cli::try_parse_from(["bench", "--rate", "5", "--concurrency", "2"]).is_err());
}
