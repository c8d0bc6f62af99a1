#!/usr/bin/env bash
# Reproduces docs/RESULTS.md "Omniglot one-shot" (issue 32).
#
#   scripts/results-omniglot.sh [final|validate|sweep|curves|conv|all]   (default: all)
#
# final:    trains bio, bp, kh, softhebb and the random-features control (bio with --hebbian-rate 0)
#           on all 136 background small 1 characters (drawers 1-16) and scores each on Lake's 20
#           one-shot runs (`bio eval oneshot`), printing one table.
# validate: the tuning protocol, which never touches the runs: each model is trained on four of the
#           five background alphabets (--classes 0-45,70-135: Greek, labels 46-69, held out) and
#           scored by 20-way 1-shot episodes (3 queries, 600 episodes) on the held-out Greek
#           characters' drawers 17-20 (`bio eval fewshot`).
# curves:   the episodic N-way K-shot curves: bio (EXTRA_BIO), bp, kh and softhebb trained with the
#           Korean alphabet held out (--classes 0-69,110-135), `bio eval oneshot --episodes 400
#           --ways 5,20 --shots 1,5` on the 40 Korean characters (every model's own initialization
#           is scored beside it, the random-features control); then the centring check: bio on the
#           Fashion-MNIST subset's classes 0-4, `--episodes 600 --ways 5` on classes 5-9.
# conv:     convolutional features (issue 33): `conv` with learned filters beside the same net with its
#           filters frozen at their start (the random-features control of each forward pass) and
#           `bpconv`, over pooling, Hebbian rate and epochs, density, start and centring; each setting
#           under both protocols (validation picks; the runs only report), one line each.
# sweep:    one setting at a time from the defaults (not EXTRA_BIO): bio's Hebbian rate, density (--active-fraction), width (--hidden) and input side (omniglot-small1-SIDE)
#           under both protocols (validation picks; the runs only report).
#
# Environment: BIO (binary, default target/release/bio), OUT (default runs/omniglot), SEED (0),
# EXTRA_BIO (extra flags for every bio model, e.g. the tuned settings, default those of RESULTS.md),
# RANDOM_BIO (the random-features control's flags: EXTRA_BIO without its Hebbian rate, and rate 0),
# CONV_ONLY (the `conv` stage's settings to run, by name; default all).
set -euo pipefail
BIO=${BIO:-target/release/bio}
OUT=${OUT:-runs/omniglot}
SEED=${SEED:-0}
EXTRA_BIO=${EXTRA_BIO---hebbian-rate 0.003 --active-fraction 0.2}
RANDOM_BIO=${RANDOM_BIO---active-fraction 0.2 --hebbian-rate 0}
STAGE=${1:-all}
HOLD_OUT_GREEK="0-45,70-135"
HOLD_OUT_KOREAN="0-69,110-135"

# name rule dataset flags...
MODELS=(
  "bio|bio|omniglot-small1|$EXTRA_BIO"
  "bp|bp|omniglot-small1|"
  "kh|kh|omniglot-small1|"
  "softhebb|softhebb|omniglot-small1|"
  "random|bio|omniglot-small1|$RANDOM_BIO"
)

train() { # dir rule dataset flags...
  local dir=$1 rule=$2 data=$3
  shift 3
  mkdir -p "$(dirname "$dir")"
  # shellcheck disable=SC2068
  "$BIO" train --rule "$rule" --dataset "$data" --seed "$SEED" --out "$dir" --force $@ >"$dir.log" 2>&1 || { cat "$dir.log" >&2; exit 1; }
}

oneshot_rows() { # dir|"" label ("ref": the reference rows alone)
  "$BIO" eval oneshot ${1:+--model "$1"} --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
for row in r["rows"]:
    if row["features"] in ("mhd", "pixels") and sys.argv[1] != "ref":
        continue
    print("%-28s %-16s %-11s %6.2f ± %.2f%%" % (sys.argv[1], row["features"], row["centring"], row["mean"], row["ci95"]))
' "$2"
}

validate_rows() { # dir label
  "$BIO" eval fewshot --model "$1" --ways 20 --shots 1 --queries 3 --episodes 600 --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
for row in r["results"]:
    if row["classifier"] == "ncm":
        print("%-28s %-16s validation 20-way 1-shot error %6.2f ± %.2f%%" % (sys.argv[1], row["features"], 100 - 100 * row["mean"], 100 * row["ci95"]))
' "$2"
}

