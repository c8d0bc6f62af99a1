"""Overhead of the Python bindings, measured in one run: full Fashion-MNIST trained from Python and by
`bio train` with the same settings (the weights must come out identical), alternating the two
(CLI first in even rounds, Python first in odd ones, so a drift of the machine's load hits both),
then `Model.predict` on the 10 000 test images against the same work called from Rust
(`crates/bio-run/examples/predict_time.rs`), also alternating. Prints a Markdown report for
docs/PERFORMANCE.md.

    cargo build --release -p bio-cli && cargo build --release -p bio-run --example predict_time
    python scripts/python-overhead.py [--rule bio] [--rounds 3] [--epochs 1] \\
        [--bio target/release/bio] [--predict-time target/release/examples/predict_time]
"""

import argparse
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import biorule

parser = argparse.ArgumentParser()
parser.add_argument("--rule", default="bio")
parser.add_argument("--bio", default="target/release/bio")
parser.add_argument("--predict-time", default="target/release/examples/predict_time")
parser.add_argument("--hidden", type=int, default=2000)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--rounds", type=int, default=3, help="training rounds (one CLI and one Python run each)")
parser.add_argument("--predict-rounds", type=int, default=3)
parser.add_argument("--repeats", type=int, default=5, help="predict calls per round (median taken)")
args = parser.parse_args()

work = pathlib.Path(tempfile.mkdtemp(prefix="py-overhead-"))

t = time.perf_counter()
x, y, x_test, y_test = biorule.datasets.load("fashion-mnist")
load_seconds = time.perf_counter() - t


def train_cli(out):
    t = time.perf_counter()
    subprocess.run(
        [args.bio, "train", "--rule", args.rule, "--dataset", "fashion-mnist", "--hidden", str(args.hidden),
         "--epochs", str(args.epochs), "--seed", "0", "--quiet", "--out", str(out)],
        check=True, capture_output=True,
    )
    wall = time.perf_counter() - t
    metrics = json.loads((out / "metrics.json").read_text())
    return wall, metrics["train_seconds"], metrics["test_accuracy"]


def train_python():
    t = time.perf_counter()
    model = biorule.Trainer(rule=args.rule, hidden=[args.hidden], seed=0).fit(
        x, y, epochs=args.epochs, x_test=x_test, y_test=y_test, dataset="fashion-mnist")
    wall = time.perf_counter() - t
    return wall, model.metrics["train_seconds"], model.metrics["test_accuracy"], model


cli_runs, py_runs = [], []
same_weights = []
model = None
for round_ in range(args.rounds):
    cli_dir = work / f"cli-{round_}"
    order = ("cli", "py") if round_ % 2 == 0 else ("py", "cli")
    for side in order:
        if side == "cli":
            cli_runs.append(train_cli(cli_dir))
        else:
            *figures, model = train_python()
            py_runs.append(tuple(figures))
    cli_weights = biorule.load(cli_dir).weights()
    same_weights.append(all(np.array_equal(w, cli_weights[k]) for k, w in model.weights().items()))
    print(f"round {round_}: cli {cli_runs[-1]}, python {py_runs[-1]}", file=sys.stderr)

model.save(work / "py")
flat = x_test.reshape(len(x_test), -1)
py_predict, rust_predict = [], []
for round_ in range(args.predict_rounds):
    order = ("rust", "py") if round_ % 2 == 0 else ("py", "rust")
    for side in order:
        if side == "rust":
            out = subprocess.run([args.predict_time, str(work / "py"), str(args.repeats)],
                                 check=True, capture_output=True, text=True).stdout
            rust_predict.append(statistics.median(json.loads(out)["seconds"]))
        else:
            model.predict(flat)
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                model.predict(flat)
                times.append(time.perf_counter() - t)
            py_predict.append(statistics.median(times))
predicted = model.predict(flat)

t = time.perf_counter()
model.predict(flat[:10])
fixed_cost = time.perf_counter() - t


def median(values):
    return statistics.median(values)


def percent(ours, reference):
    return f"{100.0 * (ours / reference - 1.0):+.1f}%"


def seconds(values):
    return ", ".join(f"{v:.2f}" for v in values)


cli_wall, cli_train, cli_acc = zip(*cli_runs)
py_wall, py_train, py_acc = zip(*py_runs)
print(f"`{' '.join(sys.argv)}` on {platform.node()}, Python {platform.python_version()}, "
      f"rule `{args.rule}`, 784-{args.hidden}-10, batch 100, seed 0, {args.epochs} epoch(s) of full Fashion-MNIST "
      f"per run, {args.rounds} rounds alternating CLI and Python.\n")
print("| | CLI (`bio train`) | Python (`Trainer.fit`) | Python vs CLI (medians) |\n| --- | --- | --- | --- |")
print(f"| identical weights, every round | | {all(same_weights)} | |")
print(f"| test accuracy | {seconds(cli_acc)} | {seconds(py_acc)} | |")
print(f"| `train_seconds` (the session's own clock), each round | {seconds(cli_train)} | {seconds(py_train)} "
      f"| {percent(median(py_train), median(cli_train))} |")
print(f"| whole process / whole `fit` call, each round | {seconds(cli_wall)} | {seconds(py_wall)} "
      f"| {percent(median(py_wall), median(cli_wall))} |")
print(f"| `fit` call vs the CLI's `train_seconds` | | | {percent(median(py_wall), median(cli_train))} |")
print()
print("| | Rust (`examples/predict_time`) | Python (`Model.predict`) | Python vs Rust (medians) |\n"
      "| --- | --- | --- | --- |")
print(f"| 10 000 test images, median of {args.repeats} per round, each round | {seconds(rust_predict)} "
      f"| {seconds(py_predict)} | {percent(median(py_predict), median(rust_predict))} |")
print(f"| accuracy of those predictions | | {float((predicted == y_test).mean()):.4f} | |")
print()
print(f"`datasets.load(\"fashion-mnist\")`: {load_seconds:.2f} s; `Model.predict` on 10 images: "
      f"{1000 * fixed_cost:.1f} ms.")
