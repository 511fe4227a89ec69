#!/usr/bin/env bash
# Same-run A/B of the structure refactor: base (697c649) against new, alternating.
set -u
out=${1:-/work/ab/out}; mkdir -p "$out"
cd /work/main   # the throughput example finds its fixtures relative to the workspace
{
echo "# $(date -u +%FT%TZ) $(nproc) vCPUs; base=697c649 new=$(git -C /work/main rev-parse --short HEAD)"
for pair in 1 2; do
  for b in 1 16 256; do
    for v in base new; do
      r=$(/work/ab/$v/ratio $b 15 | tail -1)
      echo "pair $pair batch $b $v: $r"
    done
  done
done
} 2>&1 | tee "$out/ratio.txt"
for pair in 1 2; do
  for v in base new; do
    echo "== pair $pair $v" | tee -a "$out/throughput.txt"
    /work/ab/$v/throughput --workers 2 --seconds 5 --latency-runs 1 2>&1 | grep -E "round|median|batch" | tee -a "$out/throughput.txt"
  done
done
