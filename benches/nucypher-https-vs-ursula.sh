#!/usr/bin/env bash
# umbrald's HTTPS /reencrypt against what an Ursula runs today, in one run on one machine:
#
#   A. umbrald, HTTPS and QUIC NuCypher paths alternating (64 capsules per request, one
#      worker per core, the client in the same process on the same cores):
#      crates/umbrald-server/tests/https.rs `throughput_https_vs_quic`;
#   B. nucypher 7.6.1's Ursula work for the same requests in Python on one pinned core: the
#      `reencrypt()` loop of network/server.py, and its whole Flask handler
#      (benches/python/ursula_reencrypt_loop.py).
#
# A and B alternate ROUNDS times. Per core, umbrald's HTTPS capsules/s is divided by the cores
# it ran on; the Ursula figures are for one core already. Raw output goes to OUT_DIR.
#
#   benches/nucypher-https-vs-ursula.sh [ROUNDS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds="${1:-3}"
out="${2:-target/bench-nucypher-https}"
python="${UMBRALD_NUCYPHER_ENV:-target/nucypher-env}/bin/python"
mkdir -p "$out"
scripts/setup-python-tests.sh >/dev/null
cargo test --release -p umbrald-server --test https --no-run 2>&1 | tail -1

for r in $(seq 1 "$rounds"); do
    echo "== round $r: umbrald"
    UMBRALD_BENCH_ROUNDS=4 cargo test --release -q -p umbrald-server --test https \
        -- --ignored --nocapture throughput_https_vs_quic 2>&1 | grep -E "round|workers" |
        tee "$out/umbrald-$r.txt"
    echo "== round $r: Ursula's Python (one core)"
    "$python" benches/python/ursula_reencrypt_loop.py --capsules 64 --requests 40 --rounds 2 \
        --flask --out "$out/ursula-$r.json" >/dev/null
    cat "$out/ursula-$r.json"
    echo
done

"$python" - "$out" "$rounds" <<'PY'
import json, re, sys
out, rounds = sys.argv[1], int(sys.argv[2])
for r in range(1, rounds + 1):
    text = open(f"{out}/umbrald-{r}.txt").read()
    m = re.search(r"workers (\d+).*QUIC (\d+)/s.*HTTPS (\d+)/s.*throughput ([\d.]+)", text)
    workers, quic, https, ratio = int(m[1]), float(m[2]), float(m[3]), float(m[4])
    ursula = json.load(open(f"{out}/ursula-{r}.json"))
    loop, flask = ursula["loop"]["capsules_per_s"], ursula["flask_handler"]["capsules_per_s"]
    per_core = https / workers
    print(
        f"round {r}: QUIC {quic:.0f}/s, HTTPS {https:.0f}/s on {workers} cores "
        f"(HTTPS/QUIC {ratio:.3f}); per core HTTPS {per_core:.0f}/s; Ursula one core: loop "
        f"{loop:.0f}/s, Flask handler {flask:.0f}/s; umbrald per core / Ursula loop "
        f"{per_core / loop:.2f}, / Flask handler {per_core / flask:.2f}"
    )
PY
