#!/usr/bin/env bash
# A long libFuzzer run of one target, recorded: fuzz/long-run.sh TARGET MAX_SECONDS [MAX_RUNS]
#
# Needs the targets built (`cargo fuzz build -O -a -s none`, or scripts/check-fuzz.sh 0). Works
# on fuzz/target/long/TARGET (seeded from fuzz/corpus/TARGET), stops after MAX_SECONDS or
# MAX_RUNS executions (default 10 M), and writes the command and libFuzzer's final statistics
# to docs/measurements/2026-12-07-fuzz/TARGET.txt. Merge what it found back with
#   fuzz/target/.../TARGET -merge=1 fuzz/corpus/TARGET fuzz/target/long/TARGET
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
target="$1"
seconds="$2"
runs="${3:-10000000}"
host="$(rustc -vV | sed -n 's/^host: //p')"
bin="${CARGO_TARGET_DIR:-$PWD/target}/$host/release/$target"
work="target/long/$target"
artifacts="target/artifacts-long/$target"
out="../docs/measurements/2026-12-07-fuzz"
mkdir -p "$work" "$artifacts" "$out"
cp -R "corpus/$target/." "$work/"
command=(nice -n 19 "$bin" -runs="$runs" -max_total_time="$seconds" -timeout=10
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work")
log="target/long/$target.log"
started="$(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
"${command[@]}" >"$log" 2>&1 || status=$?
{
    echo "# fuzz target: $target"
    echo "# started $started, ended $(date -u +%FT%TZ), exit status $status"
    echo "# host: $(nproc) cores, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); libFuzzer at nice 19, one process"
    echo "# command (from fuzz/): ${command[*]}"
    echo "# corpus at start: $(ls "corpus/$target" | wc -l) seed files; at end: $(ls "$work" | wc -l) files"
    echo "# crashes: $(ls "$artifacts" | wc -l)"
    grep -E '^#[0-9]+' "$log" | tail -n 3
    grep -E '^(stat::|Done|==[0-9]+== ERROR|SUMMARY)' "$log" || true
} >"$out/$target.txt"
cat "$out/$target.txt"
exit "$status"
