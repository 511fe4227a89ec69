//! `umbrald bench`: the load generator. Without `--addr`, one appliance is started in this
//! process (and its `/metrics` read unless `--metrics-url` says otherwise); with several, the
//! load goes through a [`Pool`] over them and the report adds each replica's share.

mod hlog;
mod load;
mod record;
mod report;
mod scrape;
mod sweep;
mod timer;
mod workload;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use umbrald_client::{Client, ClientOptions, NodeSpec, Pool, PoolError, PoolOptions};

use crate::duration::parse_duration;
use crate::error::CliError;
use crate::local::{runtime, LocalAppliances};
use crate::target::TargetArgs;
use load::{Lane, Mode, Phase, PhaseResult};
use report::{Report, RunShape};
use sweep::{SweepReport, Verdict};
use workload::Workload;

/// Load-test an appliance and report throughput and latency.
///
/// Two ways to offer load:
///
/// * Open loop, `--rate R`: requests leave on a fixed schedule, request k at start + k/R, no
///   matter how slowly answers come back (like wrk2). This is how real clients behave and the
///   right way to measure latency at a given load. The *corrected* latency runs from each
///   request's scheduled time, so a stall is charged to every request it held up; the
///   *uncorrected* latency runs from the actual send. When the generator itself cannot keep the
///   schedule (too many in flight, CPU saturated), the report says so: achieved vs target rate
///   and the share of requests sent late (by more than one send interval, at least 2 ms).
///
/// * Closed loop, `--concurrency C` (the default, C=1): C workers each send a request as soon
///   as their previous one is answered, which measures capacity but hides queueing
///   ("coordinated omission"). The *corrected* figures apply hdrhistogram's record_correct with
///   the expected interval between a worker's sends, taken as the mean warm-up latency; the
///   *uncorrected* ones are the raw measurements.
///
/// `--sweep` repeats open-loop runs at rates growing by --sweep-factor from --rate until the
/// corrected p99 exceeds --p99-bound, and prints the knee: the highest rate still within it.
///
/// Each request carries --batch capsules under one policy; capsules and kfrags are real
/// umbral-pre objects, and the first answer is verified with umbral-pre before any load is
/// offered. Without --addr an appliance is started in this process (it then shares the CPU
/// with the generator: fine for a smoke test, not for numbers).
///
/// Several --addr are replicas of one appliance sharing one certificate (one --fingerprint):
/// each request goes to the replica with the fewest requests outstanding (--connections
/// connections to each), a replica whose connection fails, closes or stays silent past
/// --request-timeout is left alone for a back-off, and a request it did not answer (or that
/// it refused as `overloaded`) is retried on another. The report adds each replica's
/// requests, errors, retries and latency, and the requests that failed over.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Which appliance(s), and how to trust them.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Open loop: target rate in requests per second over all connections.
    #[arg(long, value_name = "REQ_PER_S", conflicts_with = "concurrency")]
    pub rate: Option<f64>,

    /// Closed loop: requests kept in flight over all connections (default 1).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Items (capsules) per request.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub batch: usize,

    /// QUIC connections to spread the load over.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub connections: usize,

    /// Length of the measured window (per sweep step).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Load offered before the window opens and not counted (per sweep step).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Sweep the open-loop rate upward from --rate (default 100 req/s) until the p99 bound.
    #[arg(long, conflicts_with = "concurrency")]
    pub sweep: bool,

    /// Rate multiplier between sweep steps.
    #[arg(long, value_name = "X", default_value_t = 1.5)]
    pub sweep_factor: f64,

    /// Most sweep steps.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub sweep_steps: usize,

    /// The corrected p99 latency bound that ends a sweep.
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_duration)]
    pub p99_bound: Duration,

    /// Distinct policies (kfrags) to rotate through.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub policies: usize,

    /// Distinct capsules to rotate through.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub capsules: usize,

    /// Server-side deadline to put on every request, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<u32>,

    /// Open loop: most requests in flight; beyond it the generator waits (and reports that it
    /// fell behind).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_in_flight: usize,

    /// A request with no answer after this long counts as a `timeout` error.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// The server's Prometheus endpoint (e.g. http://127.0.0.1:9464/metrics): its queue wait,
    /// batch compute time and mean batch size over the window (read from 50 ms before it opens
    /// to when the last answer is in) join the report.
    #[arg(long, value_name = "URL")]
    pub metrics_url: Option<String>,

    /// Write the report as JSON to this file (`-` for stdout, which then gets only the JSON).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Write per-second latency histograms in HdrHistogram interval-log format to this file.
    #[arg(long, value_name = "PATH")]
    pub hlog: Option<PathBuf>,

    /// Skip verifying the first answer with umbral-pre.
    #[arg(long)]
    pub no_check: bool,

    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// The result of `umbrald bench`, as serialized by `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BenchOutput {
    /// A single open- or closed-loop run.
    Run(Box<Report>),
    /// A rate sweep.
    Sweep(SweepReport),
}