final() {
  oneshot_rows "" ref
  for m in "${MODELS[@]}"; do
    IFS='|' read -r name rule data flags <<<"$m"
    train "$OUT/$name" "$rule" "$data" $flags
    oneshot_rows "$OUT/$name" "$name"
  done
}

validate() {
  for m in "${MODELS[@]}"; do
    IFS='|' read -r name rule data flags <<<"$m"
    train "$OUT/val/$name" "$rule" "$data" $flags --classes "$HOLD_OUT_GREEK"
    validate_rows "$OUT/val/$name" "$name"
  done
}

sweep() {
  for r in 0.003 0.01 0.03; do
    train "$OUT/val/bio-r$r" bio omniglot-small1 --hebbian-rate "$r" --classes "$HOLD_OUT_GREEK"
    validate_rows "$OUT/val/bio-r$r" "bio --hebbian-rate $r"
    train "$OUT/bio-r$r" bio omniglot-small1 --hebbian-rate "$r"
    oneshot_rows "$OUT/bio-r$r" "bio --hebbian-rate $r"
  done
  for f in 0.02 0.05 0.1 0.2; do
    train "$OUT/val/bio-a$f" bio omniglot-small1 --active-fraction "$f" --classes "$HOLD_OUT_GREEK"
    validate_rows "$OUT/val/bio-a$f" "bio --active-fraction $f"
    train "$OUT/bio-a$f" bio omniglot-small1 --active-fraction "$f"
    oneshot_rows "$OUT/bio-a$f" "bio --active-fraction $f"
  done
  for h in 500 8000; do
    train "$OUT/val/bio-h$h" bio omniglot-small1 --hidden "$h" --classes "$HOLD_OUT_GREEK"
    validate_rows "$OUT/val/bio-h$h" "bio --hidden $h"
    train "$OUT/bio-h$h" bio omniglot-small1 --hidden "$h"
    oneshot_rows "$OUT/bio-h$h" "bio --hidden $h"
  done
  # Two combinations with the chosen rate, validation only.
  train "$OUT/val/bio-r0.003-s14" bio omniglot-small1-14 --hebbian-rate 0.003 --classes "$HOLD_OUT_GREEK"
  validate_rows "$OUT/val/bio-r0.003-s14" "bio --hebbian-rate 0.003 side 14"
  train "$OUT/val/bio-r0.003-e30" bio omniglot-small1 --hebbian-rate 0.003 --epochs 30 --classes "$HOLD_OUT_GREEK"
  validate_rows "$OUT/val/bio-r0.003-e30" "bio --hebbian-rate 0.003 --epochs 30"
  for s in 14 20 40; do
    train "$OUT/val/bio-s$s" bio "omniglot-small1-$s" --classes "$HOLD_OUT_GREEK"
    validate_rows "$OUT/val/bio-s$s" "bio side $s"
    train "$OUT/bio-s$s" bio "omniglot-small1-$s"
    oneshot_rows "$OUT/bio-s$s" "bio side $s"
  done
}

