# Seeds 1 and 2 of round 11's best validation point and its frozen control (docs/RESULTS.md, "Round 11").
# Needs target/release/bio (cargo build --release -p bio-cli) and BIO_DATA_DIR: bash docs/results/round11/seeds/seeds.sh
set -e
cd "$(dirname "$0")/../../../.."
BASE="--dataset fashion-mnist --validation 10000 --rule conv --conv 96:5 --conv-pool 7:7:0 --conv-init signed --epochs 6 --conv-readout-rate 0.0003 --conv-centre --conv-whiten 0.1"
for s in 1 2; do
  ./target/release/bio train $BASE --conv-learn-density 0.01 --conv-rate 0.5 --seed $s --quiet --force --out runs/round11-seeds/bio-learn-k1-s$s
  ./target/release/bio train $BASE --conv-frozen --seed $s --quiet --force --out runs/round11-seeds/frozen-s$s
done
