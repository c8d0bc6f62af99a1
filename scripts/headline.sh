#!/usr/bin/env bash
# The README's one results table, on its one protocol: full Fashion-MNIST, 784-2000-10, 10 epochs,
# seeds 0-2; clean accuracy on the full test set and the worst case per image of the strongest
# ensemble (transfer from the bp net of seed 0, Square 1000 queries) at L∞ eps 0.1 on the full
# test set. Rows: bp, bio defaults, --hebbian-rate 0.01, the two robust settings, bp with PGD
# adversarial training (bpadv: eps 0.1, 10 steps, Madry et al.) and the unlearned control (random:
# bio's random hidden layer frozen, --hebbian-rate 0, its readout trained as bio's).
# Usage: bash scripts/headline.sh [RUNS_DIR]
# Cost: 21 trainings (about 1 minute each on one core; bpadv about 12) and 21 full-test-set ensemble
# evaluations (5-25 minutes each on one core; a GPU host is the place for them).
# SETTINGS="bp bio rate01" limits the work to those rows (default: all seven).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/headline}
source scripts/common.sh
prepare_runs
train() { local name=$1; shift; train_run "$name" --dataset fashion-mnist "$@"; }
ROBUST=(--scaling-norm l1 --hebbian-rate 0.003 --prune-below 0.5)
SETTINGS=${SETTINGS:-bp bio rate01 robust schedule bpadv random}
wanted() { [[ " $SETTINGS " == *" $1 "* ]]; }

(
  for seed in 0 1 2; do
    # the bp and bio nets of seed 0 are the transfer sources of every row
    if wanted bp || [ "$seed" = 0 ]; then train "bp-$seed" --rule bp --seed "$seed"; fi
    if wanted bio || [ "$seed" = 0 ]; then train "bio-$seed" --rule bio --seed "$seed"; fi
    if wanted rate01; then train "rate01-$seed" --rule bio --hebbian-rate 0.01 --seed "$seed"; fi
    if wanted random; then train "random-$seed" --rule bio --hebbian-rate 0 --seed "$seed"; fi
  done
) &
(
  for seed in 0 1 2; do
    if wanted robust; then train "robust-$seed" --rule bio "${ROBUST[@]}" --seed "$seed"; fi
    if wanted schedule; then train "schedule-$seed" --rule bio "${ROBUST[@]}" --hebbian-rate-end 0.0003 --seed "$seed"; fi
    if wanted bpadv; then train "bpadv-$seed" --rule bp --adversarial-eps 0.1 --adversarial-steps 10 --seed "$seed"; fi
  done
) &
wait

# The worst case on the full test set (the bp nets, adversarially trained or not, are attacked with
# the bio net of seed 0 as source), two evaluations at a time.
evaluate() {
  local setting=$1 seed=$2 dir="$RUNS/$1-$2" source_dir="$RUNS/bp-0"
  [ -f "$dir/robustness.json" ] && grep -q '"strongest"' "$dir/robustness.json" && return 0
  [[ "$setting" == bp* ]] && source_dir="$RUNS/bio-0"
  $BIO eval robustness --model "$dir" --attack strongest --eps 0.1 --queries 1000 --source "$source_dir" \
    > "$RUNS/$setting-$seed.robust.txt" 2>&1 || echo "$setting-$seed: $(tail -n 1 "$RUNS/$setting-$seed.robust.txt")" >> "$RUNS/failed.txt"
}
for setting in $SETTINGS; do
  for seed in 0 1 2; do
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
    evaluate "$setting" "$seed" &
  done
done
wait
$BIO report $(for s in $SETTINGS; do ls -d "$RUNS/$s"-[012]; done) --out "$RUNS/report"
echo "table: $RUNS/report/report.md (section Worst case per image); clean accuracies in each run's metrics.json"