# name|rule|flags[|dataset]: every conv setting is `96:5` on omniglot-small1 (28×28) unless its flags or
# dataset say otherwise, six epochs unless stated (conv: the Hebbian epochs, then the readout).
CONV_BASE="--conv-readout-rate 0.0003"
CONV_MODELS=(
  "c7-frozen|conv|--conv-pool 7:7:0 --conv-init signed --conv-frozen --epochs 6"
  "c7-r0.02|conv|--conv-pool 7:7:0 --conv-init signed --conv-rate 0.02 --epochs 6"
  "c7-r0.5|conv|--conv-pool 7:7:0 --conv-init signed --conv-rate 0.5 --epochs 6"
  "c7-r0.5-h5|conv|--conv-pool 7:7:0 --conv-init signed --conv-rate 0.5 --conv-layer-epochs 5 --epochs 10"
  "c7-r0.1-h5|conv|--conv-pool 7:7:0 --conv-init signed --conv-rate 0.1 --conv-layer-epochs 5 --epochs 10"
  "c7-d0.05-frozen|conv|--conv-pool 7:7:0 --conv-init signed --conv-density 0.05 --conv-frozen --epochs 6"
  "c7-d0.05-r0.5|conv|--conv-pool 7:7:0 --conv-init signed --conv-density 0.05 --conv-rate 0.5 --epochs 6"
  "c7-centre-frozen|conv|--conv-pool 7:7:0 --conv-init signed --conv-centre --conv-frozen --epochs 6"
  "c7-centre-r0.5|conv|--conv-pool 7:7:0 --conv-init signed --conv-centre --conv-rate 0.5 --epochs 6"
  "c7-pos-frozen|conv|--conv-pool 7:7:0 --conv-frozen --epochs 6"
  "c7-pos-r0.02|conv|--conv-pool 7:7:0 --epochs 6"
  "c7-r0.5-h20|conv|--conv-pool 7:7:0 --conv-init signed --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "c7-d0.05-r0.5-h5|conv|--conv-pool 7:7:0 --conv-init signed --conv-density 0.05 --conv-rate 0.5 --conv-layer-epochs 5 --epochs 10"
  "c7-d0.05-r0.5-h20|conv|--conv-pool 7:7:0 --conv-init signed --conv-density 0.05 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "c7-pos-r0.5-h5|conv|--conv-pool 7:7:0 --conv-rate 0.5 --conv-layer-epochs 5 --epochs 10"
  "c7-pos-d0.05-frozen|conv|--conv-pool 7:7:0 --conv-density 0.05 --conv-frozen --epochs 6"
  "c7-pos-d0.05-r0.5-h5|conv|--conv-pool 7:7:0 --conv-density 0.05 --conv-rate 0.5 --conv-layer-epochs 5 --epochs 10"
  "c7-pos-d0.05-r0.02-h5|conv|--conv-pool 7:7:0 --conv-density 0.05 --conv-layer-epochs 5 --epochs 10"
  "c7-pos-d0.02-frozen|conv|--conv-pool 7:7:0 --conv-density 0.02 --conv-frozen --epochs 6"
  "c7-pos-d0.02-r0.5-h5|conv|--conv-pool 7:7:0 --conv-density 0.02 --conv-rate 0.5 --conv-layer-epochs 5 --epochs 10"
  "c7-pos-d0.02-r0.5-h20|conv|--conv-pool 7:7:0 --conv-density 0.02 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "c7-pos-d0.01-frozen|conv|--conv-pool 7:7:0 --conv-density 0.01 --conv-frozen --epochs 6"
  "c7-pos-d0.01-r0.5-h5|conv|--conv-pool 7:7:0 --conv-density 0.01 --conv-rate 0.5 --conv-layer-epochs 5 --epochs 10"
  "c7-pos-d0.01-r0.5-h20|conv|--conv-pool 7:7:0 --conv-density 0.01 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "c7-d0.02-frozen|conv|--conv-pool 7:7:0 --conv-init signed --conv-density 0.02 --conv-frozen --epochs 6"
  "c7-d0.02-r0.5-h5|conv|--conv-pool 7:7:0 --conv-init signed --conv-density 0.02 --conv-rate 0.5 --conv-layer-epochs 5 --epochs 10"
  "c4-frozen|conv|--conv-pool 4:4:0 --conv-init signed --conv-frozen --epochs 6"
  "c4-r0.5|conv|--conv-pool 4:4:0 --conv-init signed --conv-rate 0.5 --epochs 6"
  "c4s2-frozen|conv|--conv-pool 4:2:1 --conv-init signed --conv-frozen --epochs 6"
  "c4s2-r0.5|conv|--conv-pool 4:2:1 --conv-init signed --conv-rate 0.5 --epochs 6"
  "bpconv7|bpconv|--bpconv 96:5 --bpconv-pool 7:7:0 --epochs 6"
  "bpconv4|bpconv|--bpconv 96:5 --bpconv-pool 4:4:0 --epochs 6"
  "bpconv4s2|bpconv|--bpconv 96:5 --bpconv-pool 4:2:1 --epochs 6"
  "bpconv7-e30|bpconv|--bpconv 96:5 --bpconv-pool 7:7:0 --epochs 30"
  "bpconv4-e30|bpconv|--bpconv 96:5 --bpconv-pool 4:4:0 --epochs 30"
  # Round 9b, from the validation best (positive start, density 0.01, rate 0.5, 20 Hebbian epochs): width,
  # kernel, pooling, input side and a second layer, each beside its frozen control.
  "w192-d0.01-frozen|conv|--conv 192:5 --conv-pool 7:7:0 --conv-density 0.01 --conv-frozen --epochs 6"
  "w192-d0.01-r0.5-h20|conv|--conv 192:5 --conv-pool 7:7:0 --conv-density 0.01 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "w384-d0.005-frozen|conv|--conv 384:5 --conv-pool 7:7:0 --conv-density 0.005 --conv-frozen --epochs 6"
  "w384-d0.005-r0.5-h20|conv|--conv 384:5 --conv-pool 7:7:0 --conv-density 0.005 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "k7-d0.01-frozen|conv|--conv 96:7 --conv-pool 7:7:0 --conv-density 0.01 --conv-frozen --epochs 6"
  "k7-d0.01-r0.5-h20|conv|--conv 96:7 --conv-pool 7:7:0 --conv-density 0.01 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "k9-d0.01-frozen|conv|--conv 96:9 --conv-pool 7:7:0 --conv-density 0.01 --conv-frozen --epochs 6"
  "k9-d0.01-r0.5-h20|conv|--conv 96:9 --conv-pool 7:7:0 --conv-density 0.01 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "p4-d0.01-frozen|conv|--conv 96:5 --conv-pool 4:4:0 --conv-density 0.01 --conv-frozen --epochs 6"
  "p4-d0.01-r0.5-h20|conv|--conv 96:5 --conv-pool 4:4:0 --conv-density 0.01 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25"
  "s40-d0.01-frozen|conv|--conv 96:7 --conv-pool 10:10:0 --conv-density 0.01 --conv-frozen --epochs 6|omniglot-small1-40"
  "s40-d0.01-r0.5-h20|conv|--conv 96:7 --conv-pool 10:10:0 --conv-density 0.01 --conv-rate 0.5 --conv-layer-epochs 20 --epochs 25|omniglot-small1-40"
  "l2-d0.01-frozen|conv|--conv 96:5,192:3 --conv-pool 3:3:0 --conv-density 0.01 --conv-frozen --epochs 6"
  "l2-d0.01-r0.5-h10|conv|--conv 96:5,192:3 --conv-pool 3:3:0 --conv-density 0.01 --conv-rate 0.5 --conv-layer-epochs 10 --epochs 25"
  "bpconv384-7|bpconv|--bpconv 384:5 --bpconv-pool 7:7:0 --epochs 6"
)

