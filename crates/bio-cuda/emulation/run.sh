#!/usr/bin/env bash
# Runs the real kernel source of src/kernels.rs on the CPU, without a GPU: prelude.h emulates the
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
python3 - "$here/../src/kernels.rs" "$work/kernels.cu" <<'PY'
import sys
src = open(sys.argv[1]).read()
head = 'pub(crate) const SOURCE: &str = r#"'
start = src.index(head) + len(head)
open(sys.argv[2], "w").write(src[start:src.index('"#;', start)])
PY
g++ -std=c++20 -O1 -Wall -Wextra -Wno-unused-parameter -pthread -I"$here" \
    -DKERNELS_CU="\"$work/kernels.cu\"" "$here/test.cpp" -o "$work/emulate"
"$work/emulate"
