//! The `umbrald` binary: `config check` verdicts, and `serve` printing its fingerprint and
//! exiting 0 on SIGTERM.

mod common;

use common::{temp_dir, umbrald};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn config_check_accepts_a_good_file_and_rejects_a_bad_one() {
    let dir = temp_dir("check");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[batcher]\nmax_batch_items = 32\n").expect("write");
    let out = umbrald()
        .args(["config", "check", "--config"])
        .arg(&good)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("max_batch_items = 32"), "{printed}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[batcher]\nmax_batch_itemz = 32\n").expect("write");
    let out = umbrald()
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_batch_itemz"));

    let out = umbrald()
        .args(["config", "check", "--backend", "gpu"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "no usable GPU on a test machine");

    let out = umbrald()
        .args(["config", "check"])
        .env("UMBRALD_MAX_QUEUE_ITEMS", "3")
        .output()
        .expect("runs");
    assert!(
        !out.status.success(),
        "env value below max_items_per_request is rejected"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn config_check_reports_every_problem_with_its_source() {
    let dir = temp_dir("problems");
    let file = dir.join("problems.toml");
    std::fs::write(
        &file,
        "[limits]\nmax_request_bytes = 10\n[gpu]\nhost_threads = 8\n",
    )
    .expect("write");
    let out = umbrald()
        .args(["config", "check", "--config"])
        .arg(&file)
        .args(["--workers", "many"])
        .env("UMBRALD_WORKERS_NICE", "40")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "limits.max_request_bytes in file",
        "did you mean gpu.tuning.host_threads",
        "workers.threads from flag --workers",
        "workers.nice from environment variable UMBRALD_WORKERS_NICE",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn config_check_takes_the_log_flag_over_rust_log() {
    let out = umbrald()
        .args(["config", "check", "--log", "warn"])
        .env("RUST_LOG", "debug")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("filter = \"warn\""), "{printed}");
}

#[test]
fn config_keys_lists_each_key_with_its_variables_and_flag() {
    let out = umbrald().args(["config", "keys"]).output().expect("runs");
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    for line in [
        "server.listen  UMBRALD_SERVER_LISTEN UMBRALD_LISTEN  --listen",
        "gpu.tuning.host_threads  UMBRALD_GPU_TUNING_HOST_THREADS UMBRALD_GPU_HOST_THREADS",
        "log.filter  UMBRALD_LOG_FILTER UMBRALD_LOG RUST_LOG  --log",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line}: {printed}");
    }
}

#[cfg(unix)]
#[test]
fn serve_prints_its_fingerprint_and_exits_cleanly_on_sigterm() {
    let dir = temp_dir("serve");
    let mut child = umbrald()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(["--workers", "1", "--log", "warn", "--data-dir"])
        .arg(dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut fingerprint = None;
    let started = Instant::now();
    while fingerprint.is_none() && started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(fp) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
            fingerprint = Some(fp.to_owned());
        }
    }
    let fingerprint = fingerprint.expect("fingerprint printed");
    assert_eq!(fingerprint.len(), 64);
    assert!(dir.join("data/cert.pem").exists() && dir.join("data/key.pem").exists());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    std::fs::remove_dir_all(&dir).ok();
}
