#!/usr/bin/env bash
# ci-cuda.sh — the checks of bio-cuda's kernels that need no GPU, called by .ci/run:
#  1. NVRTC and ptxas from PyPI (library-only wheels nvidia-cuda-nvrtc-cu12 and nvidia-cuda-nvcc-cu12;
#     no driver or GPU needed), installed once into a private virtualenv under target/ (kept there as
#     a cache), then bio-cuda's `nvrtc_check` tests with the loader pointed at the wheel's libnvrtc:
#     the real kernel source compiled with the backend's options for sm_80 and sm_90 (fails on any
#     error or warning), the PTX .entry signatures against the launch code's parameter lists, and
#     ptxas -v (registers per thread; fails on spills in the hot kernels). When PyPI cannot be
#     reached, the tests run without the libraries and say that they skipped; CI does not fail.
#  2. The emulation harness (crates/bio-cuda/emulation/run.sh, g++ ≥ 12): the kernels' logic on CPU
#     threads, the fused kernels against the composed definition. Skipped, saying so, without g++.
# Adds 30-60 s to CI (mostly the emulation; 62 s measured on a loaded 2-core machine), plus about a
# minute on the first run to download the two wheels (~130 MB) into target/nvrtc-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/nvrtc-venv
wheels=(nvidia-cuda-nvrtc-cu12 nvidia-cuda-nvcc-cu12)
env_vars=()
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import importlib.metadata as m; [m.version(w) for w in ["'"${wheels[0]}"'", "'"${wheels[1]}"'"]]' 2>/dev/null; then
    echo "ci-cuda: installing ${wheels[*]} into $venv"
    rm -rf "$venv"
    if ! { python3 -m venv "$venv" && timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "${wheels[@]}"; }; then
        echo "ci-cuda: WARNING: could not install ${wheels[*]} (PyPI unreachable or no python3 venv); NVRTC tests will skip"
        rm -rf "$venv"
    fi
fi
if [ -x "$venv/bin/python" ]; then
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    lib="$site/nvidia/cuda_nvrtc/lib"
    ptxas="$site/nvidia/cuda_nvcc/bin/ptxas"
    if [ -e "$lib/libnvrtc.so.12" ] && [ -x "$ptxas" ]; then
        echo "ci-cuda: NVRTC $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("nvidia-cuda-nvrtc-cu12"))'), $("$ptxas" --version | tail -n1)"
        env_vars=(LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" BIO_PTXAS="$ptxas" BIO_REQUIRE_NVRTC=1)
    else
        echo "ci-cuda: WARNING: the wheels lack $lib/libnvrtc.so.12 or $ptxas; NVRTC tests will skip"
    fi
fi
env "${env_vars[@]}" cargo test -p bio-cuda --lib nvrtc_check -- --nocapture --test-threads=1

if command -v g++ >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
    crates/bio-cuda/emulation/run.sh
else
    echo "ci-cuda: SKIPPED the kernel emulation (crates/bio-cuda/emulation/run.sh needs g++ >= 12 and python3)"
fi
