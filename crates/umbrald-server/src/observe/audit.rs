//! The audit log: one JSON line per answered request, written by one dedicated thread.
//!
//! Request tasks hand a [`Record`] to a bounded queue and never wait; the writer thread renders
//! and appends it to a size-rotated file (or standard output). While records cannot be queued
//! or written the log is unavailable: with `fail_closed` new requests are refused, otherwise
//! the lost records are counted (`umbrald_audit_dropped_total`) and logged, at most every
//! [`LOG_EVERY`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::Serialize;

use crate::config::AuditSection;
use crate::observe::metrics::Metrics;

/// Records waiting for the writer; a full queue loses (or, fail-closed, refuses) the next ones.
const QUEUE: usize = 65_536;
/// How often an unavailable log file is tried again.
const RETRY: Duration = Duration::from_millis(200);
/// Least time between two log lines about lost records.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// SHA-256 of the public key (DER SubjectPublicKeyInfo) of the client's mTLS certificate.
    Key([u8; 32]),
    /// The source address (no client certificate).
    Addr(SocketAddr),
}

impl Client {
    /// The client with certificate chain `certs` (end entity first) when it presented one,
    /// else its address `addr`.
    pub(crate) fn of(
        certs: Option<&[rustls_pki_types::CertificateDer<'_>]>,
        addr: SocketAddr,
    ) -> Self {
        certs
            .and_then(|certs| certs.first())
            .and_then(|cert| crate::tls::public_key_fingerprint(cert))
            .map_or(Self::Addr(addr), Self::Key)
    }

    fn render(&self) -> String {
        match self {
            Self::Key(key) => format!("spki-sha256:{}", hex::encode(key)),
            Self::Addr(addr) => addr.to_string(),
        }
    }
}

/// How a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// An `umbrald/1` request on a QUIC stream.
    QuicNative,
    /// A NuCypher `ReencryptionRequest` on a QUIC stream.
    QuicNucypher,
    /// A NuCypher `ReencryptionRequest` in an HTTPS `POST /reencrypt`.
    HttpsNucypher,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::QuicNative => "quic-native",
            Self::QuicNucypher => "quic-nucypher",
            Self::HttpsNucypher => "https-nucypher",
        }
    }
}

/// One answered request, as queued for the writer.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// When it was answered.
    pub time: SystemTime,
    /// Who asked.
    pub client: Client,
    /// How.
    pub protocol: Protocol,
    /// SHA-256 over the policies' public keys (see docs/OPERATIONS.md#audit-log).
    pub policy: Option<[u8; 32]>,
    /// The NuCypher policy's HRAC.
    pub hrac: Option<[u8; 16]>,
    /// Items the request carried.
    pub items: usize,
    /// `ok` or the request-level error code.
    pub outcome: &'static str,
    /// From the whole request read to the answer ready.
    pub latency: Duration,
}

/// A record as one JSON line.
#[derive(Serialize)]
struct Line {
    time: String,
    client: String,
    protocol: &'static str,
    policy_fingerprint: Option<String>,
    hrac: Option<String>,
    items: usize,
    outcome: &'static str,
    latency_us: u64,
}

impl Record {
    fn render(&self) -> Vec<u8> {
        let time = time::OffsetDateTime::from(self.time)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = Line {
            time,
            client: self.client.render(),
            protocol: self.protocol.as_str(),
            policy_fingerprint: self.policy.map(hex::encode),
            hrac: self.hrac.map(hex::encode),
            items: self.items,
            outcome: self.outcome,
            latency_us: u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX),
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// The audit log's request side: queues records and says whether the log is available.
#[derive(Debug)]
pub(crate) struct AuditLog {
    tx: Sender<Record>,
    failing: Arc<AtomicBool>,
    fail_closed: bool,
    metrics: Arc<Metrics>,
    lost: Mutex<RateLimit>,
}

impl AuditLog {
    /// Starts the writer thread for `section`; `None` when no path is set. Fails only when
    /// the thread cannot be spawned (an unwritable file makes the log unavailable instead).
    pub(crate) fn start(
        section: &AuditSection,
        metrics: Arc<Metrics>,
    ) -> io::Result<Option<Arc<Self>>> {
        let Some(path) = section.path.clone() else {
            return Ok(None);
        };
        let sink = if path == Path::new("-") {
            Sink::Stdout
        } else {
            Sink::File(FileSink {
                path,
                file: None,
                size: 0,
                max_bytes: section.max_bytes,
                keep: section.keep,
            })
        };
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let failing = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            rx,
            sink,
            failing: failing.clone(),
            metrics: metrics.clone(),
            lost: RateLimit::default(),
        };
        std::thread::Builder::new()
            .name("umbrald-audit".into())
            .spawn(move || writer.run())?;
        Ok(Some(Arc::new(Self {
            tx,
            failing,
            fail_closed: section.fail_closed,
            metrics,
            lost: Mutex::new(RateLimit::default()),
        })))
    }

    /// Whether new requests must be refused: fail-closed and records cannot be kept now.
    pub(crate) fn refuses(&self) -> bool {
        self.fail_closed && (self.failing.load(Ordering::Relaxed) || self.tx.is_full())
    }

    /// Queues `record` without waiting; counts and logs it as lost when the queue is full.
    pub(crate) fn record(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.audit_dropped.inc();
                if let Ok(mut lost) = self.lost.lock() {
                    if let Some(n) = lost.tick(1) {
                        tracing::warn!(lost = n, "audit records lost: the audit queue is full");
                    }
                }
            }
        }
    }
}

