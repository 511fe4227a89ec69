//! The client subcommands of the `umbrald` binary: `demo` with no arguments, `keygen` then
//! `demo --keys`, `bench` on its in-process appliance, and their help texts.

mod common;

use common::{temp_dir, umbrald};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> (String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("umbrald runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(
        status.success(),
        "exit {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn demo_with_no_arguments_decrypts_through_two_of_three_appliances() {
    let (out, _) = run(umbrald().arg("demo"));
    for step in [
        "[0/5] started 3 appliances",
        "[3/5]",
        "2-of-3 policy",
        "2 valid cfrags",
    ] {
        assert!(out.contains(step), "missing {step:?} in:\n{out}");
    }
    assert!(
        out.contains(r#"[5/5] Bob decrypted: "Hello Bob, from Alice, via umbrald""#),
        "{out}"
    );
}

#[test]
fn keygen_files_drive_the_demo() {
    let dir = temp_dir("keys");
    let keys = dir.join("keys");
    let (out, _) = run(umbrald().args(["keygen", "--out-dir"]).arg(&keys));
    assert_eq!(
        out.lines().filter(|l| l.contains("public key")).count(),
        3,
        "{out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("alice.sk"))
            .expect("alice.sk")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let alice_pk = out
        .lines()
        .find(|l| l.starts_with("alice"))
        .and_then(|l| l.split_whitespace().nth(3))
        .expect("alice's public key")
        .to_owned();

    // A second keygen refuses to overwrite.
    let refused = umbrald()
        .args(["keygen", "--out-dir"])
        .arg(&keys)
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("exists"));

    let (out, _) = run(umbrald()
        .args([
            "demo",
            "-m",
            "1",
            "-n",
            "2",
            "--message",
            "from files",
            "--keys",
        ])
        .arg(&keys));
    assert!(out.contains(&alice_pk[..16]), "demo used alice.sk:\n{out}");
    assert!(out.contains(r#"Bob decrypted: "from files""#), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_on_its_own_appliance_emits_json() {
    let (out, stderr) = run(umbrald().args([
        "bench",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--concurrency",
        "2",
        "--json",
        "-",
    ]));
    assert!(stderr.contains("no --addr"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(v["kind"], "run");
    assert!(
        v["requests"]["answered"].as_u64().expect("answered") > 0,
        "{v:#}"
    );
    assert!(
        v["server"]["batch_size_items"]["mean"]
            .as_f64()
            .expect("server metrics read")
            >= 1.0
    );
}

#[test]
fn client_subcommands_explain_themselves() {
    let (bench, _) = run(umbrald().args(["bench", "--help"]));
    for text in [
        "Open loop",
        "Closed loop",
        "corrected",
        "--sweep",
        "--p99-bound",
        "--metrics-url",
        "--hlog",
        "--json",
        "replicas",
    ] {
        assert!(bench.contains(text), "bench --help lacks {text:?}");
    }
    let (demo, _) = run(umbrald().args(["demo", "--help"]));
    assert!(demo.contains("m-of-n") && demo.contains("--addr"), "{demo}");
    let (keygen, _) = run(umbrald().args(["keygen", "--help"]));
    assert!(
        keygen.contains("0600") && keygen.contains("--out-dir"),
        "{keygen}"
    );
}

#[test]
fn demo_against_an_address_without_trust_is_refused() {
    let out = umbrald()
        .args(["demo", "--addr", "127.0.0.1:9"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fingerprint"));
}

#[test]
fn key_files_written_earlier_still_load() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../umbrald-client/tests/fixtures/keys");
    let (out, _) = run(umbrald()
        .args(["keygen", "--show", "--out-dir"])
        .arg(&fixtures));
    for (name, public_key) in [
        (
            "alice",
            "03c6ee8d00b4f0f8cebc4f1770e10ccee197d4d3233f0c7fb434b3e7f2980302af",
        ),
        (
            "bob",
            "0302cf0f51de4652514fef1c0f32bf79f96542989b361f7bd462932be50c64a0bc",
        ),
        (
            "signer",
            "02f420815a0721db746c347b41f4639a7fe94f1fef7cfd2b70a056bbb49b4d67d8",
        ),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(name) && l.contains(public_key)),
            "{name}: {out}"
        );
    }
    let (out, _) = run(umbrald()
        .args([
            "demo",
            "-m",
            "1",
            "-n",
            "1",
            "--message",
            "old keys",
            "--keys",
        ])
        .arg(&fixtures));
    assert!(
        out.contains("03c6ee8d00b4f0f8"),
        "demo used alice.sk:\n{out}"
    );
    assert!(out.contains(r#"Bob decrypted: "old keys""#), "{out}");
}
