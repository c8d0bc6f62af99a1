#!/usr/bin/env bash
# The validation sweep behind the bio defaults (docs/RESULTS.md, "How the defaults were chosen"):
# every run holds out the same 10 000 training images (`--validation 10000`, class-stratified, a fixed
# seed independent of --seed), trains on the other 50 000 and is judged on them, not on the test set.
# Usage: bash scripts/tune.sh [RUNS_DIR]   (about 25 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/tune}
source scripts/common.sh
prepare_runs
run() { local name=$1; shift; train_run "$name" --dataset fashion-mnist --validation 10000 "$@"; }
(
  run def --rule bio
  for r in 0.0001 0.0002 0.0005 0.001 0.003 0.01; do run "hebbian-$r" --rule bio --hebbian-rate "$r"; done
  run readout-10 --rule bio --readout-rate 10
  run active-0.03-readout-10 --rule bio --active-fraction 0.03 --readout-rate 10
  for e in 5 20; do run "epochs-$e" --rule bio --epochs "$e"; done
  # Can the readout recover clean accuracy at a high Hebbian rate?
  run hebbian-0.01-consolidation-4 --rule bio --hebbian-rate 0.01 --consolidation-epochs 4
  run hebbian-0.01-readout-20 --rule bio --hebbian-rate 0.01 --readout-rate 20
) &
(
  for f in 0.02 0.03 0.08; do run "active-$f" --rule bio --active-fraction "$f"; done
  run width-4000 --rule bio --hidden 4000
  run width-4000-hebbian-0.001 --rule bio --hidden 4000 --hebbian-rate 0.001
  for r in 0.003 0.01; do run "width-4000-hebbian-$r" --rule bio --hidden 4000 --hebbian-rate "$r"; done
  for g in 1.0 1.25 1.5 1.75 2.0; do run "inhibitory-$g" --rule bio --competition inhibitory --inhibition-gain "$g"; done
  run bp --rule bp
) &
wait
# Robustness of some of them (first 500 test images; measured, not used to pick the defaults).
for name in def active-0.02 active-0.08 hebbian-0.001 hebbian-0.003 hebbian-0.01 width-4000 width-4000-hebbian-0.001 \
  inhibitory-1.25 inhibitory-1.5 hebbian-0.01-consolidation-4 hebbian-0.01-readout-20; do
  $BIO eval robustness --model "$RUNS/$name" --attack pgd --eps 0.05,0.1 --limit 500 > "$RUNS/$name.pgd"
done
# Does width move the clean-versus-robust trade-off? (PGD and Square, first 1000 test images.)
for name in width-4000-hebbian-0.003 width-4000-hebbian-0.01; do
  $BIO eval robustness --model "$RUNS/$name" --attack pgd,square --eps 0.05,0.1 --limit 1000 > "$RUNS/$name.rob"
done
grep -h "validation accuracy" "$RUNS"/*.out
