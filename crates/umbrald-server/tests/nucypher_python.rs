//! Interoperability with NuCypher's own client: nucypher-core 0.16's Python package, over QUIC
//! with aioquic, against real servers holding node keys (tests/python/nucypher_client.py).
//!
//! Needs the virtual environment that `scripts/setup-python-tests.sh` creates in
//! `target/pyenv` (or `$UMBRALD_PYENV`); without it the test fails and says so.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use umbrald_nucypher::NodeKeys;

/// Nodes started; the policy is `THRESHOLD` of `NODES`.
const NODES: usize = 3;
const THRESHOLD: usize = 2;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let venv = std::env::var_os("UMBRALD_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/pyenv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python-tests.sh first (it creates the Python \
         environment with nucypher-core 0.16 and aioquic that this test needs)",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nucypher_core_client_gets_verifiable_cfrags_and_documented_errors() {
    let python = python();
    let mut servers = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let config = common::config(&format!("nucypher-py-{i}"), 1);
        let server = common::start_node(config, NodeKeys::random()).await;
        nodes.push(serde_json::json!({
            "addr": server.local_addr().to_string(),
            "status": server.metrics_addr().expect("metrics enabled").to_string(),
            "cert_sha256": hex::encode(server.cert_fingerprint()),
        }));
        servers.push(server);
    }
    let spec = common::data_dir("nucypher-py-spec").join("spec.json");
    std::fs::create_dir_all(spec.parent().expect("parent")).expect("spec dir");
    let body = serde_json::json!({ "threshold": THRESHOLD, "nodes": nodes });
    std::fs::write(&spec, body.to_string()).expect("write spec");

    let script = repo_root().join("tests/python/nucypher_client.py");
    let run = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(&spec)
            .output()
            .expect("python starts")
    });
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("python client finished in time")
        .expect("joined");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "python client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    for server in servers {
        server.shutdown().await;
    }
}
