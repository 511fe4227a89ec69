//! `umbrald serve`.

use std::path::PathBuf;

use anyhow::Context;
use umbrald_server::{tls, Config, Overrides, Server, Signal, Signals, TlsReloader};

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
/// SIGTERM, then shuts it down gracefully (its drain delay, then in-flight requests); a second
/// SIGINT or SIGTERM cuts short the phase under way. SIGHUP reloads the certificate and key,
/// and the configuration's `[access]` section.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.overrides)?;
    let overrides = args.overrides.clone();
    crate::logging::init_configured(&config.log.filter)?;
    no_core_dumps();
    if config.server.lock_memory {
        crate::memlock::lock_all()?;
        tracing::info!("memory locked (mlockall): secrets never reach swap");
    }
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
        let mut signals = Signals::install().context("cannot catch signals")?;
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
        let reloader = server.tls_reloader();
        let signal = loop {
            match signals.next().await.context("cannot wait for signals")? {
                Signal::Reload => reload(&reloader, &overrides),
                Signal::Stop(name) => break name,
            }
        };
        tracing::info!(signal, "stop requested");
        let again = async move {
            loop {
                match signals.next().await {
                    Ok(Signal::Reload) => reload(&reloader, &overrides),
                    Ok(Signal::Stop(name)) => {
                        tracing::info!(signal = name, "stop requested again");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot wait for signals");
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        server.shutdown_with(again).await;
        anyhow::Ok(())
    })
}

/// SIGHUP: reloads `[access]` from the configuration (file, environment and flags as at start),
/// then the certificate and key, and prints the fingerprint now presented. A failed reload
/// keeps what is in force; the server logs why.
fn reload(reloader: &TlsReloader, overrides: &Overrides) {
    tracing::info!("SIGHUP: reloading [access], the certificate and key");
    if reloader.reload_from(overrides).is_ok() {
        println!("access settings reloaded");
    }
    if let Ok(fingerprint) = reloader.reload() {
        println!(
            "certificate reloaded; SHA-256 fingerprint: {}",
            tls::fingerprint_hex(&fingerprint)
        );
    }
}

/// Keeps key material out of core files: the process writes none (its core size limit is 0,
/// hard and soft), whatever the environment allows.
fn no_core_dumps() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{setrlimit, Resource, Rlimit};
        let none = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        if let Err(e) = setrlimit(Resource::Core, none) {
            tracing::warn!(error = %e, "cannot turn core dumps off");
        }
    }
}
