//! The hostile mix: every attack class of `tests/hostile.rs` at once against a running
//! appliance, for a while, then a line per class with what it did and how the server met it.
//! `benches/hostile-mix.sh` runs it beside `umbrald bench` to measure a good client's latency
//! under the mix.
//!
//! ```text
//! cargo run --release -p umbrald-server --example hostile_mix -- \
//!     --addr 127.0.0.1:4433 --https 127.0.0.1:9151 --fingerprint <FP> --seconds 30
//! ```

#[path = "../../tests/common/mod.rs"]
mod common;

mod attacks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use attacks::{Tally, Target};
use clap::Parser;
use tokio::time::Instant;

/// Runs every hostile class against one appliance.
#[derive(Debug, Parser)]
struct Args {
    /// The QUIC address.
    #[arg(long)]
    addr: SocketAddr,
    /// The HTTPS address (`[nucypher] https_listen`); without it the HTTPS classes are skipped.
    #[arg(long)]
    https: Option<SocketAddr>,
    /// The server certificate's SHA-256, hex.
    #[arg(long)]
    fingerprint: String,
    /// How long to attack.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Connections holding stalled, half-written streams.
    #[arg(long, default_value_t = 8)]
    stalled_connections: usize,
    /// Connections per round of the connection flood.
    #[arg(long, default_value_t = 64)]
    flood_connections: usize,
    /// Streams per second of the stream flood (0: as fast as the server answers, a
    /// volumetric flood that per-client rate limits, not the stream limit, are for).
    #[arg(long, default_value_t = 500)]
    flood_rate: u64,
    /// Declared-huge requests per second (a third of them 1 MiB; 0: as fast as answered).
    #[arg(long, default_value_t = 30)]
    huge_rate: u64,
    /// Random datagrams per second.
    #[arg(long, default_value_t = 2_000)]
    datagrams_per_second: u64,
    /// Slowloris connections per HTTPS class.
    #[arg(long, default_value_t = 16)]
    slowloris_connections: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let fingerprint: umbrald_client::Fingerprint = args.fingerprint.parse()?;
    let target = Target {
        quic: args.addr,
        https: args.https,
        fingerprint: fingerprint.0,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    // A valid 64-capsule request whose answer the slow readers never take.
    let fx = common::Fixture::new(1, 1, 4);
    let mut big = fx.request_n(1, 64);
    big.compact_cfrags = Some(true);
    let big = umbrald_proto::encode(&big)?;
    runtime.block_on(async move {
        let until = Instant::now() + Duration::from_secs_f64(args.seconds);
        let classes: Vec<(&str, Arc<Tally>)> = [
            "stalled_streams",
            "stream_flood",
            "connection_flood",
            "huge_lengths",
            "slow_readers",
            "random_datagrams",
            "slowloris_headers",
            "slowloris_bodies",
            "idle_tcp",
        ]
        .into_iter()
        .map(|name| (name, Arc::new(Tally::default())))
        .collect();
        let t = |i: usize| classes[i].1.clone();
        let interval = Duration::from_millis(100);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(attacks::stalled_streams(
            target,
            args.stalled_connections,
            until,
            t(0),
        ));
        let flood = t(1);
        tasks.spawn(async move {
            // The flood ends when its connection does; start another until the time is up.
            while Instant::now() < until {
                attacks::stream_flood(target, args.flood_rate, until, flood.clone()).await;
            }
        });
        tasks.spawn(attacks::connection_flood(
            target,
            args.flood_connections,
            until,
            t(2),
        ));
        tasks.spawn(attacks::huge_lengths(target, args.huge_rate, until, t(3)));
        tasks.spawn(attacks::slow_readers(target, big, until, t(4)));
        tasks.spawn(attacks::random_datagrams(
            target,
            args.datagrams_per_second,
            until,
            t(5),
        ));
        tasks.spawn(attacks::slowloris_headers(
            target,
            args.slowloris_connections,
            interval,
            until,
            t(6),
        ));
        tasks.spawn(attacks::slowloris_bodies(
            target,
            args.slowloris_connections,
            interval,
            until,
            t(7),
        ));
        tasks.spawn(attacks::idle_tcp(
            target,
            4 * args.slowloris_connections,
            until,
            t(8),
        ));
        tasks.spawn(async move {
            match attacks::zero_rtt(target).await {
                Ok(accepted) => println!("zero_rtt accepted={accepted}"),
                Err(e) => println!("zero_rtt error={e}"),
            }
        });
        // Every class stops at `until`; a class stuck past it is cut off.
        let cutoff = until + Duration::from_secs(10);
        while let Ok(Some(_)) = tokio::time::timeout_at(cutoff, tasks.join_next()).await {}
        tasks.abort_all();
        for (name, tally) in &classes {
            let (actions, rebuffed, through) = tally.get();
            println!("{name} actions={actions} rebuffed={rebuffed} let_through={through}");
        }
    });
    Ok(())
}
