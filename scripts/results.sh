#!/usr/bin/env bash
# Regenerates every figure in docs/RESULTS.md: full Fashion-MNIST, 784-2000-10, seed 0, CPU backend.
# Usage: bash scripts/results.sh [RUNS_DIR]   (about 40 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/results}
cargo build --release -p bio-cli
mkdir -p "$RUNS"
# A private copy, so rebuilding the workspace meanwhile cannot change the binary under a long run.
cp target/release/bio "$RUNS/bio-bin"
BIO=$RUNS/bio-bin
# A run that fails (e.g. diverges) is recorded in $RUNS/failed.txt with its one-line reason; the rest go on.
train() {
  local name=$1; shift
  [ -f "$RUNS/$name/metrics.json" ] && return 0
  $BIO train --dataset fashion-mnist --quiet --out "$RUNS/$name" "$@" 2> "$RUNS/$name.err" \
    || echo "$name: $(tail -n 1 "$RUNS/$name.err")" >> "$RUNS/failed.txt"
}

# Clean accuracy: the defaults, the random-feature control (Hebbian rate 0), backprop.
train bio --rule bio
train bio-random --rule bio --hebbian-rate 0
train bp --rule bp
for seed in 1 2; do
  train "bio-seed$seed" --rule bio --seed "$seed"
  train "bp-seed$seed" --rule bp --seed "$seed"
done
# Ablations: each mechanism of the bio rule switched off alone.
for m in competition multiplicative homeostasis structural scaling sign-readout; do
  train "ablate-$m" --rule bio --ablate "$m"
done
train bio-inhibitory --rule bio --competition inhibitory
train bio-mixed --rule bio --readout-init mixed --hidden-init mixed
# Depth: two hidden layers, each trained by its own local rule at the same time.
train depth-bio --rule bio --hidden 2000,2000
train depth-bp --rule bp --hidden 2000,2000
# Feature extractors on base classes 0-4 for the episodic few-shot protocol.
train bio-base --rule bio --classes 0-4
train bp-base --rule bp --classes 0-4

for run in bio bio-random bp; do
  # PGD and Square together print the masking check; the PGD grid after it keeps the full PGD curve
  # in robustness.json (each command replaces the curves of the attacks it runs).
  $BIO eval robustness --model "$RUNS/$run" --attack pgd,square --eps 0,0.05,0.1 --limit 1000
  $BIO eval robustness --model "$RUNS/$run" --attack fgsm,pgd --limit 2000
  $BIO eval metrics --model "$RUNS/$run"
done
for run in depth-bio depth-bp; do $BIO eval metrics --model "$RUNS/$run"; done
for run in bio-base bp-base; do
  $BIO eval fewshot --model "$RUNS/$run" --ways 5 --shots 1,5 --episodes 600
done
$BIO eval fewshot --protocol few-labels --rule bp --dataset fashion-mnist --shots 1,5,10,50 --hidden 2000 --out "$RUNS/few-labels-bp"
$BIO eval fewshot --protocol few-labels --rule bio --dataset fashion-mnist --shots 1,5,10,50 --hidden 2000 --unlabelled --out "$RUNS/few-labels-bio"
for run in bio bio-random bp; do $BIO inspect --model "$RUNS/$run" --out "$RUNS/$run/pictures" > /dev/null; done
$BIO report "$RUNS/bio" "$RUNS/bio-random" "$RUNS/bp" --out docs/results
