#!/usr/bin/env bash
# Builds umbrald's fuzz targets (fuzz/, a cargo-fuzz layout) and runs each one for a few
# seconds from its committed seed corpus; fails on any crash (a panic or a failed check), hang
# (one input over 10 s) or out-of-memory report (over 2 GiB) from libFuzzer.
#
#   scripts/check-fuzz.sh            # every target, 20 s each
#   scripts/check-fuzz.sh 60         # every target, 60 s each
#   scripts/check-fuzz.sh 30 diff_codecs native_request   # only these targets
#   scripts/check-fuzz.sh 0          # build only
#   FUZZ_CORE_ONLY=1 scripts/check-fuzz.sh   # the five targets that do not need umbrald-server
#
# The build is what `cargo fuzz build -O -a -s none` does (release, debug assertions and
# overflow checks, libFuzzer's coverage instrumentation, no sanitizer: the code under test is
# safe Rust), done with plain cargo so that neither cargo-fuzz nor a nightly toolchain is
# needed: the stable toolchain takes these flags. Outputs go to fuzz/target (or
# $CARGO_TARGET_DIR), never to the main workspace's target directory. Each run works on a copy
# of the corpus, so the tree stays clean; a crashing input is kept under
# fuzz/target/artifacts/<target>/ and printed in hex.
#
# Long runs (by hand, with cargo-fuzz): see docs/RELIABILITY.md, "Fuzzing".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-20}"
shift || true
case "$seconds" in
    '' | *[!0-9]*) echo "usage: $0 [seconds per target] [target...]" >&2; exit 2 ;;
esac

# The targets that need umbrald-server (the `server` feature of fuzz/Cargo.toml) and those that
# do not; FUZZ_CORE_ONLY=1 builds and runs only the latter, without the server's dependency
# tree (quinn, hyper, rustls, tokio), for a shorter build.
server_targets=(native_request https_request config_toml)
core_targets=(umbral_codecs diff_codecs nucypher_request node_keys diff_reencrypt)
features=()
if [ "${FUZZ_CORE_ONLY:-0}" = 1 ]; then
    all_targets=("${core_targets[@]}")
    features=(--no-default-features)
else
    all_targets=("${server_targets[@]}" "${core_targets[@]}")
fi
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=("${all_targets[@]}")
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
# cargo-fuzz's flags for `-O -a -s none` (cargo-fuzz 0.13). With an explicit --target they
# apply to the fuzzed code only, not to build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions"

build_args=()
for t in "${targets[@]}"; do
    build_args+=(--bin "$t")
done
echo "check-fuzz: building ${#targets[@]} targets ($CARGO_TARGET_DIR)" >&2
started=$SECONDS
cargo build --manifest-path fuzz/Cargo.toml --locked --release --target "$host" \
    ${features[@]+"${features[@]}"} "${build_args[@]}"
echo "check-fuzz: built in $((SECONDS - started)) s" >&2
if [ "$seconds" = 0 ]; then
    exit 0
fi

bin_dir="$CARGO_TARGET_DIR/$host/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    corpus="$work/$t"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/$t" ]; then
        cp -R "fuzz/corpus/$t/." "$corpus/"
    fi
    artifacts="$CARGO_TARGET_DIR/artifacts/$t"
    mkdir -p "$artifacts"
    log="$work/$t.log"
    echo "check-fuzz: $t for $seconds s" >&2
    # -timeout: one input running longer than 10 s is a hang; -rss_limit_mb: memory bound.
    if "$bin_dir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1; then
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' \
            "$log" >&2 || true
    else
        tail -n 40 "$log" >&2
        for crash in "$artifacts"/*; do
            [ -f "$crash" ] || continue
            echo "check-fuzz: $t: $(basename "$crash"): $(od -An -tx1 -v "$crash" | tr -d ' \n' | head -c 2000)" >&2
        done
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "check-fuzz: FAIL: ${failed[*]}" >&2
    exit 1
fi
echo "check-fuzz: ok (${#targets[@]} targets, $seconds s each)" >&2
