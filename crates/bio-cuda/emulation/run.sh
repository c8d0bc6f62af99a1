#!/usr/bin/env bash
# Runs the real kernel source (src/kernels.cu) on the CPU, without a GPU: prelude.h emulates the
# CUDA subset the kernels use (blocks one after another, a block's threads as std::threads with a
# std::barrier for __syncthreads, __shared__ as function statics), and test.cpp checks every kernel
# against straightforward host code (exact for k-th largest, argmax, max/min, zips, maps, optimizer
# steps; tolerances of the conformance suite for sums and softmax).
#
# What it does NOT check: that NVRTC accepts the source, device math-library accuracy (host libm is
# used), warp scheduling, memory coalescing or anything about the Rust launch code. It is a logic
# check of the kernels, not a substitute for tests/conformance.rs on a GPU. Needs g++ ≥ 12 (C++20).
# Usage: crates/bio-cuda/emulation/run.sh   (about 20 s; spawns many short-lived threads)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
g++ -std=c++20 -O1 -Wall -Wextra -Wno-unused-parameter -pthread -I"$here" \
    -DKERNELS_CU="\"$here/../src/kernels.cu\"" "$here/test.cpp" -o "$work/emulate"
"$work/emulate"
