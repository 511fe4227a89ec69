//! Reads the server's Prometheus `/metrics` before and after a measurement and summarizes what
//! changed: queue wait, batch compute time, batch size, server-side request time.
//!
//! A plain HTTP/1.0 GET over a TCP stream is all this needs, so no HTTP client crate is pulled in.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::CliError;

const MAX_BODY: u64 = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

/// One scrape: every sample, keyed by `name{labels}` exactly as exposed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    samples: BTreeMap<String, f64>,
}

/// A histogram's change between two scrapes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistogramDelta {
    /// Observations in the interval.
    pub count: f64,
    /// Their mean.
    pub mean: f64,
    /// The 99th percentile, interpolated within the Prometheus buckets (coarse).
    pub p99: Option<f64>,
}

/// What the server reported about the measurement window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerMetrics {
    /// Time items waited in the server's queue, in milliseconds.
    pub queue_wait_ms: Option<HistogramDelta>,
    /// Time a worker spent on one batch, in milliseconds.
    pub batch_compute_ms: Option<HistogramDelta>,
    /// Items per batch.
    pub batch_size_items: Option<HistogramDelta>,
    /// Server-side request time (read to response written), in milliseconds.
    pub request_ms: Option<HistogramDelta>,
    /// Requests answered by the server in the window, by `outcome/code`.
    pub requests: BTreeMap<String, f64>,
    /// Items the server answered in the window (every outcome).
    pub items: f64,
    /// The server process's CPU time in the window, seconds: `umbrald_cpu_seconds_total`
    /// (nanosecond resolution), else the standard `process_cpu_seconds_total` (whole seconds,
    /// Linux only) of older servers.
    pub cpu_seconds: Option<f64>,
    /// Of that, the GPU lane's host threads computing batch parts
    /// (`umbrald_thread_cpu_seconds_total{group="gpu_host"}`; absent from older servers).
    pub gpu_host_cpu_seconds: Option<f64>,
    /// Of that, the CPU workers computing batches (`group="cpu_workers"`).
    pub cpu_workers_cpu_seconds: Option<f64>,
    /// Of the GPU lane's host time, packing device inputs and reading results back
    /// (`umbrald_gpu_layout_seconds_total`; absent from older servers).
    pub gpu_layout_seconds: Option<f64>,
    /// Of the GPU lane's host time, the audit's CPU recomputations
    /// (`umbrald_gpu_audit_seconds_total`).
    pub gpu_audit_seconds: Option<f64>,
}

impl ServerMetrics {
    /// The server's CPU time per answered item, in microseconds.
    pub fn cpu_us_per_item(&self) -> Option<f64> {
        self.per_item_us(self.cpu_seconds)
    }

    /// The server's CPU time per item split as GPU lane host threads, CPU workers and the
    /// rest (QUIC, scheduler, metrics endpoint), in microseconds; `None` from older servers.
    pub fn cpu_split_us_per_item(&self) -> Option<[f64; 3]> {
        let (gpu, cpu) = (self.gpu_host_cpu_seconds?, self.cpu_workers_cpu_seconds?);
        let rest = (self.cpu_seconds? - gpu - cpu).max(0.0);
        Some([
            self.per_item_us(Some(gpu))?,
            self.per_item_us(Some(cpu))?,
            self.per_item_us(Some(rest))?,
        ])
    }

    /// Of the GPU lane's host time per item: the layout work around the device calls and the
    /// audit, in microseconds; `None` from older servers or without a GPU lane.
    pub fn gpu_host_split_us_per_item(&self) -> Option<[f64; 2]> {
        self.gpu_host_cpu_seconds.filter(|s| *s > 0.0)?;
        Some([
            self.per_item_us(self.gpu_layout_seconds)?,
            self.per_item_us(self.gpu_audit_seconds)?,
        ])
    }

    fn per_item_us(&self, seconds: Option<f64>) -> Option<f64> {
        let seconds = seconds?;
        (self.items > 0.0).then(|| seconds * 1e6 / self.items)
    }
}

/// Fetches and parses `url` (`http://HOST:PORT/PATH`).
pub(crate) async fn scrape(url: &str) -> Result<Snapshot, CliError> {
    let fail = |reason: String| CliError::Metrics {
        url: url.to_owned(),
        reason,
    };
    let body = tokio::time::timeout(TIMEOUT, http_get(url))
        .await
        .map_err(|_| fail(format!("no answer within {TIMEOUT:?}")))?
        .map_err(fail)?;
    Ok(parse(&body))
}

