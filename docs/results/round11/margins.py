"""Issue 33 in one picture: every learned conv net measured on validation in rounds 5-11 (seed 0)
against the frozen random-features control of its own forward pass. x: the learned net's final
validation accuracy; y: learned − control (points). The issue's first target asks for a point in
the shaded corner (≥ 91% and ≥ control + 2); validation, one seed, so a point there would still
need the 3-seed test protocol. Reads the validation.json files copied under docs/results/; writes
margins.png next to this file and prints the pairs. Needs matplotlib (not a project dependency):
    python3 docs/results/round11/margins.py
"""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
R = HERE.parent

# The frozen controls several learned nets share (one forward pass each).
RAW = "round6-pool/frozen-signed"
CENTRED = "round8-pool/front/centre-frozen"
WHITENED = "round10/whiten/whiten-0.1-frozen"
CW01 = "round10/whiten/centre-whiten-0.1-frozen"
CW001 = "round10/whiten/centre-whiten-0.01-frozen"

# (round, what, learned, control): paths under docs/results/, each pair one forward pass.
PAIRS = [
    ("5", "pool 4/2/1, positive", "round5-readout/hard-positive-slow", "round5-readout/frozen-positive-slow"),
    ("5", "pool 4/2/1, positive, whitened 0.01", "round5-readout/hard-positive-whiten-0.01-slow",
     "round5-readout/frozen-positive-whiten-0.01-slow"),
    ("5", "pool 4/2/1, signed, whitened 0.1", "round5-readout/hard-signed-whiten-0.1-slow",
     "round5-readout/frozen-signed-whiten-0.1-slow"),
    ("6", "pool 7/7/0, positive", "round6-pool/hard-positive", "round6-pool/frozen-positive"),
    ("6", "pool 7/7/0, signed", "round6-pool/hard-signed", RAW),
    ("7", "softhebb, k-WTA", "round7-softhebb/softhebb-0.5-hard", "round7-softhebb/frozen-signed-hard"),
    ("7", "softhebb, triangle", "round7-softhebb/softhebb-0.5-soft", "round7-softhebb/frozen-signed-soft"),
    ("7", "softhebb, k-WTA, whitened", "round7-softhebb/softhebb-0.5-hard-whiten",
     "round7-softhebb/frozen-signed-hard-whiten"),
    ("7", "softhebb, triangle, whitened", "round7-softhebb/softhebb-0.5-soft-whiten",
     "round7-softhebb/frozen-signed-soft-whiten"),
    ("8", "rate 0.005", "round8-pool/front/rate-0.005", RAW),
    ("8", "rate 0.05", "round8-pool/front/rate-0.05", RAW),
    ("8", "rate 0.1", "round8-pool/front/rate-0.1", RAW),
    ("8", "rate 0.2", "round8-pool/rate/rate-0.2", RAW),
    ("8", "rate 0.5", "round8-pool/rate/rate-0.5", RAW),
    ("8", "rate 1", "round8-pool/rate/rate-1", RAW),
    ("8", "2 Hebbian epochs, rate 0.02", "round8-pool/front/hebbian-epochs-2", RAW),
    ("8", "2 Hebbian epochs, rate 0.1", "round8-pool/rate/rate-0.1-hebbian-epochs-2", RAW),
    ("8", "2 Hebbian epochs, rate 0.2", "round8-pool/rate/rate-0.2-hebbian-epochs-2", RAW),
    ("8", "centred", "round8-pool/front/centre", CENTRED),
    ("8", "centred, rate 0.5", "round8-pool/centre/centre-rate-0.5", CENTRED),
    ("8", "density 0.05", "round8-pool/front/density-0.05", "round8-pool/front/density-0.05-frozen"),
    ("8", "density 0.05, rate 0.5", "round8-pool/centre/density-0.05-rate-0.5",
     "round8-pool/front/density-0.05-frozen"),
    ("8", "density 0.2", "round8-pool/front/density-0.2", "round8-pool/front/density-0.2-frozen"),
    ("9", "384 filters", "round9/wide/wide-rate-0.5", "round9/wide/wide-frozen"),
    ("10", "whitened 0.1", "round10/whiten/whiten-0.1-rate-0.5", WHITENED),
    ("10", "centred + whitened 0.1", "round10/whiten/centre-whiten-0.1-rate-0.5",
     CW01),
    ("10", "centred + whitened 0.01", "round10/whiten/centre-whiten-0.01-rate-0.5",
     CW001),
    ("10", "centred + whitened, density 0.05", "round10/whiten/centre-whiten-0.1-d0.05-rate-0.5",
     "round10/whiten/centre-whiten-0.1-d0.05-frozen"),
    ("10", "aligned, raw", "round10/aligned/aligned-raw", RAW),
    ("10", "aligned, centred", "round10/aligned/aligned-centre", CENTRED),
    ("10", "aligned, whitened 0.1", "round10/aligned/aligned-whiten-0.1", WHITENED),
    ("10", "aligned, centred + whitened 0.1", "round10/aligned/aligned-centre-whiten-0.1",
     CW01),
    ("10", "aligned, centred + whitened 0.01", "round10/aligned/aligned-centre-whiten-0.01",
     CW001),
    ("10", "two layers, pooled", "round10/two-layers/two-rate-0.5", "round10/two-layers/two-frozen"),
    ("10", "first layer, pool 4/4/0", "round10/two-layers/one-rate-0.5", "round10/two-layers/one-frozen"),
    ("10", "two layers, second unpooled", "round10/two-layers-wide/two-nopool-rate-0.5",
     "round10/two-layers-wide/two-nopool-frozen"),
    ("11", "instar, centred + whitened", "round11/instar/instar-centre-whiten-0.1-rate-0.5",
     CW01),
    ("11", "instar, centred + whitened, rate 0.05", "round11/instar/instar-centre-whiten-0.1-rate-0.05",
     CW01),
    ("11", "instar, k = 1 (spherical k-means)", "round11/instar/instar-centre-whiten-0.1-d0.01-rate-0.5",
     "round11/instar/centre-whiten-0.1-d0.01-frozen"),
    ("11", "instar, raw", "round11/instar/instar-raw-rate-0.5", RAW),
    ("11", "instar, centred", "round11/instar/instar-centre-rate-0.5", CENTRED),
    ("11", "instar, learn k = 1", "round11/learn-density/instar-centre-whiten-0.1-learn-k1-rate-0.5",
     CW01),
    ("11", "instar, learn k = 1, rate 0.05", "round11/learn-density/instar-centre-whiten-0.1-learn-k1-rate-0.05",
     CW01),
    ("11", "bio, learn k = 1", "round11/learn-density/bio-centre-whiten-0.1-learn-k1-rate-0.5",
     CW01),
    ("11", "instar, two layers, rate 0.05", "round11/two-layers/two-instar-rate-0.05",
     "round10/two-layers/two-frozen"),
    ("11", "instar, raw, learn k = 1", "round11/learn-density/instar-raw-learn-k1-rate-0.5",
     RAW),
]


