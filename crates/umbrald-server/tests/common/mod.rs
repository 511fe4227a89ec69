//! Shared fixtures for the end-to-end tests: umbral-pre keys, kfrags and capsules (the
//! correctness oracle), server start-up on ephemeral ports, and a tiny metrics scraper.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use umbral_pre::{
    decrypt_reencrypted, encrypt, generate_kfrags, Capsule, CapsuleFrag, DefaultDeserialize,
    DefaultSerialize, PublicKey, SecretKey, Signer, VerifiedCapsuleFrag,
};
use umbrald_proto::{Item, Policy, Request, Response};
use umbrald_server::{Config, RunningServer, Server};

/// Keys, one policy per kfrag, and encrypted capsules.
pub struct Fixture {
    pub alice_pk: PublicKey,
    pub bob_sk: SecretKey,
    pub bob_pk: PublicKey,
    pub verifying_pk: PublicKey,
    pub policies: Vec<Policy>,
    pub capsules: Vec<Capsule>,
    pub capsule_bytes: Vec<Vec<u8>>,
    pub ciphertexts: Vec<Box<[u8]>>,
    pub plaintexts: Vec<Vec<u8>>,
    pub threshold: usize,
}

impl Fixture {
    pub fn new(shares: usize, threshold: usize, capsules: usize) -> Self {
        let alice_sk = SecretKey::random();
        let alice_pk = alice_sk.public_key();
        let bob_sk = SecretKey::random();
        let bob_pk = bob_sk.public_key();
        let signer = Signer::new(SecretKey::random());
        let verifying_pk = signer.verifying_key();
        let kfrags = generate_kfrags(&alice_sk, &bob_pk, &signer, threshold, shares, true, true);
        let policies = kfrags
            .iter()
            .map(|k| Policy {
                kfrag: k
                    .clone()
                    .unverify()
                    .to_bytes()
                    .expect("kfrag bytes")
                    .to_vec(),
                delegating_pk: alice_pk.to_compressed_bytes().to_vec(),
                receiving_pk: bob_pk.to_compressed_bytes().to_vec(),
                verifying_pk: verifying_pk.to_compressed_bytes().to_vec(),
            })
            .collect();
        let mut fx = Self {
            alice_pk,
            bob_sk,
            bob_pk,
            verifying_pk,
            policies,
            capsules: vec![],
            capsule_bytes: vec![],
            ciphertexts: vec![],
            plaintexts: vec![],
            threshold,
        };
        for i in 0..capsules {
            let plaintext = format!("umbrald end-to-end message #{i}").into_bytes();
            let (capsule, ciphertext) = encrypt(&fx.alice_pk, &plaintext).expect("encrypt");
            fx.capsule_bytes
                .push(capsule.to_bytes().expect("capsule bytes").to_vec());
            fx.capsules.push(capsule);
            fx.ciphertexts.push(ciphertext);
            fx.plaintexts.push(plaintext);
        }
        fx
    }

    /// A request carrying every policy, with one item per `(capsule, policy)` pair.
    pub fn request(&self, id: u64, items: &[(usize, usize)]) -> Request {
        Request {
            v: 1,
            id,
            policies: self.policies.clone(),
            items: items
                .iter()
                .map(|&(c, p)| Item {
                    capsule: self.capsule_bytes[c].clone(),
                    policy: u32::try_from(p).expect("small index"),
                })
                .collect(),
            deadline_ms: None,
            priority: None,
            compact_cfrags: None,
        }
    }

    /// A request of `n` items cycling over capsules and policies.
    /// A NuCypher `ReencryptionRequest` for all capsules under the first policy, its kfrag
    /// encrypted to the node whose decrypting key is `node_pk`.
    pub fn nucypher_request(&self, node_pk: &PublicKey) -> Vec<u8> {
        let publisher = Signer::new(SecretKey::random());
        let hrac = [9u8; 16];
        let ekfrag = umbrald_nucypher::build::encrypt_kfrag(
            &publisher,
            node_pk,
            &hrac,
            &self.policies[0].kfrag,
        )
        .expect("ekfrag");
        let publisher_vk: [u8; 33] = publisher.verifying_key().to_compressed_bytes()[..]
            .try_into()
            .expect("33");
        let mut bob_vk = [0u8; 33];
        bob_vk.copy_from_slice(&self.bob_pk.to_compressed_bytes());
        umbrald_nucypher::build::encode_request(
            &self.capsule_bytes,
            &hrac,
            &ekfrag,
            &publisher_vk,
            &bob_vk,
        )
    }

