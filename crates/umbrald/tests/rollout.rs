//! `umbrald serve` under the operator's signals: SIGHUP reloads the certificate and key in the
//! data directory and prints the new fingerprint (a bad pair keeps the old one); SIGTERM fails
//! `/readyz` at once while the drain delay runs; a second SIGTERM cuts the drain short and the
//! process exits 0.
#![cfg(unix)]

mod common;

use common::temp_dir;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A running `umbrald serve` and the lines it prints.
struct Serve {
    child: Child,
    lines: Receiver<String>,
    fingerprint: String,
    metrics: SocketAddr,
}

impl Serve {
    /// Serves on loopback with its data in `dir/data` and `[server] drain_delay_ms = drain_ms`.
    fn start(dir: &Path, drain_ms: u64) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        let config = dir.join("umbrald.toml");
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndrain_delay_ms = {drain_ms}\n\
             [workers]\nthreads = 1\npin = false\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nfilter = \"warn\"\n",
            dir.join("data").display()
        );
        std::fs::write(&config, toml).expect("config written");
        let mut command = Command::new(env!("CARGO_BIN_EXE_umbrald"));
        for (key, _) in std::env::vars() {
            if key.starts_with("UMBRALD_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut serve = Self {
            child,
            lines,
            fingerprint: String::new(),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        serve.fingerprint = serve.line_after("certificate SHA-256 fingerprint: ");
        let metrics = serve.line_after("metrics on http://");
        serve.metrics = metrics
            .trim_end_matches("/metrics")
            .parse()
            .expect("metrics address");
        serve
    }

    /// The rest of the next printed line that starts with `prefix` (within 30 s).
    fn line_after(&self, prefix: &str) -> String {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line starting {prefix:?}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{name}");
    }

    /// Waits up to `within` for the process to exit; its exit status must be 0.
    fn exits_cleanly(mut self, within: Duration) {
        let until = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < until, "did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status {status}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // Only a failed test leaves it running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `path` from the metrics endpoint: (status code, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("http connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("http write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("http read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Polls `path` until `ok` holds for its answer, failing after `within`.
fn until_answer(addr: SocketAddr, path: &str, within: Duration, ok: impl Fn(u16, &str) -> bool) {
    let until = Instant::now() + within;
    loop {
        let (status, body) = http_get(addr, path);
        if ok(status, &body) {
            return;
        }
        assert!(Instant::now() < until, "{path}: {status} {body}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sighup_reloads_the_pair_and_sigterm_drains_then_a_second_one_exits() {
    let dir = temp_dir("signals");
    // A second pair, made by another server's first start.
    let other = Serve::start(&dir.join("other"), 0);
    let other_fingerprint = other.fingerprint.clone();
    other.signal("TERM");
    other.exits_cleanly(Duration::from_secs(20));
    let other_cert = std::fs::read(dir.join("other/data/cert.pem")).expect("cert");
    let other_key = std::fs::read(dir.join("other/data/key.pem")).expect("key");

    let serve = Serve::start(&dir.join("main"), 30_000);
    assert_ne!(serve.fingerprint, other_fingerprint);
    let data = dir.join("main/data");
    let first_cert = std::fs::read(data.join("cert.pem")).expect("cert");
    assert_eq!(http_get(serve.metrics, "/readyz").0, 200);
    // Key material stays out of core files: the server's core size limit is 0.
    if cfg!(target_os = "linux") {
        let limits =
            std::fs::read_to_string(format!("/proc/{}/limits", serve.child.id())).expect("limits");
        let core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .expect("core limit");
        assert_eq!(
            core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
            ["0", "0"],
            "{core}"
        );
    }

    // SIGHUP with the other pair in place: the new fingerprint is printed and reported.
    std::fs::write(data.join("cert.pem"), &other_cert).expect("cert replaced");
    std::fs::write(data.join("key.pem"), &other_key).expect("key replaced");
    serve.signal("HUP");
    assert_eq!(
        serve.line_after("certificate reloaded; SHA-256 fingerprint: "),
        other_fingerprint
    );
    let (_, status) = http_get(serve.metrics, "/status");
    assert!(status.contains(&other_fingerprint), "{status}");

    // A certificate that does not match the key: the reload fails and the pair in use stays.
    std::fs::write(data.join("cert.pem"), &first_cert).expect("cert replaced");
    serve.signal("HUP");
    until_answer(
        serve.metrics,
        "/metrics",
        Duration::from_secs(10),
        |_, body| body.contains("umbrald_tls_reloads_total{result=\"failed\"} 1"),
    );
    let (_, status) = http_get(serve.metrics, "/status");
    assert!(status.contains(&other_fingerprint), "{status}");

    // SIGTERM: /readyz fails at once, everything else is served through the drain delay.
    serve.signal("TERM");
    until_answer(
        serve.metrics,
        "/readyz",
        Duration::from_secs(5),
        |status, _| status == 503,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http_get(serve.metrics, "/healthz").0, 200);
    assert_eq!(http_get(serve.metrics, "/metrics").0, 200);

    // A second SIGTERM cuts the 30 s drain short.
    serve.signal("TERM");
    serve.exits_cleanly(Duration::from_secs(15));
    std::fs::remove_dir_all(&dir).ok();
}
