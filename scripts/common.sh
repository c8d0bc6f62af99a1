# Shared by the measurement scripts (source it after `cd` to the repository root and setting RUNS).
#
# prepare_runs: builds the `bio` binary (or takes $BIO_BIN), copies it into $RUNS (so rebuilding the workspace during a
# long run cannot change it), sets BIO to that copy, and makes every job single-threaded: the
# scripts run two jobs side by side, which uses 2 cores better than one 2-thread job.
prepare_runs() {
  mkdir -p "$RUNS"
  if [ -n "${BIO_BIN:-}" ]; then
    cp "$BIO_BIN" "$RUNS/bio-bin"   # a binary built beforehand
  else
    cargo build --release -p bio-cli
    cp target/release/bio "$RUNS/bio-bin"
  fi
  BIO=$RUNS/bio-bin
  export RAYON_NUM_THREADS=1
}

# train_run NAME ARGS...: `bio train ARGS --quiet --out $RUNS/NAME` unless NAME already finished;
# stdout to $RUNS/NAME.out, stderr to $RUNS/NAME.err, and a failure (e.g. divergence) recorded in
# $RUNS/failed.txt with its one-line reason instead of stopping the script.
train_run() {
  local name=$1; shift
  [ -f "$RUNS/$name/metrics.json" ] && return 0
  $BIO train "$@" --quiet --force --out "$RUNS/$name" > "$RUNS/$name.out" 2> "$RUNS/$name.err" \
    || echo "$name: $(tail -n 1 "$RUNS/$name.err")" >> "$RUNS/failed.txt"
}
