//! The demo flow against a real appliance given by address: one appliance plays all n roles.

mod support;

use clap::Parser;
use support::{spec_of, start_server, temp_dir};
use umbrald_client::cli::demo::{self, DemoArgs};
use umbrald_client::cli::CliError;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    demo: DemoArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_appliance_plays_every_share() {
    let dir = temp_dir("demo");
    let server = start_server(&dir).await;
    let node = spec_of(&server);
    let args = Cli::try_parse_from(["demo", "-m", "3", "-n", "4", "--message", "ciao"])
        .expect("args")
        .demo;
    let mut out = Vec::new();
    let report = demo::run(&args, std::slice::from_ref(&node), &mut out)
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
    let err = demo::run(&args, &[node.clone(), node], &mut Vec::new())
        .await
        .expect_err("refused");
    assert!(matches!(err, CliError::Usage(_)), "{err}");
    server.shutdown().await;
}
