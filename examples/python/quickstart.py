"""biorule from Python: train the `bio` rule and backprop, attack both, and draw the `bio` network's
receptive fields (with matplotlib, when installed).

    pip install ./crates/bio-py matplotlib
    python examples/python/quickstart.py            # Fashion-MNIST if installed, else the embedded subset
    python examples/python/quickstart.py --quick    # embedded subset, small network (a few seconds)

Set BIORULE_QUICKSTART_OUT to choose where the picture goes (default: the current directory).
"""

import argparse
import os
import pathlib

import numpy as np

import biorule

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="embedded subset, 100 hidden units, 2 epochs")
args = parser.parse_args()

if args.quick:
    dataset, hidden, epochs = "embedded", [100], 2
else:
    try:
        biorule.datasets.load("fashion-mnist")
        dataset = "fashion-mnist"
    except FileNotFoundError as e:
        print(f"{e}\n-> using the embedded subset")
        dataset = "embedded"
    hidden, epochs = [2000], 5
x, y, x_test, y_test = biorule.datasets.load(dataset)
print(f"{dataset}: {len(x)} training and {len(x_test)} test images")

models = {}
for rule in ["bio", "bp"]:
    trainer = biorule.Trainer(rule=rule, hidden=hidden, seed=0)
    report = lambda r, rule=rule: print(f"  {rule} epoch {r['epoch']}/{r['epochs']}: loss {r['loss']:.3f}")
    models[rule] = trainer.fit(x, y, epochs=epochs, x_test=x_test, y_test=y_test, dataset=dataset, callback=report)
    acc = (models[rule].predict(x_test) == y_test).mean()
    print(f"{rule}: test accuracy {acc:.2%}")

attacked = slice(0, 500)
for rule, model in models.items():
    _, robust = biorule.attack(model, x_test[attacked], y_test[attacked], attack="pgd", eps=0.05, steps=20)
    print(f"{rule}: PGD-20 robust accuracy at eps 0.05 on 500 images {robust:.2%}")

fields = models["bio"].weights()["hidden.0.weight"]  # (units, 784): what each hidden unit responds to
try:
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: no receptive-field picture")
else:
    strongest = np.argsort(-fields.sum(axis=1))[:64]
    figure, axes = plt.subplots(8, 8, figsize=(8, 8))
    for ax, unit in zip(axes.flat, strongest):
        ax.imshow(fields[unit].reshape(28, 28), cmap="magma")
        ax.set_axis_off()
    figure.suptitle("bio rule: receptive fields of 64 hidden units")
    path = pathlib.Path(os.environ.get("BIORULE_QUICKSTART_OUT", ".")) / "receptive_fields.png"
    figure.savefig(path, dpi=80)
    print(f"receptive fields: {path}")
