#!/usr/bin/env bash
# gpu-check.sh — run bio-cuda's GPU tests (conformance suite, conv kernels, CPU-vs-CUDA rule steps) on a GPU
# machine from test binaries built elsewhere. Nothing here needs a Rust toolchain on the GPU machine.
#
# 1. On the build machine (has cargo; no GPU needed), from the repository root:
#        scripts/gpu-check.sh prepare
#    which runs `cargo test -p bio-cuda --release --no-run`, takes the test executables it reports
#    ("Executable ... (target/release/deps/<name>-<hash>)": the lib unit tests bio_cuda,
#    conformance, conv_kernels, forks, gpu_kernels, no_gpu and rules_vs_cpu), strips their debug
#    info and copies them, without the -<hash> suffix, to target/gpu-bin/ (git-ignored), with the release `bio` binary
#    (for `bench`). Carry that folder to the GPU machine (with
#    the device tool: carry ["target/gpu-bin"]). By hand: run the cargo command above and copy the
#    listed executables the same way.
#    The binaries link glibc dynamically: the GPU machine's glibc must not be older than the build
#    machine's (`ldd --version` on both). CUDA libraries are loaded at run time (dlopen), not linked.
#
# 2. On the GPU machine, from the repository root:
#        scripts/gpu-check.sh run            # or: scripts/gpu-check.sh run path/to/bin-dir
#    prints nvidia-smi and where libcuda / libnvrtc / libcublas were found (it adds directories
#    holding libnvrtc / libcublas, e.g. /usr/local/cuda*/lib64 or pip's nvidia/*/lib, to
#    LD_LIBRARY_PATH), then runs every binary with `--include-ignored --test-threads=1 --nocapture`, each under
#    a timeout, keeps going after a failure, and exits non-zero if any failed. Logs go to
#    $OUT/gpu-check/ when $OUT is set, else /tmp/gpu-check/.
#
# 3. `scripts/gpu-check.sh bench` (or `all` = run, then bench) times training and PGD with the
#    prepared `bio` binary on CUDA and on the CPU (see bench() below); needs Fashion-MNIST under
#    $BIO_DATA_DIR (e.g. the four IDX .gz files in an untracked .gpu/data/fashion-mnist/).
#
# Device time: on one H200 (2026-11-30) `run` took about 10 s of test time (plus a second per binary
# to start); `conv_kernels` (added 2026-12-06, not yet run on a device) is estimated at 10-30 s,
# mostly its host round trips; `bench` is estimated at about a minute (not yet run on a device).
# The per-binary timeouts below cap `run` at ~15 minutes (the sum, if every binary hung).
set -euo pipefail

mode="${1:-run}"
bin_dir="${2:-target/gpu-bin}"

