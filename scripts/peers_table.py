"""Prints the four-rule table of docs/RESULTS.md from the runs of scripts/peers.sh.

Usage: python3 scripts/peers_table.py RUNS_DIR
"""
import json
import statistics
import sys
from pathlib import Path

RULES = ["bio", "bp", "kh", "softhebb"]
# Student's t (0.975) for n - 1 = 1, 2 degrees of freedom: the 95% interval of a mean of 2-3 seeds.
T975 = {1: 12.706, 2: 4.303}


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def mean_ci(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    m = statistics.fmean(values)
    if len(values) < 2:
        return f"{m:.2f}"
    ci = T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return f"{m:.2f} ± {ci:.2f}"


def hidden_layer(metrics):
    layers = (metrics or {}).get("biology", {}).get("layers", [])
    return next((l for l in layers if l.get("hidden")), {})


def main(runs):
    runs = Path(runs)
    header = [
        "rule", "clean % (3 seeds)", "worst case eps 0.05 / 0.1 (500 img)", "episodic 1 / 5-shot NCM",
        "few labels K = 1 / 5 / 10", "active fraction", "skew / KS of ln w", "Dale index", "s / epoch",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for rule in RULES:
        seeds = [load(runs / f"{rule}-{s}" / "metrics.json") for s in range(3)]
        seeds = [m for m in seeds if m]
        clean = mean_ci([100 * m["test_accuracy"] for m in seeds])
        per_epoch = mean_ci([m["train_seconds"] / m["epochs"] for m in seeds])
        layer = hidden_layer(seeds[0] if seeds else None)
        active = mean_ci([hidden_layer(m).get("active_fraction") for m in seeds])
        skew = layer.get("log_weight_skew")
        ks = layer.get("ks_distance")
        lognormal = f"{skew:.2f} / {ks:.3f}" if skew is not None and ks is not None else "–"
        dale = layer.get("dale_index")
        dale = f"{dale:.2f}" if dale is not None else "–"
        rob = load(runs / f"{rule}-0" / "robustness.json") or {}
        strongest = rob.get("ensembles", {}).get("strongest", {})
        points = {round(p["eps"], 3): 100 * p["accuracy"] for p in strongest.get("points", [])}
        robust = " / ".join(f"{points[e]:.1f}" if e in points else "–" for e in (0.05, 0.1))
        if strongest.get("sanity") and any(f.get("failed") for f in strongest["sanity"]):
            robust += " (sanity check failed)"
        fs = load(runs / f"{rule}-base" / "fewshot.json") or {}
        episodic = {}
        for r in fs.get("episodic", []):
            if r.get("features", "").startswith("hidden") and "drive" not in r["features"] and r.get("classifier") == "ncm":
                episodic.setdefault(r["shots"], f"{100 * r['mean']:.1f}")
        pixels = {
            r["shots"]: f"{100 * r['mean']:.1f}"
            for r in fs.get("episodic", [])
            if r.get("features") == "pixels" and r.get("classifier") == "ncm"
        }
        drive = {
            r["shots"]: f"{100 * r['mean']:.1f}"
            for r in fs.get("episodic", [])
            if r.get("features", "").endswith(".drive") and r.get("classifier") == "ncm"
        }
        episodic_cell = " / ".join(episodic.get(k, "–") for k in (1, 5))
        if drive:
            episodic_cell += " (drive: " + " / ".join(drive.get(k, "–") for k in (1, 5)) + ")"
        fl = load(runs / f"few-labels-{rule}" / "fewshot.json") or {}
        strict = {r["shots"]: f"{100 * r['mean']:.1f}" for r in fl.get("few_labels", []) if not r.get("unlabelled")}
        few = " / ".join(strict.get(k, "–") for k in (1, 5, 10))
        print(f"| `{rule}` | {clean} | {robust} | {episodic_cell} | {few} | {active} | {lognormal} | {dale} | {per_epoch} |")
        if pixels and rule == "bio":
            pixel_row = " / ".join(pixels.get(k, "–") for k in (1, 5))
    if "pixel_row" in locals():
        print(f"\nRaw pixels, same episodes: {pixel_row} (1 / 5-shot).")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/peers")