/// Counts events and allows one log line per [`LOG_EVERY`].
#[derive(Debug, Default)]
struct RateLimit {
    last: Option<Instant>,
    since: u64,
}

impl RateLimit {
    /// Counts `n` events; `Some(events since the last line)` when a line is due.
    fn tick(&mut self, n: u64) -> Option<u64> {
        self.since += n;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// The writer thread's state.
struct Writer {
    rx: Receiver<Record>,
    sink: Sink,
    failing: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    lost: RateLimit,
}

impl Writer {
    fn run(mut self) {
        if let Err(e) = self.sink.ready() {
            self.failed(&e, false);
        }
        loop {
            let failing = self.failing.load(Ordering::Relaxed);
            let next = if failing {
                match self.rx.recv_timeout(RETRY) {
                    Ok(record) => Some(record),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.rx.recv() {
                    Ok(record) => Some(record),
                    Err(_) => break,
                }
            };
            if failing {
                match self.sink.ready() {
                    Ok(()) => {
                        self.failing.store(false, Ordering::Relaxed);
                        tracing::info!("audit log writable again");
                    }
                    Err(e) => {
                        // A record that arrived meanwhile is lost.
                        self.failed(&e, next.is_some());
                        continue;
                    }
                }
            }
            let Some(record) = next else { continue };
            let flush = self.rx.is_empty();
            match self.sink.write(&record.render(), flush) {
                Ok(()) => self.metrics.audit_records.inc(),
                Err(e) => self.failed(&e, true),
            }
        }
        let _ = self.sink.write(&[], true);
    }

    /// Marks the log unavailable after `e`; `lost`: a record was lost to it.
    fn failed(&mut self, e: &io::Error, lost: bool) {
        self.failing.store(true, Ordering::Relaxed);
        if lost {
            self.metrics.audit_dropped.inc();
        }
        if let Some(n) = self.lost.tick(u64::from(lost)) {
            tracing::error!(error = %e, lost = n, "audit log not writable");
        }
    }
}

/// Where the lines go.
enum Sink {
    Stdout,
    File(FileSink),
}

impl Sink {
    /// Opens the file when it is not open.
    fn ready(&mut self) -> io::Result<()> {
        match self {
            Self::Stdout => Ok(()),
            Self::File(file) => file.open().map(|_| ()),
        }
    }

    /// Appends `line`; `flush`: hands everything buffered to the OS.
    fn write(&mut self, line: &[u8], flush: bool) -> io::Result<()> {
        match self {
            Self::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line)?;
                if flush {
                    out.flush()?;
                }
                Ok(())
            }
            Self::File(file) => file.write(line, flush),
        }
    }
}

/// A size-rotated file: `path`, then `path.1` (newest) to `path.<keep>`.
struct FileSink {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl FileSink {
    fn open(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
            let file = options.open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(BufWriter::new(file));
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("audit file not open"))
    }

    fn write(&mut self, line: &[u8], flush: bool) -> io::Result<()> {
        let rotate = self.max_bytes > 0
            && self.size > 0
            && self.size + line.len() as u64 > self.max_bytes
            && !line.is_empty();
        if rotate {
            self.rotate()?;
        }
        let written = self.open().and_then(|file| {
            file.write_all(line)?;
            if flush {
                file.flush()?;
            }
            Ok(())
        });
        match written {
            Ok(()) => {
                self.size += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Whatever was buffered is lost with the handle; the next write opens again.
                if let Some(file) = self.file.take() {
                    let _ = file.into_parts();
                }
                Err(e)
            }
        }
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_line() {
        let record = Record {
            time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_500_000),
            client: Client::Addr(SocketAddr::from(([127, 0, 0, 1], 7))),
            protocol: Protocol::HttpsNucypher,
            policy: Some([1; 32]),
            hrac: Some([2; 16]),
            items: 3,
            outcome: "ok",
            latency: Duration::from_micros(42),
        };
        let line = record.render();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["time"], "1970-01-01T00:00:01.5Z");
        assert_eq!(v["client"], "127.0.0.1:7");
        assert_eq!(v["protocol"], "https-nucypher");
        assert_eq!(v["policy_fingerprint"], hex::encode([1; 32]));
        assert_eq!(v["hrac"], hex::encode([2; 16]));
        assert_eq!(v["items"], 3);
        assert_eq!(v["latency_us"], 42);
    }

    #[test]
    fn rate_limit_counts_between_lines() {
        let mut limit = RateLimit::default();
        assert_eq!(limit.tick(1), Some(1));
        assert_eq!(limit.tick(1), None);
        assert_eq!(limit.tick(0), None);
        limit.last = Instant::now().checked_sub(LOG_EVERY);
        assert_eq!(limit.tick(1), Some(2));
    }
}
