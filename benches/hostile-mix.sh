#!/usr/bin/env bash
# A well-behaved client's latency alone and under the hostile mix (every class of
# crates/umbrald-server/tests/hostile.rs at once, the `hostile_mix` example), and the server's
# memory before and after.
#
#   benches/hostile-mix.sh
#
# A release `umbrald serve` (CPU backend, QUIC and HTTPS, node keys made for the run) pinned to
# SERVER_CORES; `umbrald bench` (single capsule, open loop at RATE requests/s) pinned to
# BENCH_CORES; then the same bench with the attacker pinned to ATTACK_CORES, once per entry of
# ATTACK_PLACEMENTS (a space-separated list of core sets).
#
# Environment: SERVER_CORES=0 BENCH_CORES=1 ATTACK_PLACEMENTS="0 1" WORKERS=1 RATE=200
#   SECONDS_PER_PHASE=15 OUT=./hostile-out ATTACK_ARGS= (more `hostile_mix` options, e.g.
#   "--flood-rate 0 --huge-rate 0" for the unpaced volumetric variant)
# Results: $OUT/summary.txt (p50/p99 alone and under each placement, the ratio, errors, the
# server's VmRSS/VmHWM after each phase), the bench JSON and text of each phase, the
# attacker's per-class counts and the server log.
set -uo pipefail

command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-./hostile-out}"
server_cores="${SERVER_CORES:-0}"
bench_cores="${BENCH_CORES:-1}"
placements="${ATTACK_PLACEMENTS:-0 1}"
rate="${RATE:-200}"
secs="${SECONDS_PER_PHASE:-15}"
mkdir -p "$out"
: >"$out/summary.txt"
note() { echo "$*" | tee -a "$out/summary.txt"; }

{ cargo build --release --locked -p umbrald \
    && cargo build --release --locked -p umbrald-server --example hostile_mix; } \
    >"$out/build.log" 2>&1 || { note "build failed (see build.log)"; exit 1; }
bin="$root/target/release/umbrald"
attacker="$root/target/release/examples/hostile_mix"

data="$(mktemp -d)"
echo "hostile-mix passphrase" >"$data/pass"
"$bin" keygen --node --node-keys "$data/node.keys" --node-keys-passphrase-file "$data/pass" \
    >"$out/keygen.log" 2>&1 || { note "keygen failed (see keygen.log)"; exit 1; }
quic=127.0.0.1:24433
https=127.0.0.1:29151
http=127.0.0.1:29464
taskset -c "$server_cores" "$bin" serve --backend cpu --listen "$quic" --metrics-listen "$http" \
    --https-listen "$https" --node-keys "$data/node.keys" \
    --node-keys-passphrase-file "$data/pass" --data-dir "$data/dir" \
    --workers "${WORKERS:-1}" --log warn >"$out/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
fp=""
for _ in $(seq 60); do
    fp="$(sed -n 's/^certificate SHA-256 fingerprint: //p' "$out/serve.log" | head -n 1)"
    [ -n "$fp" ] && break
    kill -0 $server 2>/dev/null || break
    sleep 1
done
[ -n "$fp" ] || { note "server did not start (see serve.log)"; exit 1; }

memory() {
    awk '/^VmRSS|^VmHWM/ {printf "%s %s %s  ", $1, $2, $3}' "/proc/$server/status"
}
bench() {
    local name="$1"
    timeout --kill-after=10 $(( secs + 40 )) \
        taskset -c "$bench_cores" "$bin" bench --addr "$quic" --fingerprint "$fp" --batch 1 \
        --rate "$rate" --duration "${secs}s" --warmup 2s --no-progress \
        --json "$out/$name.json" >"$out/$name.txt" 2>&1
}
line() {
    python3 - "$out/$1.json" "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r["latency_ms"]["corrected"]
req = r["requests"]
print(f"{sys.argv[2]:<14} p50 {lat['p50']:.3f} ms  p99 {lat['p99']:.3f} ms  max {lat['max']:.3f} ms"
      f"  issued {req['issued']} answered {req['answered']} failed {req['failed']}"
      f" unfinished {req['unfinished']} errors {dict(r['errors'])}")
EOF
}
p99() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["latency_ms"]["corrected"]["p99"])' "$out/$1.json"; }

note "hostile mix: $(nproc) cores; server on $server_cores (workers ${WORKERS:-1}), bench on $bench_cores at $rate req/s, ${secs}s per phase"
note "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
note "memory at start: $(memory)"
bench alone
note "$(line alone)"
note "memory after alone: $(memory)"
for cores in $placements; do
    name="mix-attacker-on-$cores"
    taskset -c "$cores" "$attacker" --addr "$quic" --https "$https" --fingerprint "$fp" \
        --seconds $(( secs + 4 )) ${ATTACK_ARGS:-} >"$out/$name.attacker.txt" 2>&1 &
    attack=$!
    sleep 1
    bench "$name"
    wait $attack
    note "$(line "$name")"
    note "$name: p99 ratio to alone $(python3 -c "print(round($(p99 "$name") / $(p99 alone), 2))")"
    note "memory after $name: $(memory)"
    sed 's/^/  attacker: /' "$out/$name.attacker.txt" | tee -a "$out/summary.txt"
done
curl -s "http://$http/metrics" 2>/dev/null \
    | grep -E '^umbrald_(connections_refused_total|streams_reset_total|https_connections_refused_total|requests_total\{code="(malformed|too_large)")' \
    | sed 's/^/  server: /' | tee -a "$out/summary.txt"
note "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
