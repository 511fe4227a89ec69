//! The benchmark's results: a serializable [`Report`] and its terminal table.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::load::{Mode, PhaseResult};
use super::scrape::ServerMetrics;

/// Share of delayed requests above which the run is flagged (as perf_analyzer does).
const DELAYED_WARNING_PCT: f64 = 10.0;
/// Achieved send rate below this share of the target flags the generator as behind.
const ACHIEVED_WARNING_RATIO: f64 = 0.95;

/// Everything one measured run produced. Serialized as the `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `open` (constant rate) or `closed` (fixed concurrency).
    pub mode: &'static str,
    /// Open loop: the target rate, requests/s.
    pub target_rate: Option<f64>,
    /// Closed loop: requests kept in flight.
    pub concurrency: Option<usize>,
    /// QUIC connections used.
    pub connections: usize,
    /// Items per request.
    pub batch: usize,
    /// Measurement window, seconds.
    pub duration_s: f64,
    /// Warm-up before the window, seconds.
    pub warmup_s: f64,
    /// Request counts over the window.
    pub requests: RequestCounts,
    /// Answered requests per second.
    pub requests_per_s: f64,
    /// Items that got a cfrag, per second.
    pub items_per_s: f64,
    /// Requests actually sent per second (open loop: compare with `target_rate`).
    pub achieved_rate: f64,
    /// Percentage of requests sent more than `delay_threshold_ms` after their scheduled time
    /// (open loop).
    pub delayed_pct: f64,
    /// The lateness that counts as delayed: one connection's send interval, at least 2 ms.
    pub delay_threshold_ms: f64,
    /// Whether the generator could not keep the schedule (see `warnings`).
    pub generator_behind: bool,
    /// Failed requests by code (server codes, or `connect`, `timeout`, `connection`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Failed items by server code.
    pub item_errors: BTreeMap<String, u64>,
    /// Latency of answered requests.
    pub latency_ms: LatencyReport,
    /// TLS+QUIC handshake time of each connection.
    pub handshake_ms: Option<Summary>,
    /// Connections re-established during the run.
    pub reconnects: u64,
    /// The server's own view of the window, from `--metrics-url`.
    pub server: Option<ServerMetrics>,
    /// With several `--addr`: each replica's share of the attempts, by address.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaReport>,
    /// With several `--addr`: the requests answered only after an attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverReport>,
    /// CPU time of this process (the load generator, plus the appliance when the benchmark
    /// started its own) per item answered in the window, in microseconds.
    pub process_cpu_us_per_item: Option<f64>,
    /// Things that make the numbers suspect.
    pub warnings: Vec<String>,
}

/// One replica's attempts over the window.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaReport {
    /// Its address.
    pub addr: String,
    /// Attempts sent to it (a request retried elsewhere counts once on each replica).
    pub requests: u64,
    /// Attempts it answered.
    pub answered: u64,
    /// Attempts that failed there, by code.
    pub errors: BTreeMap<String, u64>,
    /// Failed attempts retried on another replica (failovers away from it).
    pub retried_elsewhere: u64,
    /// Latency of the attempts it answered (from the attempt's send).
    pub latency_ms: Percentiles,
}

/// Requests that failed over to another replica.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    /// Requests answered after at least one failed attempt.
    pub requests: u64,
    /// Failed attempts retried on another replica.
    pub retries: u64,
    /// Requests that failed on every attempt (lost).
    pub lost: u64,
    /// Latency of the failed-over requests, from their first send to the answer.
    pub latency_ms: Percentiles,
    /// The client's timeout of one attempt, ms: a silent replica holds a request this long.
    pub request_timeout_ms: f64,
}

/// Request counts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RequestCounts {
    /// Scheduled (open) or sent (closed) in the window.
    pub issued: u64,
    /// Answered by the server (possibly with item errors).
    pub answered: u64,
    /// Failed as a whole.
    pub failed: u64,
    /// Sent but without an outcome when the run ended.
    pub unfinished: u64,
    /// Scheduled but never sent: the generator was too far behind.
    pub unsent: u64,
}