prepare() {
    command -v cargo >/dev/null || { echo "prepare needs cargo" >&2; exit 2; }
    local listing
    listing="$(cargo test -p bio-cuda --release --no-run 2>&1)" || { echo "$listing" >&2; exit 1; }
    mkdir -p "$bin_dir"
    rm -f "$bin_dir"/*
    local n=0 exe
    while IFS= read -r exe; do
        [ -x "$exe" ] || continue
        local base
        base="$(basename "$exe")"
        cp "$exe" "$bin_dir/${base%-*}"
        strip --strip-debug "$bin_dir/${base%-*}" 2>/dev/null || true
        n=$((n + 1))
    done < <(printf '%s\n' "$listing" | sed -n 's/^ *Executable .*(\(.*\))$/\1/p')
    [ "$n" -ge 7 ] || { echo "expected 7 test executables, found $n:" >&2; echo "$listing" >&2; exit 1; }
    # The `bio` binary for the timings of `bench` (same build profile as the timings in docs/).
    cargo build --release -p bio-cli >/dev/null
    cp target/release/bio "$bin_dir/bio"
    strip "$bin_dir/bio" 2>/dev/null || true
    ls -la "$bin_dir"
    echo "prepared $n test binaries in $bin_dir/; on the GPU machine: scripts/gpu-check.sh run $bin_dir"
}

find_cuda_libs() {
    echo "== CUDA libraries"
    local lib dirs="" d found
    for lib in libcuda.so libnvrtc.so libcublas.so; do
        found="$(ldconfig -p 2>/dev/null | grep -m1 "$lib" | sed 's/.*=> //' || true)"
        if [ -z "$found" ]; then
            found="$(timeout 30 find /usr/local /usr/lib /usr/lib64 /opt /usr/local/lib/python3* \
                /usr/lib/python3* "$HOME/.local" -maxdepth 7 -name "${lib}*" \( -type f -o -type l \) \
                2>/dev/null | head -n1 || true)"
            [ -n "$found" ] && dirs="$dirs:$(dirname "$found")"
        fi
        echo "  $lib: ${found:-NOT FOUND}"
    done
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [ -d "$d" ] && dirs="$dirs:$d"
    done
    if [ -n "$dirs" ]; then
        export LD_LIBRARY_PATH="${dirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "  LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    fi
}

run_tests() {
    [ -d "$bin_dir" ] || { echo "no $bin_dir/: run 'scripts/gpu-check.sh prepare' on the build machine first" >&2; exit 2; }
    local logs="${OUT:-/tmp}/gpu-check"
    mkdir -p "$logs"
    echo "== nvidia-smi"
    timeout 30 nvidia-smi 2>&1 || echo "nvidia-smi failed or is missing (exit $?)"
    echo "== glibc: $(ldd --version 2>/dev/null | head -n1 || echo unknown)"
    find_cuda_libs
    export RUST_BACKTRACE=1
    local failed=0 name secs status
    # Order: cheapest first, so a broken setup shows quickly. Seconds are per-binary timeouts.
    for spec in bio_cuda:60 no_gpu:60 conformance:300 conv_kernels:120 rules_vs_cpu:150 gpu_kernels:120 forks:300; do
        name="${spec%%:*}"
        secs="${spec##*:}"
        if [ ! -x "$bin_dir/$name" ]; then
            echo "== $name: MISSING from $bin_dir/"
            failed=1
            continue
        fi
        echo "== $name (timeout ${secs}s)"
        status=0
        # --nocapture keeps what the tests print (gpu_kernels' times) in the log.
        timeout --kill-after=10 "$secs" "$bin_dir/$name" --include-ignored --test-threads=1 --nocapture \
            >"$logs/$name.log" 2>&1 || status=$?
        grep -E '^test |^test result|panicked|FAILED|failures:|fused|GPU kernel times|  pull|  du|stacked|population|conv kernels|  unfold|  fold|  max_pool' "$logs/$name.log" \
            | tail -n 60 || true
        if [ "$status" -ne 0 ]; then
            echo "== $name: FAILED (exit $status; 124 = timed out); full log: $logs/$name.log"
            tail -n 40 "$logs/$name.log"
            failed=1
        else
            echo "== $name: ok"
        fi
    done
    if [ "$failed" -ne 0 ]; then
        echo "== gpu-check: SOME CHECKS FAILED"
        exit 1
    fi
    echo "== gpu-check: all passed"
}

# One timed command: its wall time, exit status and output go to the log (never fails the script).
timed() {
    local what="$1"; shift
    echo "== $what"
    echo "   \$ $*"
    local start ms status=0
    start=$(date +%s%N)
    timeout --kill-after=5 120 "$@" >"$logs/$what.log" 2>&1 || status=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    tail -n 4 "$logs/$what.log" | sed 's/^/   /'
    echo "   wall $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s, exit $status$([ "$status" -eq 124 ] && echo ' (timed out)')"
}

# bench: the timings of docs/PERFORMANCE.md's GPU section with the prepared `bio` binary, full
# Fashion-MNIST from $BIO_DATA_DIR, 784-2000-10, batch 100, seed 0: `bio` and `bp` for 10 epochs
# and PGD-40 (eps 0.05, 0.1) on the 10 000 test images on CUDA, GPU memory sampled by nvidia-smi
# meanwhile; then the same binary on the CPU (all cores, and 2 threads) for one epoch each and
# PGD-40 on 2000 images, for the ratios. Logs and each model's JSON files (metrics.json,
# robustness.json) under $OUT/bench; the models themselves are deleted.
bench() {
    local bio="$bin_dir/bio" out="${OUT:-/tmp}/bench" models
    logs="$out"
    mkdir -p "$out"
    [ -x "$bio" ] || { echo "no $bio: run 'scripts/gpu-check.sh prepare' first" >&2; exit 2; }
    # Models (tens of MB each) stay out of $OUT; their JSON files are copied there at the end.
    models="$(mktemp -d)"
    find_cuda_libs
    echo "== BIO_DATA_DIR=${BIO_DATA_DIR:-unset}; $(nproc) CPUs"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$out/gpu-memory.csv" 2>/dev/null &
    local smi=$!
    local common=(--dataset fashion-mnist --hidden 2000 --batch 100 --seed 0)
    for rule in bio bp; do
        timed "cuda-train-$rule" "$bio" train --rule "$rule" "${common[@]}" --epochs 10 --backend cuda --out "$models/cuda-$rule"
        timed "cuda-pgd-$rule" "$bio" eval robustness --model "$models/cuda-$rule" --attack pgd --eps 0.05,0.1 --backend cuda --json
    done
    kill "$smi" 2>/dev/null || true
    echo "== peak GPU memory used (MiB, nvidia-smi, whole device): $(sort -n "$out/gpu-memory.csv" | tail -n1)"
    for rule in bio bp; do
        timed "cpu-train-$rule" "$bio" train --rule "$rule" "${common[@]}" --epochs 1 --backend cpu --out "$models/cpu-$rule"
    done
    RAYON_NUM_THREADS=2 timed "cpu2-train-bio" "$bio" train --rule bio "${common[@]}" --epochs 1 --backend cpu --out "$models/cpu2-bio"
    timed "cpu-pgd-bio" "$bio" eval robustness --model "$models/cuda-bio" --attack pgd --eps 0.05,0.1 --limit 2000 --backend cpu --json
    local d
    for d in "$models"/*/; do
        mkdir -p "$out/$(basename "$d")"
        cp "$d"*.json "$out/$(basename "$d")/" 2>/dev/null || true
    done
    rm -rf "$models"
    echo "== bench done"
}

