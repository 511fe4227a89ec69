//! `umbrald demo`: see [`umbrald_client::cli::demo`]. Without `--addr`, n appliances are
//! started in this process first.

use umbrald_client::cli::demo::{self, DemoArgs};

use crate::local::{runtime, LocalAppliances};

/// Runs the demo, printing each step to stdout.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::logging::init("warn")?;
    runtime()?.block_on(async move {
        let local = if args.target.addrs.is_empty() {
            let local = LocalAppliances::start(args.shares, 1).await?;
            let addrs: Vec<String> = local.specs().iter().map(|s| s.addr.to_string()).collect();
            println!(
                "[0/5] started {} appliances in this process (self-signed, pinned by fingerprint): {}",
                args.shares,
                addrs.join(", ")
            );
            Some(local)
        } else {
            None
        };
        let nodes = match &local {
            Some(local) => local.specs(),
            None => args.target.node_specs()?,
        };
        let result = demo::run(&args, &nodes, &mut std::io::stdout()).await;
        if let Some(local) = local {
            local.shutdown().await;
        }
        result?;
        anyhow::Ok(())
    })
}
