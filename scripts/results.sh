#!/usr/bin/env bash
# Regenerates every figure in docs/RESULTS.md: full Fashion-MNIST, 784-2000-10, seed 0 unless
# stated, CPU backend. Usage: bash scripts/results.sh [RUNS_DIR]   (about 45 minutes on 2 cores)
#
# Jobs run in two lanes of single-threaded processes: on this 2-vCPU machine two 1-thread runs
# finish sooner than the same runs one after another with 2 threads each (docs/PERFORMANCE.md).
# Training times in RESULTS.md are therefore 1-thread times with another job running beside.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/results}
source scripts/common.sh
prepare_runs
train() { local name=$1; shift; train_run "$name" --dataset fashion-mnist "$@"; }
# Weights at initialization, as `bio eval metrics` sees them: one epoch with every plasticity rate at 0.
at_init() {
  local name=$1; shift
  train "$name" --rule bio --epochs 1 --hebbian-rate 0 --readout-rate 0 --homeostasis-rate 0 \
    --ablate scaling,structural "$@"
}

# ---- Training ---------------------------------------------------------------------------------
(
  # Clean accuracy: the defaults over 3 seeds.
  train bio --rule bio
  for seed in 1 2; do train "bio-seed$seed" --rule bio --seed "$seed"; done
  # Ablations: each mechanism of the bio rule switched off alone.
  for m in competition multiplicative homeostasis; do train "ablate-$m" --rule bio --ablate "$m"; done
  train bio-inhibitory --rule bio --competition inhibitory
  train bio-inhibitory-1.25 --rule bio --competition inhibitory --inhibition-gain 1.25
  train bio-mixed --rule bio --readout-init mixed --hidden-init mixed
  # The clean-versus-robust trade-off set by the Hebbian rate (default 0.0003).
  train bio-hr3e-3 --rule bio --hebbian-rate 0.003
  train bio-hr1e-2-seed1 --rule bio --hebbian-rate 0.01 --seed 1
  train bio-spread1-epochs30 --rule bio --init-spread 1 --epochs 30
  # Depth: two hidden layers, each learning by its own local rule at the same time.
  train depth-bio --rule bio --hidden 2000,2000
  # Feature extractors on base classes 0-4 for the episodic few-shot protocol (and a denser code).
  train bio-base --rule bio --classes 0-4
  train bio-base-af0.2 --rule bio --classes 0-4 --active-fraction 0.2
) &
(
  # The random-feature control (Hebbian rate 0) and backprop over 3 seeds.
  train bio-random --rule bio --hebbian-rate 0
  train bp --rule bp
  for seed in 1 2; do train "bp-seed$seed" --rule bp --seed "$seed"; done
  for m in structural scaling sign-readout; do train "ablate-$m" --rule bio --ablate "$m"; done
  # Lognormality from a start far from lognormal (magnitudes uniform from 0), and both starts untrained.
  train bio-spread1 --rule bio --init-spread 1
  train bio-spread1-hr1e-3-epochs30 --rule bio --init-spread 1 --hebbian-rate 0.001 --epochs 30
  train bio-hr1e-2 --rule bio --hebbian-rate 0.01
  train bio-hr1e-2-seed2 --rule bio --hebbian-rate 0.01 --seed 2
  at_init bio-init
  at_init bio-init-spread1 --init-spread 1
  at_init bio-init-mixed --hidden-init mixed --readout-init mixed
  # Depth, greedy: layer 1 alone for half the plastic epochs, then layer 2 alone.
  train depth-bio-layerwise --rule bio --hidden 2000,2000 --layerwise
  train depth-bp --rule bp --hidden 2000,2000
  train bp-base --rule bp --classes 0-4
) &
wait

# ---- Evaluation -------------------------------------------------------------------------------
# PGD-40 on the full test set (10 000 images), 3 seeds, for the summary table; saved as DIR.pgd-full.
# Run first: the commands after it replace these curves in robustness.json with the plotted ones.
full_pgd() { $BIO eval robustness --model "$RUNS/$1" --attack pgd --eps 0.05,0.1 > "$RUNS/$1.pgd-full"; }
(
  for run in bio bio-seed1 bio-seed2 bio-hr1e-2 bio-hr1e-2-seed1; do full_pgd $run; done
) &
(
  for run in bio-hr1e-2-seed2 bp bp-seed1 bp-seed2; do full_pgd $run; done
  $BIO eval robustness --model "$RUNS/bio-hr1e-2" --attack square --eps 0.1 > "$RUNS/bio-hr1e-2.square-full"
) &
wait

