//! Configuration precedence with the process environment: defaults < file < `UMBRALD_*` <
//! flags. Its own test binary, because it sets process-wide environment variables.

use clap::Parser;
use umbrald_server::{Config, Overrides};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
}

#[test]
fn environment_sits_between_the_file_and_the_flags() {
    let dir = std::env::temp_dir().join(format!("umbrald-cfg-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("umbrald.toml");
    std::fs::write(
        &file,
        "[batcher]\nmax_batch_items = 32\nmax_queue_delay_us = 5\n[workers]\nthreads = 3\n",
    )
    .expect("write config");
    std::env::set_var("UMBRALD_CONFIG", &file);
    std::env::set_var("UMBRALD_MAX_BATCH_ITEMS", "48");
    std::env::set_var("UMBRALD_WORKERS", "5");
    std::env::set_var("UMBRALD_LISTEN", "127.0.0.1:7000");

    let env_only = Cli::try_parse_from(["umbrald"]).expect("parses");
    let c = Config::load(&env_only.overrides).expect("loads");
    assert_eq!(c.batcher.max_batch_items, 48, "env beats file");
    assert_eq!(c.batcher.max_queue_delay_us, 5, "file beats default");
    assert_eq!(c.workers.threads, 5);
    assert_eq!(c.server.listen.port(), 7000);
    assert_eq!(c.batcher.max_queue_items, 16_384, "default kept");

    let flags = Cli::try_parse_from(["umbrald", "--workers", "1", "--listen", "127.0.0.1:7001"])
        .expect("parses");
    let c = Config::load(&flags.overrides).expect("loads");
    assert_eq!(c.workers.threads, 1, "flag beats env");
    assert_eq!(c.server.listen.port(), 7001);
    assert_eq!(
        c.batcher.max_batch_items, 48,
        "env still applies where no flag"
    );

    std::env::set_var("UMBRALD_MAX_BATCH_ITEMS", "many");
    let parsed = Cli::try_parse_from(["umbrald"]).expect("the flags are fine");
    let err = Config::load(&parsed.overrides).expect_err("a bad env value is an error");
    let text = err.to_string();
    assert!(text.contains("UMBRALD_MAX_BATCH_ITEMS"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
