//! NuCypher's own HTTPS client against `umbrald serve --https-listen`: three nodes whose keys come
//! from keystores made by nucypher 7.6.1's `Keystore.generate` and imported with `umbrald keygen
//! --node --from-nucypher-keystore`; nucypher's `NucypherMiddlewareClient` posts
//! `ReencryptionRequest`s to them as Bob does, verifies and decrypts with nucypher-core 0.15, and
//! gets each documented status code for a bad request (tests/python/nucypher_https_client.py).
//!
//! Needs the virtual environment with nucypher 7.6.1 that `scripts/setup-python-tests.sh`
//! creates in `target/nucypher-env` (or `$UMBRALD_NUCYPHER_ENV`); without it the test fails and
//! says so.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Nodes started; the policy is `THRESHOLD` of `NODES`.
const NODES: usize = 3;
const THRESHOLD: usize = 2;
/// The keystores' password (nucypher wants at least 8 characters).
const KEYSTORE_PASSWORD: &str = "throwaway keystore password";
/// What `umbrald serve` prints, followed by `HOST:PORT`, once its HTTPS endpoint listens.
const HTTPS_ANNOUNCEMENT: &str = "umbrald serving NuCypher /reencrypt on https://";

/// Bounds on each step. A scrypt of cost 2^20 per keystore on each side (nucypher's and
/// umbrald's: 1 GiB and a few seconds each) dominates; the whole test takes well under a minute
/// on two cores.
const KEYSTORES_TIMEOUT: Duration = Duration::from_secs(120);
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(120);
const SERVE_TIMEOUT: Duration = Duration::from_secs(60);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// The status code the client must get for each bad request it sends (the names are the
/// `statuses` keys of nucypher_https_client.py's report).
const EXPECTED_STATUSES: [(&str, u64); 9] = [
    ("kfrag_for_another_node", 403),
    ("wrong_publisher_verifying_key", 401),
    ("kfrag_signed_by_another", 401),
    ("garbage", 400),
    ("truncated", 400),
    ("conditions", 400),
    ("too_large", 413),
    ("get_reencrypt", 405),
    ("unknown_path", 404),
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let venv = std::env::var_os("UMBRALD_NUCYPHER_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/nucypher-env"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python-tests.sh first (it creates the Python \
         environment with nucypher 7.6.1 that this test needs)",
        python.display()
    );
    python
}

fn client_script() -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/python/nucypher_https_client.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

fn umbrald() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_umbrald"));
    // Keep the developer's environment out of the nodes' configuration.
    for (key, _) in std::env::vars() {
        if key.starts_with("UMBRALD_") || key == "RUST_LOG" || key == "NUCYPHER_KEYSTORE_PASSWORD" {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn work_dir() -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("umbrald-nucypher-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A child process, killed and reaped on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished command gave.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn describe(&self, what: &str) -> String {
        format!(
            "{what} ({})\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    /// The last non-empty line of stdout, as JSON.
    fn last_json_line(&self, what: &str) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("{}", self.describe(&format!("{what} printed nothing"))));
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "{}",
                self.describe(&format!("{what}: its last line is not JSON: {e}"))
            )
        })
    }
}

