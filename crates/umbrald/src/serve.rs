//! `umbrald serve`.

use std::path::PathBuf;

use anyhow::Context;
use umbrald_server::{tls, Config, Overrides, Server};

use crate::keygen;

/// Flags of `umbrald serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    overrides: Box<Overrides>,

    /// NuCypher node key file (`umbrald keygen --node`); enables NuCypher ReencryptionRequests.
    #[arg(long, env = "UMBRALD_NODE_KEYS", value_name = "FILE")]
    node_keys: Option<PathBuf>,

    /// File whose first line is the node key passphrase; else $UMBRALD_NODE_KEYS_PASSPHRASE.
    #[arg(
        long,
        env = "UMBRALD_NODE_KEYS_PASSPHRASE_FILE",
        value_name = "FILE",
        requires = "node_keys"
    )]
    node_keys_passphrase_file: Option<PathBuf>,
}

/// Loads the configuration and the node keys, starts the server and runs it until SIGINT or
/// SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.overrides)?;
    crate::logging::init_configured(&config.log.filter)?;
    let node_keys = match &args.node_keys {
        Some(path) => Some(keygen::open_node_keys(
            path,
            args.node_keys_passphrase_file.as_deref(),
            &mut std::io::stdout(),
        )?),
        None => None,
    };
    let io_threads = config.io_threads();
    tracing::info!(io_threads, "async runtime for QUIC and TLS");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        .thread_name("umbrald-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let signals = umbrald_server::StopSignals::install().context("cannot catch signals")?;
        let server = Server::start(config, node_keys).await?;
        // Clients pin this fingerprint; print it where an operator sees it.
        println!(
            "umbrald listening on {} (QUIC, ALPN umbrald/1)",
            server.local_addr()
        );
        println!(
            "certificate SHA-256 fingerprint: {}",
            tls::fingerprint_hex(&server.cert_fingerprint())
        );
        if let Some(addr) = server.https_addr() {
            println!("umbrald serving NuCypher /reencrypt on https://{addr}");
        }
        if let Some(addr) = server.metrics_addr() {
            println!("metrics on http://{addr}/metrics");
        }
        let signal = signals.wait().await.context("cannot wait for signals")?;
        tracing::info!(signal, "stop requested");
        server.shutdown().await;
        anyhow::Ok(())
    })
}
