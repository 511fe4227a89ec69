//! `umbrald keygen --node` and `umbrald serve --node-keys`: the sealed key file, its mode, the
//! printed public keys, and the passphrase sources.

mod common;

use common::{temp_dir, umbrald};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn public_keys(stdout: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(stdout);
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{prefix:?} printed in {text}"))
            .to_owned()
    };
    (
        find("node decrypting public key "),
        find("node verifying public key "),
    )
}

#[test]
fn keygen_node_seals_the_keys_and_show_needs_no_passphrase() {
    let dir = temp_dir("keygen");
    let file = dir.join("node.keys");
    let pass = dir.join("pass");
    std::fs::write(&pass, "s3cret passphrase\n").expect("write");
    let out = umbrald()
        .args(["keygen", "--node", "--node-keys"])
        .arg(&file)
        .arg("--node-keys-passphrase-file")
        .arg(&pass)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (dk, vk) = public_keys(&out.stdout);
    assert_eq!((dk.len(), vk.len()), (66, 66));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("argon2id") && text.contains(&dk));

    let out = umbrald()
        .args(["keygen", "--node", "--show", "--node-keys"])
        .arg(&file)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(public_keys(&out.stdout), (dk, vk));

    // Not replaced without --force; a passphrase is required.
    let out = umbrald()
        .args(["keygen", "--node", "--node-keys"])
        .arg(&file)
        .env("UMBRALD_NODE_KEYS_PASSPHRASE", "x")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    let out = umbrald()
        .args(["keygen", "--node", "--node-keys"])
        .arg(dir.join("other.keys"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("UMBRALD_NODE_KEYS_PASSPHRASE"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_node_key_file_written_earlier_still_shows_its_public_keys() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../umbrald-nucypher/tests/fixtures/node.keys");
    let out = umbrald()
        .args(["keygen", "--node", "--show", "--node-keys"])
        .arg(&fixture)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        public_keys(&out.stdout),
        (
            "02bdb95225029611f5ecda0f1f57511c3e5475a9b4a6dac258f5eca37a76ab3e52".to_owned(),
            "0235dcc4c732c840f9c73c3f386799cc7477385c62e0f625d4afbab8e40ca0d8da".to_owned()
        )
    );
}

#[cfg(unix)]
#[test]
fn serve_loads_node_keys_with_the_env_passphrase_and_refuses_a_wrong_one() {
    let dir = temp_dir("serve");
    let file = dir.join("node.keys");
    let out = umbrald()
        .args(["keygen", "--node", "--node-keys"])
        .arg(&file)
        .env("UMBRALD_NODE_KEYS_PASSPHRASE", "right")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = public_keys(&out.stdout);

    let serve = |passphrase: &str| {
        let mut cmd = umbrald();
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(["--workers", "1", "--log", "warn", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--node-keys")
        .arg(&file)
        .env("UMBRALD_NODE_KEYS_PASSPHRASE", passphrase);
        cmd
    };
    let out = serve("wrong").output().expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = serve("right")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut printed = Vec::new();
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let listening = line.starts_with("umbrald listening");
        printed.extend_from_slice(line.as_bytes());
        printed.push(b'\n');
        if listening || started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    assert_eq!(public_keys(&printed), keys);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&dir).ok();
}
