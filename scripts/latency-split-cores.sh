#!/usr/bin/env bash
# Issue 3's latency figure with the load generator off the server's cores: `umbrald serve
# --backend cpu` pinned to one set of cores, `umbrald bench` to the others. First the
# single-capsule peak (closed loop), then open-loop phases at a fraction of it.
#
#   scripts/latency-split-cores.sh [UMBRALD_BINARY]
#
# Environment (defaults for a 16-core machine; on 2 cores use SERVER_CORES=1 CLIENT_CORES=0
# WORKERS=1):
#   SERVER_CORES=0-7  CLIENT_CORES=8-15  WORKERS=0 (one per server core)  IO_THREADS=0
#   LOAD=0.5  PHASES=3  SECONDS_PER_PHASE=5  CONNECTIONS=8  PEAK_CONCURRENCY=64
#   OUT=./latency-out
# Results: $OUT/summary.txt (the peak, then one line of latency percentiles per phase and the
# server's own view), the full bench output of each phase and the server log beside it.
set -uo pipefail

command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
bin="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/umbrald}"
out="${OUT:-./latency-out}"
server_cores="${SERVER_CORES:-0-7}"
client_cores="${CLIENT_CORES:-8-15}"
mkdir -p "$out"
note() { echo "$*" | tee -a "$out/summary.txt"; }

data="$(mktemp -d)"
quic=127.0.0.1:24433
http=127.0.0.1:29464
taskset -c "$server_cores" "$bin" serve --backend cpu --listen "$quic" --metrics-listen "$http" \
    --data-dir "$data" --workers "${WORKERS:-0}" --io-threads "${IO_THREADS:-0}" --log info \
    >"$out/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
fp=""
for _ in $(seq 60); do
    fp="$(sed -n 's/^certificate SHA-256 fingerprint: //p' "$out/serve.log" | head -n 1)"
    [ -n "$fp" ] && break
    kill -0 $server 2>/dev/null || break
    sleep 1
done
if [ -z "$fp" ]; then
    note "latency: server did not start (see serve.log)"
    exit 1
fi
note "latency: server on cores $server_cores ($(grep -o 'workers=[0-9]*' "$out/serve.log" | head -n 1)), load generator on cores $client_cores"

bench() {
    local log="$1"
    shift
    timeout --kill-after=10 $(( ${SECONDS_PER_PHASE:-5} + 40 )) \
        taskset -c "$client_cores" "$bin" bench --addr "$quic" --fingerprint "$fp" --batch 1 \
        --connections "${CONNECTIONS:-8}" --duration "${SECONDS_PER_PHASE:-5}s" --warmup 2s \
        --no-progress --metrics-url "http://$http/metrics" "$@" >"$out/$log" 2>&1
}

bench peak.txt --concurrency "${PEAK_CONCURRENCY:-64}"
peak="$(awk '/^  throughput/ {print $2; exit}' "$out/peak.txt")"
if [ -z "$peak" ]; then
    note "latency: no peak measured (see peak.txt)"
    exit 1
fi
rate="$(awk -v p="$peak" -v l="${LOAD:-0.5}" 'BEGIN {printf "%.0f", p * l}')"
note "single-capsule peak: $peak req/s; phases at ${LOAD:-0.5} of it: $rate req/s"
for i in $(seq "${PHASES:-3}"); do
    bench "phase-$i.txt" --rate "$rate"
    note "phase $i: $(grep -E '^  throughput' "$out/phase-$i.txt" | tr -s ' ')"
    note "  latency ms (p50 p90 p99 p99.9 max mean): $(awk '/^    corrected +[0-9]/ {print $2, $3, $4, $5, $6, $7}' "$out/phase-$i.txt")"
    grep -E 'request time|CPU' "$out/phase-$i.txt" | tr -s ' ' | sed 's/^/ /' | tee -a "$out/summary.txt"
done
