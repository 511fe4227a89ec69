#!/usr/bin/env bash
# Compiles every CUDA kernel in kernels/ with NVRTC for sm_90 (and compute_90), without a GPU.
#
# Installs NVRTC from PyPI into target/ (nothing system-wide), points LD_LIBRARY_PATH at it, and
# runs the ignored test `nvrtc_compiles_kernels` of crates/umbrald-gpu, which fails on any
# compiler error and prints ptxas's register and spill report.
#
#   scripts/check-kernels-nvrtc.sh            # CUDA 12 NVRTC (nvidia-cuda-nvrtc-cu12)
#   NVRTC_WHEEL='nvidia-cuda-nvrtc==13.0.*' scripts/check-kernels-nvrtc.sh   # CUDA 13 NVRTC
#
# The cudarc feature (cuda-13000 in the root Cargo.toml) searches libnvrtc.so.13 first and then
# libnvrtc.so.12, so either wheel is found. Needs: python3 with pip, network access to PyPI on
# the first run, cargo.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

wheel="${NVRTC_WHEEL:-nvidia-cuda-nvrtc-cu12==12.9.86}"
dir="target/nvrtc/$(printf '%s' "$wheel" | tr -c 'A-Za-z0-9._-' '_')"

# The CUDA 12 wheel ships nvidia/cuda_nvrtc/lib/libnvrtc.so.12, the CUDA 13 one
# nvidia/cu13/lib/libnvrtc.so.13: take whichever folder holds libnvrtc.
find_lib() { find "$dir" -name 'libnvrtc.so.*' -not -name '*builtins*' -not -name '*.alt.*' 2>/dev/null | head -n 1; }
if [ -z "$(find_lib)" ]; then
    echo "installing $wheel into $dir"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dir" "$wheel"
fi
so="$(find_lib)"
if [ -z "$so" ]; then
    echo "no libnvrtc.so.* in $dir after installing $wheel" >&2
    exit 1
fi
lib="$(dirname "$so")"
echo "using $so"

export LD_LIBRARY_PATH="$root/$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# `--workspace` resolves features as ./scripts/test's `cargo test --workspace` did, so the test
# binary built there is reused instead of rebuilding umbrald-gpu and its dependencies.
cargo test --workspace --locked --test nvrtc -- --ignored --nocapture nvrtc_compiles_kernels
