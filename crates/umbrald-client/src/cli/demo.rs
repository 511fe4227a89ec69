//! `umbrald demo`: the whole Alice → m-of-n appliances → Bob flow, step by step.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::keygen::key_path;
use super::{CliError, TargetArgs};
use crate::actors::{Alice, Bob};
use crate::keyfile::read_secret_key;
use crate::threshold::{NodeSpec, ThresholdClient};

/// Run an end-to-end proxy re-encryption flow and print each step.
///
/// Alice encrypts a message to her own key and grants Bob an m-of-n policy: n kfrags, one per
/// appliance. Bob sends the capsule to all n appliances, verifies every cfrag with umbral-pre as
/// it arrives, stops at the first m valid ones, and decrypts. No appliance ever sees the
/// message or a key that could decrypt it alone.
///
/// Without --addr, n appliances are started inside this process on loopback ports with fresh
/// self-signed certificates (pinned by fingerprint), which makes this the quickest check that
/// everything works. With one --addr, that appliance plays all n roles; with n of them, each
/// gets its own kfrag.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Which appliance(s), and how to trust them.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Cfrags needed to decrypt (m).
    #[arg(short = 'm', long, value_name = "M", default_value_t = 2)]
    pub threshold: usize,

    /// Kfrags issued, one per appliance (n).
    #[arg(short = 'n', long, value_name = "N", default_value_t = 3)]
    pub shares: usize,

    /// The message Alice encrypts for Bob.
    #[arg(long, default_value = "Hello Bob, from Alice, via umbrald")]
    pub message: String,

    /// Directory holding alice.sk, signer.sk and bob.sk from `umbrald keygen`; fresh random
    /// keys when absent.
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
}

/// What the demo ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// Bob's decryption (equal to the message, or the demo fails).
    pub plaintext: Vec<u8>,
    /// The nodes whose cfrags were used.
    pub contributors: Vec<usize>,
    /// Failed nodes, as human-readable lines.
    pub failures: Vec<String>,
}

/// Runs the flow against `nodes` (one per share, or a single node that plays every share),
/// printing each step to `out`.
pub async fn run(
    args: &DemoArgs,
    nodes: &[NodeSpec],
    out: &mut (dyn Write + Send),
) -> Result<DemoReport, CliError> {
    let (m, n) = (args.threshold, args.shares);
    if m == 0 || m > n {
        return Err(CliError::Usage(format!(
            "need 1 <= m <= n, got m={m} n={n}"
        )));
    }
    let nodes: Vec<NodeSpec> = match nodes.len() {
        1 => vec![nodes[0].clone(); n],
        k if k == n => nodes.to_vec(),
        k => {
            return Err(CliError::Usage(format!(
                "{k} appliances for n={n} kfrags: give one --addr or exactly n"
            )))
        }
    };
    let say = |out: &mut (dyn Write + Send), line: String| {
        writeln!(out, "{line}").map_err(CliError::output("stdout"))
    };

    let (alice, bob) = load_actors(args)?;
    say(
        out,
        format!(
            "[1/5] Alice: delegating key {}, kfrag-signing key {}",
            short_key(&alice.public_key()),
            short_key(&alice.verifying_key())
        ),
    )?;
    say(
        out,
        format!(
            "      Bob:   receiving key {}",
            short_key(&bob.public_key())
        ),
    )?;

    let sealed = alice.encrypt(args.message.as_bytes())?;
    say(
        out,
        format!(
            "[2/5] Alice encrypted {} bytes: capsule {} bytes + ciphertext {} bytes",
            args.message.len(),
            sealed.capsule_bytes()?.len(),
            sealed.ciphertext.len()
        ),
    )?;

    let grant = alice.grant(&bob.public_key(), m, n)?;
    say(
        out,
        format!("[3/5] Alice granted Bob a {m}-of-{n} policy: {n} kfrags, one per appliance"),
    )?;
    for (i, node) in nodes.iter().enumerate() {
        say(
            out,
            format!("      kfrag {i} -> appliance {i} at {}", node.addr),
        )?;
    }

    let appliances = ThresholdClient::new(&nodes, &args.target.client_options()?)?;
    let retrieval = appliances.retrieve(&grant, &sealed.capsule).await?;
    say(out, format!(
        "[4/5] Bob asked {n} appliances; {m} valid cfrags (verified with umbral-pre) from appliances {:?} in {:.1} ms",
        retrieval.contributors,
        retrieval.elapsed.as_secs_f64() * 1e3
    ))?;
    let failures: Vec<String> = retrieval.failures.iter().map(ToString::to_string).collect();
    for failure in &retrieval.failures {
        let tag = if failure.kind.is_misbehaviour() {
            "BAD "
        } else {
            ""
        };
        say(out, format!("      {tag}{failure}"))?;
    }
    if !retrieval.pending.is_empty() {
        say(
            out,
            format!("      not waited for: appliances {:?}", retrieval.pending),
        )?;
    }

    let contributors = retrieval.contributors.clone();
    let plaintext = bob.decrypt(&grant, &sealed, retrieval.cfrags)?.into_vec();
    if plaintext != args.message.as_bytes() {
        return Err(CliError::BadCfrag(
            "decryption produced a different message".to_owned(),
        ));
    }
    say(
        out,
        format!(
            "[5/5] Bob decrypted: {:?}",
            String::from_utf8_lossy(&plaintext)
        ),
    )?;
    Ok(DemoReport {
        plaintext,
        contributors,
        failures,
    })
}

fn load_actors(args: &DemoArgs) -> Result<(Alice, Bob), CliError> {
    match &args.keys {
        None => Ok((Alice::random(), Bob::random())),
        Some(dir) => {
            let alice = read_secret_key(&key_path(dir, "alice"))?;
            let signer = read_secret_key(&key_path(dir, "signer"))?;
            let bob = read_secret_key(&key_path(dir, "bob"))?;
            Ok((Alice::from_keys(alice, signer), Bob::from_key(bob)))
        }
    }
}

fn short_key(pk: &umbral_pre::PublicKey) -> String {
    let full = hex::encode(pk.to_compressed_bytes());
    format!("{}…", full.get(..16).unwrap_or(&full))
}