# The strongest evaluation (issue 12): APGD-CE, APGD-T, surrogate gradient, transfer (bp as the source
# for bio models, bio for bp) and Square, worst case per image, with the sanity checks, on the first
# 2000 test images, and PGD-40 on the same images for comparison (DIR.pgd2000). Square gets 1000
# queries here (5000 is the default) to fit the CPU budget; the 5000-query run on 1000 images of the
# robust setting checks that this does not change the figure.
# Saved as DIR.strongest (the table) and in DIR/robustness.json under "ensembles".
strongest() {
  local run=$1 source=$2; shift 2
  $BIO eval robustness --model "$RUNS/$run" --attack strongest --eps 0.05,0.1 --limit 2000 --queries 1000 \
    --source "$RUNS/$source" "$@" > "$RUNS/$run.strongest"
  $BIO eval robustness --model "$RUNS/$run" --attack pgd --eps 0.05,0.1 --limit 2000 > "$RUNS/$run.pgd2000"
}
(
  strongest bio-hr1e-2 bp
  for run in bio-hr1e-2-seed1 bio-hr1e-2-seed2; do
    $BIO eval robustness --model "$RUNS/$run" --attack strongest --eps 0.1 --limit 2000 --queries 1000 \
      --source "$RUNS/bp" > "$RUNS/$run.strongest"
    $BIO eval robustness --model "$RUNS/$run" --attack pgd --eps 0.1 --limit 2000 > "$RUNS/$run.pgd2000"
  done
) &
(
  strongest bio bp
  strongest bp bio
  strongest bio-random bp
  mkdir -p "$RUNS/bio-hr1e-2-q5000"
  cp "$RUNS/bio-hr1e-2/model.ckpt" "$RUNS/bio-hr1e-2/config.json" "$RUNS/bio-hr1e-2/metrics.json" "$RUNS/bio-hr1e-2-q5000/"
  $BIO eval robustness --model "$RUNS/bio-hr1e-2-q5000" --attack strongest --eps 0.1 --limit 1000 \
    --source "$RUNS/bp" > "$RUNS/bio-hr1e-2-q5000.strongest"
  # The surrogate-gradient and transfer attacks alone, on every clean-correct image (copies of the
  # model directories, so their robustness.json keeps the ensemble's entry apart).
  for run in bio bio-hr1e-2; do
    mkdir -p "$RUNS/$run-transfer"
    cp "$RUNS/$run/model.ckpt" "$RUNS/$run/config.json" "$RUNS/$run/metrics.json" "$RUNS/$run-transfer/"
    $BIO eval robustness --model "$RUNS/$run-transfer" --attack transfer,surrogate --eps 0.05,0.1 --limit 2000 \
      --source "$RUNS/bp" > "$RUNS/$run.transfer-alone"
  done
) &
wait

robustness() {
  # PGD and Square together print the masking check; the PGD grid after it keeps the full PGD curve
  # in robustness.json (each command replaces the curves of the attacks it runs).
  $BIO eval robustness --model "$RUNS/$1" --attack pgd,square --eps 0,0.05,0.1 --limit 1000
  $BIO eval robustness --model "$RUNS/$1" --attack fgsm,pgd --limit 2000
}
(
  robustness bio
  robustness bio-random
  for run in bio-hr3e-3 bio-hr1e-2; do
    $BIO eval robustness --model "$RUNS/$run" --attack pgd,square --eps 0,0.05,0.1 --limit 1000
  done
  for run in ablate-competition ablate-multiplicative ablate-homeostasis ablate-structural ablate-scaling \
    ablate-sign-readout bio-inhibitory; do
    $BIO eval robustness --model "$RUNS/$run" --attack pgd --eps 0.05,0.1 --limit 1000
  done
) > "$RUNS/lane-a.log" &
(
  robustness bp
  for run in bio bio-random bp bio-hr3e-3 bio-hr1e-2 bio-spread1 bio-init bio-init-spread1 bio-init-mixed ablate-multiplicative bio-mixed \
    bio-inhibitory bio-inhibitory-1.25 depth-bio depth-bio-layerwise depth-bp; do
    $BIO eval metrics --model "$RUNS/$run"
  done
  for run in bio-base bio-base-af0.2 bp-base; do
    $BIO eval fewshot --model "$RUNS/$run" --ways 5 --shots 1,5 --episodes 600
  done
  $BIO eval fewshot --protocol few-labels --rule bp --dataset fashion-mnist --shots 1,5,10,50 --hidden 2000 --out "$RUNS/few-labels-bp"
  $BIO eval fewshot --protocol few-labels --rule bio --dataset fashion-mnist --shots 1,5,10,50 --hidden 2000 --unlabelled --out "$RUNS/few-labels-bio"
) > "$RUNS/lane-b.log" &
wait
for run in bio bio-random bp; do $BIO inspect --model "$RUNS/$run" --out "$RUNS/$run/pictures" > /dev/null; done
$BIO report "$RUNS/bio" "$RUNS/bio-random" "$RUNS/bp" --out docs/results
$BIO report "$RUNS/bio" "$RUNS/bio-hr3e-3" "$RUNS/bio-hr1e-2" "$RUNS/bp" --out docs/results/tradeoff
echo "results in $RUNS; failures (if any) in $RUNS/failed.txt"