def final(name):
    return 100 * json.loads((R / f"{name}.validation.json").read_text())["accuracy"][-1]


def main():
    rows = [(rnd, what, final(learned), final(control)) for rnd, what, learned, control in PAIRS]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.fill_between([91, 93], 2, 4, color="tab:green", alpha=0.15, label="target: ≥ 91% and ≥ control + 2")
    rounds = sorted({r for r, *_ in rows}, key=int)
    cmap = plt.get_cmap("tab10")
    for i, rnd in enumerate(rounds):
        xs = [l for r, _, l, _ in rows if r == rnd]
        ys = [l - c for r, _, l, c in rows if r == rnd]
        ax.scatter(xs, ys, color=cmap(i), label=f"round {rnd}", s=28)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axhline(2, color="tab:green", lw=0.8, ls="--")
    ax.axvline(91, color="tab:green", lw=0.8, ls="--")
    ax.set_xlim(76, 93)
    ax.set_ylim(-8, 4)
    ax.set_xlabel("learned net, validation accuracy (%)")
    ax.set_ylabel("learned − frozen control of the same forward pass (points)")
    ax.set_title("Issue 33: Hebbian conv filters against random ones (validation, seed 0)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(HERE / "margins.png", dpi=120)
    print("| round | net | learned | control | learned − control |")
    print("| --- | --- | --- | --- | --- |")
    for rnd, what, l, c in rows:
        print(f"| {rnd} | {what} | {l:.2f}% | {c:.2f}% | {l - c:+.2f} |")


if __name__ == "__main__":
    main()
