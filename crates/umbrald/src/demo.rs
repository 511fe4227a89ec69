//! `umbrald demo`: the whole Alice → m-of-n appliances → Bob flow, step by step. Without
//! `--addr`, n appliances are started in this process first.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use umbrald_client::keyfile::{read_secret_key, secret_key_path};
use umbrald_client::{Alice, Bob, NodeSpec, ThresholdClient};

use crate::error::CliError;
use crate::local::{runtime, LocalAppliances};
use crate::target::TargetArgs;

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

/// Runs the demo, printing each step to stdout.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::logging::init("warn")?;
    runtime()?.block_on(async move {
        let local = if args.target.addrs.is_empty() {
            let local = LocalAppliances::start(args.shares, 1).await?;
            let addrs: Vec<String> = local.specs().iter().map(|s| s.addr.to_string()).collect();
            println!(
                "[0/5] started {} appliances in this process (self-signed, pinned by fingerprint): {}",
                args.shares,
                addrs.join(", ")
            );
            Some(local)
        } else {
            None
        };
        let nodes = match &local {
            Some(local) => local.specs(),
            None => args.target.node_specs()?,
        };
        let result = run_flow(&args, &nodes, &mut std::io::stdout()).await;
        if let Some(local) = local {
            local.shutdown().await;
        }
        result?;
        anyhow::Ok(())
    })
}

/// Runs the flow against `nodes` (one per share, or a single node that plays every share),
/// printing each step to `out`.
pub async fn run_flow(
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
            let alice = read_secret_key(&secret_key_path(dir, "alice"))?;
            let signer = read_secret_key(&secret_key_path(dir, "signer"))?;
            let bob = read_secret_key(&secret_key_path(dir, "bob"))?;
            Ok((Alice::from_keys(alice, signer), Bob::from_key(bob)))
        }
    }
}

fn short_key(pk: &umbral_pre::PublicKey) -> String {
    let full = hex::encode(pk.to_compressed_bytes());
    format!("{}…", full.get(..16).unwrap_or(&full))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        demo: DemoArgs,
    }

    /// The demo flow against a real appliance given by address: one appliance plays all n roles.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_appliance_plays_every_share() {
        let local = LocalAppliances::start(1, 1)
            .await
            .expect("appliance starts");
        let node = local.specs().remove(0);
        let args = Cli::try_parse_from(["demo", "-m", "3", "-n", "4", "--message", "ciao"])
            .expect("args")
            .demo;
        let mut out = Vec::new();
        let report = run_flow(&args, std::slice::from_ref(&node), &mut out)
            .await
            .expect("demo");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(report.plaintext, b"ciao");
        assert_eq!(report.contributors.len(), 3);
        assert!(report.failures.is_empty());
        assert_eq!(
            text.matches(&format!("at {}", node.addr)).count(),
            4,
            "{text}"
        );
        assert!(text.contains(r#"Bob decrypted: "ciao""#));

        // Two appliances for four kfrags is neither "one for all" nor "one each".
        let err = run_flow(&args, &[node.clone(), node], &mut Vec::new())
            .await
            .expect_err("refused");
        assert!(matches!(err, CliError::Usage(_)), "{err}");
        local.shutdown().await;
    }
}
