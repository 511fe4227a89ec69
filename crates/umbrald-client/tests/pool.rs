//! The replica pool against real servers on loopback that share one certificate: spreading,
//! failover when a replica shuts down or was never there, the typed error when every replica
//! fails, and threshold retrieval with a node given as replicas.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{dead_addr, temp_dir};
use umbrald_client::{
    Alice, Backoff, Bob, ClientOptions, Fingerprint, Health, NodeFailureKind, Pool, PoolError,
    PoolOptions, ReencryptRequest, ThresholdClient, Trust,
};
use umbrald_server::{Config, RunningServer, Server};

/// A server on an ephemeral port, one worker; with `pair`, presenting that certificate.
async fn start(dir: &Path, pair: Option<&(PathBuf, PathBuf)>) -> RunningServer {
    let mut config = Config::ephemeral(dir, 1);
    if let Some((cert, key)) = pair {
        config.tls.cert = Some(cert.clone());
        config.tls.key = Some(key.clone());
    }
    Server::start(config, None).await.expect("server starts")
}

/// `n` servers with the first one's certificate, and the trust that pins it.
async fn replicas(tag: &str, n: usize) -> (Vec<RunningServer>, Trust) {
    let dir = temp_dir(tag);
    let first = start(&dir.join("0"), None).await;
    let trust = Trust::Fingerprint(Fingerprint(first.cert_fingerprint()));
    let pair = (dir.join("0/cert.pem"), dir.join("0/key.pem"));
    let mut servers = vec![first];
    for i in 1..n {
        let server = start(&dir.join(i.to_string()), Some(&pair)).await;
        assert_eq!(
            Trust::Fingerprint(Fingerprint(server.cert_fingerprint())),
            trust
        );
        servers.push(server);
    }
    (servers, trust)
}

fn pool_options() -> PoolOptions {
    PoolOptions {
        client: ClientOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        },
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(400),
        },
        ..PoolOptions::default()
    }
}

fn request() -> ReencryptRequest {
    let (alice, bob) = (Alice::random(), Bob::random());
    let grant = alice.grant(&bob.public_key(), 1, 1).expect("grant");
    let capsule = alice
        .encrypt(b"m")
        .expect("encrypt")
        .capsule_bytes()
        .expect("bytes");
    ReencryptRequest::new(grant.policy(0).expect("policy"), [capsule])
}

/// Sends `count` requests at once; returns how many each replica answered.
async fn burst(pool: &Pool, count: usize) -> BTreeMap<SocketAddr, usize> {
    let prepared = pool.prepare(request()).expect("prepare");
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (pool, prepared) = (pool.clone(), prepared.clone());
            tokio::spawn(async move { pool.reencrypt_prepared(&prepared).await })
        })
        .collect();
    let mut by_replica = BTreeMap::new();
    for task in tasks {
        let served = task.await.expect("task").expect("answered");
        assert_eq!(served.value.ok, 1);
        *by_replica.entry(served.replica).or_default() += 1;
    }
    by_replica
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_over_every_replica() {
    let (servers, trust) = replicas("spread", 3).await;
    let addrs: Vec<SocketAddr> = servers.iter().map(RunningServer::local_addr).collect();
    let pool = Pool::new(&addrs, &trust, pool_options()).expect("pool");
    assert!(pool.connect_all().await.is_empty());
    let by_replica = burst(&pool, 60).await;
    assert_eq!(by_replica.len(), 3, "{by_replica:?}");
    assert!(by_replica.values().all(|&n| n >= 5), "{by_replica:?}");
    assert!(pool
        .replicas()
        .iter()
        .all(|r| r.outstanding == 0 && r.health == Health::Up));
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_shuts_down_or_was_never_there_costs_no_request() {
    let (mut servers, trust) = replicas("failover", 2).await;
    let mut addrs: Vec<SocketAddr> = servers.iter().map(RunningServer::local_addr).collect();
    let dead = dead_addr();
    addrs.push(dead);
    let pool = Pool::new(&addrs, &trust, pool_options()).expect("pool");
    let failed = pool.connect_all().await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].replica, dead);
    assert!(matches!(
        pool.replicas()[2].health,
        Health::Down { .. } | Health::Probing
    ));
    let by_replica = burst(&pool, 20).await;
    assert!(!by_replica.contains_key(&dead), "{by_replica:?}");

    // One of the two live replicas goes away while requests keep coming.
    let gone = servers.remove(0);
    let gone_addr = gone.local_addr();
    let load = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut answered = 0;
            for _ in 0..10 {
                answered += burst(&pool, 10).await.values().sum::<usize>();
            }
            answered
        })
    };
    gone.shutdown().await;
    assert_eq!(load.await.expect("load"), 100, "every request answered");
    let by_replica = burst(&pool, 20).await;
    assert_eq!(by_replica.keys().collect::<Vec<_>>(), vec![&addrs[1]]);
    let status = pool.replicas();
    let gone_status = status.iter().find(|r| r.addr == gone_addr).expect("listed");
    assert_ne!(gone_status.health, Health::Up, "{status:?}");
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_failing_is_a_typed_error_with_each_attempt() {
    let trust = Trust::Fingerprint(Fingerprint([3; 32]));
    let addrs = [dead_addr(), dead_addr()];
    let options = PoolOptions {
        attempts: 2,
        ..pool_options()
    };
    let pool = Pool::new(&addrs, &trust, options).expect("pool");
    let err = pool.reencrypt(request()).await.expect_err("nobody answers");
    let PoolError::Exhausted { attempts } = &err else {
        panic!("{err}");
    };
    assert_eq!(attempts.len(), 2, "{err}");
    let mut tried: Vec<SocketAddr> = attempts.iter().map(|a| a.replica).collect();
    tried.sort_unstable();
    let mut expected = addrs.to_vec();
    expected.sort_unstable();
    assert_eq!(tried, expected, "each replica once");
    assert!(
        ["connect", "connection"].contains(&err.label().as_str()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_retrieval_fails_over_within_a_replicated_node() {
    let (servers, trust) = replicas("threshold", 2).await;
    let live: Vec<SocketAddr> = servers.iter().map(RunningServer::local_addr).collect();
    // Node 0: a dead replica and a live one; node 1: live; node 2: only dead replicas.
    let pools = vec![
        Pool::new(&[dead_addr(), live[0]], &trust, pool_options()).expect("pool"),
        Pool::new(&[live[1]], &trust, pool_options()).expect("pool"),
        Pool::new(&[dead_addr()], &trust, pool_options()).expect("pool"),
    ];
    let appliances = ThresholdClient::from_pools(pools);
    assert_eq!(appliances.len(), 3);
    assert!(appliances.nodes().is_empty());
    let (alice, bob) = (Alice::random(), Bob::random());
    let sealed = alice.encrypt(b"replicated").expect("encrypt");
    let grant = alice.grant(&bob.public_key(), 2, 3).expect("grant");
    // Asked several times: whichever replica of node 0 is chosen first, it is answered.
    for _ in 0..3 {
        let retrieval = appliances
            .retrieve(&grant, &sealed.capsule)
            .await
            .expect("two of three");
        let mut contributors = retrieval.contributors.clone();
        contributors.sort_unstable();
        assert_eq!(contributors, vec![0, 1]);
        for failure in &retrieval.failures {
            assert!(
                matches!(failure.kind, NodeFailureKind::Replicas(_)),
                "{failure}"
            );
        }
        let plaintext = bob
            .decrypt(&grant, &sealed, retrieval.cfrags)
            .expect("decrypts");
        assert_eq!(&*plaintext, b"replicated");
    }
    for server in servers {
        server.shutdown().await;
    }
}