# population: training throughput of P `bio` runs side by side in one process (`bio sweep --jobs P`,
# one CUDA stream per run: `CudaBackend::fork`), for P = ${POP_SIZES:-1 8 32 128}: P seeds of
# 784-2000-10, batch 100, 10 epochs, on the 50 000 training images left by `validation = 10000`
# (no attacks). Prints the wall time, member-epochs per second and the fraction of the device's FP32
# peak (${FP32_PEAK_TFLOPS:-67} TFLOP/s, the H200 SXM's data-sheet figure) that the arithmetic of
# a `bio` epoch represents: per batch of 100 the forward product x·W and the Hebbian pull rᵀ·p,
# 2·100·784·2000 FLOPs each, plus the readout and the validation pass (small), ≈ 0.32 TFLOP per
# member-epoch. The sweeps' tables go to $OUT/population.
population() {
    local bio="$bin_dir/bio" out="${OUT:-/tmp}/population" work sizes="${POP_SIZES:-1 8 32 128}" p
    mkdir -p "$out"
    [ -x "$bio" ] || { echo "no $bio: run 'scripts/gpu-check.sh prepare' first" >&2; exit 2; }
    work="$(mktemp -d)"
    find_cuda_libs
    echo "== BIO_DATA_DIR=${BIO_DATA_DIR:-unset}; $(nproc) CPUs"
    for p in $sizes; do
        local seeds
        seeds="$(seq -s, 0 $((p - 1)))"
        printf 'seeds = [%s]\n[base]\ndataset = "fashion-mnist"\nvalidation = 10000\nhidden = 2000\nbatch = 100\nepochs = 10\n[eval]\nattacks = []\n' \
            "$seeds" >"$work/pop-$p.toml"
        local start ms status=0
        start=$(date +%s%N)
        timeout --kill-after=5 400 "$bio" sweep "$work/pop-$p.toml" --out "$work/pop-$p" --jobs "$p" --backend cuda --quiet \
            >"$out/pop-$p.log" 2>&1 || status=$?
        ms=$((($(date +%s%N) - start) / 1000000))
        cp "$work/pop-$p/sweep.md" "$out/pop-$p.md" 2>/dev/null || true
        awk -v p="$p" -v ms="$ms" -v st="$status" -v peak="${FP32_PEAK_TFLOPS:-67}" 'BEGIN {
            s = ms / 1000; me = p * 10 / s;
            printf "== P = %d: %.1f s wall (exit %d), %.2f member-epochs/s, %.1f%% of the FP32 peak\n", p, s, st, me, 100 * me * 0.32 / peak }'
        tail -n 3 "$out/pop-$p.log" | sed 's/^/   /'
    done
    rm -rf "$work"
}

case "$mode" in
    prepare) prepare ;;
    run) run_tests ;;
    bench) bench ;;
    population) population ;;
    all) status=0; (run_tests) || status=$?; bench; exit "$status" ;;
    *) echo "usage: $0 prepare [dir] | run [dir] | bench [dir] | population [dir] | all [dir]   (dir defaults to target/gpu-bin)" >&2; exit 2 ;;
esac
