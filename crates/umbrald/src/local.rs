//! Appliances started inside this process for `demo` and `bench` when no `--addr` is given:
//! loopback ephemeral ports, fresh self-signed certificates (pinned by fingerprint), throwaway
//! data directories.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use umbrald_client::{Fingerprint, NodeSpec, Trust};
use umbrald_server::{Config, RunningServer, Server};

/// Running in-process appliances; [`LocalAppliances::shutdown`] stops them and removes their
/// data directories.
pub struct LocalAppliances {
    servers: Vec<RunningServer>,
    dirs: Vec<PathBuf>,
}

impl LocalAppliances {
    /// Starts `count` appliances with `workers` worker threads each.
    pub async fn start(count: usize, workers: usize) -> anyhow::Result<Self> {
        let mut local = Self {
            servers: Vec::new(),
            dirs: Vec::new(),
        };
        // Unique per appliance in this process, also when several sets run at once.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        for _ in 0..count {
            let i = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("umbrald-local-{}-{i}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            local.dirs.push(dir.clone());
            match Server::start(Config::ephemeral(&dir, workers), None).await {
                Ok(server) => local.servers.push(server),
                Err(e) => {
                    local.shutdown().await;
                    return Err(e).context("cannot start an in-process appliance");
                }
            }
        }
        Ok(local)
    }

    /// One node spec per appliance, trusting its certificate by fingerprint.
    pub fn specs(&self) -> Vec<NodeSpec> {
        self.servers
            .iter()
            .map(|s| NodeSpec {
                addr: s.local_addr(),
                trust: Trust::Fingerprint(Fingerprint(s.cert_fingerprint())),
            })
            .collect()
    }

    /// The `/metrics` URL of appliance `i`, when it has one.
    pub fn metrics_url(&self, i: usize) -> Option<String> {
        let addr = self.servers.get(i)?.metrics_addr()?;
        Some(format!("http://{addr}/metrics"))
    }

    /// Stops every appliance and removes the data directories.
    pub async fn shutdown(self) {
        for server in self.servers {
            server.shutdown().await;
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A multi-threaded runtime for the client subcommands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