/// Latency percentiles, both ways.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// How `corrected` was obtained.
    pub correction: &'static str,
    /// Closed loop: the expected interval used for the correction, ms.
    pub expected_interval_ms: Option<f64>,
    /// From the intended send time (open loop) or coordinated-omission corrected (closed).
    pub corrected: Percentiles,
    /// From the actual send time.
    pub uncorrected: Percentiles,
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1e3;
        if h.is_empty() {
            return Self {
                count: 0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            count: h.len(),
            mean: h.mean() / 1e3,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Min, mean and max in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    /// Values.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// `None` for no values.
    pub(crate) fn of(values: &[Duration]) -> Option<Self> {
        let ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        if ms.is_empty() {
            return None;
        }
        Some(Self {
            count: ms.len(),
            min: ms.iter().copied().fold(f64::INFINITY, f64::min),
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
            max: ms.iter().copied().fold(0.0, f64::max),
        })
    }
}

/// The run's fixed parameters, for the report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunShape {
    pub mode: Mode,
    pub connections: usize,
    pub batch: usize,
    pub warmup: Duration,
    /// How long one attempt may take.
    pub request_timeout: Duration,
    /// Whether the load went through a pool of replicas.
    pub replicated: bool,
}

impl Report {
    /// Builds the report of one phase.
    pub(crate) fn build(
        shape: RunShape,
        result: &PhaseResult,
        handshakes: &[Duration],
        reconnects: u64,
    ) -> Self {
        let counts = &result.recorded.counts;
        let window = result.window.as_secs_f64().max(1e-9);
        // Sends that ran past the window stretch the time they took.
        let send_span = counts.last_sent.map_or(0.0, |t| {
            t.saturating_duration_since(result.window_start)
                .as_secs_f64()
        });
        let issued_sent = result.issued;
        let achieved_rate = issued_sent as f64 / send_span.max(window);
        let delayed_pct = if issued_sent > 0 {
            100.0 * counts.delayed as f64 / issued_sent as f64
        } else {
            0.0
        };
        let delay_threshold_ms = result.recorded.delay_threshold.as_secs_f64() * 1e3;
        let (mode, target_rate, concurrency) = match shape.mode {
            Mode::Open { rate } => ("open", Some(rate), None),
            Mode::Closed { concurrency } => ("closed", None, Some(concurrency)),
        };
        let mut warnings = Vec::new();
        let mut generator_behind = false;
        if let Some(rate) = target_rate {
            if achieved_rate < ACHIEVED_WARNING_RATIO * rate || result.unsent > 0 {
                generator_behind = true;
                warnings.push(format!(
                    "the load generator fell behind: achieved {achieved_rate:.1} of {rate:.1} req/s \
                     ({} never sent); raise --connections or --max-in-flight, or run it on another machine",
                    result.unsent
                ));
            }
            if delayed_pct > DELAYED_WARNING_PCT {
                generator_behind = true;
                warnings.push(format!(
                    "{delayed_pct:.1}% of requests were sent more than {delay_threshold_ms:.1} ms \
                     late; corrected latency includes that delay, uncorrected does not"
                ));
            }
        }
        if result.unfinished > 0 {
            warnings.push(format!(
                "{} requests still unanswered when the run ended",
                result.unfinished
            ));
        }
        if counts.failed > 0 {
            warnings.push(format!(
                "{} requests failed (see errors by code)",
                counts.failed
            ));
        }
        if reconnects > 0 {
            warnings.push(format!("{reconnects} reconnections during the run"));
        }
        if let Some(e) = &result.server_error {
            warnings.push(format!("server metrics unavailable: {e}"));
        }
        let latencies = &result.recorded.latencies;
        let replicas = result
            .recorded
            .replicas
            .iter()
            .map(|(addr, r)| ReplicaReport {
                addr: addr.to_string(),
                requests: r.attempts,
                answered: r.answered,
                errors: r.errors.clone(),
                retried_elsewhere: r.retried,
                latency_ms: Percentiles::of(&r.latency),
            })
            .collect();
        let failover = shape.replicated.then(|| {
            let f = &result.recorded.failover;
            FailoverReport {
                requests: f.requests,
                retries: f.retries,
                lost: counts.failed,
                latency_ms: Percentiles::of(&f.latency),
                request_timeout_ms: shape.request_timeout.as_secs_f64() * 1e3,
            }
        });
        Self {
            mode,
            target_rate,
            concurrency,
            connections: shape.connections,
            batch: shape.batch,
            duration_s: window,
            warmup_s: shape.warmup.as_secs_f64(),
            requests: RequestCounts {
                issued: result.issued,
                answered: counts.answered,
                failed: counts.failed,
                unfinished: result.unfinished,
                unsent: result.unsent,
            },
            requests_per_s: counts.answered as f64 / window,
            items_per_s: counts.items_ok as f64 / window,
            achieved_rate,
            delayed_pct,
            delay_threshold_ms,
            generator_behind,
            errors: counts.errors.clone(),
            item_errors: counts.item_errors.clone(),
            latency_ms: LatencyReport {
                correction: match shape.mode {
                    Mode::Open { .. } => "from intended send time (constant-rate schedule)",
                    Mode::Closed { .. } => {
                        "coordinated-omission corrected (record_correct, expected interval)"
                    }
                },
                expected_interval_ms: result
                    .recorded
                    .expected_interval_us
                    .map(|us| us as f64 / 1e3),
                corrected: Percentiles::of(&latencies.corrected),
                uncorrected: Percentiles::of(&latencies.uncorrected),
            },
            handshake_ms: Summary::of(handshakes),
            reconnects,
            server: result.server.clone(),
            replicas,
            failover,
            process_cpu_us_per_item: result
                .process_cpu
                .filter(|_| counts.items_ok > 0)
                .map(|cpu| cpu.as_secs_f64() * 1e6 / counts.items_ok as f64),
            warnings,
        }
    }