/// Summarizes the change from `before` to `after`.
pub(crate) fn summarize(before: &Snapshot, after: &Snapshot) -> ServerMetrics {
    let ms = |d: HistogramDelta| HistogramDelta {
        count: d.count,
        mean: d.mean * 1e3,
        p99: d.p99.map(|p| p * 1e3),
    };
    let mut requests = BTreeMap::new();
    let mut items = 0.0;
    for (key, value) in &after.samples {
        if key.starts_with("umbrald_items_total{") {
            items += value - before.samples.get(key).copied().unwrap_or(0.0);
        }
        if let Some(labels) = key.strip_prefix("umbrald_requests_total{") {
            let delta = value - before.samples.get(key).copied().unwrap_or(0.0);
            if delta > 0.0 {
                let outcome = label(labels, "outcome").unwrap_or("?");
                let code = label(labels, "code").unwrap_or("?");
                requests.insert(format!("{outcome}/{code}"), delta);
            }
        }
    }
    ServerMetrics {
        queue_wait_ms: histogram_delta(before, after, "umbrald_queue_wait_seconds").map(ms),
        batch_compute_ms: histogram_delta(before, after, "umbrald_batch_compute_seconds").map(ms),
        batch_size_items: histogram_delta(before, after, "umbrald_batch_size_items"),
        request_ms: histogram_delta(before, after, "umbrald_request_duration_seconds").map(ms),
        requests,
        items,
        cpu_seconds: CPU_SECONDS
            .iter()
            .find_map(|name| counter_delta(before, after, name)),
        gpu_host_cpu_seconds: counter_delta(before, after, THREAD_CPU_GPU_HOST),
        cpu_workers_cpu_seconds: counter_delta(before, after, THREAD_CPU_WORKERS),
        gpu_layout_seconds: counter_delta(before, after, "umbrald_gpu_layout_seconds_total"),
        gpu_audit_seconds: counter_delta(before, after, "umbrald_gpu_audit_seconds_total"),
    }
}

/// The server's CPU time computing batches, by thread group.
const THREAD_CPU_GPU_HOST: &str = r#"umbrald_thread_cpu_seconds_total{group="gpu_host"}"#;
const THREAD_CPU_WORKERS: &str = r#"umbrald_thread_cpu_seconds_total{group="cpu_workers"}"#;

/// Counters of the server's CPU time, most precise first.
const CPU_SECONDS: [&str; 2] = ["umbrald_cpu_seconds_total", "process_cpu_seconds_total"];

fn counter_delta(before: &Snapshot, after: &Snapshot, name: &str) -> Option<f64> {
    let a = after.samples.get(name)?;
    Some(a - before.samples.get(name).copied().unwrap_or(0.0))
}

fn histogram_delta(before: &Snapshot, after: &Snapshot, name: &str) -> Option<HistogramDelta> {
    let delta = |key: &str| -> Option<f64> {
        let a = *after.samples.get(key)?;
        Some(a - before.samples.get(key).copied().unwrap_or(0.0))
    };
    let count = delta(&format!("{name}_count"))?;
    let sum = delta(&format!("{name}_sum"))?;
    if count <= 0.0 {
        return None;
    }
    let bucket_prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = after
        .samples
        .keys()
        .filter_map(|key| {
            let labels = key.strip_prefix(&bucket_prefix)?;
            let le = label(labels, "le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, delta(key)?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(HistogramDelta {
        count,
        mean: sum / count,
        p99: quantile(&buckets, count, 0.99),
    })
}

/// Prometheus-style quantile from cumulative buckets, interpolating linearly inside the bucket.
fn quantile(buckets: &[(f64, f64)], count: f64, q: f64) -> Option<f64> {
    let rank = q * count;
    let mut lower = (0.0, 0.0);
    for &(bound, cumulative) in buckets {
        if cumulative >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = cumulative - lower.1;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, cumulative);
    }
    None
}

/// Parses the Prometheus text format (comments skipped; timestamps ignored).
fn parse(text: &str) -> Snapshot {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The value follows the closing brace of the labels, or the name.
        let name_end = line
            .rfind('}')
            .map_or_else(|| line.find(' ').unwrap_or(line.len()), |i| i + 1);
        let (key, rest) = line.split_at(name_end);
        if let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            samples.insert(key.trim().to_owned(), value);
        }
    }
    Snapshot { samples }
}

/// The value of label `name` in `a="x",b="y"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

