#!/usr/bin/env bash
# The README's one results table, on its one protocol: full Fashion-MNIST, 784-2000-10, 10 epochs,
# seeds 0-2; clean accuracy on the full test set and the worst case per image of the strongest
# ensemble (transfer from the bp net of seed 0, Square 1000 queries) at L∞ eps 0.1 on the full
# test set. Fills the rows the README marks "not measured" (bp, bio defaults, --hebbian-rate 0.01)
# as well as the two robust settings. Usage: bash scripts/headline.sh [RUNS_DIR]
# Cost: 15 trainings (about 1 minute each on 2 cores) and 15 full-test-set ensemble evaluations
# (tens of minutes each on 2 cores; a GPU host is the place for them).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/headline}
source scripts/common.sh
prepare_runs
train() { local name=$1; shift; train_run "$name" --dataset fashion-mnist "$@"; }
ROBUST=(--scaling-norm l1 --hebbian-rate 0.003 --prune-below 0.5)

(
  for seed in 0 1 2; do
    train "bp-$seed" --rule bp --seed "$seed"
    train "bio-$seed" --rule bio --seed "$seed"
    train "rate01-$seed" --rule bio --hebbian-rate 0.01 --seed "$seed"
  done
) &
(
  for seed in 0 1 2; do
    train "robust-$seed" --rule bio "${ROBUST[@]}" --seed "$seed"
    train "schedule-$seed" --rule bio "${ROBUST[@]}" --hebbian-rate-end 0.0003 --seed "$seed"
  done
) &
wait

# The worst case on the full test set (the bp nets are attacked with the bio net of seed 0 as source).
for setting in bp bio rate01 robust schedule; do
  for seed in 0 1 2; do
    dir="$RUNS/$setting-$seed"
    [ -f "$dir/robustness.json" ] && grep -q '"strongest"' "$dir/robustness.json" && continue
    source_dir="$RUNS/bp-0"
    [ "$setting" = bp ] && source_dir="$RUNS/bio-0"
    $BIO eval robustness --model "$dir" --attack strongest --eps 0.1 --queries 1000 --source "$source_dir" \
      > "$RUNS/$setting-$seed.robust.txt" 2>&1 || echo "$setting-$seed: $(tail -n 1 "$RUNS/$setting-$seed.robust.txt")" >> "$RUNS/failed.txt"
  done
done
$BIO report "$RUNS"/*-[012] --out "$RUNS/report"
echo "table: $RUNS/report/report.md (section Worst case per image); clean accuracies in each run's metrics.json"