    /// Writes the human-readable table.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let load = match (self.target_rate, self.concurrency) {
            (Some(rate), _) => format!("open loop at {rate:.1} req/s"),
            (_, Some(c)) => format!("closed loop, concurrency {c}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{load}, batch {}, {} connection(s), {:.1} s measured after {:.1} s warm-up",
            self.batch, self.connections, self.duration_s, self.warmup_s
        )?;
        let r = &self.requests;
        writeln!(
            out,
            "  throughput      {:.1} req/s, {:.1} items/s ({} answered, {} failed, {} unfinished)",
            self.requests_per_s, self.items_per_s, r.answered, r.failed, r.unfinished
        )?;
        match self.target_rate {
            Some(rate) => writeln!(
                out,
                "  send rate       {:.1} of {rate:.1} req/s target ({:.1}%), {:.1}% sent > {:.1} ms late",
                self.achieved_rate,
                100.0 * self.achieved_rate / rate.max(1e-9),
                self.delayed_pct,
                self.delay_threshold_ms
            )?,
            None => writeln!(out, "  send rate       {:.1} req/s", self.achieved_rate)?,
        }
        if let Some(h) = &self.handshake_ms {
            writeln!(
                out,
                "  handshake       min {:.2} ms, mean {:.2} ms, max {:.2} ms ({} connection(s))",
                h.min, h.mean, h.max, h.count
            )?;
        }
        writeln!(
            out,
            "  latency (ms)       p50       p90       p99     p99.9       max      mean"
        )?;
        for (name, p) in [
            ("corrected", &self.latency_ms.corrected),
            ("uncorrected", &self.latency_ms.uncorrected),
        ] {
            writeln!(
                out,
                "    {name:<12} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                p.p50, p.p90, p.p99, p.p999, p.max, p.mean
            )?;
        }
        writeln!(out, "    corrected = {}", self.latency_ms.correction)?;
        if let Some(ms) = self.latency_ms.expected_interval_ms {
            writeln!(
                out,
                "    expected interval {ms:.3} ms (mean warm-up latency)"
            )?;
        }
        writeln!(out, "  errors by code  {}", by_code(&self.errors))?;
        if !self.replicas.is_empty() {
            writeln!(
                out,
                "  replicas        requests  answered   retried    p50 ms    p99 ms    max ms  errors"
            )?;
            for r in &self.replicas {
                writeln!(
                    out,
                    "    {:<21} {:>9} {:>9} {:>9} {:>9.3} {:>9.3} {:>9.3}  {}",
                    r.addr,
                    r.requests,
                    r.answered,
                    r.retried_elsewhere,
                    r.latency_ms.p50,
                    r.latency_ms.p99,
                    r.latency_ms.max,
                    by_code(&r.errors)
                )?;
            }
        }
        if let Some(f) = &self.failover {
            write!(
                out,
                "  failover        {} requests answered after a failed attempt ({} attempts \
                 retried), {} lost",
                f.requests, f.retries, f.lost
            )?;
            if f.requests > 0 {
                write!(
                    out,
                    "; latency p50 {:.3} ms, max {:.3} ms ({:.2}x the {:.0} ms request timeout)",
                    f.latency_ms.p50,
                    f.latency_ms.max,
                    f.latency_ms.max / f.request_timeout_ms.max(1e-9),
                    f.request_timeout_ms
                )?;
            }
            writeln!(out)?;
        }
        writeln!(out, "  item errors     {}", by_code(&self.item_errors))?;
        if let Some(s) = &self.server {
            let fmt = |d: &Option<super::scrape::HistogramDelta>, unit: &str| match d {
                Some(d) => match d.p99 {
                    Some(p99) => format!("mean {:.3}{unit}, p99 ~{:.3}{unit}", d.mean, p99),
                    None => format!("mean {:.3}{unit}", d.mean),
                },
                None => "n/a".to_owned(),
            };
            writeln!(
                out,
                "  server          queue wait {}",
                fmt(&s.queue_wait_ms, " ms")
            )?;
            writeln!(
                out,
                "                  batch compute {}",
                fmt(&s.batch_compute_ms, " ms")
            )?;
            // A percentile interpolated in integer-sized buckets says little: mean only.
            let batch = s
                .batch_size_items
                .map_or("n/a".to_owned(), |b| format!("mean {:.2} items", b.mean));
            writeln!(out, "                  batch size {batch}")?;
            writeln!(
                out,
                "                  request time {}",
                fmt(&s.request_ms, " ms")
            )?;
            // What the server's account leaves out of the generator's mean latency: sending
            // the request, returning the answer, and the generator's own turns.
            if let Some(server_ms) = s.request_ms.as_ref().map(|d| d.mean) {
                writeln!(
                    out,
                    "                  outside the server {:.3} ms mean (generator's mean \
                     latency less the request time: QUIC both ways, the generator)",
                    self.latency_ms.uncorrected.mean - server_ms
                )?;
            }
            if let Some(us) = s.cpu_us_per_item() {
                writeln!(
                    out,
                    "                  CPU {us:.2} us per item (whole process)"
                )?;
            }
            if let Some([gpu, cpu, rest]) = s.cpu_split_us_per_item() {
                writeln!(
                    out,
                    "                  of which GPU lane host {gpu:.2} us, CPU workers {cpu:.2} us, \
                     the rest (QUIC, scheduler, HTTP) {rest:.2} us"
                )?;
            }
            if let Some([layout, audit]) = s.gpu_host_split_us_per_item() {
                writeln!(
                    out,
                    "                  of the GPU lane host: device layout {layout:.2} us, \
                     audit {audit:.2} us (the rest: engine, batching, answers)"
                )?;
            }
        }
        if let Some(us) = self.process_cpu_us_per_item {
            writeln!(
                out,
                "  generator CPU   {us:.2} us per item (this process, over the window)"
            )?;
        }
        for w in &self.warnings {
            writeln!(out, "WARNING: {w}")?;
        }
        Ok(())
    }
}

fn by_code(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
