//! Turns completed requests into latency histograms and counters.
//!
//! Two latencies per request, in microseconds:
//! - *corrected*: completion minus the time the request *should* have been sent. In open loop
//!   that is its slot on the constant-rate schedule (wrk2), so a stalled server or a stalled
//!   generator shows up in full. In closed loop there is no schedule; the uncorrected histogram
//!   is corrected for coordinated omission with hdrhistogram's `record_correct` semantics
//!   (`clone_correct`, which applies `record_correct` to every value) and the expected interval
//!   between a worker's sends, taken as the mean warm-up latency.
//! - *uncorrected*: completion minus the actual send.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency tracked: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// One finished request.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// When the schedule wanted it sent (equals `sent` in closed loop).
    pub intended: Instant,
    /// When it was actually handed to the client.
    pub sent: Instant,
    /// When its response (or failure) arrived.
    pub done: Instant,
    /// Items in the request.
    pub items: u32,
    /// What came back.
    pub outcome: Outcome,
    /// Through a pool of replicas: each attempt, oldest first (empty without a pool).
    pub attempts: Vec<Attempt>,
}

/// One attempt of a request sent through a pool of replicas.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// The replica it went to.
    pub replica: SocketAddr,
    /// How long it took.
    pub took: Duration,
    /// Why it failed (an error label), or `None` when it answered.
    pub failure: Option<String>,
}

/// One replica's attempts over the window.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaRecord {
    /// Attempts sent to it.
    pub attempts: u64,
    /// Attempts it answered.
    pub answered: u64,
    /// Failed attempts by label.
    pub errors: BTreeMap<String, u64>,
    /// Failed attempts that were retried on another replica.
    pub retried: u64,
    /// Latency of the attempts it answered, microseconds.
    pub latency: Histogram<u64>,
}

/// Requests through a pool that were answered after a failed attempt.
#[derive(Debug, Clone)]
pub(crate) struct FailoverRecord {
    /// Such requests.
    pub requests: u64,
    /// Failed attempts that were retried, over all requests.
    pub retries: u64,
    /// Their latency from the first send to the answer, microseconds.
    pub latency: Histogram<u64>,
}

/// The result of one request.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// A response with per-item results; the codes of failed items.
    Answered { item_errors: Vec<String> },
    /// The request failed as a whole, with this label (server code or transport class).
    Failed(String),
}

/// How latency is corrected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Correction {
    /// Open loop: corrected latency is measured from the intended send time.
    FromSchedule,
    /// Closed loop: coordinated-omission correction with an expected interval.
    ExpectedInterval,
}

/// A latency histogram pair.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    /// From intended send time (open loop) or CO-corrected (closed loop).
    pub corrected: Histogram<u64>,
    /// From actual send time.
    pub uncorrected: Histogram<u64>,
}

impl Latencies {
    fn new() -> Self {
        Self {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
        }
    }
}

/// One hlog interval.
#[derive(Debug, Clone)]
pub(crate) struct Interval {
    /// Offset of the interval's start from the measurement window's start.
    pub start: Duration,
    /// Its length.
    pub length: Duration,
    /// Its latencies.
    pub latencies: Latencies,
}

/// Counters over the measurement window.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    /// Requests answered (possibly with item errors).
    pub answered: u64,
    /// Requests that failed as a whole.
    pub failed: u64,
    /// Items with a cfrag.
    pub items_ok: u64,
    /// Items with an error.
    pub items_failed: u64,
    /// Request failures by label.
    pub errors: BTreeMap<String, u64>,
    /// Item failures by code.
    pub item_errors: BTreeMap<String, u64>,
    /// Requests sent later than the delay threshold after their intended time.
    pub delayed: u64,
    /// The latest actual send among the window's requests.
    pub last_sent: Option<Instant>,
}

/// Lateness below which a send counts as on time, whatever the rate: about the resolution of
/// the runtime's timer plus scheduling noise.
pub(crate) const MIN_DELAY_THRESHOLD: Duration = Duration::from_millis(2);

