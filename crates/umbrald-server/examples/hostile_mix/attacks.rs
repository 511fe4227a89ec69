//! The hostile clients: each attack class runs against a server's QUIC and HTTPS addresses
//! until a given instant and counts what it did and what the server answered. Shared by the
//! `hostile_mix` example (the measured mix) and `tests/hostile.rs` (the bounded test).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;
use umbrald_client::{Fingerprint, Trust};

/// Where the attacks go.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The QUIC endpoint.
    pub quic: SocketAddr,
    /// The HTTPS endpoint, if the server has one.
    pub https: Option<SocketAddr>,
    /// The server certificate's SHA-256.
    pub fingerprint: [u8; 32],
}

/// What one attack class did: actions taken, and how the server met them.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections, streams, datagrams or requests the attacker made.
    pub actions: AtomicU64,
    /// Refused, reset, closed or answered with an error by the server (the expected outcome).
    pub rebuffed: AtomicU64,
    /// Served or left open past what the limits allow (counted for the report; the test
    /// asserts on it where the limits make it exact).
    pub let_through: AtomicU64,
}

impl Tally {
    fn act(&self) {
        self.actions.fetch_add(1, Ordering::Relaxed);
    }
    fn rebuff(&self) {
        self.rebuffed.fetch_add(1, Ordering::Relaxed);
    }
    fn through(&self) {
        self.let_through.fetch_add(1, Ordering::Relaxed);
    }
    /// (actions, rebuffed, let through).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.actions.load(Ordering::Relaxed),
            self.rebuffed.load(Ordering::Relaxed),
            self.let_through.load(Ordering::Relaxed),
        )
    }
}

/// A QUIC client endpoint pinned to the target's certificate. `small_window`: a 1 KiB stream
/// receive window (a reader that takes responses very slowly). `early_data`: offer 0-RTT.
pub fn quic_endpoint(
    target: &Target,
    small_window: bool,
    early_data: bool,
) -> Result<Endpoint, Box<dyn std::error::Error + Send + Sync>> {
    let mut tls = Trust::Fingerprint(Fingerprint(target.fingerprint)).client_config()?;
    tls.alpn_protocols = vec![umbrald_proto::ALPN.to_vec()];
    tls.enable_early_data = early_data;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(30).try_into()?));
    if small_window {
        transport.stream_receive_window(1024u32.into());
        transport.receive_window(4096u32.into());
    }
    config.transport_config(Arc::new(transport));
    let mut endpoint = Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

async fn connect(endpoint: &Endpoint, target: &Target) -> Option<Connection> {
    let connecting = endpoint.connect(target.quic, "localhost").ok()?;
    tokio::time::timeout(Duration::from_secs(3), connecting)
        .await
        .ok()?
        .ok()
}

/// A valid-looking request's first bytes (a MessagePack map header and the version key).
const HALF_REQUEST: &[u8] = b"\x86\xa1v\x01\xa2id\x01\xa8policies\x91";