    pub fn request_n(&self, id: u64, n: usize) -> Request {
        let pairs: Vec<(usize, usize)> = (0..n)
            .map(|i| (i % self.capsules.len(), i % self.policies.len()))
            .collect();
        self.request(id, &pairs)
    }

    /// Verifies a cfrag from the server with umbral-pre, panicking if it does not verify.
    pub fn verify(&self, capsule: usize, cfrag: &[u8]) -> VerifiedCapsuleFrag {
        CapsuleFrag::from_bytes(cfrag)
            .expect("cfrag parses with umbral-pre")
            .verify(
                &self.capsules[capsule],
                &self.verifying_pk,
                &self.alice_pk,
                &self.bob_pk,
            )
            .map_err(|(e, _)| e)
            .expect("cfrag verifies with umbral-pre")
    }

    /// Decrypts capsule `capsule` with the given verified cfrags and checks the plaintext.
    pub fn decrypt_and_check(&self, capsule: usize, cfrags: Vec<VerifiedCapsuleFrag>) {
        let plain = decrypt_reencrypted(
            &self.bob_sk,
            &self.alice_pk,
            &self.capsules[capsule],
            cfrags,
            &self.ciphertexts[capsule],
        )
        .expect("decrypts");
        assert_eq!(&plain[..], &self.plaintexts[capsule][..]);
    }

    /// Checks that `resp` answers `req` with a verifying cfrag for every item.
    pub fn check_all_ok(&self, req: &Request, resp: &Response) {
        assert_eq!(resp.id, req.id);
        assert!(resp.error.is_none(), "request error: {:?}", resp.error);
        let results = resp.results.as_ref().expect("results");
        assert_eq!(results.len(), req.items.len());
        for (item, result) in req.items.iter().zip(results) {
            let cfrag = match (&result.cfrag, &result.parts) {
                (Some(cfrag), None) if req.compact_cfrags != Some(true) => cfrag.clone(),
                (None, Some(parts)) if req.compact_cfrags == Some(true) => {
                    self.complete(req, item, parts)
                }
                _ => panic!("not the answer asked for: {result:?}"),
            };
            let capsule = self
                .capsule_bytes
                .iter()
                .position(|c| *c == item.capsule)
                .expect("known");
            self.verify(capsule, &cfrag);
        }
    }

    /// The whole cfrag (umbral-pre bytes) of a compact answer to `item` of `req`.
    pub fn complete(&self, req: &Request, item: &Item, parts: &[u8]) -> Vec<u8> {
        let kfrag = &req.policies[item.policy as usize].kfrag;
        let kfrag = umbrald_core::KeyFrag::from_bytes(kfrag).expect("kfrag");
        umbrald_core::CapsuleFrag::from_parts(parts, &kfrag)
            .expect("parts of the right length")
            .to_bytes()
            .to_vec()
    }
}

/// A fresh data directory for one test (under cargo's per-target temporary directory when
/// there is one).
pub fn data_dir(tag: &str) -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("umbrald-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A test configuration: loopback, ephemeral ports, `workers` worker threads, short timeouts.
pub fn config(tag: &str, workers: usize) -> Config {
    let mut c = Config::ephemeral(data_dir(tag), workers);
    c.workers.pin = false;
    c.limits.stream_read_timeout_ms = 2_000;
    c
}

pub async fn start(config: Config) -> RunningServer {
    Server::start(config, None).await.expect("server starts")
}

/// [`start`] with NuCypher node keys.
pub async fn start_node(config: Config, keys: umbrald_nucypher::NodeKeys) -> RunningServer {
    Server::start(config, Some(keys))
        .await
        .expect("server starts")
}

pub async fn client(server: &RunningServer) -> umbrald_server::testing::TestClient {
    umbrald_server::testing::TestClient::connect(server.local_addr(), server.cert_fingerprint())
        .await
        .expect("client connects")
}

/// GETs `path` from the metrics endpoint: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("http connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("http write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("http read");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub async fn scrape(server: &RunningServer) -> String {
    let (status, body) = http_get(server.metrics_addr().expect("metrics on"), "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// The value of the sample whose name-and-labels text is exactly `series`.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no series {series}"))
}

pub fn error_code(resp: &Response) -> Option<&str> {
    resp.error.as_ref().map(|e| e.code.as_str())
}

/// Scrapes until `series` has the value `want` (gauges settle a moment after the answer that
/// changed them), failing after two seconds.
pub async fn settles(server: &RunningServer, series: &str, want: f64) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let got = metric(&scrape(server).await, series);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{series} is {got}, expected {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// CPU time (user + system) this process has used so far (Linux; zero elsewhere).
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