/// What a [`Recorder`] produced.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// Whole-window latencies of answered requests.
    pub latencies: Latencies,
    /// Per-interval latencies (by completion time), for hlog.
    pub intervals: Vec<Interval>,
    /// Counters.
    pub counts: Counts,
    /// Closed loop: the expected interval used for correction, in microseconds.
    pub expected_interval_us: Option<u64>,
    /// Lateness beyond which a send counted as delayed.
    pub delay_threshold: Duration,
    /// Through a pool of replicas: each replica's attempts, by address.
    pub replicas: BTreeMap<SocketAddr, ReplicaRecord>,
    /// Through a pool of replicas: the requests that failed over.
    pub failover: FailoverRecord,
}

/// Accumulates samples; only those scheduled inside the window count.
pub(crate) struct Recorder {
    window_start: Instant,
    window_end: Instant,
    correction: Correction,
    delay_threshold: Duration,
    interval_length: Duration,
    whole: Latencies,
    intervals: Vec<Interval>,
    counts: Counts,
    replicas: BTreeMap<SocketAddr, ReplicaRecord>,
    failover: FailoverRecord,
    warmup_sum_us: u64,
    warmup_count: u64,
    /// Every sample seen, warm-up included (for the progress display).
    pub seen: u64,
    /// Every failure seen, warm-up included.
    pub seen_failed: u64,
}

impl Recorder {
    /// A recorder for the window `[window_start, window_end)` with hlog intervals of
    /// `interval_length`; a request sent more than `delay_threshold` after its intended time
    /// counts as delayed.
    pub fn new(
        window_start: Instant,
        window_end: Instant,
        correction: Correction,
        delay_threshold: Duration,
        interval_length: Duration,
    ) -> Self {
        Self {
            window_start,
            window_end,
            correction,
            delay_threshold,
            interval_length: interval_length.max(Duration::from_millis(1)),
            whole: Latencies::new(),
            intervals: Vec::new(),
            counts: Counts::default(),
            replicas: BTreeMap::new(),
            failover: FailoverRecord {
                requests: 0,
                retries: 0,
                latency: new_histogram(),
            },
            warmup_sum_us: 0,
            warmup_count: 0,
            seen: 0,
            seen_failed: 0,
        }
    }

    /// Records one finished request.
    pub fn record(&mut self, sample: &Sample) {
        self.seen += 1;
        if matches!(sample.outcome, Outcome::Failed(_)) {
            self.seen_failed += 1;
        }
        let uncorrected = micros(sample.done.saturating_duration_since(sample.sent));
        if sample.intended < self.window_start {
            if matches!(sample.outcome, Outcome::Answered { .. }) {
                self.warmup_sum_us += uncorrected;
                self.warmup_count += 1;
            }
            return;
        }
        if sample.intended >= self.window_end {
            return;
        }
        self.record_attempts(sample, uncorrected);
        let counts = &mut self.counts;
        if sample.sent.saturating_duration_since(sample.intended) > self.delay_threshold {
            counts.delayed += 1;
        }
        counts.last_sent = counts.last_sent.max(Some(sample.sent));
        match &sample.outcome {
            Outcome::Failed(label) => {
                counts.failed += 1;
                *counts.errors.entry(label.clone()).or_default() += 1;
            }
            Outcome::Answered { item_errors } => {
                counts.answered += 1;
                counts.items_failed += item_errors.len() as u64;
                counts.items_ok += u64::from(sample.items).saturating_sub(item_errors.len() as u64);
                for code in item_errors {
                    *counts.item_errors.entry(code.clone()).or_default() += 1;
                }
                let corrected = match self.correction {
                    Correction::FromSchedule => {
                        micros(sample.done.saturating_duration_since(sample.intended))
                    }
                    Correction::ExpectedInterval => uncorrected,
                };
                let slot = sample.done.saturating_duration_since(self.window_start);
                let interval = interval_for(&mut self.intervals, self.interval_length, slot);
                for latencies in [&mut self.whole, &mut interval.latencies] {
                    latencies.uncorrected.saturating_record(uncorrected);
                    latencies.corrected.saturating_record(corrected);
                }
            }
        }
    }