async fn http_get(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are supported".to_owned())?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/plain\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .take(MAX_BODY)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "malformed HTTP response".to_owned())?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("HTTP status {status:?}"));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"
# HELP umbrald_queue_wait_seconds Time an item waited
# TYPE umbrald_queue_wait_seconds histogram
umbrald_queue_wait_seconds_bucket{le="0.001"} 10
umbrald_queue_wait_seconds_bucket{le="0.01"} 10
umbrald_queue_wait_seconds_bucket{le="+Inf"} 10
umbrald_queue_wait_seconds_sum 0.005
umbrald_queue_wait_seconds_count 10
umbrald_requests_total{code="none",outcome="ok"} 5
umbrald_items_total{code="none",outcome="ok"} 400
process_cpu_seconds_total 3
umbrald_cpu_seconds_total 3.25
"#;

    const AFTER: &str = r#"
umbrald_queue_wait_seconds_bucket{le="0.001"} 60
umbrald_queue_wait_seconds_bucket{le="0.01"} 110
umbrald_queue_wait_seconds_bucket{le="+Inf"} 110
umbrald_queue_wait_seconds_sum 0.255
umbrald_queue_wait_seconds_count 110
umbrald_batch_size_items_sum 40
umbrald_batch_size_items_count 10
umbrald_requests_total{code="none",outcome="ok"} 105
umbrald_requests_total{code="overloaded",outcome="error"} 2
umbrald_items_total{code="none",outcome="ok"} 4400
umbrald_items_total{code="invalid_capsule",outcome="error"} 1000
process_cpu_seconds_total 5
umbrald_cpu_seconds_total 5.5
umbrald_thread_cpu_seconds_total{group="gpu_host"} 1.5
umbrald_thread_cpu_seconds_total{group="cpu_workers"} 0.25
umbrald_gpu_layout_seconds_total 0.5
umbrald_gpu_audit_seconds_total 0.05
umbrald_ready 1
"#;

    #[test]
    fn deltas_means_and_bucket_quantiles() {
        let m = summarize(&parse(BEFORE), &parse(AFTER));
        let q = m.queue_wait_ms.expect("queue");
        assert_eq!(q.count, 100.0);
        assert!((q.mean - 2.5).abs() < 1e-9, "250 ms over 100 items");
        // 50 in [0, 1 ms], 50 in (1, 10 ms]: p99 at 98 % of the second bucket.
        let p99 = q.p99.expect("p99");
        assert!((p99 - (1.0 + 9.0 * 0.98)).abs() < 1e-6, "{p99}");
        let b = m.batch_size_items.expect("batch");
        assert_eq!(b.mean, 4.0);
        assert_eq!(b.p99, None, "no buckets exposed");
        assert_eq!(m.requests.get("ok/none"), Some(&100.0));
        assert_eq!(m.requests.get("error/overloaded"), Some(&2.0));
        assert!(m.batch_compute_ms.is_none());
        // 5,000 items in 2.25 CPU seconds: the precise counter wins over the whole seconds.
        assert_eq!(m.items, 5000.0);
        assert_eq!(m.cpu_seconds, Some(2.25));
        assert_eq!(m.cpu_us_per_item(), Some(450.0));
        // 1.5 s on GPU host threads, 0.25 s on CPU workers, 0.5 s for the rest.
        assert_eq!(m.cpu_split_us_per_item(), Some([300.0, 50.0, 100.0]));
        // Of the GPU host threads' 300 µs per item: 100 in the layout, 10 in the audit.
        let [layout, audit] = m.gpu_host_split_us_per_item().expect("split");
        assert!((layout - 100.0).abs() < 1e-9 && (audit - 10.0).abs() < 1e-9);
        let older = summarize(
            &parse("process_cpu_seconds_total 3\n"),
            &parse("process_cpu_seconds_total 5\numbrald_items_total{code=\"none\",outcome=\"ok\"} 100\n"),
        );
        assert_eq!(older.cpu_seconds, Some(2.0), "older servers: whole seconds");
        let without = summarize(&parse(""), &parse("umbrald_ready 1\n"));
        assert_eq!(without.cpu_us_per_item(), None);
        assert_eq!(older.gpu_host_split_us_per_item(), None);
    }

    #[test]
    fn parse_skips_comments_and_reads_labels() {
        let s = parse(AFTER);
        assert_eq!(s.samples.get("umbrald_ready"), Some(&1.0));
        assert_eq!(label(r#"le="0.5",x="y"}"#, "x"), Some("y"));
        assert_eq!(label(r#"le="0.5"}"#, "code"), None);
    }

    #[tokio::test]
    async fn http_get_reads_a_body_and_rejects_errors() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            for status in ["200 OK", "404 Not Found"] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n\r\numbrald_ready 1\n"
                );
                s.write_all(reply.as_bytes()).await.expect("write");
            }
        });
        let url = format!("http://{addr}/metrics");
        let snap = scrape(&url).await.expect("scrape");
        assert_eq!(snap.samples.get("umbrald_ready"), Some(&1.0));
        assert!(scrape(&url).await.is_err(), "404");
        assert!(scrape("https://example.invalid/").await.is_err());
        server.await.expect("server");
    }
}
