//! `umbrald serve` reloads `[access]` on SIGHUP: a per-client limit turns on while the server
//! keeps running (`umbrald demo` against it is then answered `rate_limited`), a bad file keeps
//! the settings in force, and an allowlist then admits only the listed client certificate
//! (`--client-cert`/`--client-key`).
#![cfg(unix)]

mod common;

use common::{temp_dir, umbrald};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Every wait of this test.
const WAIT: Duration = Duration::from_secs(30);

/// A running `umbrald serve` and the lines it prints.
struct Serve {
    child: Child,
    lines: Receiver<String>,
    addr: String,
    fingerprint: String,
    metrics: SocketAddr,
}

impl Serve {
    fn start(config: &Path) -> Self {
        let mut child = umbrald()
            .args(["serve", "--config"])
            .arg(config)
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
            addr: String::new(),
            fingerprint: String::new(),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let listening = serve.line_after("umbrald listening on ");
        serve.addr = listening
            .split_whitespace()
            .next()
            .expect("address")
            .to_owned();
        serve.fingerprint = serve.line_after("certificate SHA-256 fingerprint: ");
        serve.metrics = serve
            .line_after("metrics on http://")
            .trim_end_matches("/metrics")
            .parse()
            .expect("metrics address");
        serve
    }

    /// The rest of the next printed line that starts with `prefix`.
    fn line_after(&self, prefix: &str) -> String {
        let until = Instant::now() + WAIT;
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

    /// The value of a metric series, polled until `ok` holds for it.
    fn metric_until(&self, series: &str, ok: impl Fn(f64) -> bool) {
        let until = Instant::now() + WAIT;
        loop {
            let value = scrape(self.metrics)
                .lines()
                .find_map(|line| {
                    let (name, value) = line.rsplit_once(' ')?;
                    (name == series)
                        .then(|| value.parse::<f64>().ok())
                        .flatten()
                })
                .unwrap_or(f64::NAN);
            if ok(value) {
                return;
            }
            assert!(Instant::now() < until, "{series} is {value}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `umbrald demo` against this server (one appliance playing all three roles).
    fn demo(&self, identity: Option<(&Path, &Path)>) -> Output {
        let mut command = umbrald();
        command.args([
            "demo",
            "--addr",
            &self.addr,
            "--fingerprint",
            &self.fingerprint,
            "--connect-timeout",
            "5s",
        ]);
        if let Some((cert, key)) = identity {
            command
                .arg("--client-cert")
                .arg(cert)
                .arg("--client-key")
                .arg(key);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("demo starts");
        let until = Instant::now() + WAIT;
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                panic!("demo did not finish");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("demo output")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("metrics connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("metrics write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("metrics read");
    text
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn sighup_reloads_access_limits_and_the_allowlist() {
    let dir = temp_dir("sighup");
    let data = dir.join("data");
    let config = dir.join("umbrald.toml");
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
         [workers]\nthreads = 1\npin = false\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\
         [log]\nfilter = \"warn\"\n",
        data.display()
    );
    std::fs::write(&config, &base).expect("config");
    let serve = Serve::start(&config);

    let output = serve.demo(None);
    assert!(output.status.success(), "{}", text(&output));

    // One request per second and no burst: the demo's three requests cannot all pass.
    let limited = "[access]\nrequests_per_s = 1\nrequest_burst = 1\n";
    std::fs::write(&config, format!("{base}{limited}")).expect("config");
    serve.signal("HUP");
    serve.line_after("access settings reloaded");
    let output = serve.demo(None);
    assert!(!output.status.success(), "served past the limit");
    assert!(text(&output).contains("rate_limited"), "{}", text(&output));

    // A bad file keeps the limit.
    std::fs::write(&config, format!("{base}[access]\nrequests_per_s = -1\n")).expect("config");
    serve.signal("HUP");
    serve.metric_until("umbrald_access_reloads_total{result=\"failed\"}", |v| {
        v == 1.0
    });
    let output = serve.demo(None);
    assert!(text(&output).contains("rate_limited"), "{}", text(&output));

    // An allowlist holding the server's own certificate's key (any self-signed pair works),
    // and no limits: only a client presenting that certificate is served.
    let mut check = umbrald_server::Config::default();
    check.server.data_dir = data.clone();
    let material = umbrald_server::tls::load(&check).expect("the generated pair");
    let key = umbrald_server::tls::public_key_fingerprint(&material.certs[0]).expect("key");
    let allowed = format!("[access]\nallowed_clients = [\"{}\"]\n", hex::encode(key));
    std::fs::write(&config, format!("{base}{allowed}")).expect("config");
    serve.signal("HUP");
    serve.line_after("access settings reloaded");
    let output = serve.demo(None);
    assert!(!output.status.success(), "served without a certificate");
    let (cert, key) = (data.join("cert.pem"), data.join("key.pem"));
    let output = serve.demo(Some((&cert, &key)));
    assert!(output.status.success(), "{}", text(&output));
    serve.metric_until("umbrald_access_reloads_total{result=\"ok\"}", |v| v == 2.0);
    serve.metric_until(
        "umbrald_access_refused_total{reason=\"no_certificate\"}",
        |v| v >= 1.0,
    );

    serve.signal("TERM");
    let _ = std::fs::remove_dir_all(&dir);
}
