#!/usr/bin/env bash
# The GPU checks of umbrald, for a machine with an NVIDIA GPU but no Rust toolchain and no
# network (the lent device machines: x86-64, CUDA 13 driver, nvcc/NVRTC 13 installed).
#
# Two steps:
#
#   scripts/gpu-device-check.sh build [DIR]   # here, with cargo: release-build the binaries
#                                             # below and copy them (stripped) into DIR
#   scripts/gpu-device-check.sh run [DIR]     # there: run every check, results under $OUT
#
# and, for side-by-side runs (scripts/gpu-session.sh, scripts/gpu-kernel-ab.sh), the baseline:
#
#   scripts/gpu-device-check.sh build-base COMMIT [DIR]   # here: gpu_bench and umbrald of
#                                   # COMMIT, built in a temporary worktree, as
#                                   # DIR/gpu_bench-base and DIR/base/umbrald
#
# scripts/gpu-kernel-ab.sh times kernel versions and compile variants side by side.
#
# DIR defaults to gpu-carry/ at the repository root (add `/gpu-carry/` to .git/info/exclude
# and name it in the device call's `carry`). It holds:
#
#   gpu-tests        crates/umbrald-gpu/tests/gpu.rs (the ignored GPU tests: 1,000,000 random
#                    products vs the CPU, fixed-base U and G, cfrags verified by umbral-pre)
#   gpu-lane-tests   crates/umbrald-server/tests/gpu_lane.rs (its ignored test: a server with
#                    backend = gpu, cfrags verified by umbral-pre, no fallback)
#   gpu_bench        crates/umbrald-gpu/examples/gpu_bench.rs (products/s vs batch size)
#   umbrald          the server and load generator (umbrald serve --backend gpu, umbrald bench)
#
# `run` writes into $OUT (default ./gpu-check-out): summary.txt (one line per step),
# gpu-tests.log, gpu-lane.log, bench.md, serve.log, e2e-bench.txt, e2e-metrics.txt,
# env.txt, threads.txt (CPU time of each server thread). Each step has its own timeout; the
# whole run is meant to stay under 9 minutes.
# Environment: UMBRALD_GPU_TEST_MULS (default 1000000), E2E_SECONDS (default 20),
# E2E_BATCH (capsules per request, default 256), E2E_CONCURRENCY (default 64),
# E2E_CONNECTIONS (QUIC connections of the load generator, default 1), E2E_BACKEND
# (default gpu; auto serves on GPU and CPU workers together), E2E_MAX_QUEUE_ITEMS (the
# server's queue bound, default 131072), E2E_BENCH_FLAGS (more `umbrald bench` flags, e.g.
# --whole-cfrags), E2E_SERVER_CPUS and E2E_CLIENT_CPUS (taskset CPU lists for the server and
# the load generator, e.g. 0-11 and 12-15: the server's own rate without the generator on its
# cores; unset: both on every core), E2E_ONLY=1 (skip steps 1-3).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-run}"
dir="${2:-$root/gpu-carry}"

build() {
    set -e
    cd "$root"
    mkdir -p "$dir"
    # Test binaries have hashed names: ask cargo where it put them.
    local json
    json="$(mktemp)"
    cargo test --release -p umbrald-gpu --test gpu --no-run --message-format=json >"$json"
    cargo test --release -p umbrald-server --test gpu_lane --no-run --message-format=json >>"$json"
    python3 - "$json" "$dir" <<'EOF'
import json, shutil, sys
want = {"gpu": "gpu-tests", "gpu_lane": "gpu-lane-tests"}
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
        name = msg["target"]["name"]
        if name in want and "test" in msg["target"]["kind"]:
            shutil.copy(msg["executable"], f"{sys.argv[2]}/{want[name]}")
EOF
    rm -f "$json"
    cargo build --release -p umbrald-gpu --example gpu_bench
    cargo build --release -p umbrald
    local target="${CARGO_TARGET_DIR:-$root/target}"
    cp "$target/release/examples/gpu_bench" "$target/release/umbrald" "$dir/"
    # Line tables are of no use there and would count against the 64 MiB carried.
    if command -v strip >/dev/null; then
        strip --strip-debug "$dir"/gpu-tests "$dir"/gpu-lane-tests "$dir"/gpu_bench "$dir"/umbrald
    fi
    ls -l "$dir"
    du -sh "$dir"
}

