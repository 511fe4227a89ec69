//! Helpers shared by the tests that run the `umbrald` binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The `umbrald` binary, with the developer's `UMBRALD_*` variables and `RUST_LOG` kept out of
/// the verdicts.
pub fn umbrald() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_umbrald"));
    for (key, _) in std::env::vars() {
        if key.starts_with("UMBRALD_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// An empty directory of this test binary for `tag`, made afresh.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "umbrald-{}-{tag}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// A loopback UDP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("probe socket")
        .port()
}
