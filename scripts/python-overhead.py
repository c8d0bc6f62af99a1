"""Overhead of the Python bindings: one epoch of full Fashion-MNIST trained from Python and by
`bio train` with the same settings (same run: the weights must come out identical), and predictions
on the 10 000 test images. Prints a Markdown table for docs/PERFORMANCE.md.

    python scripts/python-overhead.py [--rule bio] [--bio target/release/bio]
"""

import argparse
import json
import pathlib
import subprocess
import tempfile
import time

import numpy as np

import biorule

parser = argparse.ArgumentParser()
parser.add_argument("--rule", default="bio")
parser.add_argument("--bio", default="target/release/bio")
parser.add_argument("--hidden", type=int, default=2000)
args = parser.parse_args()

work = pathlib.Path(tempfile.mkdtemp(prefix="py-overhead-"))
rows = []

t = time.perf_counter()
x, y, x_test, y_test = biorule.datasets.load("fashion-mnist")
rows.append(("datasets.load (decode 70k images, to NumPy)", time.perf_counter() - t, ""))

t = time.perf_counter()
cli = subprocess.run(
    [args.bio, "train", "--rule", args.rule, "--dataset", "fashion-mnist", "--hidden", str(args.hidden),
     "--epochs", "1", "--quiet", "--out", str(work / "cli")],
    check=True, capture_output=True,
)
cli_wall = time.perf_counter() - t
cli_metrics = json.loads((work / "cli" / "metrics.json").read_text())
rows.append(("`bio train --epochs 1` (whole process)", cli_wall, f"train_seconds {cli_metrics['train_seconds']:.2f}"))

t = time.perf_counter()
model = biorule.Trainer(rule=args.rule, hidden=[args.hidden]).fit(
    x, y, epochs=1, x_test=x_test, y_test=y_test, dataset="fashion-mnist")
py_wall = time.perf_counter() - t
rows.append(("`Trainer.fit(epochs=1)` (arrays in, model out)", py_wall,
             f"train_seconds {model.metrics['train_seconds']:.2f}"))

same = all(np.array_equal(w, biorule.load(work / "cli").weights()[k]) for k, w in model.weights().items())

flat = x_test.reshape(len(x_test), -1)
for label, arr in [("float32", flat), ("float64", flat.astype(np.float64)), ("float32, F-ordered", np.asfortranarray(flat))]:
    model.predict(arr)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        model.predict(arr)
        times.append(time.perf_counter() - t)
    rows.append((f"`Model.predict` on 10 000 images ({label}), median of 5", float(np.median(times)), ""))
t = time.perf_counter()
model.predict(flat[:10])
rows.append(("`Model.predict` on 10 images (fixed cost)", time.perf_counter() - t, ""))

model.save(work / "py")
t = time.perf_counter()
subprocess.run([args.bio, "eval", "accuracy", "--model", str(work / "py"), "--json"], check=True, capture_output=True)
rows.append(("`bio eval accuracy` on the same model (whole process: checkpoint, test-set decode, 10 000 predictions)",
             time.perf_counter() - t, ""))

print(f"rule {args.rule}, 784-{args.hidden}-10, batch 100; identical weights from both: {same}; "
      f"test accuracy {model.metrics['test_accuracy']:.4f} (Python) / {cli_metrics['test_accuracy']:.4f} (CLI)\n")
print("| step | seconds | note |\n| --- | --- | --- |")
for name, seconds, note in rows:
    print(f"| {name} | {seconds:.3f} | {note} |")
