"""Few-shot table of docs/RESULTS.md, round 9: mean ± sd over seeds of each model's episodic NCM and
linear-probe accuracy (hidden.0) at 1 and 5 shots, read from RUNS/NAME/fewshot.json (a runs
directory of scripts/results-conv.sh) or RUNS/NAME.fewshot.json (the copies next to this file).

    python3 docs/results/round9/fewshot_table.py docs/results/round9/fs-d0.1 docs/results/round9/fs-d0.05
"""
import json
import os
import statistics
import sys


def rows(path):
    r = json.load(open(path))
    return {(e["features"], e["classifier"], e["shots"]): 100 * e["mean"] for e in r["episodic"]}


def main():
    for runs in sys.argv[1:]:
        for model in ("conv-hard-base", "conv-frozen-base", "bpconv-base"):
            per_seed = []
            for tag in ("", "-s1", "-s2"):
                for path in (os.path.join(runs, model + tag, "fewshot.json"), os.path.join(runs, model + tag + ".fewshot.json")):
                    if os.path.exists(path):
                        per_seed.append(rows(path))
                        break
            if not per_seed:
                continue
            cells = []
            for classifier in ("ncm", "linear-probe"):
                for shots in (1, 5):
                    v = [s[("hidden.0", classifier, shots)] for s in per_seed]
                    sd = statistics.stdev(v) if len(v) > 1 else 0.0
                    cells.append("%.2f ± %.2f" % (statistics.mean(v), sd))
            print("| %s %s (%d seeds) | %s |" % (runs, model, len(per_seed), " | ".join(cells)))


main()