/// `conns` connections, each keeping every stream it may open half-written and stalled: the
/// server resets each after its read timeout, and the attacker opens another at once.
pub async fn stalled_streams(target: Target, conns: usize, until: Instant, tally: Arc<Tally>) {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(endpoint) = quic_endpoint(&target, false, false) else {
                return;
            };
            while Instant::now() < until {
                let Some(conn) = connect(&endpoint, &target).await else {
                    tally.rebuff();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut streams = Vec::new();
                while Instant::now() < until {
                    let open = tokio::time::timeout_at(until, conn.open_bi()).await;
                    let Ok(Ok((mut send, mut recv))) = open else {
                        break;
                    };
                    tally.act();
                    let _ = send.write_all(HALF_REQUEST).await;
                    let tally = tally.clone();
                    streams.push(tokio::spawn(async move {
                        // The server's reset (REQUEST_TIMEOUT) ends the wait.
                        let read = tokio::time::timeout_at(until, recv.read_to_end(1 << 16));
                        if let Ok(Err(_)) = read.await {
                            tally.rebuff();
                        }
                        drop(send);
                    }));
                }
                for s in streams {
                    s.abort();
                }
                conn.close(0u32.into(), b"");
            }
            endpoint.close(0u32.into(), b"");
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// One connection opening streams as fast as credit allows (at most `per_second` a second;
/// 0: no cap), each carrying a complete request that is not MessagePack: the server answers
/// each `malformed` and never has more than its stream limit open. Returns the most streams
/// the attacker saw open at once.
pub async fn stream_flood(
    target: Target,
    per_second: u64,
    until: Instant,
    tally: Arc<Tally>,
) -> u64 {
    let Ok(endpoint) = quic_endpoint(&target, false, false) else {
        return 0;
    };
    let Some(conn) = connect(&endpoint, &target).await else {
        tally.rebuff();
        return 0;
    };
    let open = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut pace = (per_second > 0).then(|| {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second as u32);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    while Instant::now() < until {
        if let Some(tick) = pace.as_mut() {
            tick.tick().await;
        }
        let Ok(Ok((mut send, mut recv))) = tokio::time::timeout_at(until, conn.open_bi()).await
        else {
            break;
        };
        tally.act();
        let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
        most.fetch_max(now_open, Ordering::Relaxed);
        let (tally, open) = (tally.clone(), open.clone());
        tasks.spawn(async move {
            let _ = send.write_all(b"\xc1 flood").await;
            let _ = send.finish();
            match tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 16)).await {
                Ok(Ok(bytes)) if is_error_response(&bytes) => tally.rebuff(),
                _ => tally.through(),
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
        while tasks.len() > 4096 {
            tasks.join_next().await;
        }
    }
    tasks.abort_all();
    conn.close(0u32.into(), b"");
    endpoint.close(0u32.into(), b"");
    most.load(Ordering::Relaxed)
}

fn is_error_response(bytes: &[u8]) -> bool {
    umbrald_proto::decode::<umbrald_proto::Response>(bytes).is_ok_and(|r| r.error.is_some())
}

/// Connection churn past `max_connections`: `n` connections opened and held, then closed and
/// opened again, until `until`. Counts the handshakes the server refused.
pub async fn connection_flood(target: Target, n: usize, until: Instant, tally: Arc<Tally>) {
    let Ok(endpoint) = quic_endpoint(&target, false, false) else {
        return;
    };
    while Instant::now() < until {
        let mut handshakes = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (endpoint, tally) = (endpoint.clone(), tally.clone());
            handshakes.spawn(async move {
                tally.act();
                let conn = connect(&endpoint, &target).await;
                // A refused handshake can also complete and then be closed at once.
                match conn {
                    Some(conn) => {
                        let usable =
                            tokio::time::timeout(Duration::from_millis(300), conn.open_bi())
                                .await
                                .is_ok_and(|s| s.is_ok());
                        if usable && conn.close_reason().is_none() {
                            tally.through();
                        } else {
                            tally.rebuff();
                        }
                        Some(conn)
                    }
                    None => {
                        tally.rebuff();
                        None
                    }
                }
            });
        }
        let mut held = Vec::new();
        while let Some(conn) = handshakes.join_next().await {
            held.extend(conn.ok().flatten());
        }
        tokio::time::sleep_until(until.min(Instant::now() + Duration::from_millis(500))).await;
        for conn in held {
            conn.close(0u32.into(), b"");
        }
    }
    endpoint.close(0u32.into(), b"");
}

/// Requests that declare huge lengths: a MessagePack array header claiming 4 294 967 295
/// items followed by 1 MiB of filler, a map claiming as many entries, a byte string claiming
/// 4 GiB. Each must be answered with an error at once, without the memory it claims. At most
/// `per_second` requests a second (0: no cap).
pub async fn huge_lengths(target: Target, per_second: u64, until: Instant, tally: Arc<Tally>) {
    let Ok(endpoint) = quic_endpoint(&target, false, false) else {
        return;
    };
    let mut pace = (per_second > 0).then(|| {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second as u32);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    let bodies: Vec<Vec<u8>> = vec![
        [&[0xdd, 0xff, 0xff, 0xff, 0xff][..], &vec![0xc0; 1 << 20]].concat(),
        [&[0xdf, 0xff, 0xff, 0xff, 0xff][..], &[0xa1, b'v', 0x01][..]].concat(),
        [
            &b"\x86\xa1v\x01\xa2id\x01\xa8policies\x91\x84\xa5kfrag"[..],
            &[0xc6, 0xff, 0xff, 0xff, 0xff][..],
            &[0u8; 64][..],
        ]
        .concat(),
    ];
    while Instant::now() < until {
        let Some(conn) = connect(&endpoint, &target).await else {
            tally.rebuff();
            continue;
        };
        for body in &bodies {
            if let Some(tick) = pace.as_mut() {
                tick.tick().await;
            }
            if Instant::now() >= until {
                break;
            }
            let Ok(Ok((mut send, mut recv))) =
                tokio::time::timeout(Duration::from_secs(3), conn.open_bi()).await
            else {
                break;
            };
            tally.act();
            let _ = send.write_all(body).await;
            let _ = send.finish();
            match tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 16)).await {
                Ok(Ok(bytes)) if is_error_response(&bytes) => tally.rebuff(),
                Ok(Err(_)) => tally.rebuff(),
                _ => tally.through(),
            }
        }
        conn.close(0u32.into(), b"");
    }
    endpoint.close(0u32.into(), b"");
}

/// Valid requests whose responses the attacker never reads (a 1 KiB receive window): the
/// server gives up writing after its stream timeout. `request`: an encoded request whose
/// response is larger than the window.
pub async fn slow_readers(target: Target, request: Vec<u8>, until: Instant, tally: Arc<Tally>) {
    let Ok(endpoint) = quic_endpoint(&target, true, false) else {
        return;
    };
    while Instant::now() < until {
        let Some(conn) = connect(&endpoint, &target).await else {
            tally.rebuff();
            continue;
        };
        let mut held = Vec::new();
        for _ in 0..64 {
            let Ok(Ok((mut send, recv))) =
                tokio::time::timeout(Duration::from_millis(500), conn.open_bi()).await
            else {
                break;
            };
            tally.act();
            let _ = send.write_all(&request).await;
            let _ = send.finish();
            held.push((send, recv));
        }
        tokio::time::sleep_until(until).await;
        drop(held);
        conn.close(0u32.into(), b"");
    }
    endpoint.close(0u32.into(), b"");
}

/// Random datagrams at the QUIC port, about `per_second`: random bytes of random sizes, some
/// shaped as long-header QUIC Initial packets of version 1.
pub async fn random_datagrams(target: Target, per_second: u64, until: Instant, tally: Arc<Tally>) {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else {
        return;
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let gap = Duration::from_secs(1) / per_second.max(1) as u32;
    let mut tick = tokio::time::interval(gap.max(Duration::from_micros(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut buf = vec![0u8; 1500];
    while Instant::now() < until {
        tick.tick().await;
        let len = 1 + (next() % 1400) as usize;
        for chunk in buf[..len].chunks_mut(8) {
            let bytes = next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        if next() % 2 == 0 && len > 6 {
            buf[0] = 0xc0 | (buf[0] & 0x0f);
            buf[1..5].copy_from_slice(&1u32.to_be_bytes());
        }
        if socket.send_to(&buf[..len], target.quic).await.is_ok() {
            tally.act();
        }
    }
}

/// Tries 0-RTT: a first connection for a session ticket, then a second offering early data.
/// Returns whether the client could send 0-RTT data and, if it did, whether the server
/// accepted it.
pub async fn zero_rtt(target: Target) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let endpoint = quic_endpoint(&target, false, true)?;
    let first = endpoint.connect(target.quic, "localhost")?.await?;
    // Give the server's session tickets time to arrive.
    let (mut send, mut recv) = first.open_bi().await?;
    send.write_all(b"\xc1").await?;
    send.finish()?;
    let _ = tokio::time::timeout(Duration::from_secs(3), recv.read_to_end(1 << 16)).await;
    first.close(0u32.into(), b"");
    let connecting = endpoint.connect(target.quic, "localhost")?;
    let accepted = match connecting.into_0rtt() {
        Ok((conn, accepted)) => {
            // Early data offered: send a request in it and ask whether the server took it.
            if let Ok((mut send, _recv)) = conn.open_bi().await {
                let _ = send.write_all(b"\xc1 early").await;
            }
            let taken = tokio::time::timeout(Duration::from_secs(3), accepted)
                .await
                .unwrap_or(false);
            conn.close(0u32.into(), b"");
            taken
        }
        Err(connecting) => {
            // No 0-RTT possible: the handshake goes on as a full one.
            let conn = tokio::time::timeout(Duration::from_secs(3), connecting).await??;
            conn.close(0u32.into(), b"");
            false
        }
    };
    endpoint.close(0u32.into(), b"");
    Ok(accepted)
}

async fn tls_to(
    https: SocketAddr,
    fingerprint: [u8; 32],
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = Trust::Fingerprint(Fingerprint(fingerprint))
        .client_config()
        .ok()?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(https))
        .await
        .ok()?
        .ok()?;
    let name = rustls::pki_types::ServerName::try_from("umbrald").ok()?;
    tokio::time::timeout(Duration::from_secs(3), connector.connect(name, tcp))
        .await
        .ok()?
        .ok()
}

/// How a slowloris connection ended.
async fn trickle(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
    bytes: &[u8],
    interval: Duration,
    until: Instant,
) -> Option<Vec<u8>> {
    for b in bytes {
        if Instant::now() >= until || tls.write_all(&[*b]).await.is_err() {
            break;
        }
        let _ = tls.flush().await;
        // A closed connection or an early answer ends the trickle.
        let mut probe = [0u8; 512];
        match tokio::time::timeout(interval, tls.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Vec::new()),
            Ok(Ok(n)) => return Some(probe[..n].to_vec()),
            Err(_) => {}
        }
    }
    None
}

/// Slowloris on headers: `conns` connections each sending a request head one byte per
/// `interval`; the server closes each after its header read timeout.
pub async fn slowloris_headers(
    target: Target,
    conns: usize,
    interval: Duration,
    until: Instant,
    tally: Arc<Tally>,
) {
    let Some(https) = target.https else { return };
    let head = format!(
        "POST /reencrypt HTTP/1.1\r\nHost: node\r\n{}",
        "X-Slow: a\r\n".repeat(400)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let (tally, head) = (tally.clone(), head.clone());
        tasks.spawn(async move {
            while Instant::now() < until {
                let Some(mut tls) = tls_to(https, target.fingerprint).await else {
                    tally.rebuff();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                tally.act();
                match trickle(&mut tls, head.as_bytes(), interval, until).await {
                    Some(_) => tally.rebuff(),
                    None if Instant::now() < until => tally.through(),
                    None => {}
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Slowloris on bodies: a complete head announcing 4 KiB, then the body one byte per
/// `interval`; the server answers 408 after its body timeout.
pub async fn slowloris_bodies(
    target: Target,
    conns: usize,
    interval: Duration,
    until: Instant,
    tally: Arc<Tally>,
) {
    let Some(https) = target.https else { return };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let tally = tally.clone();
        tasks.spawn(async move {
            while Instant::now() < until {
                let Some(mut tls) = tls_to(https, target.fingerprint).await else {
                    tally.rebuff();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                tally.act();
                let head = "POST /reencrypt HTTP/1.1\r\nHost: node\r\nContent-Length: 4096\r\n\r\n";
                if tls.write_all(head.as_bytes()).await.is_err() {
                    tally.rebuff();
                    continue;
                }
                match trickle(&mut tls, &[0x42; 4096], interval, until).await {
                    Some(answer) if answer.starts_with(b"HTTP/1.1 408") || answer.is_empty() => {
                        tally.rebuff()
                    }
                    Some(_) => tally.through(),
                    None if Instant::now() < until => tally.through(),
                    None => {}
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Many idle TCP connections to the HTTPS port that never start TLS: the server drops each
/// after its handshake timeout, and refuses those past `max_connections` at once.
pub async fn idle_tcp(target: Target, conns: usize, until: Instant, tally: Arc<Tally>) {
    let Some(https) = target.https else { return };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let tally = tally.clone();
        tasks.spawn(async move {
            while Instant::now() < until {
                let Ok(Ok(mut tcp)) =
                    tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(https)).await
                else {
                    tally.rebuff();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                tally.act();
                let mut byte = [0u8; 1];
                if tokio::time::timeout_at(until, tcp.read(&mut byte))
                    .await
                    .is_ok()
                {
                    tally.rebuff();
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