/// Runs `cmd` to completion within `timeout`; its output goes to `dir/TAG.stdout` and
/// `dir/TAG.stderr` (files: no pipe to fill).
fn run_bounded(mut cmd: Command, dir: &Path, tag: &str, timeout: Duration) -> Finished {
    let out_path = dir.join(format!("{tag}.stdout"));
    let err_path = dir.join(format!("{tag}.stderr"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{tag}: cannot start {cmd:?}: {e}"));
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            panic!(
                "{tag}: still running after {timeout:?}, killed\n--- stdout\n{}\n--- stderr\n{}",
                read_lossy(&out_path),
                read_lossy(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished {
        status,
        stdout: read_lossy(&out_path),
        stderr: read_lossy(&err_path),
    }
}

/// The node public keys `umbrald keygen --node` and `umbrald serve` print: (decrypting,
/// verifying), hex.
fn printed_public_keys(text: &str) -> Option<(String, String)> {
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    Some((
        find("node decrypting public key ")?,
        find("node verifying public key ")?,
    ))
}

/// One node's files.
struct NodeFiles {
    dir: PathBuf,
    node_keys: PathBuf,
    passphrase: PathBuf,
    /// The public keys nucypher derives from the node's keystore: (decrypting, verifying), hex.
    nucypher_keys: (String, String),
}

/// Reads what `keystores` wrote for node `index` and imports its keystore with `umbrald keygen
/// --node --from-nucypher-keystore`; the keys umbrald prints, and the hash of the Ursula's TLS
/// key, must be nucypher's.
fn import_keystore(work: &Path, index: usize) -> NodeFiles {
    let dir = work.join(format!("node-{index}"));
    std::fs::create_dir_all(&dir).expect("node dir");
    let expected: serde_json::Value = serde_json::from_str(&read_lossy(
        &work.join(format!("keystores/node-{index}.json")),
    ))
    .unwrap_or_else(|e| panic!("keystores/node-{index}.json: {e}"));
    let key = |name: &str| {
        expected[name]
            .as_str()
            .unwrap_or_else(|| panic!("node-{index}.json has no {name}: {expected}"))
            .to_owned()
    };
    let nucypher_keys = (key("decrypting_public_key"), key("verifying_public_key"));

    let password = dir.join("keystore-password");
    std::fs::write(&password, format!("{KEYSTORE_PASSWORD}\n")).expect("write");
    let passphrase = dir.join("node-keys-passphrase");
    std::fs::write(&passphrase, format!("node {index} key file passphrase\n")).expect("write");
    let node_keys = dir.join("node.keys");
    let mut cmd = umbrald();
    cmd.args(["keygen", "--node", "--node-keys"])
        .arg(&node_keys)
        .arg("--node-keys-passphrase-file")
        .arg(&passphrase)
        .arg("--from-nucypher-keystore")
        .arg(work.join(format!("keystores/node-{index}.priv")))
        .arg("--nucypher-keystore-password-file")
        .arg(&password);
    let keygen = run_bounded(cmd, &dir, "keygen", KEYGEN_TIMEOUT);
    assert!(
        keygen.status.success(),
        "{}",
        keygen.describe(&format!(
            "node {index}: umbrald keygen --from-nucypher-keystore failed"
        ))
    );
    assert_eq!(
        printed_public_keys(&keygen.stdout).as_ref(),
        Some(&nucypher_keys),
        "node {index}: umbrald keygen must print the keys nucypher derives from the keystore\n{}",
        keygen.stdout
    );
    let printed_pin = keygen
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Ursula TLS public key sha256 "))
        .and_then(|rest| rest.split_whitespace().next());
    assert_eq!(
        printed_pin,
        Some(key("tls_public_key_sha256").as_str()),
        "node {index}: umbrald keygen must print the hash of the TLS key nucypher derives\n{}",
        keygen.stdout
    );
    NodeFiles {
        dir,
        node_keys,
        passphrase,
        nucypher_keys,
    }
}

/// A running `umbrald serve`, killed on drop.
struct Served {
    index: usize,
    child: KillOnDrop,
    /// Lines of its stdout, read by a thread (so the pipe never fills).
    lines: mpsc::Receiver<String>,
    printed: String,
    stderr: PathBuf,
}

impl Served {
    fn start(index: usize, node: &NodeFiles) -> Self {
        let stderr = node.dir.join("serve.stderr");
        let mut cmd = umbrald();
        cmd.arg("serve")
            .arg("--node-keys")
            .arg(&node.node_keys)
            .arg("--node-keys-passphrase-file")
            .arg(&node.passphrase)
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--https-listen", "127.0.0.1:0"])
            .args(["--workers", "1", "--log", "warn", "--data-dir"])
            .arg(node.dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).expect("stderr file"));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("node {index}: cannot start umbrald serve: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            index,
            child: KillOnDrop(child),
            lines,
            printed: String::new(),
            stderr,
        }
    }

    fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// Waits (until `deadline`) for the HTTPS announcement; returns its `HOST:PORT`.
    fn https_addr(&mut self, deadline: Instant) -> String {
        let index = self.index;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.printed.push_str(&line);
                    self.printed.push('\n');
                    if let Some(rest) = line.strip_prefix(HTTPS_ANNOUNCEMENT) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        return addr.trim_end_matches('/').to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "node {index}: umbrald serve did not print {HTTPS_ANNOUNCEMENT:?} within \
                     {SERVE_TIMEOUT:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.printed,
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    // Its stdout closed: it exited (give it a moment to be reaped).
                    let until = Instant::now() + Duration::from_secs(5);
                    let mut status = None;
                    while status.is_none() && Instant::now() < until {
                        status = self.child.0.try_wait().expect("wait");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    panic!(
                        "node {index}: umbrald serve exited ({status:?}) before announcing its \
                         HTTPS endpoint\n--- stdout\n{}\n--- stderr\n{}",
                        self.printed,
                        self.stderr()
                    );
                }
            }
        }
    }
}

#[test]
fn nucypher_middleware_client_gets_verifiable_cfrags_and_ursula_status_codes() {
    let started = Instant::now();
    let work = work_dir();
    // Kept when the test fails: each step's output is in a file there.
    println!("work files in {}", work.display());

    // Ursulas' keystores, made by nucypher.
    let mut cmd = client_script();
    cmd.arg("keystores")
        .arg(work.join("keystores"))
        .arg(NODES.to_string())
        .arg(KEYSTORE_PASSWORD);
    let keystores = run_bounded(cmd, &work, "keystores", KEYSTORES_TIMEOUT);
    assert!(
        keystores.status.success(),
        "{}",
        keystores.describe("nucypher_https_client.py keystores failed")
    );
    assert_eq!(keystores.last_json_line("keystores")["ok"], true);
    println!("{NODES} nucypher keystores: {:?}", started.elapsed());

    // Imported by umbrald, one at a time: each is a scrypt of 1 GiB that keeps a core and the
    // memory bus busy, so running them side by side gains nothing.
    let nodes: Vec<NodeFiles> = (0..NODES).map(|i| import_keystore(&work, i)).collect();
    println!("keystores imported: {:?}", started.elapsed());

    // The nodes, each announcing its HTTPS endpoint with nucypher's keys.
    let mut served: Vec<Served> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| Served::start(i, node))
        .collect();
    let deadline = Instant::now() + SERVE_TIMEOUT;
    let mut spec_nodes = Vec::new();
    for (node, server) in nodes.iter().zip(&mut served) {
        let https = server.https_addr(deadline);
        assert_eq!(
            printed_public_keys(&server.printed).as_ref(),
            Some(&node.nucypher_keys),
            "node {}: umbrald serve must hold the keys nucypher derives\n{}",
            server.index,
            server.printed
        );
        spec_nodes.push(serde_json::json!({
            "https": https,
            "decrypting_pk": node.nucypher_keys.0,
            "verifying_pk": node.nucypher_keys.1,
        }));
    }
    println!("{NODES} nodes serving HTTPS: {:?}", started.elapsed());

    // Bob, with nucypher's own middleware client.
    let spec = work.join("spec.json");
    let body = serde_json::json!({ "threshold": THRESHOLD, "nodes": spec_nodes });
    std::fs::write(&spec, body.to_string()).expect("write spec");
    let mut cmd = client_script();
    cmd.arg("run").arg(&spec);
    let run = run_bounded(cmd, &work, "run", CLIENT_TIMEOUT);
    let servers_stderr = || {
        served
            .iter()
            .map(|s| format!("--- node {} stderr\n{}", s.index, s.stderr()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        run.status.success(),
        "{}\n{}",
        run.describe("nucypher_https_client.py run failed"),
        servers_stderr()
    );
    let report = run.last_json_line("run");
    assert_eq!(report["ok"], true, "{report}");
    for (name, code) in EXPECTED_STATUSES {
        assert_eq!(
            report["statuses"][name].as_u64(),
            Some(code),
            "status for {name}: {report}"
        );
    }
    let checked = report["checked"].as_array().map_or(0, Vec::len);
    assert!(checked > 0, "{report}");
    println!(
        "nucypher client: {checked} checks passed, statuses {}; total {:?}",
        report["statuses"],
        started.elapsed()
    );

    drop(served);
    std::fs::remove_dir_all(&work).ok();
}
