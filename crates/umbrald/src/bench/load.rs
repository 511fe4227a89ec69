//! The load itself: an open-loop constant-rate schedule (wrk2) or closed-loop workers, over one
//! or more connections (or a pool of replicas), feeding a [`Recorder`] while a progress bar
//! runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use umbrald_client::{Client, FailedAttempt, Pool, PreparedRequest};

use super::record::{
    Attempt, Correction, Outcome, Recorded, Recorder, Sample, MIN_DELAY_THRESHOLD,
};
use super::scrape::{self, ServerMetrics};
use super::timer::PreciseTimer;
use super::workload::Workload;

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Send `rate` requests per second on a fixed schedule, whatever the responses do.
    Open {
        /// Requests per second, over all connections.
        rate: f64,
    },
    /// Keep `concurrency` requests in flight: each worker sends when its last answer arrives.
    Closed {
        /// Workers, over all connections.
        concurrency: usize,
    },
}

/// Where a lane of load goes: one connection, or a pool of replicas (the lanes then share it).
#[derive(Debug, Clone)]
pub(crate) enum Lane {
    /// One connection to one appliance.
    Client(Client),
    /// Replicas of one appliance, each request to one of them and retried on another.
    Pool(Pool),
}

/// One measured run.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    pub mode: Mode,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open loop: the most requests in flight before the generator waits (and falls behind).
    pub max_in_flight: usize,
    /// How long to wait for in-flight requests after the window closes.
    pub drain: Duration,
    /// hlog interval length.
    pub interval: Duration,
    /// Progress-bar prefix.
    pub label: String,
}

/// What a phase produced.
#[derive(Debug, Clone)]
pub(crate) struct PhaseResult {
    pub recorded: Recorded,
    /// Requests scheduled (open) or sent (closed) inside the window.
    pub issued: u64,
    /// Open loop: scheduled requests never sent because the generator was too far behind.
    pub unsent: u64,
    /// Requests sent in the window with no outcome by the end of the drain.
    pub unfinished: u64,
    /// The window's length.
    pub window: Duration,
    /// When the window opened (for hlog timestamps).
    pub window_start_wall: std::time::SystemTime,
    /// The measurement window's start, for computing the achieved send rate.
    pub window_start: Instant,
    /// The server's `/metrics` over the window, when a URL was given and both scrapes worked.
    pub server: Option<ServerMetrics>,
    /// Why the server metrics are missing, if they are.
    pub server_error: Option<String>,
    /// CPU time this process spent during the window (the load generator, plus the appliance
    /// when the benchmark started its own); `None` where the platform does not tell.
    pub process_cpu: Option<Duration>,
}

/// How far behind schedule the open-loop generator may get, past the window's end, before it
/// stops sending the rest of the window's requests.
const BEHIND_LIMIT: Duration = Duration::from_secs(1);

/// How long before the measured window the server's metrics are first read.
const SCRAPE_LEAD: Duration = Duration::from_millis(50);

