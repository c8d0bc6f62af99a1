#!/usr/bin/env bash
# Convolutional local learning (docs/RESULTS.md, "Convolutional local learning"): the `conv` rule
# (hard and soft competition), its frozen random-features control, `bpconv` and PGD-trained
# `bpconv` (eps 0.1, 10 steps), full Fashion-MNIST, 3 seeds, then the full test set under the
# `strongest` ensemble at eps 0.1 and few-shot on novel classes (models trained on classes 0-4).
# Usage: bash scripts/results-conv.sh [RUNS_DIR] [ARCH]   (ARCH default 96:5; e.g. 96:5,384:3)
# Hours on 2 cores (a conv epoch is several MLP epochs; PGD training multiplies bpconv by ~11):
# run it on a bigger host, or with --backend cuda added to train().
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/conv}
ARCH=${2:-96:5}
source scripts/common.sh
prepare_runs
train() { local name=$1; shift; train_run "$name" --dataset fashion-mnist --epochs 10 "$@"; }
CONV=(--rule conv --conv "$ARCH")
BPCONV=(--rule bpconv --bpconv "$ARCH")

(
  for seed in 0 1 2; do
    train "conv-hard-$seed" "${CONV[@]}" --seed "$seed"
    train "conv-soft-$seed" "${CONV[@]}" --conv-competition soft --seed "$seed"
    train "conv-frozen-$seed" "${CONV[@]}" --conv-frozen --seed "$seed"
  done
  train conv-hard-base "${CONV[@]}" --classes 0-4
  train conv-frozen-base "${CONV[@]}" --conv-frozen --classes 0-4
) &
(
  for seed in 0 1 2; do
    train "bpconv-$seed" "${BPCONV[@]}" --seed "$seed"
    train "bpconv-adv-$seed" "${BPCONV[@]}" --bpconv-adversarial-eps 0.1 --bpconv-adversarial-steps 10 --seed "$seed"
  done
  train bpconv-base "${BPCONV[@]}" --classes 0-4
) &
wait

strongest() {
  local run=$1 source=$2
  [ -f "$RUNS/$run.strongest" ] && return 0
  $BIO eval robustness --model "$RUNS/$run" --attack strongest --eps 0.1 --queries 1000 \
    --source "$RUNS/$source" --quiet > "$RUNS/$run.strongest.tmp" && mv "$RUNS/$run.strongest.tmp" "$RUNS/$run.strongest"
}
fewshot() {
  local run=$1
  [ -f "$RUNS/$run.episodic" ] || $BIO eval fewshot --model "$RUNS/$run" --ways 5 --shots 1,5 \
    --episodes 600 --json --quiet > "$RUNS/$run.episodic"
}
(
  for seed in 0 1 2; do strongest "conv-hard-$seed" "bpconv-$seed"; strongest "conv-soft-$seed" "bpconv-$seed"; done
  fewshot conv-hard-base; fewshot conv-frozen-base
) &
(
  for seed in 0 1 2; do
    strongest "conv-frozen-$seed" "bpconv-$seed"; strongest "bpconv-$seed" "conv-hard-$seed"
    strongest "bpconv-adv-$seed" "bpconv-$seed"
  done
  fewshot bpconv-base
) &
wait
for f in "$RUNS"/*/metrics.json; do echo "$f: $(head -c 300 "$f")"; done
