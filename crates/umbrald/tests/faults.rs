//! Faults through the `umbrald` binary: SIGKILL under load followed by a restart on the same
//! port, and a data directory that cannot be written at start.
//!
//! Under the kill every request the clients sent ends in exactly one of two ways, an answer
//! (every item a cfrag of the right capsule) or a client-side connection error; none waits
//! past the clients' idle timeout, none is answered wrongly, and the clients are served again
//! by the restarted server on their existing `Client`s.

#![cfg(unix)]

mod common;

use common::{free_port, temp_dir, umbrald};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use umbral_pre::{encrypt, generate_kfrags, DefaultSerialize, SecretKey, Signer};
use umbrald_client::{Client, ClientError, ClientOptions, ReencryptRequest, Trust};
use umbrald_proto::Policy;

/// `umbrald serve` on `port` with its certificate in `data_dir`; returns the child and the
/// fingerprint it prints once it listens.
fn serve(port: u16, data_dir: &Path) -> (Child, String) {
    let mut child = umbrald()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", "127.0.0.1:0", "--workers", "1"])
        .args(["--log", "warn", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("umbrald serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the fingerprint, then keeps the pipe drained.
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
        .expect("the server prints its fingerprint");
    (child, fingerprint)
}

/// Kills the child with SIGKILL when dropped (a failing test leaves no server behind).
struct Killed(Option<Child>);

impl Killed {
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One policy and a few capsules, made with umbral-pre.
fn workload() -> (Policy, Vec<Vec<u8>>) {
    let alice = SecretKey::random();
    let bob = SecretKey::random().public_key();
    let signer = Signer::new(SecretKey::random());
    let kfrags = generate_kfrags(&alice, &bob, &signer, 1, 1, true, true);
    let kfrag = kfrags[0].clone().unverify().to_bytes().expect("kfrag");
    let policy = Policy {
        kfrag: kfrag.to_vec(),
        delegating_pk: alice.public_key().to_compressed_bytes().to_vec(),
        receiving_pk: bob.to_compressed_bytes().to_vec(),
        verifying_pk: signer.verifying_key().to_compressed_bytes().to_vec(),
    };
    let capsules = (0..4)
        .map(|_| {
            let (capsule, _) = encrypt(&alice.public_key(), b"kill -9").expect("encrypt");
            capsule.to_bytes().expect("capsule").to_vec()
        })
        .collect();
    (policy, capsules)
}

/// What the clients saw, one count per request sent.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    connection_errors: AtomicU64,
    /// Timeouts and anything else: must stay zero.
    other: AtomicU64,
    answered_after_restart: AtomicU64,
}

/// A connection-level failure: the server went away or refused the handshake while down.
fn is_connection_error(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Connection { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::Connect { .. }
    )
}

#[test]
fn sigkill_under_load_then_restart_drops_no_request() {
    let dir = temp_dir("sigkill");
    let data_dir = dir.join("data");
    let port = free_port();
    let (child, fingerprint) = serve(port, &data_dir);
    let mut server = Killed(Some(child));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let (policy, capsules) = workload();
    let tally = Arc::new(Tally::default());
    let restarted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let options = ClientOptions {
        connect_timeout: Duration::from_millis(500),
        // A connection to the killed server is declared lost within this, not hung on.
        idle_timeout: Duration::from_millis(1_500),
        keep_alive: Some(Duration::from_millis(200)),
        // Longer than the idle timeout: a request that ends in a timeout was hung.
        request_timeout: Duration::from_secs(10),
        reconnect_attempts: 2,
        ..ClientOptions::default()
    };
    let trust = Trust::Fingerprint(fingerprint.parse().expect("fingerprint"));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (tally, restarted, stop) = (tally.clone(), restarted.clone(), stop.clone());
            let (policy, capsule) = (policy.clone(), capsules[i].clone());
            let (trust, options) = (trust.clone(), options.clone());
            runtime.spawn(async move {
                let client = Client::new(addr, &trust, options).expect("client");
                while !stop.load(Ordering::Relaxed) {
                    let after_restart = restarted.load(Ordering::Relaxed);
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    let request = ReencryptRequest::new(policy.clone(), [capsule.clone()]);
                    match client.reencrypt(request).await {
                        Ok(items) => {
                            assert_eq!(items.len(), 1, "one outcome per item");
                            assert!(items[0].is_ok(), "item failed: {:?}", items[0]);
                            tally.answered.fetch_add(1, Ordering::Relaxed);
                            if after_restart {
                                tally.answered_after_restart.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) if is_connection_error(&e) => {
                            tally.connection_errors.fetch_add(1, Ordering::Relaxed);
                            // No busy loop while the server is down.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => {
                            eprintln!("request failed otherwise: {e}");
                            tally.other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let until = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("load before the kill", &|| {
        tally.answered.load(Ordering::Relaxed) >= 50
    });
    server.kill();
    let answered_at_kill = tally.answered.load(Ordering::Relaxed);
    // Down for longer than the clients' idle timeout: requests in flight at the kill end in a
    // lost connection, and the retries and new requests find nothing listening.
    std::thread::sleep(Duration::from_millis(2_500));
    let (child, again) = serve(port, &data_dir);
    assert_eq!(again, fingerprint, "the same certificate after the restart");
    let mut server = Killed(Some(child));
    restarted.store(true, Ordering::Relaxed);
    wait_for("every client served after the restart", &|| {
        tally.answered_after_restart.load(Ordering::Relaxed) >= 40
    });
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for client in clients {
            tokio::time::timeout(Duration::from_secs(15), client)
                .await
                .expect("client tasks end")
                .expect("client task");
        }
    });
    server.kill();

    let sent = tally.sent.load(Ordering::Relaxed);
    let answered = tally.answered.load(Ordering::Relaxed);
    let connection_errors = tally.connection_errors.load(Ordering::Relaxed);
    let other = tally.other.load(Ordering::Relaxed);
    eprintln!(
        "sent {sent}, answered {answered} ({answered_at_kill} before the kill), \
         connection errors {connection_errors}, other {other}"
    );
    assert_eq!(other, 0, "requests that hung or failed otherwise");
    assert_eq!(
        sent,
        answered + connection_errors,
        "every request accounted"
    );
    assert!(answered > answered_at_kill, "served after the restart");
    assert!(connection_errors > 0, "the clients saw the server gone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_data_dir_fails_the_start_with_a_message_naming_it() {
    let dir = temp_dir("datadir");
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"not a directory").expect("file");
    let output = umbrald()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0", "--workers", "1"])
        .args(["--log", "warn", "--data-dir"])
        .arg(blocker.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("umbrald runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started: {stderr}");
    assert!(
        stderr.contains(&*blocker.to_string_lossy()),
        "stderr names the path: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
