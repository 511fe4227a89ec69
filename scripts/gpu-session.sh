#!/usr/bin/env bash
# One device call that checks and measures a kernel change against the previous build, for the
# lent GPU machines (no Rust there: build here with `scripts/gpu-device-check.sh build DIR` and
# `scripts/gpu-device-check.sh build-base COMMIT DIR` for the baseline; carry DIR).
#
#   scripts/gpu-session.sh [DIR]
#
# Steps, each with its own timeout, results under $OUT (default ./gpu-session-out):
#   1. the ignored GPU tests, once per table placement (local, then shared memory):
#      tests-local.log, tests-shared.log
#   2. scripts/gpu-kernel-ab.sh: baseline, current, baseline again, then $VARIANTS (and
#      Nsight Compute with NCU=1): ab/ab.md, ab/ncu.txt
#   3. the server's GPU lane test: lane.log
#   4. end to end: a short warm-up run, the baseline server, the current one once per entry of
#      $E2E_CONFIGS (';'-separated lists of VAR=value environment settings for `umbrald
#      serve`, e.g. "UMBRALD_GPU_DECOMPRESS=true"; "-" for none), the baseline again:
#      e2e-warmup/, e2e-base/, e2e-1/, e2e-2/, ..., e2e-base-again/ (the baseline with
#      E2E_BASE_CONFIG's settings: "-" by default, a leading "profile" for the sweep's GPU
#      profile)
#      E2E_CONFIGS=sweep runs, with the load over 4 connections, the defaults and
#      deploy/umbrald-gpu.toml whole, without each of its settings, with the options still
#      open, with whole cfrags instead of compact ones (--whole-cfrags) and with `auto`
#      (about 15 s each; run from the repository root); "sweep;A;B" adds the
#      entries A and B after them (e.g. "E2E_BACKEND=cpu" for the CPU backend).
#   5. with LATENCY=1 only (docs/PERFORMANCE.md): issue 3's
#      single-capsule latency with the CPU backend on cores 0-7 and the load generator on
#      cores 8-15 (scripts/latency-split-cores.sh, about 40 s): latency/
# summary.txt collects one line per step. SKIP_TESTS=1, SKIP_AB=1, SKIP_E2E=1 leave steps out.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/gpu-device-check.sh" lib
dir="${1:-$(cd "$here/.." && pwd)/gpu-carry}"
out="${OUT:-./gpu-session-out}"
mkdir -p "$out"
find_cuda_libs
note() { echo "$*" | tee -a "$out/summary.txt"; }
note "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
# Whether the vCPUs are hyperthreads: per-thread CPU times grow when sibling threads are busy.
note "host: $(lscpu 2>/dev/null | grep -E '^(Model name|Thread\(s\) per core|Core\(s\) per socket|Socket\(s\)):' | sed 's/  */ /g' | paste -sd ';' -)"
# Instruction sets the host work leans on: SHA-256 (the proof and capsule hashes, about 8
# compressions per capsule; several times slower without sha_ni), AES-GCM for QUIC (vaes,
# vpclmulqdq), and the field arithmetic (adx, bmi2).
note "host flags: $(for f in sha_ni vaes vpclmulqdq avx512f avx2 adx bmi2; do grep -qw "$f" /proc/cpuinfo && printf '%s ' "$f" || printf 'no-%s ' "$f"; done)"

if [ "${SKIP_TESTS:-0}" != 1 ]; then
    for placement in local shared; do
        shared=0
        [ $placement = shared ] && shared=1
        t0=$SECONDS
        UMBRALD_GPU_TEST_TABLE_SHARED=$shared \
            UMBRALD_GPU_TEST_MULS="${UMBRALD_GPU_TEST_MULS:-1000000}" \
            timeout --kill-after=10 180 "$dir/gpu-tests" --ignored --nocapture --test-threads 1 \
            >"$out/tests-$placement.log" 2>&1
        note "gpu tests ($placement tables): rc=$? ($((SECONDS - t0)) s)"
        grep -E "^test |test result" "$out/tests-$placement.log" | tee -a "$out/summary.txt"
    done
fi

if [ "${SKIP_AB:-0}" != 1 ]; then
    t0=$SECONDS
    OUT="$out/ab" "$here/gpu-kernel-ab.sh" "$dir" >/dev/null 2>&1
    note "kernel A/B: rc=$? ($((SECONDS - t0)) s)"
    grep -E "^###|^\| [0-9]|^\(" "$out/ab/ab.md" | tee -a "$out/summary.txt"
fi

if [ "${SKIP_TESTS:-0}" != 1 ]; then
    t0=$SECONDS
    timeout --kill-after=10 120 "$dir/gpu-lane-tests" --ignored --nocapture --test-threads 1 \
        >"$out/lane.log" 2>&1
    note "server gpu lane test: rc=$? ($((SECONDS - t0)) s)"
fi

