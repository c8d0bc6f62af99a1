"""The round-8 rate front as a picture: final validation accuracy of the learned conv filters
(`96:5`, max pooling 7/7/0, signed start) against the Hebbian rate, beside the frozen controls of
the same forward pass. Reads the runs' validation.json copied next to this file and round 6's
signed pair; writes rate.png. Needs matplotlib (not a dependency of the project):
    python3 docs/results/round8-pool/plot_rate.py
"""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
ROUND6 = HERE.parent / "round6-pool"


def final(path):
    return 100 * json.loads(path.read_text())["accuracy"][-1]


density_01 = {
    0.005: final(HERE / "front/rate-0.005.validation.json"),
    0.02: final(ROUND6 / "hard-signed.validation.json"),
    0.05: final(HERE / "front/rate-0.05.validation.json"),
    0.1: final(HERE / "front/rate-0.1.validation.json"),
    0.2: final(HERE / "rate/rate-0.2.validation.json"),
    0.5: final(HERE / "rate/rate-0.5.validation.json"),
    1.0: final(HERE / "rate/rate-1.validation.json"),
}
density_005 = {
    0.02: final(HERE / "front/density-0.05.validation.json"),
    0.5: final(HERE / "centre/density-0.05-rate-0.5.validation.json"),
}
controls = {
    "frozen, density 0.1": final(ROUND6 / "frozen-signed.validation.json"),
    "frozen, density 0.05": final(HERE / "front/density-0.05-frozen.validation.json"),
}

fig, ax = plt.subplots(figsize=(6.4, 4.2))
ax.plot(list(density_01), list(density_01.values()), "o-", color="C0", label="learned, density 0.1 (k = 10 of 96)")
ax.plot(list(density_005), list(density_005.values()), "s-", color="C1", label="learned, density 0.05 (k = 5 of 96)")
ax.axhline(controls["frozen, density 0.1"], color="C0", ls="--", label="its frozen random filters")
ax.axhline(controls["frozen, density 0.05"], color="C1", ls="--", label="its frozen random filters")
ax.set_xscale("log")
ax.set_xlabel("Hebbian rate of the filters (--conv-rate), one Hebbian epoch")
ax.set_ylabel("validation accuracy after 5 readout epochs (%)")
ax.set_title("conv 96:5, max pool 7/7/0: learned filters against random ones\n(Fashion-MNIST, 10 000 validation images, seed 0)", fontsize=10)
ax.legend(fontsize=8, loc="lower right")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(HERE / "rate.png", dpi=120)
print("wrote", HERE / "rate.png")
