#!/usr/bin/env bash
# The dashboard against a live appliance, on loopback: `umbrald serve` (release build, CPU
# backend, NuCypher HTTPS on) under `umbrald bench` load, scraped every second by a real
# Prometheus that loads deploy/prometheus/rules.yml. Then every panel's PromQL of
# deploy/grafana/umbrald.json goes through Prometheus' HTTP API (deploy/grafana/queries.py
# live): it fails on a query error, or on a panel with no number except the "GPU ..." panels;
# the loaded rules must be healthy with no GPU alert firing. No Grafana installs here: the
# dashboard is drawn from Prometheus' answers to its panels' range queries (queries.py
# preview), and headless Chromium takes a screenshot of it and of Prometheus' alerts page.
#
#   deploy/grafana/live-check.sh [OUT]        (default OUT: target/dashboard-check)
#
# Needs target/release/umbrald (`cargo build --release -p umbrald`), Prometheus and Chromium
# (installed with apt when missing and run as root). LOAD_SECONDS (default 60) sets the load,
# RATE_INTERVAL (default 15s) the panels' rate window.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
OUT=${1:-target/dashboard-check}
LOAD_SECONDS=${LOAD_SECONDS:-60}
# The panels' $__rate_interval: Grafana's is four scrape intervals or more.
export RATE_INTERVAL=${RATE_INTERVAL:-15s}
UMBRALD=$ROOT/target/release/umbrald

need() {
    if ! command -v "$1" >/dev/null; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2"
        else
            echo "live-check: $1 missing (apt-get install $2)" >&2
            exit 1
        fi
    fi
}
need prometheus prometheus
need chromium chromium
need curl curl
if [ ! -x "$UMBRALD" ]; then
    echo "live-check: $UMBRALD missing: cargo build --release -p umbrald" >&2
    exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Four free loopback ports: QUIC (UDP), HTTPS, metrics, Prometheus.
read -r QUIC_PORT HTTPS_PORT METRICS_PORT PROM_PORT < <(python3 - <<'EOF'
import socket
socks, ports = [], []
for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM, socket.SOCK_STREAM, socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    ports.append(str(s.getsockname()[1]))
print(" ".join(ports))
EOF
)
METRICS=http://127.0.0.1:$METRICS_PORT
PROM=http://127.0.0.1:$PROM_PORT

echo "== umbrald serve (QUIC $QUIC_PORT, HTTPS $HTTPS_PORT, metrics $METRICS_PORT)"
printf 'live-check passphrase\n' > "$WORK/passphrase"
"$UMBRALD" keygen --node --out-dir "$WORK/keys" --node-keys-passphrase-file "$WORK/passphrase" \
    > "$OUT/keygen.txt"
"$UMBRALD" serve --data-dir "$WORK/data" --listen "127.0.0.1:$QUIC_PORT" \
    --metrics-listen "127.0.0.1:$METRICS_PORT" --https-listen "127.0.0.1:$HTTPS_PORT" \
    --node-keys "$WORK/keys/node.keys" --node-keys-passphrase-file "$WORK/passphrase" \
    > "$OUT/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    curl -sf "$METRICS/readyz" >/dev/null && break
    sleep 0.2
done
curl -sf "$METRICS/readyz"
FINGERPRINT=$(sed -n 's/.*fingerprint: \([0-9a-f]\{64\}\).*/\1/p' "$OUT/serve.log" | head -1)
[ -n "$FINGERPRINT" ] || { echo "live-check: no fingerprint in serve.log" >&2; exit 1; }
curl -sf "$METRICS/status" > "$OUT/status.json"

echo "== prometheus (port $PROM_PORT), scraping every second, rules loaded"
cat > "$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 5s
rule_files:
  - $ROOT/deploy/prometheus/rules.yml
scrape_configs:
  - job_name: umbrald
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" > "$OUT/prometheus.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    curl -sf "$PROM/-/ready" >/dev/null && break
    sleep 0.2
done
prometheus --version 2>&1 | head -1 > "$OUT/versions.txt"
"$UMBRALD" --version >> "$OUT/versions.txt"
chromium --version >> "$OUT/versions.txt" 2>/dev/null || true

