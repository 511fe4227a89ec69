//! `umbrald bench`: see [`umbrald_client::cli::bench`]. Without `--addr`, one appliance is
//! started in this process (and its `/metrics` read unless `--metrics-url` says otherwise).

use umbrald_client::cli::bench::{self, BenchArgs};

use crate::local::{runtime, LocalAppliances};

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
            _ => anyhow::bail!("bench takes a single --addr"),
        };
        let result = bench::run(&args, &node, &mut std::io::stdout()).await;
        if let Some(local) = local {
            local.shutdown().await;
        }
        result?;
        anyhow::Ok(())
    })
}
