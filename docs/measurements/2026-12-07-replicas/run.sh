#!/usr/bin/env bash
# The runs behind README.md in this directory: spreading over replicas through the client pool
# (`umbrald bench --addr A --addr B ...`) and failover when a replica is killed.
#
#   ./docs/measurements/2026-12-07-replicas/run.sh [BIN]    (BIN: target/release/umbrald)
#
# Needs two cores (taskset -c 0 and -c 1). Writes every report next to this script, in out/.
set -euo pipefail

BIN=${1:-target/release/umbrald}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/out
WORK=$(mktemp -d)
mkdir -p "$OUT"

cleanup() {
    for f in "$WORK"/*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME PORT CPUS [extra serve flags...]: starts a replica, waits for its fingerprint line,
# and leaves its pid in $WORK/NAME.pid.
start() {
    local name=$1 port=$2 cpus=$3
    shift 3
    local log=$WORK/$name.out
    : >"$log"
    taskset -c "$cpus" "$BIN" serve --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 \
        --workers 1 --log warn --data-dir "$WORK/$name" "$@" >"$log" 2>"$WORK/$name.err" &
    echo $! >"$WORK/$name.pid"
    for _ in $(seq 600); do
        grep -q '^certificate SHA-256 fingerprint: ' "$log" && return 0
        sleep 0.05
    done
    echo "replica $name did not start" >&2
    return 1
}

stop() { # SIGTERM and wait
    local pid
    pid=$(cat "$WORK/$1.pid")
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

# The shared certificate: the first replica makes it, every other one is given it.
start seed "$(free_port)" 0-1
FP=$(sed -n 's/^certificate SHA-256 fingerprint: //p' "$WORK/seed.out")
stop seed
CERT=(--cert "$WORK/seed/cert.pem" --key "$WORK/seed/key.pem")
echo "fingerprint $FP"

bench() { # bench OUTNAME CPUS [bench flags...]
    local name=$1 cpus=$2
    shift 2
    echo "+ taskset -c $cpus umbrald bench $* --json $name.json" | tee "$OUT/$name.txt"
    taskset -c "$cpus" "$BIN" bench --fingerprint "$FP" --no-progress --json "$OUT/$name.json" "$@" \
        | tee -a "$OUT/$name.txt"
}

LOAD=(--batch 64 --concurrency 12 --duration 8s --warmup 2s)

echo "== 1. spreading at equal cores: every replica on CPU 1, the generator on CPU 0"
P1=$(free_port) P2=$(free_port) P3=$(free_port)
start a "$P1" 1 "${CERT[@]}"
start b "$P2" 1 "${CERT[@]}"
start c "$P3" 1 "${CERT[@]}"
for round in 1 2; do
    bench "equal-one-$round" 0 --addr "127.0.0.1:$P1" "${LOAD[@]}"
    bench "equal-three-$round" 0 --addr "127.0.0.1:$P1" --addr "127.0.0.1:$P2" \
        --addr "127.0.0.1:$P3" "${LOAD[@]}"
done
stop a; stop b; stop c

echo "== 2. scaling on disjoint cores: one replica on CPU 0 vs replicas on CPU 0 and CPU 1; the generator on both"
P1=$(free_port) P2=$(free_port)
start x "$P1" 0 "${CERT[@]}"
start y "$P2" 1 "${CERT[@]}"
for round in 1 2; do
    bench "disjoint-one-$round" 0-1 --addr "127.0.0.1:$P1" "${LOAD[@]}"
    bench "disjoint-two-$round" 0-1 --addr "127.0.0.1:$P1" --addr "127.0.0.1:$P2" "${LOAD[@]}"
done
stop x; stop y

echo "== 3. failover: three replicas, the second SIGKILLed 4 s into the run and started again 4 s later"
for timeout in 2s 5s; do
    P1=$(free_port) P2=$(free_port) P3=$(free_port)
    start a "$P1" 0-1 "${CERT[@]}"
    start b "$P2" 0-1 "${CERT[@]}"
    start c "$P3" 0-1 "${CERT[@]}"
    bench "failover-$timeout" 0-1 --addr "127.0.0.1:$P1" --addr "127.0.0.1:$P2" \
        --addr "127.0.0.1:$P3" --batch 8 --concurrency 12 --duration 14s --warmup 1s \
        --request-timeout "$timeout" --connect-timeout 1s &
    BENCH=$!
    sleep 5
    echo "+ $(date -u +%T.%N) kill -KILL replica b (127.0.0.1:$P2)" | tee -a "$OUT/failover-$timeout.events"
    kill -KILL "$(cat "$WORK/b.pid")"
    sleep 4
    start b "$P2" 0-1 "${CERT[@]}"
    echo "+ $(date -u +%T.%N) replica b listening again" | tee -a "$OUT/failover-$timeout.events"
    wait "$BENCH"
    stop a; stop b; stop c
done
