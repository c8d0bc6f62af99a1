#!/usr/bin/env bash
# gpu-check.sh — run bio-cuda's GPU tests (conformance suite + CPU-vs-CUDA rule steps) on a GPU
# machine from test binaries built elsewhere. Nothing here needs a Rust toolchain on the GPU machine.
#
# 1. On the build machine (has cargo; no GPU needed), from the repository root:
#        scripts/gpu-check.sh prepare
#    which runs `cargo test -p bio-cuda --release --no-run`, takes the test executables it reports
#    ("Executable ... (target/release/deps/<name>-<hash>)": the lib unit tests bio_cuda,
#    conformance, no_gpu and rules_vs_cpu), strips their debug info and copies them, without the
#    -<hash> suffix, to target/gpu-bin/ (git-ignored). Carry that folder to the GPU machine (with
#    the device tool: carry ["target/gpu-bin"]). By hand: run the cargo command above and copy the
#    listed executables the same way.
#    The binaries link glibc dynamically: the GPU machine's glibc must not be older than the build
#    machine's (`ldd --version` on both). CUDA libraries are loaded at run time (dlopen), not linked.
#
# 2. On the GPU machine, from the repository root:
#        scripts/gpu-check.sh run            # or: scripts/gpu-check.sh run path/to/bin-dir
#    prints nvidia-smi and where libcuda / libnvrtc / libcublas were found (it adds directories
#    holding libnvrtc / libcublas, e.g. /usr/local/cuda*/lib64 or pip's nvidia/*/lib, to
#    LD_LIBRARY_PATH), then runs every binary with `--include-ignored --test-threads=1`, each under
#    a timeout, keeps going after a failure, and exits non-zero if any failed. Logs go to
#    $OUT/gpu-check/ when $OUT is set, else /tmp/gpu-check/.
#
# Device-time budget (an estimate; nothing has run on a GPU yet): the CPU-side reference work takes
# about a second here, and each GPU test builds its own backend (one NVRTC compile, likely 1-3 s),
# so `run` should take well under 2 minutes; the per-binary timeouts below cap it at ~9.5 minutes.
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
    [ "$n" -ge 4 ] || { echo "expected 4 test executables, found $n:" >&2; echo "$listing" >&2; exit 1; }
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
    for spec in bio_cuda:60 no_gpu:60 conformance:300 rules_vs_cpu:150; do
        name="${spec%%:*}"
        secs="${spec##*:}"
        if [ ! -x "$bin_dir/$name" ]; then
            echo "== $name: MISSING from $bin_dir/"
            failed=1
            continue
        fi
        echo "== $name (timeout ${secs}s)"
        status=0
        timeout --kill-after=10 "$secs" "$bin_dir/$name" --include-ignored --test-threads=1 \
            >"$logs/$name.log" 2>&1 || status=$?
        grep -E '^test |^test result|panicked|FAILED|failures:' "$logs/$name.log" | tail -n 60 || true
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

case "$mode" in
    prepare) prepare ;;
    run) run_tests ;;
    *) echo "usage: $0 prepare [dir] | run [dir]   (dir defaults to target/gpu-bin)" >&2; exit 2 ;;
esac
