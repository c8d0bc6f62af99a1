#!/usr/bin/env bash
# The Python bindings (crates/bio-py) as a user gets them: a fresh virtual environment under
# target/py-venv, `pip install ./crates/bio-py` (maturin fetched from PyPI as the PEP 517 build
# backend, the crate compiled in release; needs PyPI), then the pytest suite, which also drives the
# `bio` binary built here in the dev profile (its CLI-comparison tests skip, saying so, without it).
#
# Measured on this project's 2-core machine after `cargo xtask ci` (so the workspace's own crates
# are compiled but not in release, as in `.ci/run`), 2026-12-01: 265 s in all, of which 207 s for the
# venv and `pip install` (a cold release build of bio-py and its dependencies), 46 s for the `bio`
# binary (the tests of `cargo xtask ci` built it under another profile), 12 s for the pytest suite.
# Again on 2026-12-01 with the progress, to_torch (skipped: no torch in CI), fewlabels and fewshot
# tests added, on the same machine at load average ~7 (shared): 382 s in all, 267 s install, 73 s the
# `bio` binary, 42 s the pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
python=${PYTHON:-python3}
venv=target/py-venv
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet ./crates/bio-py pytest numpy
echo "ci-python: installed biorule in $((SECONDS - start)) s"

cargo build --quiet -p bio-cli
bio_bin="$(cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/bio"
echo "ci-python: built $bio_bin at $((SECONDS - start)) s"

# Run from outside the source tree so that `import biorule` is the installed package.
status=0
(cd target && BIO_BIN="$bio_bin" "../$venv/bin/python" -m pytest -q ../crates/bio-py/tests) || status=$?
# Exit code 5 means pytest collected no tests: the suite vanished, which is a failure here too.
if [ "$status" -ne 0 ]; then
    echo "ci-python: pytest failed (exit $status)" >&2
    exit "$status"
fi
echo "ci-python: passed in $((SECONDS - start)) s"