# The baseline's binaries, from a clean worktree of COMMIT with its own target folder
# ($BASE_TARGET, default /tmp/umbrald-base-target, kept between calls for speed). Each binary
# is built by its own cargo command: one command with `-p umbrald-gpu --example gpu_bench
# -p umbrald` builds only the example and leaves an older `umbrald` in place.
build_base() {
    set -e
    local commit="$1" tree target
    cd "$root"
    mkdir -p "$dir/base"
    tree="$(mktemp -d)"
    target="${BASE_TARGET:-/tmp/umbrald-base-target}"
    git worktree add --detach "$tree" "$commit" >/dev/null
    (
        cd "$tree"
        CARGO_TARGET_DIR="$target" cargo build --release -p umbrald-gpu --example gpu_bench
        CARGO_TARGET_DIR="$target" cargo build --release -p umbrald --bin umbrald
    )
    git worktree remove --force "$tree"
    cp "$target/release/examples/gpu_bench" "$dir/gpu_bench-base"
    cp "$target/release/umbrald" "$dir/base/umbrald"
    if command -v strip >/dev/null; then
        strip --strip-debug "$dir/gpu_bench-base" "$dir/base/umbrald"
    fi
    echo "baseline $(git rev-parse --short "$commit") in $dir/gpu_bench-base and $dir/base/umbrald"
}

out="${OUT:-$root/gpu-check-out}"
summary() { echo "$*" | tee -a "$out/summary.txt"; }

# Runs one step: name, timeout in seconds, log file, command...
step() {
    local name="$1" limit="$2" log="$3"
    shift 3
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$out/$log" 2>&1
    local rc=$?
    summary "$name: rc=$rc ($((SECONDS - t0)) s) -> $log"
    return $rc
}