echo "== umbrald bench: ${LOAD_SECONDS}s closed loop, and NuCypher HTTPS requests beside it"
# Malformed ReencryptionRequests over HTTPS: answered 400, they fill the HTTPS panels.
(
    end=$((SECONDS + LOAD_SECONDS))
    while [ $SECONDS -lt $end ]; do
        curl -sk -o /dev/null -X POST --data-binary 'not a ReencryptionRequest' \
            "https://127.0.0.1:$HTTPS_PORT/reencrypt" || true
        sleep 0.5
    done
) &
PIDS+=($!)
# The first scrape comes up to 5 s after start: wait for it, so that the counters' values
# before the load are in Prometheus.
for _ in $(seq 100); do
    curl -sf "$PROM/api/v1/query?query=umbrald_connections_total" | grep -q '"value"' && break
    sleep 0.2
done
START=$(date +%s)
"$UMBRALD" bench --addr "127.0.0.1:$QUIC_PORT" --fingerprint "$FINGERPRINT" \
    --concurrency 8 --batch 16 --connections 2 --warmup 2s --duration "${LOAD_SECONDS}s" \
    --metrics-url "$METRICS/metrics" --no-progress > "$OUT/bench.txt" 2>&1
cat "$OUT/bench.txt"
AT=$(date +%s)
curl -sf "$METRICS/metrics" > "$OUT/metrics.txt"
sleep 6  # one more rule evaluation

echo "== every panel's query at the end of the load"
status=0
python3 deploy/grafana/queries.py live deploy/grafana/umbrald.json "$PROM" "$OUT/panels.json" \
    --time "$AT" --allow-empty "GPU " > "$OUT/panels.txt" 2> "$OUT/panels-failures.txt" || status=1
cat "$OUT/panels.txt" "$OUT/panels-failures.txt"

echo "== rules and alerts"
curl -sf "$PROM/api/v1/rules" > "$OUT/rules.json"
curl -sf "$PROM/api/v1/alerts" > "$OUT/alerts.json"
python3 - "$OUT/rules.json" "$OUT/alerts.json" <<'EOF' || status=1
import json, sys
rules = [r for g in json.load(open(sys.argv[1]))["data"]["groups"] for r in g["rules"]]
alerts = json.load(open(sys.argv[2]))["data"]["alerts"]
bad = [r["name"] for r in rules if r["health"] != "ok"]
gpu = [a["labels"]["alertname"] for a in alerts if a["labels"]["alertname"].startswith("UmbraldGpu")]
for r in rules:
    print(f"{r['name']}: health {r['health']}, state {r.get('state')}")
print(f"{len(rules)} rules, {len(alerts)} alerts pending or firing")
if bad or gpu or len(rules) == 0:
    print(f"FAIL unhealthy rules {bad}, GPU alerts on a CPU node {gpu}", file=sys.stderr)
    sys.exit(1)
EOF

echo "== screenshots: the dashboard drawn from Prometheus' answers, and its alerts page"
python3 deploy/grafana/queries.py preview deploy/grafana/umbrald.json "$PROM" "$START" "$AT" \
    "$OUT/dashboard.html"
HEIGHT=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(max(p["gridPos"]["y"]+p["gridPos"]["h"] for p in d["panels"])*30+20)' deploy/grafana/umbrald.json)
shot() {
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$WORK/chromium" --hide-scrollbars --window-size="$3" \
        --virtual-time-budget=10000 --screenshot="$OUT/$1" "$2" > /dev/null 2>&1
}
shot dashboard.png "file://$OUT/dashboard.html" "1620,$HEIGHT"
shot prometheus-alerts.png "$PROM/classic/alerts" 1400,800
ls -l "$OUT"/*.png

if [ "$status" != 0 ]; then
    echo "live-check: FAILED (see $OUT/panels-failures.txt)" >&2
    exit 1
fi
echo "live-check: every panel answered; rules healthy; no GPU alert on the CPU node. Output: $OUT"
