//! Clock jumps: the scheduling code takes `now` as an argument, and the server passes
//! `std::time::Instant::now()`, a monotonic clock that a wall-clock change (NTP step, an
//! operator's `date -s`) does not move. These tests feed it what a monotonic clock never gives,
//! a `now` earlier than one already seen and a `now` years ahead, and check that nothing
//! panics and that every queued item comes out exactly once: in a batch, set aside as
//! expired, or drained.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use umbrald_scheduling::{Batcher, BatcherConfig, CpuTimes, IdleGate, QueueEntry, Rates};

#[derive(Debug)]
struct Job {
    id: u32,
    deadline: Option<Instant>,
}

impl QueueEntry for Job {
    fn priority(&self) -> u8 {
        (self.id % 3) as u8
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    fn is_cancelled(&self) -> bool {
        false
    }
}

fn batcher(max_batch: usize, delay: Duration, max_queue: usize) -> Batcher<Job> {
    Batcher::new(BatcherConfig {
        max_batch_items: max_batch,
        max_queue_delay: delay,
        max_queue_items: max_queue,
    })
}

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

#[test]
fn a_now_before_the_enqueue_time_forms_no_batch_and_loses_nothing() {
    let t0 = Instant::now() + Duration::from_secs(3600);
    let mut q = batcher(8, Duration::from_millis(1), 64);
    let deadline = Some(t0 + Duration::from_millis(10));
    let jobs = (0..4).map(|id| Job { id, deadline }).collect();
    assert!(q.push_all(t0, jobs).is_ok());
    // An hour earlier than the push: the delay has not run, nothing has expired.
    let earlier = t0 - Duration::from_secs(3600);
    assert!(q.next_batch(earlier, 1).is_none());
    assert!(q.next_batch_of(earlier, 8).is_none());
    q.purge(earlier);
    assert!(q.take_expired().is_empty());
    assert_eq!(q.len(), 4);
    // Back on time: the batch forms with every item.
    let batch = q.next_batch(t0 + Duration::from_millis(1), 1).expect("due");
    assert_eq!(batch.len(), 4);
    assert!(q.is_empty());
}

#[test]
fn a_now_years_ahead_expires_items_with_deadlines_and_batches_the_rest() {
    let t0 = Instant::now();
    let mut q = batcher(4, Duration::from_millis(1), 64);
    let jobs = (0..10)
        .map(|id| Job {
            id,
            deadline: (id % 2 == 0).then(|| t0 + Duration::from_secs(1)),
        })
        .collect();
    assert!(q.push_all(t0, jobs).is_ok());
    let far = t0 + 100 * YEAR;
    let mut batched = Vec::new();
    while let Some(batch) = q.next_batch(far, 1) {
        batched.extend(batch.into_iter().map(|d| d.item.id));
    }
    let expired: Vec<u32> = q.take_expired().into_iter().map(|d| d.item.id).collect();
    batched.sort_unstable();
    assert_eq!(batched, vec![1, 3, 5, 7, 9]);
    assert_eq!(expired.len(), 5);
    assert!(expired.iter().all(|id| id % 2 == 0));
    assert!(q.is_empty());
}

#[test]
fn the_longest_configurable_queue_delay_does_not_overflow() {
    let t0 = Instant::now();
    // `batcher.max_queue_delay_us` is a u64 of microseconds.
    let mut q = batcher(8, Duration::from_micros(u64::MAX), 64);
    assert!(q
        .push_all(
            t0,
            vec![Job {
                id: 0,
                deadline: None
            }]
        )
        .is_ok());
    assert!(q.poll_deadline().is_some_and(|due| due > t0 + 1000 * YEAR));
    assert!(q.next_batch(t0 + 100 * YEAR, 1).is_none());
    assert_eq!(q.drain().len(), 1);
}

/// A small deterministic generator (no dependency): the same sequence on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn a_clock_that_jumps_both_ways_never_loses_or_repeats_an_item() {
    let base = Instant::now() + 10 * YEAR;
    let mut rng = Lcg(0x5eed);
    let mut q = batcher(5, Duration::from_micros(200), 10_000);
    let mut pushed = 0u32;
    let mut seen = HashSet::new();
    let take = |id: u32, seen: &mut HashSet<u32>| assert!(seen.insert(id), "item {id} twice");
    for _ in 0..2_000 {
        // Anywhere from a year before `base` to a year after it, in milliseconds.
        let offset = Duration::from_millis(rng.below(2 * 365 * 24 * 3600 * 1000));
        let now = (base - YEAR) + offset;
        match rng.below(4) {
            0 | 1 => {
                let n = rng.below(4) as u32;
                let jobs: Vec<Job> = (pushed..pushed + n)
                    .map(|id| Job {
                        id,
                        deadline: (id % 3 == 0)
                            .then(|| now + Duration::from_millis(rng.below(10_000))),
                    })
                    .collect();
                assert!(q.push_all(now, jobs).is_ok());
                pushed += n;
            }
            2 => {
                if let Some(batch) = q.next_batch(now, 1 + rng.below(3) as usize) {
                    for d in batch {
                        take(d.item.id, &mut seen);
                    }
                }
            }
            _ => q.purge(now),
        }
        for d in q.take_expired() {
            take(d.item.id, &mut seen);
        }
    }
    for d in q.drain() {
        take(d.item.id, &mut seen);
    }
    assert_eq!(seen.len(), pushed as usize, "every item came out once");
    assert!(pushed > 1_000);
}

#[test]
fn the_idle_gate_and_the_rates_take_any_now_without_panicking() {
    let t0 = Instant::now() + YEAR;
    let reading = |idle, total| {
        Some(CpuTimes {
            idle,
            total,
            cores: 4,
        })
    };
    let mut gate = IdleGate::new(t0, reading(0, 0));
    // Earlier than the last reading: no new period, no reading asked for.
    let limit = gate.limit(t0 - YEAR, 0, || panic!("read before a period passed"));
    assert_eq!(limit, 0);
    // Far ahead: one new period, its reading used.
    let limit = gate.limit(t0 + 100 * YEAR, 0, || reading(900, 1000));
    assert!(limit >= 1);
    let rates = Rates::default();
    assert_eq!(rates.record_cpu(10, Duration::ZERO), rates.cpu_worker());
    assert!(rates.record_cpu(10, Duration::from_millis(1)).is_finite());
}
