#!/usr/bin/env bash
# Side-by-side timings of kernel versions and compile variants on one GPU, in one call of the
# device machine (see scripts/gpu-device-check.sh for the carried binaries).
#
#   scripts/gpu-kernel-ab.sh [DIR]
#
# DIR (default gpu-carry/) holds gpu_bench and, optionally, gpu_bench-base: the same example
# built from an earlier commit (the baseline). Each binary is run in turn on the same sizes, the
# baseline first and last so that drift of the card shows; then gpu_bench once per variant in
# $VARIANTS (';'-separated lists of NVRTC options, e.g. "-DUMB_MIN_BLOCKS=4"; a word that starts
# with "--" is a gpu_bench flag instead, e.g. "--table-local", and a plain word after it is its
# value, e.g. "--host-wait spin"). With NCU=1 and Nsight Compute
# present, one full-wave umb_mul_pairs launch is also profiled (speed of light, occupancy,
# launch statistics, warp states, memory) for the current build and for each variant in
# $NCU_VARIANTS (same syntax). Results go to $OUT (default ./gpu-ab-out): ab.md (every table)
# and ncu.txt.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Only its helper functions (find_cuda_libs): `lib` runs no step.
# shellcheck source=/dev/null
source "$here/gpu-device-check.sh" lib
root="$(cd "$here/.." && pwd)"
dir="${1:-$root/gpu-carry}"
out="${OUT:-$root/gpu-ab-out}"
sizes="${AB_SIZES:-65536,262144,1048576}"
reps="${AB_REPS:-5}"
mkdir -p "$out"
find_cuda_libs

bench() {
    local label="$1" bin="$2"
    shift 2
    echo "### $label" >>"$out/ab.md"
    timeout --kill-after=10 120 "$bin" --sizes "$sizes" --reps "$reps" "$@" >>"$out/ab.md" 2>&1
    echo "($label: rc=$?)" >>"$out/ab.md"
    echo >>"$out/ab.md"
}

: >"$out/ab.md"
base="$dir/gpu_bench-base"
[ -x "$base" ] && bench "baseline (gpu_bench-base)" "$base"
bench "current" "$dir/gpu_bench"
[ -x "$base" ] && bench "baseline again" "$base"
# A variant's words as gpu_bench arguments, in the array `opts`: "--flag" words and the plain
# words after them ("--host-wait spin") go to gpu_bench, other "-..." words to NVRTC.
variant_opts() {
    opts=()
    local o
    for o in $1; do
        case "$o" in
        --*) opts+=("$o") ;;
        -*) opts+=(--nvrtc-opt "$o") ;;
        *) opts+=("$o") ;;
        esac
    done
}

IFS=';' read -r -a variants <<<"${VARIANTS:-}"
for v in "${variants[@]}"; do
    [ -z "$v" ] && continue
    variant_opts "$v"
    bench "current with $v" "$dir/gpu_bench" "${opts[@]}"
done

if [ "${NCU:-0}" = 1 ]; then
    ncu_bin="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)"
    : >"$out/ncu.txt"
    if [ -n "$ncu_bin" ]; then
        IFS=';' read -r -a profiled <<<"current;${NCU_VARIANTS:-}"
        for v in "${profiled[@]}"; do
            [ -z "$v" ] && continue
            opts=()
            [ "$v" != current ] && variant_opts "$v"
            echo "### ncu: $v" >>"$out/ncu.txt"
            # Skip the self-test and early launches; 101,376 items are whole waves at 6 and 3 blocks/SM.
            timeout --kill-after=10 150 "$ncu_bin" -k regex:umb_mul_pairs --launch-skip 4 -c 1 \
                --section SpeedOfLight --section Occupancy --section LaunchStats \
                --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
                --section WarpStateStats \
                "$dir/gpu_bench" --sizes 101376 --reps 4 "${opts[@]}" >>"$out/ncu.txt" 2>&1
            echo "ncu rc=$?" >>"$out/ncu.txt"
        done
    else
        echo "ncu not found" >"$out/ncu.txt"
    fi
fi
grep -E "^###|^\| [0-9]|^device|^\(|NVRTC options" "$out/ab.md"