/// Runs one phase: warm-up, then the window, then the drain.
pub(crate) async fn run_phase(
    clients: &[Lane],
    workload: &Arc<Workload>,
    phase: &Phase,
    progress: &ProgressBar,
    metrics_url: Option<&str>,
) -> PhaseResult {
    // A short lead so that every generator starts on the same schedule.
    let t0 = Instant::now() + Duration::from_millis(20);
    let window_start = t0 + phase.warmup;
    let window_end = window_start + phase.duration;
    let (correction, delay_threshold) = match phase.mode {
        // Late by more than the gap to the connection's next request (or the timer's
        // resolution, at high rates) means the schedule slipped.
        Mode::Open { rate } => (
            Correction::FromSchedule,
            Duration::from_secs_f64(clients.len() as f64 / rate.max(1e-6)).max(MIN_DELAY_THRESHOLD),
        ),
        Mode::Closed { .. } => (Correction::ExpectedInterval, MIN_DELAY_THRESHOLD),
    };
    let recorder = Recorder::new(
        window_start,
        window_end,
        correction,
        delay_threshold,
        phase.interval,
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let total = phase.warmup + phase.duration;
    progress.reset();
    progress.set_length(total.as_millis() as u64);
    progress.set_prefix(phase.label.clone());
    let collector = tokio::spawn(collect(
        rx,
        stop_rx,
        recorder,
        progress.clone(),
        t0,
        window_start,
    ));
    // The first scrape lands a little before the window opens (never before the phase starts):
    // a scrape that starts late would miss the first items of the window, which the server
    // counts when it dispatches them. So the server's side of the window holds every windowed
    // item plus at most a few warm-up ones.
    let scrape_at = window_start
        .checked_sub(SCRAPE_LEAD)
        .map_or(t0, |at| at.max(t0));
    let scrape_before = metrics_url.map(|url| {
        let url = url.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep_until(scrape_at.into()).await;
            scrape::scrape(&url).await
        })
    });
    let window_start_wall =
        std::time::SystemTime::now() + window_start.saturating_duration_since(Instant::now());
    let process_cpu = tokio::spawn(async move {
        tokio::time::sleep_until(window_start.into()).await;
        let start = cpu_time::ProcessTime::try_now().ok()?;
        tokio::time::sleep_until(window_end.into()).await;
        start.try_elapsed().ok()
    });

    let issued = Arc::new(AtomicU64::new(0));
    let unsent = Arc::new(AtomicU64::new(0));
    let mut generators = JoinSet::new();
    let in_flight = Arc::new(Semaphore::new(phase.max_in_flight.max(1)));
    match phase.mode {
        Mode::Open { rate } => {
            // tokio's millisecond timer as the fallback if no thread can be started.
            let timer = PreciseTimer::start().ok().map(Arc::new);
            let interval = Duration::from_secs_f64(clients.len() as f64 / rate.max(1e-6));
            for (c, client) in clients.iter().enumerate() {
                let schedule = Schedule {
                    first: t0 + Duration::from_secs_f64(c as f64 / rate.max(1e-6)),
                    interval,
                    window_start,
                    window_end,
                };
                generators.spawn(open_loop(
                    client.clone(),
                    workload.clone(),
                    schedule,
                    timer.clone(),
                    (c as u64, clients.len() as u64),
                    tx.clone(),
                    in_flight.clone(),
                    issued.clone(),
                    unsent.clone(),
                ));
            }
        }
        Mode::Closed { concurrency } => {
            for w in 0..concurrency {
                let client = clients[w % clients.len()].clone();
                generators.spawn(closed_loop(
                    client,
                    workload.clone(),
                    (w as u64, concurrency as u64),
                    window_start,
                    window_end,
                    tx.clone(),
                    issued.clone(),
                ));
            }
        }
    }
    drop(tx);
    let drain_deadline = window_end + phase.drain + BEHIND_LIMIT;
    let generators_done = async {
        while generators.join_next().await.is_some() {}
        // Open loop: wait until every spawned request has given its permit back.
        let permits = u32::try_from(phase.max_in_flight.max(1)).unwrap_or(u32::MAX);
        let _all = in_flight.acquire_many(permits).await;
    };
    if tokio::time::timeout_at(drain_deadline.into(), generators_done)
        .await
        .is_err()
    {
        generators.abort_all();
    }
    let scrape_after = match metrics_url {
        Some(url) => Some(scrape::scrape(url).await),
        None => None,
    };
    let _ = stop_tx.send(());
    let recorded = match collector.await {
        Ok(recorded) => recorded,
        // The collector only panics on a bug; report an empty window rather than abort.
        Err(_) => Recorder::new(
            window_start,
            window_end,
            correction,
            delay_threshold,
            phase.interval,
        )
        .finish(),
    };
    let issued = issued.load(Ordering::Relaxed);
    let seen_in_window = recorded.counts.answered + recorded.counts.failed;
    let (server, server_error) = match (scrape_before, scrape_after) {
        (Some(before), Some(after)) => {
            let before = before
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            match (before, after.map_err(|e| e.to_string())) {
                (Ok(b), Ok(a)) => (Some(scrape::summarize(&b, &a)), None),
                (Err(e), _) | (_, Err(e)) => (None, Some(e)),
            }
        }
        _ => (None, None),
    };
    progress.finish_and_clear();
    PhaseResult {
        recorded,
        issued,
        unsent: unsent.load(Ordering::Relaxed),
        unfinished: issued.saturating_sub(seen_in_window),
        window: phase.duration,
        window_start_wall,
        window_start,
        server,
        server_error,
        process_cpu: process_cpu.await.ok().flatten(),
    }
}

/// One connection's share of the open-loop schedule.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    first: Instant,
    interval: Duration,
    window_start: Instant,
    window_end: Instant,
}

