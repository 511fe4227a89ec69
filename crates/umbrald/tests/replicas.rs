//! Three `umbrald serve` replicas sharing one certificate, loaded by one `umbrald bench` run
//! over all three: a replica killed mid-run (SIGKILL) and the others restarted lose no
//! request, and a rolling restart (SIGTERM one replica at a time) fails none.

#![cfg(unix)]

mod common;

use common::{free_port, temp_dir, umbrald};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The tests run one at a time: each loads the machine with three servers and a generator.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The client's timeout of one attempt in these runs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One `umbrald serve` process on a fixed port, restartable on the same port.
struct Replica {
    port: u16,
    data_dir: PathBuf,
    /// The shared certificate and key, once the first replica made them.
    pair: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl Replica {
    fn new(dir: &Path, i: usize) -> Self {
        Self {
            port: free_port(),
            data_dir: dir.join(format!("replica{i}")),
            pair: None,
            child: None,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it listens; returns the fingerprint it prints.
    fn start(&mut self) -> String {
        let mut cmd = umbrald();
        cmd.args(["serve", "--listen", &self.addr()])
            .args(["--metrics-listen", "127.0.0.1:0", "--workers", "1"])
            .args(["--log", "warn", "--data-dir"])
            .arg(&self.data_dir)
            // A short drain where the server has one: serving goes on briefly after SIGTERM.
            .env("UMBRALD_SERVER_DRAIN_DELAY_MS", "300")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some((cert, key)) = &self.pair {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let mut child = cmd.spawn().expect("umbrald serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the fingerprint, then keeps the pipe drained so that later output never
        // blocks or breaks the server.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(fp) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
                    if !sent {
                        let _ = tx.send(fp.to_owned());
                        sent = true;
                    }
                }
            }
        });
        let fingerprint = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the replica prints its fingerprint");
        self.child = Some(child);
        fingerprint
    }

    /// SIGKILL: gone at once, without closing its connections.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "replica exit status {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica did not exit after SIGTERM"
            );
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three replicas on their own ports, the second and third with the first one's certificate
/// and key; returns them and the shared fingerprint.
fn three_replicas(dir: &Path) -> (Vec<Replica>, String) {
    let mut replicas: Vec<Replica> = (0..3).map(|i| Replica::new(dir, i)).collect();
    let fingerprint = replicas[0].start();
    let pair = (
        replicas[0].data_dir.join("cert.pem"),
        replicas[0].data_dir.join("key.pem"),
    );
    assert!(
        pair.0.exists() && pair.1.exists(),
        "first replica made its pair"
    );
    for replica in &mut replicas {
        replica.pair = Some(pair.clone());
    }
    for replica in &mut replicas[1..] {
        assert_eq!(replica.start(), fingerprint, "one certificate for all");
    }
    (replicas, fingerprint)
}

/// Starts `umbrald bench` over the replicas (closed loop, JSON on stdout).
fn start_bench(replicas: &[Replica], fingerprint: &str, duration: &str) -> Child {
    let mut cmd = umbrald();
    cmd.arg("bench");
    for replica in replicas {
        cmd.args(["--addr", &replica.addr()]);
    }
    cmd.args(["--fingerprint", fingerprint])
        .args(["--concurrency", "6", "--batch", "2", "--capsules", "16"])
        .args(["--duration", duration, "--warmup", "300ms"])
        .args(["--request-timeout", "2s", "--connect-timeout", "1s"])
        .args(["--no-progress", "--json", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("umbrald bench starts")
}

fn finish_bench(bench: Child) -> Value {
    let Output {
        status,
        stdout,
        stderr,
    } = bench.wait_with_output().expect("bench runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr),
    );
    assert!(
        status.success(),
        "bench exit {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

fn replica_report<'v>(v: &'v Value, addr: &str) -> &'v Value {
    v["replicas"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["addr"] == addr))
        .unwrap_or_else(|| panic!("no report for {addr}: {v:#}"))
}

/// Every request the run issued was answered: none failed, none left unanswered.
fn assert_none_lost(v: &Value) {
    assert!(num(v, "/requests/answered") > 0.0, "{v:#}");
    assert_eq!(num(v, "/requests/failed"), 0.0, "{v:#}");
    assert_eq!(num(v, "/requests/unfinished"), 0.0, "{v:#}");
    assert_eq!(num(v, "/failover/lost"), 0.0, "{v:#}");
    assert_eq!(
        num(v, "/requests/answered"),
        num(v, "/requests/issued"),
        "{v:#}"
    );
}

#[test]
fn a_killed_replica_loses_no_request_and_the_report_shows_the_failover() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("kill");
    let (mut replicas, fingerprint) = three_replicas(&dir);
    let started = Instant::now();
    let bench = start_bench(&replicas, &fingerprint, "8s");
    let at = |secs: f64| {
        let when = started + Duration::from_secs_f64(secs);
        sleep(when.saturating_duration_since(Instant::now()));
    };
    // Mid-window: the second replica dies holding requests, and comes back on its port.
    at(2.5);
    replicas[1].kill();
    at(4.5);
    let fp = replicas[1].start();
    assert_eq!(fp, fingerprint);
    // The third restarts gracefully.
    at(5.5);
    replicas[2].stop();
    replicas[2].start();
    let v = finish_bench(bench);

    assert_none_lost(&v);
    let killed = replica_report(&v, &replicas[1].addr());
    assert!(
        num(killed, "/retried_elsewhere") >= 1.0,
        "the killed replica's requests went elsewhere: {v:#}"
    );
    assert!(num(&v, "/failover/requests") >= 1.0, "{v:#}");
    // Held requests are answered elsewhere within twice the client's timeout.
    let timeout_ms = REQUEST_TIMEOUT.as_secs_f64() * 1e3;
    assert_eq!(num(&v, "/failover/request_timeout_ms"), timeout_ms);
    assert!(
        num(&v, "/failover/latency_ms/max") < 2.0 * timeout_ms,
        "{v:#}"
    );
    assert_eq!(v["replicas"].as_array().map(Vec::len), Some(3), "{v:#}");
    for replica in &replicas {
        assert!(
            num(replica_report(&v, &replica.addr()), "/answered") > 0.0,
            "{v:#}"
        );
    }
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rolling_restart_fails_no_request() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("rolling");
    let (mut replicas, fingerprint) = three_replicas(&dir);
    let bench = start_bench(&replicas, &fingerprint, "10s");
    sleep(Duration::from_millis(1_500));
    for replica in &mut replicas {
        replica.stop();
        assert_eq!(replica.start(), fingerprint, "back on the same port");
        // Long enough for the pool's probe to take it back before the next one goes.
        sleep(Duration::from_millis(1_000));
    }
    let v = finish_bench(bench);

    assert_none_lost(&v);
    for replica in &replicas {
        assert!(
            num(replica_report(&v, &replica.addr()), "/answered") > 0.0,
            "{v:#}"
        );
    }
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}