    /// Counts a windowed request's attempts per replica, and the request as a failover when
    /// an attempt failed before it was answered.
    fn record_attempts(&mut self, sample: &Sample, uncorrected_us: u64) {
        let last = sample.attempts.len().saturating_sub(1);
        let mut retried = 0;
        for (k, attempt) in sample.attempts.iter().enumerate() {
            let replica = self
                .replicas
                .entry(attempt.replica)
                .or_insert_with(|| ReplicaRecord {
                    attempts: 0,
                    answered: 0,
                    errors: BTreeMap::new(),
                    retried: 0,
                    latency: new_histogram(),
                });
            replica.attempts += 1;
            match &attempt.failure {
                None => {
                    replica.answered += 1;
                    replica.latency.saturating_record(micros(attempt.took));
                }
                Some(label) => {
                    *replica.errors.entry(label.clone()).or_default() += 1;
                    if k < last {
                        replica.retried += 1;
                        retried += 1;
                    }
                }
            }
        }
        self.failover.retries += retried;
        if retried > 0 && matches!(sample.outcome, Outcome::Answered { .. }) {
            self.failover.requests += 1;
            self.failover.latency.saturating_record(uncorrected_us);
        }
    }

    /// The p99 of uncorrected latency so far, in microseconds (for progress display).
    pub fn running_p99_us(&self) -> u64 {
        self.whole.uncorrected.value_at_quantile(0.99)
    }

    /// Finishes: applies closed-loop correction and returns everything.
    pub fn finish(mut self) -> Recorded {
        let mut expected_interval_us = None;
        if self.correction == Correction::ExpectedInterval {
            let expected = self
                .warmup_sum_us
                .checked_div(self.warmup_count)
                // No warm-up: fall back to the window's own mean.
                .unwrap_or(self.whole.uncorrected.mean() as u64)
                .max(1);
            expected_interval_us = Some(expected);
            self.whole.corrected = self.whole.uncorrected.clone_correct(expected);
            for interval in &mut self.intervals {
                interval.latencies.corrected =
                    interval.latencies.uncorrected.clone_correct(expected);
            }
        }
        Recorded {
            latencies: self.whole,
            intervals: self.intervals,
            counts: self.counts,
            expected_interval_us,
            delay_threshold: self.delay_threshold,
            replicas: self.replicas,
            failover: self.failover,
        }
    }
}

/// The interval that a completion `offset` into the window belongs to, created as needed.
fn interval_for(
    intervals: &mut Vec<Interval>,
    length: Duration,
    offset: Duration,
) -> &mut Interval {
    let index = (offset.as_nanos() / length.as_nanos()) as u32;
    let start = length * index;
    if intervals.last().map_or(true, |last| last.start < start) {
        intervals.push(Interval {
            start,
            length,
            latencies: Latencies::new(),
        });
    }
    // Samples arrive in completion order give or take a little: a straggler for an earlier
    // interval joins the latest one. The vector is not empty: the branch above ran or a last
    // element exists.
    let last = intervals.len() - 1;
    &mut intervals[last]
}

fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds (1 <= low, high >= 2 * low, 3 significant digits): cannot fail.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid constant histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        base: Instant,
        intended_ms: u64,
        sent_ms: u64,
        done_ms: u64,
        outcome: Outcome,
    ) -> Sample {
        Sample {
            intended: base + Duration::from_millis(intended_ms),
            sent: base + Duration::from_millis(sent_ms),
            done: base + Duration::from_millis(done_ms),
            items: 2,
            outcome,
            attempts: Vec::new(),
        }
    }

    fn ok() -> Outcome {
        Outcome::Answered {
            item_errors: Vec::new(),
        }
    }

    #[test]
    fn open_loop_measures_from_the_schedule_and_drops_warmup() {
        let base = Instant::now();
        let mut r = Recorder::new(
            base + Duration::from_millis(100),
            base + Duration::from_millis(1100),
            Correction::FromSchedule,
            MIN_DELAY_THRESHOLD,
            Duration::from_secs(1),
        );
        r.record(&sample(base, 50, 50, 60, ok())); // warm-up
        r.record(&sample(base, 200, 210, 215, ok())); // sent 10 ms late
        r.record(&sample(
            base,
            300,
            300,
            301,
            Outcome::Answered {
                item_errors: vec!["invalid_capsule".into()],
            },
        ));
        r.record(&sample(
            base,
            400,
            400,
            401,
            Outcome::Failed("overloaded".into()),
        ));
        r.record(&sample(base, 1200, 1200, 1201, ok())); // after the window
        let rec = r.finish();
        let c = &rec.counts;
        assert_eq!(
            (c.answered, c.failed, c.items_ok, c.items_failed, c.delayed),
            (2, 1, 3, 1, 1)
        );
        assert_eq!(c.errors.get("overloaded"), Some(&1));
        assert_eq!(c.item_errors.get("invalid_capsule"), Some(&1));
        let l = &rec.latencies;
        assert_eq!(l.corrected.len(), 2);
        // 15 ms from schedule vs 5 ms from send (hdrhistogram rounds within 0.1 %).
        assert!(l.corrected.equivalent(l.corrected.max(), 15_000));
        assert!(l.uncorrected.equivalent(l.uncorrected.max(), 5_000));
        assert_eq!(rec.expected_interval_us, None);
    }

    #[test]
    fn closed_loop_correction_fills_in_the_stall() {
        let base = Instant::now();
        let mut r = Recorder::new(
            base + Duration::from_millis(100),
            base + Duration::from_secs(10),
            Correction::ExpectedInterval,
            MIN_DELAY_THRESHOLD,
            Duration::from_secs(1),
        );
        for i in 0..10 {
            r.record(&sample(base, i * 10, i * 10, i * 10 + 10, ok())); // warm-up: 10 ms each
        }
        r.record(&sample(base, 200, 200, 210, ok()));
        r.record(&sample(base, 210, 210, 310, ok())); // a 100 ms stall
        let rec = r.finish();
        assert_eq!(rec.expected_interval_us, Some(10_000));
        assert_eq!(rec.latencies.uncorrected.len(), 2);
        // 100 ms at a 10 ms interval adds 90, 80, ..., 10 ms.
        assert_eq!(rec.latencies.corrected.len(), 11);
        assert_eq!(rec.intervals.len(), 1);
        assert_eq!(rec.intervals[0].latencies.corrected.len(), 11);
    }

    #[test]
    fn attempts_are_counted_per_replica_and_failovers_apart() {
        let base = Instant::now();
        let mut r = Recorder::new(
            base,
            base + Duration::from_secs(5),
            Correction::FromSchedule,
            MIN_DELAY_THRESHOLD,
            Duration::from_secs(1),
        );
        let (a, b) = (
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 1], 2)),
        );
        let attempt = |replica, ms, failure: Option<&str>| Attempt {
            replica,
            took: Duration::from_millis(ms),
            failure: failure.map(str::to_owned),
        };
        let mut plain = sample(base, 10, 10, 12, ok());
        plain.attempts = vec![attempt(a, 2, None)];
        r.record(&plain);
        // Timed out on a, answered by b.
        let mut failed_over = sample(base, 20, 20, 1020, ok());
        failed_over.attempts = vec![attempt(a, 1000, Some("timeout")), attempt(b, 3, None)];
        r.record(&failed_over);
        // Rejected by b for good: an error there, not a retry.
        let mut rejected = sample(base, 30, 30, 31, Outcome::Failed("malformed".into()));
        rejected.attempts = vec![attempt(b, 1, Some("malformed"))];
        r.record(&rejected);
        let rec = r.finish();
        let (ra, rb) = (&rec.replicas[&a], &rec.replicas[&b]);
        assert_eq!((ra.attempts, ra.answered, ra.retried), (2, 1, 1));
        assert_eq!(ra.errors.get("timeout"), Some(&1));
        assert_eq!((rb.attempts, rb.answered, rb.retried), (2, 1, 0));
        assert_eq!(rb.errors.get("malformed"), Some(&1));
        assert_eq!((rec.failover.requests, rec.failover.retries), (1, 1));
        assert!(rec
            .failover
            .latency
            .equivalent(rec.failover.latency.max(), 1_000_000));
    }

    #[test]
    fn intervals_follow_completion_time() {
        let base = Instant::now();
        let mut r = Recorder::new(
            base,
            base + Duration::from_secs(5),
            Correction::FromSchedule,
            MIN_DELAY_THRESHOLD,
            Duration::from_secs(1),
        );
        r.record(&sample(base, 10, 10, 20, ok()));
        r.record(&sample(base, 900, 900, 1500, ok()));
        r.record(&sample(base, 2100, 2100, 2101, ok()));
        let rec = r.finish();
        let starts: Vec<u64> = rec.intervals.iter().map(|i| i.start.as_secs()).collect();
        assert_eq!(starts, vec![0, 1, 2]);
    }
}