#[allow(clippy::too_many_arguments)]
async fn open_loop(
    client: Lane,
    workload: Arc<Workload>,
    schedule: Schedule,
    timer: Option<Arc<PreciseTimer>>,
    (lane, lanes): (u64, u64),
    tx: mpsc::UnboundedSender<Sample>,
    in_flight: Arc<Semaphore>,
    issued: Arc<AtomicU64>,
    unsent: Arc<AtomicU64>,
) {
    for k in 0u64.. {
        let intended = schedule.first + schedule.interval.mul_f64(k as f64);
        if intended >= schedule.window_end {
            break;
        }
        match &timer {
            Some(timer) => timer.sleep_until(intended).await,
            None => tokio::time::sleep_until(intended.into()).await,
        }
        let in_window = intended >= schedule.window_start;
        // Waiting for a permit is the generator falling behind: the latency clock (from
        // `intended`) keeps running meanwhile.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        if Instant::now() > schedule.window_end + BEHIND_LIMIT {
            let left = (schedule
                .window_end
                .saturating_duration_since(intended)
                .as_secs_f64()
                / schedule.interval.as_secs_f64())
            .ceil() as u64;
            unsent.fetch_add(left, Ordering::Relaxed);
            break;
        }
        if in_window {
            issued.fetch_add(1, Ordering::Relaxed);
        }
        let seq = k * lanes + lane;
        let client = client.clone();
        let workload = workload.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let sample = send(&client, workload.prepared(seq), intended).await;
            let _ = tx.send(sample);
            drop(permit);
        });
    }
}

async fn closed_loop(
    client: Lane,
    workload: Arc<Workload>,
    (worker, workers): (u64, u64),
    window_start: Instant,
    window_end: Instant,
    tx: mpsc::UnboundedSender<Sample>,
    issued: Arc<AtomicU64>,
) {
    for k in 0u64.. {
        let now = Instant::now();
        if now >= window_end {
            break;
        }
        if now >= window_start {
            issued.fetch_add(1, Ordering::Relaxed);
        }
        let sample = send(&client, workload.prepared(k * workers + worker), now).await;
        if tx.send(sample).is_err() {
            break;
        }
    }
}

/// Sends one prepared request and times it. Only the outcome of each item is kept (the answer
/// is checked but its cfrags are not copied out: [`Client::reencrypt_prepared`]); through a
/// pool, each attempt's replica, time and failure too.
async fn send(lane: &Lane, request: &PreparedRequest, intended: Instant) -> Sample {
    let items = u32::try_from(request.items()).unwrap_or(u32::MAX);
    let sent = Instant::now();
    let (outcome, attempts) = match lane {
        Lane::Client(client) => match client.reencrypt_prepared(request).await {
            Ok(summary) => (
                Outcome::Answered {
                    item_errors: summary.item_errors,
                },
                Vec::new(),
            ),
            Err(e) => (Outcome::Failed(e.label()), Vec::new()),
        },
        Lane::Pool(pool) => match pool.reencrypt_prepared(request).await {
            Ok(served) => {
                let mut attempts: Vec<Attempt> = served.failed.iter().map(failed).collect();
                attempts.push(Attempt {
                    replica: served.replica,
                    took: served.took,
                    failure: None,
                });
                (
                    Outcome::Answered {
                        item_errors: served.value.item_errors,
                    },
                    attempts,
                )
            }
            Err(e) => (
                Outcome::Failed(e.label()),
                e.attempts().into_iter().map(failed).collect(),
            ),
        },
    };
    Sample {
        intended,
        sent,
        done: Instant::now(),
        items,
        outcome,
        attempts,
    }
}

fn failed(attempt: &FailedAttempt) -> Attempt {
    Attempt {
        replica: attempt.replica,
        took: attempt.took,
        failure: Some(attempt.error.label()),
    }
}

/// Feeds samples to the recorder and refreshes the progress bar until every sender is gone or
/// `stop` fires (then takes what is already queued, and ignores later stragglers).
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Sample>,
    mut stop: oneshot::Receiver<()>,
    mut recorder: Recorder,
    progress: ProgressBar,
    t0: Instant,
    window_start: Instant,
) -> Recorded {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_seen = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            sample = rx.recv() => match sample {
                Some(sample) => recorder.record(&sample),
                None => break,
            },
            _ = &mut stop => {
                while let Ok(sample) = rx.try_recv() {
                    recorder.record(&sample);
                }
                break;
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let rate = (recorder.seen - last_seen.1) as f64
                    / now.duration_since(last_seen.0).as_secs_f64().max(1e-3);
                last_seen = (now, recorder.seen);
                progress.set_position(now.saturating_duration_since(t0).as_millis() as u64);
                progress.set_message(if now < window_start {
                    format!("warm-up: {rate:.0} req/s, {} errors", recorder.seen_failed)
                } else {
                    format!(
                        "measuring: {rate:.0} req/s, {} errors, p99 {:.2} ms (uncorrected)",
                        recorder.seen_failed,
                        recorder.running_p99_us() as f64 / 1e3
                    )
                });
            }
        }
    }
    recorder.finish()
}
