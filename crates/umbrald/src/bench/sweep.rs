//! Sweep mode: raise the open-loop rate step by step until the corrected p99 crosses a bound,
//! and report the knee (the last rate that stayed under it).

use std::io::Write;

use serde::Serialize;

use super::report::Report;

/// Failed requests above this share of a step stop the sweep.
const ERROR_LIMIT: f64 = 0.01;

/// The whole sweep. Serialized as the `--json` output of `--sweep`.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// The p99 bound, ms (applied to corrected latency).
    pub p99_bound_ms: f64,
    /// Rate multiplier between steps.
    pub factor: f64,
    /// Every step run, in order.
    pub steps: Vec<Report>,
    /// The highest rate whose corrected p99 stayed within the bound.
    pub knee: Option<Knee>,
    /// Why the sweep stopped.
    pub stopped: String,
}

/// The knee of the latency/throughput curve.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Knee {
    /// Target rate of the knee step, requests/s.
    pub rate: f64,
    /// Answered requests per second at the knee.
    pub requests_per_s: f64,
    /// Items per second at the knee.
    pub items_per_s: f64,
    /// Corrected p99 at the knee, ms.
    pub p99_ms: f64,
}

/// How a step went.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Under the bound: go on.
    Under,
    /// Stop, for this reason.
    Stop(String),
}

/// Judges one step against the bound.
pub(crate) fn judge(step: &Report, bound_ms: f64) -> Verdict {
    let p99 = step.latency_ms.corrected.p99;
    let issued = step.requests.issued.max(1) as f64;
    let failed = (step.requests.failed + step.requests.unfinished) as f64;
    if failed / issued > ERROR_LIMIT {
        return Verdict::Stop(format!(
            "{:.1}% of requests failed at {:.1} req/s",
            100.0 * failed / issued,
            step.target_rate.unwrap_or_default()
        ));
    }
    if p99 > bound_ms {
        return Verdict::Stop(format!(
            "p99 {p99:.3} ms crossed the {bound_ms} ms bound at {:.1} req/s",
            step.target_rate.unwrap_or_default()
        ));
    }
    if step.generator_behind {
        return Verdict::Stop(format!(
            "the load generator could not keep {:.1} req/s before the bound was crossed; the knee is \
             at least this high (add --connections or a second generator)",
            step.target_rate.unwrap_or_default()
        ));
    }
    if step.requests.answered == 0 {
        return Verdict::Stop("no request was answered".to_owned());
    }
    Verdict::Under
}

/// The knee from the steps judged [`Verdict::Under`].
pub(crate) fn knee(under: Option<&Report>) -> Option<Knee> {
    under.map(|r| Knee {
        rate: r.target_rate.unwrap_or_default(),
        requests_per_s: r.requests_per_s,
        items_per_s: r.items_per_s,
        p99_ms: r.latency_ms.corrected.p99,
    })
}

impl SweepReport {
    /// Writes the step table and the knee.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "sweep: rate x{} per step until corrected p99 > {} ms",
            self.factor, self.p99_bound_ms
        )?;
        writeln!(
            out,
            "  target req/s   sent req/s   answered/s    items/s    p50 ms    p99 ms  errors"
        )?;
        for s in &self.steps {
            writeln!(
                out,
                "  {:>12.1} {:>12.1} {:>12.1} {:>10.1} {:>9.3} {:>9.3} {:>7}",
                s.target_rate.unwrap_or_default(),
                s.achieved_rate,
                s.requests_per_s,
                s.items_per_s,
                s.latency_ms.corrected.p50,
                s.latency_ms.corrected.p99,
                s.requests.failed + s.requests.unfinished
            )?;
        }
        match &self.knee {
            Some(k) => writeln!(
                out,
                "knee: {:.1} req/s ({:.1} items/s) with corrected p99 {:.3} ms <= {} ms",
                k.rate, k.items_per_s, k.p99_ms, self.p99_bound_ms
            )?,
            None => writeln!(
                out,
                "knee: not found (even the first step failed the bound)"
            )?,
        }
        writeln!(out, "stopped: {}", self.stopped)
    }
}