impl BenchArgs {
    fn mode(&self) -> Mode {
        match (self.rate, self.concurrency) {
            (Some(rate), _) => Mode::Open { rate },
            (None, _) if self.sweep => Mode::Open { rate: 100.0 },
            (None, c) => Mode::Closed {
                concurrency: c.unwrap_or(1),
            },
        }
    }

    fn validate(&self) -> Result<(), CliError> {
        let bad = |m: &str| Err(CliError::Usage(m.to_owned()));
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return bad("--rate must be a positive number");
        }
        if self.concurrency == Some(0) || self.batch == 0 || self.connections == 0 {
            return bad("--concurrency, --batch and --connections must be at least 1");
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive");
        }
        if self.sweep && !(self.sweep_factor.is_finite() && self.sweep_factor > 1.0) {
            return bad("--sweep-factor must be greater than 1");
        }
        if self.max_in_flight == 0 {
            return bad("--max-in-flight must be at least 1");
        }
        Ok(())
    }
}

/// Runs the load generator, printing the report to stdout and progress to stderr.
pub fn run(mut args: BenchArgs) -> anyhow::Result<()> {
    crate::logging::init("warn")?;
    runtime()?.block_on(async move {
        let (local, node) = match args.target.node_specs()?.as_slice() {
            [] => {
                eprintln!(
                    "umbrald bench: no --addr, benchmarking an appliance started in this process \
                     (it shares the CPU with the load generator: a smoke test, not a measurement)"
                );
                let workers =
                    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
                let local = LocalAppliances::start(1, workers).await?;
                if args.metrics_url.is_none() {
                    args.metrics_url = local.metrics_url(0);
                }
                let node = local.specs().remove(0);
                (Some(local), node)
            }
            [node] => (None, node.clone()),
            nodes => {
                run_against_replicas(&args, nodes, &mut std::io::stdout()).await?;
                return anyhow::Ok(());
            }
        };
        let result = run_against(&args, &node, &mut std::io::stdout()).await;
        if let Some(local) = local {
            local.shutdown().await;
        }
        result?;
        anyhow::Ok(())
    })
}

