#!/usr/bin/env bash
# The four-rule comparison of docs/RESULTS.md ("Peer rules"): bio, bp, kh (Krotov & Hopfield 2019) and
# softhebb (Moraitis et al. 2022), full Fashion-MNIST, 784-2000-10, CPU backend, each rule at its
# defaults. Usage: bash scripts/peers.sh [RUNS_DIR]   (about 90 minutes on 2 cores)
#
# Clean accuracy, biology and time per epoch: 3 seeds. Worst-case robust accuracy (the `strongest`
# ensemble, Square with 1000 queries, transfer from bp, or from bio for bp) on the first 500 test
# images, and few-shot (episodic 5-way on novel classes 5-9 from a model trained on classes 0-4;
# few labels K = 1/5/10 over 3 seeds): seed 0. Then `python3 scripts/peers_table.py RUNS_DIR`
# prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/peers}
source scripts/common.sh
prepare_runs
train() { local name=$1; shift; train_run "$name" --dataset fashion-mnist "$@"; }

# ---- Training: two single-threaded lanes ------------------------------------------------------
(
  for seed in 0 1 2; do train "bio-$seed" --rule bio --seed "$seed"; train "kh-$seed" --rule kh --seed "$seed"; done
  train bio-base --rule bio --classes 0-4
  train kh-base --rule kh --classes 0-4
) &
(
  for seed in 0 1 2; do train "bp-$seed" --rule bp --seed "$seed"; train "softhebb-$seed" --rule softhebb --seed "$seed"; done
  train bp-base --rule bp --classes 0-4
  train softhebb-base --rule softhebb --classes 0-4
) &
wait

# ---- Evaluation -------------------------------------------------------------------------------
strongest() {
  local run=$1 source=$2
  [ -f "$RUNS/$run.strongest" ] && return 0
  $BIO eval robustness --model "$RUNS/$run" --attack strongest --eps 0.05,0.1 --limit 500 --queries 1000 \
    --source "$RUNS/$source" --quiet > "$RUNS/$run.strongest.tmp" && mv "$RUNS/$run.strongest.tmp" "$RUNS/$run.strongest"
}
fewshot() {
  local rule=$1
  [ -f "$RUNS/$rule-base.episodic" ] || $BIO eval fewshot --model "$RUNS/$rule-base" --ways 5 --shots 1,5 \
    --episodes 600 --json --quiet > "$RUNS/$rule-base.episodic"
  [ -f "$RUNS/few-labels-$rule/fewshot.json" ] || $BIO eval fewshot --protocol few-labels --rule "$rule" \
    --dataset fashion-mnist --shots 1,5,10 --seeds 3 --hidden 2000 --quiet --out "$RUNS/few-labels-$rule" > /dev/null
}
(
  strongest bio-0 bp-0; strongest kh-0 bp-0
  fewshot bio; fewshot kh
) &
(
  strongest bp-0 bio-0; strongest softhebb-0 bp-0
  fewshot bp; fewshot softhebb
) &
wait
python3 scripts/peers_table.py "$RUNS"
