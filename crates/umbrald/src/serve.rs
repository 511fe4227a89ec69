//! `umbrald serve`.

use anyhow::Context;
use umbrald_server::{tls, Config, Overrides, Server};

/// Flags of `umbrald serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    overrides: Box<Overrides>,
}

/// Loads the configuration, starts the server and runs it until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.overrides)?;
    crate::logging::init(&config.log.filter)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.io_threads)
        .thread_name("umbrald-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::start(config).await?;
        // Clients pin this fingerprint; print it where an operator sees it.
        println!(
            "umbrald listening on {} (QUIC, ALPN umbrald/1)",
            server.local_addr()
        );
        println!(
            "certificate SHA-256 fingerprint: {}",
            tls::fingerprint_hex(&server.cert_fingerprint())
        );
        if let Some(addr) = server.metrics_addr() {
            println!("metrics on http://{addr}/metrics");
        }
        let signal = umbrald_server::wait_for_signal()
            .await
            .context("cannot wait for signals")?;
        tracing::info!(signal, "stop requested");
        server.shutdown().await;
        anyhow::Ok(())
    })
}