/// Which appliance a run loads.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// One address, `--connections` connections to it.
    One(&'a NodeSpec),
    /// Replicas of one appliance, through a pool.
    Replicas(&'a [NodeSpec]),
}

/// Runs the benchmark against `node`, printing progress to stderr and the report to `out`.
pub async fn run_against(
    args: &BenchArgs,
    node: &NodeSpec,
    out: &mut (dyn Write + Send),
) -> Result<BenchOutput, CliError> {
    run_on(args, Target::One(node), out).await
}

/// Runs the benchmark against replicas of one appliance through a pool, printing progress to
/// stderr and the report, with each replica's share, to `out`.
pub async fn run_against_replicas(
    args: &BenchArgs,
    nodes: &[NodeSpec],
    out: &mut (dyn Write + Send),
) -> Result<BenchOutput, CliError> {
    run_on(args, Target::Replicas(nodes), out).await
}

/// The pool over `nodes`, every replica connected, and a lane per `--connections`.
async fn pool_lanes(
    args: &BenchArgs,
    nodes: &[NodeSpec],
    options: &ClientOptions,
) -> Result<(Vec<Lane>, Vec<(SocketAddr, Vec<Client>)>), CliError> {
    let Some(trust) = nodes.first().map(|n| &n.trust) else {
        return Err(CliError::Usage("no --addr".to_owned()));
    };
    if nodes.iter().any(|n| n.trust != *trust) {
        return Err(CliError::Usage(
            "replicas share one certificate: give one --fingerprint for every --addr".to_owned(),
        ));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let pool_options = PoolOptions {
        client: options.clone(),
        connections_per_replica: args.connections,
        attempts: pool_attempts(addrs.len()),
        ..PoolOptions::default()
    };
    let pool = Pool::new(&addrs, trust, pool_options).map_err(|e| match e {
        PoolError::Client(e) => CliError::Client(e),
        e => CliError::Usage(e.to_string()),
    })?;
    if let Some(failed) = pool.connect_all().await.into_iter().next() {
        return Err(CliError::Client(failed.error));
    }
    let clients = pool.clients();
    let lanes = (0..args.connections)
        .map(|_| Lane::Pool(pool.clone()))
        .collect();
    Ok((lanes, clients))
}

/// Attempts per request through a pool of `replicas`: each replica once, at least three.
fn pool_attempts(replicas: usize) -> u32 {
    u32::try_from(replicas).unwrap_or(u32::MAX).max(3)
}

async fn run_on(
    args: &BenchArgs,
    target: Target<'_>,
    out: &mut (dyn Write + Send),
) -> Result<BenchOutput, CliError> {
    args.validate()?;
    let json_to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    let options = ClientOptions {
        request_timeout: args.request_timeout,
        ..args.target.client_options()?
    };
    let workload = Arc::new(Workload::generate(
        args.policies,
        args.capsules,
        args.batch,
        args.deadline_ms,
        options.compact_cfrags,
    )?);
    // Every connection (for handshake times and reconnections), and one client per
    // appliance or replica to check the answers of.
    let (lanes, clients, checked, header) = match target {
        Target::One(node) => {
            let mut clients = Vec::new();
            for _ in 0..args.connections {
                let client = Client::new(node.addr, &node.trust, options.clone())?;
                client.ensure_connected().await?;
                clients.push(client);
            }
            let lanes: Vec<Lane> = clients.iter().cloned().map(Lane::Client).collect();
            let checked = clients.first().cloned().into_iter().collect::<Vec<_>>();
            (lanes, clients, checked, node.addr.to_string())
        }
        Target::Replicas(nodes) => {
            let (lanes, replicas) = pool_lanes(args, nodes, &options).await?;
            let header = format!(
                "{} ({} replicas)",
                replicas
                    .iter()
                    .map(|(addr, _)| addr.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                replicas.len()
            );
            let checked = replicas
                .iter()
                .filter_map(|(_, clients)| clients.first().cloned())
                .collect();
            let clients = replicas.into_iter().flat_map(|(_, c)| c).collect();
            (lanes, clients, checked, header)
        }
    };
    let replicated = matches!(target, Target::Replicas(_));
    // How long an unanswered request may still take after the window: one attempt, or every
    // attempt of a request through the pool (each may wait out a handshake, then a timeout).
    let drain = match target {
        Target::One(_) => args.request_timeout,
        Target::Replicas(nodes) => {
            (args.request_timeout + args.target.connect_timeout) * pool_attempts(nodes.len())
        }
    };
    let handshakes: Vec<Duration> = clients
        .iter()
        .filter_map(|c| c.handshake_times().first().copied())
        .collect();
    if !args.no_check {
        for client in &checked {
            workload.check_answers(client).await?;
        }
    }
    let progress = progress_bar(args.no_progress);
    let reconnects = || {
        clients
            .iter()
            .map(|c| c.handshake_times().len().saturating_sub(1) as u64)
            .sum()
    };
    let mut text = Vec::new();
    if !json_to_stdout {
        writeln!(out, "umbrald bench -> {header}").map_err(CliError::output("stdout"))?;
    }

    let phase_for = |mode: Mode, label: String| Phase {
        mode,
        warmup: args.warmup,
        duration: args.duration,
        max_in_flight: args.max_in_flight,
        drain,
        interval: Duration::from_secs(1),
        label,
    };
    let shape = |mode: Mode| RunShape {
        mode,
        connections: args.connections,
        batch: args.batch,
        warmup: args.warmup,
        request_timeout: args.request_timeout,
        replicated,
    };
    let metrics_url = args.metrics_url.as_deref();

    let (output, phases): (BenchOutput, Vec<(String, PhaseResult)>) = if args.sweep {
        let Mode::Open { mut rate } = args.mode() else {
            return Err(CliError::Usage("--sweep is open loop only".to_owned()));
        };
        let bound_ms = args.p99_bound.as_secs_f64() * 1e3;
        let mut steps = Vec::new();
        let mut phases = Vec::new();
        let mut last_under = None;
        let mut stopped = format!("{} steps run without crossing the bound", args.sweep_steps);
        for step in 0..args.sweep_steps {
            let mode = Mode::Open { rate };
            let phase = phase_for(mode, format!("step {} at {rate:.0} req/s", step + 1));
            let result = load::run_phase(&lanes, &workload, &phase, &progress, metrics_url).await;
            let report = Report::build(shape(mode), &result, &handshakes, reconnects());
            let verdict = sweep::judge(&report, bound_ms);
            if !json_to_stdout {
                writeln!(
                    out,
                    "  step {}: {rate:.1} req/s -> p99 {:.3} ms, {:.1} answered/s",
                    step + 1,
                    report.latency_ms.corrected.p99,
                    report.requests_per_s
                )
                .map_err(CliError::output("stdout"))?;
            }
            phases.push((format!("rate{rate:.0}-"), result));
            steps.push(report);
            match verdict {
                Verdict::Under => {
                    last_under = Some(steps.len() - 1);
                    rate *= args.sweep_factor;
                }
                Verdict::Stop(reason) => {
                    stopped = reason;
                    break;
                }
            }
        }
        let knee = sweep::knee(last_under.and_then(|i| steps.get(i)));
        let report = SweepReport {
            p99_bound_ms: bound_ms,
            factor: args.sweep_factor,
            steps,
            knee,
            stopped,
        };
        report
            .print(&mut text)
            .map_err(CliError::output("report"))?;
        (BenchOutput::Sweep(report), phases)
    } else {
        let mode = args.mode();
        let label = match mode {
            Mode::Open { rate } => format!("{rate:.0} req/s"),
            Mode::Closed { concurrency } => format!("concurrency {concurrency}"),
        };
        let result = load::run_phase(
            &lanes,
            &workload,
            &phase_for(mode, label),
            &progress,
            metrics_url,
        )
        .await;
        let report = Report::build(shape(mode), &result, &handshakes, reconnects());
        report
            .print(&mut text)
            .map_err(CliError::output("report"))?;
        (
            BenchOutput::Run(Box::new(report)),
            vec![(String::new(), result)],
        )
    };
    for client in &clients {
        client.close();
    }

    if let Some(path) = &args.hlog {
        let refs: Vec<(String, &PhaseResult)> =
            phases.iter().map(|(p, r)| (p.clone(), r)).collect();
        hlog::write(path, &refs)?;
    }
    let json = serde_json::to_string_pretty(&output).map_err(|e| CliError::Output {
        what: "JSON".to_owned(),
        source: e.into(),
    })?;
    match &args.json {
        Some(_) if json_to_stdout => writeln!(out, "{json}").map_err(CliError::output("stdout"))?,
        Some(path) => std::fs::write(path, json + "\n")
            .map_err(CliError::output(path.display().to_string()))?,
        None => {}
    }
    if !json_to_stdout {
        out.write_all(&text).map_err(CliError::output("stdout"))?;
    }
    Ok(output)
}

fn progress_bar(hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed:>4} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
