"""Omniglot conv table of docs/RESULTS.md, round 9: per setting, the validation error (20-way 1-shot
on the held-out Greek characters, 600 episodes, cosine NCM on the last layer's pooled map, named
when it is not `hidden.0`) and the error on Lake's 20 runs (plain features and centred on the
background mean), per seed and as the mean ± sd over the seeds found, read from the stdout logs
of `scripts/results-omniglot.sh conv` (one log per seed and batch of settings, named `*-sSEED.log`).

    python3 docs/results/round9/omniglot_table.py docs/results/round9/omniglot/*.log
"""
import collections
import re
import statistics
import sys

VAL = re.compile(r"^(\S+)\s+hidden\.(\d+)\s+validation 20-way 1-shot error\s+([\d.]+)")
RUN = re.compile(r"^(\S+)\s+hidden\.(\d+)\s+(none|background)\s+([\d.]+)")


def main():
    table = collections.defaultdict(lambda: collections.defaultdict(dict))
    order = []
    for path in sys.argv[1:]:
        seed = int(re.search(r"-s(\d+)\.log$", path).group(1))
        for line in open(path):
            m = VAL.match(line)
            if m:
                name, layer, cols = m.group(1), m.group(2), {"val": float(m.group(3))}
            else:
                m = RUN.match(line)
                if not m:
                    continue
                name, layer, cols = m.group(1), m.group(2), {m.group(3): float(m.group(4))}
            if layer != "0":
                name = "%s (hidden.%s)" % (name, layer)
            if name not in order:
                order.append(name)
            table[name][seed].update(cols)

    def cell(per_seed, key):
        v = [per_seed[s][key] for s in sorted(per_seed) if key in per_seed[s]]
        if not v:
            return "-"
        each = " / ".join("%.2f" % x for x in v)
        return each if len(v) == 1 else "%s: %.2f ± %.2f" % (each, statistics.mean(v), statistics.stdev(v))

    print("| setting | seeds | validation error | runs, plain | runs, centred |")
    print("| --- | --- | --- | --- | --- |")
    for name in order:
        per_seed = table[name]
        seeds = ",".join(str(s) for s in sorted(per_seed))
        print("| %s | %s | %s | %s | %s |" % (name, seeds, cell(per_seed, "val"), cell(per_seed, "none"), cell(per_seed, "background")))


main()