conv() {
  for m in "${CONV_MODELS[@]}"; do
    IFS='|' read -r name rule flags data <<<"$m"
    [ -n "${CONV_ONLY:-}" ] && [[ " $CONV_ONLY " != *" $name "* ]] && continue
    [ "$rule" = conv ] && flags="$CONV_BASE $flags"
    [ "$rule" = conv ] && [[ " $flags " != *" --conv "* ]] && flags="--conv 96:5 $flags"
    data=${data:-omniglot-small1}
    train "$OUT/val/$name" "$rule" "$data" $flags --classes "$HOLD_OUT_GREEK"
    validate_rows "$OUT/val/$name" "$name"
    train "$OUT/$name" "$rule" "$data" $flags
    oneshot_rows "$OUT/$name" "$name"
  done
}

curve_rows() { # dir label: NCM rows, plain features
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1] + "/oneshot-curves.json"))
for row in r["rows"]:
    if row["classifier"] == "ncm" and row["centring"] == "none":
        print("%-10s %-20s %2d-way %d-shot %6.2f ± %.2f%%" % (sys.argv[2], row["features"], row["ways"], row["shots"], 100 * row["mean"], 100 * row["ci95"]))
' "$1" "$2"
}

curves() {
  for m in "${MODELS[@]}"; do
    IFS='|' read -r name rule data flags <<<"$m"
    [ "$name" = random ] && continue # every model's own initialization is scored beside it
    train "$OUT/curves/$name" "$rule" "$data" $flags --classes "$HOLD_OUT_KOREAN"
    "$BIO" eval oneshot --model "$OUT/curves/$name" --episodes 400 --ways 5,20 --shots 1,5 >"$OUT/curves/$name.txt"
    curve_rows "$OUT/curves/$name" "$name"
  done
  train "$OUT/curves/fm-bio" bio embedded --classes 0-4
  "$BIO" eval oneshot --model "$OUT/curves/fm-bio" --episodes 600 --ways 5 --shots 1,5
}

case "$STAGE" in
  final) final ;;
  validate) validate ;;
  sweep) sweep ;;
  curves) curves ;;
  conv) conv ;;
  all) validate; sweep; final; curves ;;
  *) echo "usage: $0 [final|validate|sweep|curves|conv|all]" >&2; exit 2 ;;
esac