if [ "${SKIP_E2E:-0}" != 1 ]; then
    e2e() {
        local label="$1" bindir="$2" settings="$3" t0=$SECONDS
        mkdir -p "$out/$label"
        # shellcheck disable=SC2086
        env $([ "$settings" = - ] || echo $settings) OUT="$out/$label" E2E_ONLY=1 \
            "$here/gpu-device-check.sh" run "$bindir" >/dev/null 2>&1
        note "e2e $label ($settings): rc=$? ($((SECONDS - t0)) s)"
        grep -E "items/s|throughput|p99|CPU|fallbacks|audit|outside the server" "$out/$label/e2e-bench.txt" \
            "$out/$label/e2e-metrics.txt" 2>/dev/null | grep -v "^[^:]*:# " | head -n 20 | tee -a "$out/summary.txt"
        grep -E "busiest|server on CPUs|generator on CPUs" "$out/$label/summary.txt" 2>/dev/null | tee -a "$out/summary.txt"
        # The lane's settings as the server read them, and any device path its self-test
        # turned off (one_call).
        grep -hoE "GPU lane .*|[a-z -]*failed the self-test[^\"]*" "$out/$label/serve.log" 2>/dev/null \
            | sed 's/^/  /' | head -n 3 | tee -a "$out/summary.txt"
        # Mean wall time of each kind of device call, from umbrald_gpu_call_seconds.
        awk -F'[{}" ]+' '/^umbrald_gpu_call_seconds_(sum|count)/ {
                k = ($1 ~ /_sum$/) ? "s" : "n"; v[$3, k] = $NF; calls[$3] = 1 }
            END { for (c in calls) if (v[c, "n"] > 0)
                printf "  device call %s: %d calls, mean %.2f ms\n", c, v[c, "n"], 1000 * v[c, "s"] / v[c, "n"] }' \
            "$out/$label/e2e-metrics.txt" 2>/dev/null | sort | tee -a "$out/summary.txt"
    }
    # The first server of a call has run slow (cold machine): a short unrecorded warm-up run
    # first, then the baseline before and after the current builds.
    E2E_SECONDS=3 e2e e2e-warmup "$dir" -
    # The sweep's GPU profile: the load over 4 connections and deploy/umbrald-gpu.toml.
    profile="E2E_CONNECTIONS=4 E2E_CONCURRENCY=256 E2E_MAX_QUEUE_ITEMS=262144 UMBRALD_CONFIG=deploy/umbrald-gpu.toml"
    # The baseline's settings: E2E_BASE_CONFIG ("-" by default; a leading word "profile"
    # stands for the profile, e.g. "profile E2E_BACKEND=auto").
    base_settings="${E2E_BASE_CONFIG:--}"
    base_settings="${base_settings/#profile/$profile}"
    [ -x "$dir/base/umbrald" ] && e2e e2e-base "$dir/base" "$base_settings"
    configs_text="${E2E_CONFIGS:--}"
    if [ "${configs_text%%;*}" = sweep ]; then
        # The load over 4 connections (one connection's packets are decrypted in order by one
        # task, which bounds a single connection; docs/PERFORMANCE.md#gpu-end-to-end); defaults first, then
        # deploy/umbrald-gpu.toml (run from the repository root) as a whole and with each of
        # its settings undone in turn, then the options still open on top of it.
        # Entries after "sweep;" run after these.
        extra=""
        [ "$configs_text" != sweep ] && extra=";${configs_text#sweep;}"
        configs_text="E2E_CONNECTIONS=4;$profile"
        configs_text+=";$profile UMBRALD_GPU_BATCHES_IN_FLIGHT=1"
        configs_text+=";$profile UMBRALD_GPU_PIPELINES=0"
        configs_text+=";$profile UMBRALD_IO_THREADS=0"
        configs_text+=";$profile UMBRALD_GPU_BATCHES_IN_FLIGHT=3"
        configs_text+=";$profile UMBRALD_GPU_HOST_THREADS=8"
        configs_text+=";$profile E2E_CONNECTIONS=8 E2E_CONCURRENCY=384 E2E_MAX_QUEUE_ITEMS=262144"
        configs_text+=";$profile MIMALLOC_PURGE_DELAY=60000"
        configs_text+=";$profile E2E_BENCH_FLAGS=--whole-cfrags"
        configs_text+=";$profile E2E_BACKEND=auto"
        configs_text+="$extra"
    fi
    IFS=';' read -r -a configs <<<"$configs_text"
    i=0
    for c in "${configs[@]}"; do
        i=$((i + 1))
        e2e "e2e-$i" "$dir" "$c"
    done
    [ -x "$dir/base/umbrald" ] && e2e e2e-base-again "$dir/base" "$base_settings"
fi

if [ "${LATENCY:-0}" = 1 ]; then
    t0=$SECONDS
    OUT="$out/latency" timeout --kill-after=10 150 "$here/latency-split-cores.sh" "$dir/umbrald" \
        >/dev/null 2>&1
    note "latency on split cores: rc=$? ($((SECONDS - t0)) s)"
    cat "$out/latency/summary.txt" >>"$out/summary.txt" 2>/dev/null
fi
note "done in $SECONDS s"
