#!/usr/bin/env bash
# Constant-time check of the re-encryption paths, mechanically, in the style of libsecp256k1's
# ctime_tests: crates/umbrald-ctime marks the kfrag's secret scalar rk, every proof nonce t and
# the node's secret keys undefined with valgrind memcheck client requests, runs the engine's CPU
# re-encryption on batches of 1, 3, 8 and 64 capsules (every CPU path), the GPU backend on the
# CUDA kernels compiled as host C++ on batches of 3, 8 and 64 (the step-by-step and the one-call
# kernels, with the backend's packing of the secrets), and the node's response signing; memcheck
# fails the run on any branch or memory index derived from a secret (exit 42). Findings and the
# one suppression file: docs/measurements/2026-12-07-ctime.
#
#   scripts/check-ctime.sh            # the check: must pass
#   scripts/check-ctime.sh --self-test # also proves it can fail: two deliberate leaks must be caught
#
# Needs valgrind (installed with apt-get when missing and running as root; otherwise fails).
# Bounded: about 35 s under valgrind on one core after the build (CTIME_TIMEOUT, default 300 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

self_test=0
case "${1:-}" in
    "") ;;
    --self-test) self_test=1 ;;
    *) echo "usage: $0 [--self-test]" >&2; exit 2 ;;
esac

if ! command -v valgrind >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "check-ctime: installing valgrind" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "check-ctime: FAIL: valgrind is not installed and cannot be installed here" \
            "(needs root and apt-get); install it (Debian/Ubuntu: apt-get install valgrind)" >&2
        exit 1
    fi
fi
case "$(uname -m)" in
    x86_64) ;;
    *) echo "check-ctime: FAIL: the memcheck client requests are implemented for x86_64 only" >&2
       exit 1 ;;
esac

# Its own workspace (so the test-only `ctime-taint` feature of umbrald-core never reaches a
# production build), sharing the main target directory. Release profile with line tables.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked --manifest-path crates/umbrald-ctime/Cargo.toml
bin="$CARGO_TARGET_DIR/release/umbrald-ctime"

timeout_s="${CTIME_TIMEOUT:-300}"
run() {
    timeout "$timeout_s" valgrind --error-exitcode=42 --track-origins=yes \
        --suppressions=crates/umbrald-ctime/ecdsa-sign.supp "$bin" "$@"
}

start=$(date +%s)
set +e
run
rc=$?
set -e
if [ "$rc" != 0 ]; then
    if [ "$rc" = 42 ]; then
        echo "check-ctime: FAIL: memcheck found a branch or memory index depending on a secret" \
            "(see the errors above)" >&2
    else
        echo "check-ctime: FAIL: the check did not complete (exit $rc)" >&2
    fi
    exit 1
fi
echo "check-ctime: ok: no secret-dependent branch or index ($(( $(date +%s) - start )) s under valgrind)"

if [ "$self_test" = 1 ]; then
    for mode in leak leak-vartime; do
        set +e
        run "$mode" >/dev/null 2>&1
        rc=$?
        set -e
        if [ "$rc" != 42 ]; then
            echo "check-ctime: FAIL: the deliberate leak '$mode' was not caught (exit $rc)" >&2
            exit 1
        fi
        echo "check-ctime: ok: the deliberate leak '$mode' is caught (memcheck exit 42)"
    done
fi
