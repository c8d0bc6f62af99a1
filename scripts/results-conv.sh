#!/usr/bin/env bash
# Convolutional local learning (docs/RESULTS.md, "Convolutional local learning"): the `conv` rule,
# its frozen random-features control, `bpconv` and PGD-trained `bpconv` (eps 0.1, 10 steps), full
# Fashion-MNIST (60 000 training images), 3 seeds, EPOCHS epochs (default 6: for `conv` one Hebbian
# epoch per layer, then the readout; `bpconv` trains every weight for the same number of epochs);
# then clean accuracy on the full test set (each run's metrics.json), the worst case of the
# `strongest` ensemble at eps 0.1 on the first LIMIT test images (default all 10 000), and few-shot
# (5-way, 1 and 5 shots, 600 episodes) on classes 5-9 from models trained on classes 0-4.
# Usage: bash scripts/results-conv.sh [RUNS_DIR] [ARCH]   (ARCH default 96:5; e.g. 96:5,384:3)
# Environment: SETTINGS (default "hard frozen bpconv bpadv fewshot"), SEEDS (default "0 1 2"),
# ROBUST_SEEDS (the seeds attacked with `strongest`; default SEEDS), FEWSHOT_SEEDS (the seeds of the
# few-shot models, default 0: `*-base`, other seeds `*-base-sSEED`), EPOCHS (6), LIMIT (10000),
# JOBS (jobs side by side, one thread each; default 2), EXTRA (more `conv` flags for the hard and
# frozen rows, e.g. "--conv-init signed"), BPEXTRA (more `bpconv` flags, e.g. "--bpconv-pool 7:7:0").
# Cost on one core of the 2-core host (96:5): a `conv` or `bpconv` run 4-6 minutes, PGD-trained
# `bpconv` about 11 times that; the strongest ensemble on 1000 images a few minutes per model.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/conv}
ARCH=${2:-96:5}
SETTINGS=${SETTINGS:-hard frozen bpconv bpadv fewshot}
SEEDS=${SEEDS:-0 1 2}
ROBUST_SEEDS=${ROBUST_SEEDS:-$SEEDS}
FEWSHOT_SEEDS=${FEWSHOT_SEEDS:-0}
EPOCHS=${EPOCHS:-6}
LIMIT=${LIMIT:-10000}
JOBS=${JOBS:-2}
read -r -a EXTRA_FLAGS <<< "${EXTRA:-}"
read -r -a BPEXTRA_FLAGS <<< "${BPEXTRA:-}"
source scripts/common.sh
prepare_runs
wanted() { [[ " $SETTINGS " == *" $1 "* ]]; }
# the few-shot models of seed 0 are `*-base`, those of another seed `*-base-sSEED`
base_tag() { [ "$1" = 0 ] || echo "-s$1"; }
CONV=(--rule conv --conv "$ARCH" "${EXTRA_FLAGS[@]}")
BPCONV=(--rule bpconv --bpconv "$ARCH" "${BPEXTRA_FLAGS[@]}")
# queue CMD...: runs CMD in the background once fewer than JOBS jobs run.
queue() {
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  "$@" &
}
train() { local name=$1; shift; train_run "$name" --dataset fashion-mnist --epochs "$EPOCHS" "$@"; }

for seed in $SEEDS; do
  # bpconv of each seed is the transfer source of the conv rows, conv-hard of bpconv's
  queue train "conv-hard-$seed" "${CONV[@]}" --seed "$seed"
  queue train "bpconv-$seed" "${BPCONV[@]}" --seed "$seed"
  if wanted frozen; then queue train "conv-frozen-$seed" "${CONV[@]}" --conv-frozen --seed "$seed"; fi
done
if wanted fewshot; then
  for seed in $FEWSHOT_SEEDS; do
    queue train "conv-hard-base$(base_tag "$seed")" "${CONV[@]}" --classes 0-4 --seed "$seed"
    queue train "conv-frozen-base$(base_tag "$seed")" "${CONV[@]}" --conv-frozen --classes 0-4 --seed "$seed"
    queue train "bpconv-base$(base_tag "$seed")" "${BPCONV[@]}" --classes 0-4 --seed "$seed"
  done
fi
wait

strongest() {
  local run=$1 source=$2
  [ -f "$RUNS/$run/metrics.json" ] || return 0
  [ -f "$RUNS/$run.strongest.txt" ] && return 0
  $BIO eval robustness --model "$RUNS/$run" --attack strongest --eps 0.1 --queries 1000 \
    --limit "$LIMIT" --source "$RUNS/$source" > "$RUNS/$run.strongest.tmp" 2>&1 \
    && mv "$RUNS/$run.strongest.tmp" "$RUNS/$run.strongest.txt" \
    || echo "$run strongest: $(tail -n 1 "$RUNS/$run.strongest.tmp")" >> "$RUNS/failed.txt"
}
fewshot() {
  local run=$1
  [ -f "$RUNS/$run/metrics.json" ] || return 0
  [ -f "$RUNS/$run.fewshot.txt" ] || $BIO eval fewshot --model "$RUNS/$run" --ways 5 --shots 1,5 \
    --episodes 600 > "$RUNS/$run.fewshot.txt" 2>&1 \
    || echo "$run fewshot: $(tail -n 1 "$RUNS/$run.fewshot.txt")" >> "$RUNS/failed.txt"
}
if wanted fewshot; then
  for seed in $FEWSHOT_SEEDS; do
    for run in conv-hard-base conv-frozen-base bpconv-base; do queue fewshot "$run$(base_tag "$seed")"; done
  done
fi
for seed in $ROBUST_SEEDS; do
  if wanted hard; then queue strongest "conv-hard-$seed" "bpconv-$seed"; fi
  if wanted frozen; then queue strongest "conv-frozen-$seed" "bpconv-$seed"; fi
  if wanted bpconv; then queue strongest "bpconv-$seed" "conv-hard-$seed"; fi
done
# PGD training last: about 11 times a bpconv run
if wanted bpadv; then
  for seed in $SEEDS; do
    queue train "bpconv-adv-$seed" "${BPCONV[@]}" --bpconv-adversarial-eps 0.1 --bpconv-adversarial-steps 10 --seed "$seed"
  done
  wait
  for seed in $ROBUST_SEEDS; do queue strongest "bpconv-adv-$seed" "conv-hard-$seed"; done
fi
wait
for f in "$RUNS"/*/metrics.json; do
  echo "$f: $(grep -o '"test_accuracy": *[0-9.]*' "$f" | head -n 1)"
done
grep -H "WORST CASE" "$RUNS"/*.strongest.txt || true