# Makes libnvrtc and libcuda findable (cudarc loads them by soname at run time).
find_cuda_libs() {
    local extra=""
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
        [ -d "$d" ] && extra="$extra:$d"
    done
    # NVRTC from the Python wheels, if the toolkit's is missing.
    local so
    so="$(find /usr /opt \( -name 'libnvrtc.so.13*' -o -name 'libnvrtc.so.12*' \) -not -name '*builtins*' 2>/dev/null | head -n 1)"
    [ -n "$so" ] && extra="$extra:$(dirname "$so")"
    export LD_LIBRARY_PATH="${extra#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

run() {
    mkdir -p "$out"
    : >"$out/summary.txt"
    local needed="gpu-tests gpu-lane-tests gpu_bench umbrald"
    [ "${E2E_ONLY:-0}" = 1 ] && needed="umbrald"
    for bin in $needed; do
        if [ ! -x "$dir/$bin" ]; then
            summary "missing $dir/$bin (run '$0 build' where cargo is, and carry $dir)"
            return 1
        fi
    done
    find_cuda_libs
    {
        date -u
        uname -a
        nvidia-smi 2>&1
        echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        ls -l /usr/local/cuda/lib64/libnvrtc* 2>&1
        nproc
    } >"$out/env.txt" 2>&1
    summary "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"

    if [ "${E2E_ONLY:-0}" != 1 ]; then
    # 1. The ignored GPU tests of umbrald-gpu (first: NVRTC and the driver's JIT run here).
    UMBRALD_GPU_TEST_MULS="${UMBRALD_GPU_TEST_MULS:-1000000}" \
        step "gpu tests (umbrald-gpu)" 240 gpu-tests.log \
        "$dir/gpu-tests" --ignored --nocapture --test-threads 1
    grep -E "^test |multiplications|fixed-base|CUDA device|test result" "$out/gpu-tests.log" | tee -a "$out/summary.txt"

    # 2. Products/s against batch size.
    step "bench (gpu_bench)" 150 bench.md "$dir/gpu_bench" --reps 3
    cat "$out/bench.md"

    # 3. The server's ignored GPU test (backend = gpu, cfrags verified, no fallback).
    step "server gpu lane test" 120 gpu-lane.log \
        "$dir/gpu-lane-tests" --ignored --nocapture --test-threads 1
    grep -E "^test |^umbrald_gpu|test result" "$out/gpu-lane.log" | tee -a "$out/summary.txt"
    fi

    # 4. End to end: umbrald serve --backend gpu, loaded by umbrald bench.
    local data quic=127.0.0.1:14433 http=127.0.0.1:19464
    data="$(mktemp -d)"
    local server_pin=() client_pin=()
    [ -n "${E2E_SERVER_CPUS:-}" ] && server_pin=(taskset -c "$E2E_SERVER_CPUS")
    [ -n "${E2E_CLIENT_CPUS:-}" ] && client_pin=(taskset -c "$E2E_CLIENT_CPUS")
    UMBRALD_BATCHER_MAX_QUEUE_ITEMS="${E2E_MAX_QUEUE_ITEMS:-131072}" \
        "${server_pin[@]}" "$dir/umbrald" serve --backend "${E2E_BACKEND:-gpu}" --listen "$quic" --metrics-listen "$http" \
        --data-dir "$data" --log info >"$out/serve.log" 2>&1 &
    local server=$!
    local fp="" waited=0
    while [ $waited -lt 90 ] && kill -0 $server 2>/dev/null; do
        fp="$(sed -n 's/^certificate SHA-256 fingerprint: //p' "$out/serve.log" | head -n 1)"
        [ -n "$fp" ] && break
        sleep 1
        waited=$((waited + 1))
    done
    if [ -z "$fp" ]; then
        summary "e2e: server did not start (see serve.log)"
        kill $server 2>/dev/null
        return 1
    fi
    summary "e2e: server up after ${waited} s: $(grep -o 'GPU found.*' "$out/serve.log" | head -n 1)"
    [ ${#server_pin[@]} -gt 0 ] && summary "e2e: server on CPUs $E2E_SERVER_CPUS"
    [ ${#client_pin[@]} -gt 0 ] && summary "e2e: load generator on CPUs $E2E_CLIENT_CPUS"
    step "e2e bench" $(( ${E2E_SECONDS:-20} + 60 )) e2e-bench.txt \
        "${client_pin[@]}" "$dir/umbrald" bench --addr "$quic" --fingerprint "$fp" \
        --concurrency "${E2E_CONCURRENCY:-64}" --batch "${E2E_BATCH:-256}" \
        --connections "${E2E_CONNECTIONS:-1}" \
        --duration "${E2E_SECONDS:-20}s" --warmup 3s --metrics-url "http://$http/metrics" \
        ${E2E_BENCH_FLAGS:-}
    tail -n 30 "$out/e2e-bench.txt"
    if command -v curl >/dev/null; then
        curl -s "http://$http/metrics" >"$out/e2e-metrics.txt"
    else
        python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://$http/metrics').read().decode())" >"$out/e2e-metrics.txt"
    fi
    grep -E "^umbrald_(gpu|lane|backend_info|items_total|batch_size_items_(sum|count))" "$out/e2e-metrics.txt" \
        | grep -v "_bucket" | tee -a "$out/summary.txt"
    # CPU time of each server thread over its life (which thread groups are near their
    # ceiling): threads.txt, the busiest five in the summary.
    local tick task
    tick="$(getconf CLK_TCK)"
    for task in /proc/$server/task/*; do
        # Fields 14 and 15 of stat (after the parenthesized name): user and system ticks.
        awk -v tid="${task##*/}" -v name="$(cat "$task/comm" 2>/dev/null)" -v hz="$tick" \
            '{ sub(/^.*\) /, ""); printf "%.2f s %s %s\n", ($12 + $13) / hz, name, tid }' \
            "$task/stat" 2>/dev/null
    done | sort -rn >"$out/threads.txt"
    summary "e2e: busiest server threads (CPU over the server's life): $(head -n 5 "$out/threads.txt" | awk '{printf "%s %s %s; ", $3, $1, $2}')"
    kill -TERM $server 2>/dev/null
    wait $server 2>/dev/null
    rm -rf "$data"
    summary "done"
}

case "$mode" in
    build) build ;;
    build-base)
        [ -n "${2:-}" ] || { echo "usage: $0 build-base COMMIT [DIR]" >&2; exit 2; }
        dir="${3:-$root/gpu-carry}"
        build_base "$2"
        ;;
    run) run ;;
    lib) ;; # sourced for its functions (scripts/gpu-kernel-ab.sh)
    *)
        echo "usage: $0 build|run [DIR]" >&2
        exit 2
        ;;
esac
