#!/usr/bin/env python3
"""PyTorch (CPU) anchor for biorule's `bp` epoch, PGD-40 and few-shot episodes, the same work as
`bio train --rule bp`, `bio eval robustness --attack pgd --eps 0.1` and `bio eval fewshot`.

One epoch of a 784-2000-10 ReLU network on the full Fashion-MNIST training set (batch 100, Adam,
lr 1e-3, shuffled), then PGD-40 L-infinity (eps 0.1, step 0.01, random start, pixels clipped to
[0, 1]) on the 10 000 test images in batches of 500, against the network just trained. Then the
episodic few-shot protocol of `bio eval fewshot`: one epoch of a second network on the base classes
0-4, and on the 5000 test images of the novel classes 5-9, 600 episodes of 5-way 1-shot and 5-shot
with 15 queries, cosine nearest-class-mean and the linear probe (100 full-batch steps, rate 1, weight
decay 1e-4, in the dual form biorule uses), on the raw pixels and on the hidden activity; episodes
batched the PyTorch way (bmm). Prints one JSON line with the times. Reads the IDX .gz files directly
with NumPy.

`cargo xtask bench --vs-torch` runs this next to biorule's own timings; by hand:
    python3 benches/vs_torch.py --threads 1 [--data /usr/share/datasets/fashion-mnist]
Never part of the tests or CI.
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import torch


def find_data(explicit):
    candidates = [explicit] if explicit else []
    if os.environ.get("BIO_DATA_DIR"):
        base = os.environ["BIO_DATA_DIR"]
        candidates += [os.path.join(base, "fashion-mnist"), base]
    candidates += [
        os.path.expanduser("~/.cache/biorule/fashion-mnist"),
        "/usr/share/datasets/fashion-mnist",
    ]
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "train-images-idx3-ubyte.gz")):
            return c
    raise SystemExit(f"vs_torch.py: Fashion-MNIST (IDX .gz files) not found in {candidates}")


def read_idx(path, header):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), 16)
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), 8)
    x = torch.from_numpy(images.reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def bp_epoch(model, x, y, batch, seed):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        idx = order[i : i + batch]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
    return time.perf_counter() - start


def pgd(model, x, y, eps, step, steps, batch, seed):
    """Robust accuracy and seconds of PGD over (x, y), clean predictions included."""
    torch.manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    robust = 0
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        with torch.no_grad():
            clean_ok = model(xb).argmax(1) == yb
        adv = (xb + torch.empty_like(xb).uniform_(-eps, eps)).clamp_(0, 1)
        for _ in range(steps):
            adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(loss_fn(model(adv), yb), adv)
            with torch.no_grad():
                adv = torch.min(torch.max(adv + step * grad.sign(), xb - eps), xb + eps).clamp_(0, 1)
        with torch.no_grad():
            robust += int((clean_ok & (model(adv).argmax(1) == yb)).sum())
    return robust / len(x), time.perf_counter() - start


def episode_accuracies(features, labels, novel, shots, episodes, queries, ways, rng):
    """Mean NCM and linear-probe accuracy over `episodes` episodes drawn from `features` (rows
    L2-normalized), all episodes at once."""
    pools = [np.flatnonzero(labels == c) for c in novel]
    per_class = shots + queries
    support, query = [], []
    for _ in range(episodes):
        s_rows, q_rows = [], []
        for w in rng.choice(len(novel), ways, replace=False):
            picked = rng.choice(pools[w], per_class, replace=False)
            s_rows.append(picked[:shots])
            q_rows.append(picked[shots:])
        support.append(np.concatenate(s_rows))
        query.append(np.concatenate(q_rows))
    s = features[torch.from_numpy(np.stack(support))]  # E × n × d
    q = features[torch.from_numpy(np.stack(query))]  # E × m × d
    s_class = torch.arange(ways).repeat_interleave(shots)
    q_class = torch.arange(ways).repeat_interleave(queries)
    gram = torch.bmm(s, s.transpose(1, 2)).double()  # E × n × n
    cross = torch.bmm(q, s.transpose(1, 2)).double()  # E × m × n
    onehot = torch.nn.functional.one_hot(s_class, ways).double()  # n × ways
    # NCM, cosine: mean_{s∈c} Q[q,s] / sqrt(mean_{s,t∈c} K[s,t]).
    sums = cross @ onehot / shots  # E × m × ways
    norms = torch.einsum("sc,esr,rc->ec", onehot, gram, onehot).clamp_min(0).sqrt() / shots
    ncm = ((sums / norms[:, None, :]).argmax(2) == q_class).double().mean()
    # Linear probe in the dual form: logits of support s = Σ_t A[c,t]·K[t,s] + bias[c].
    n = s.shape[1]
    a = torch.zeros(s.shape[0], ways, n, dtype=torch.float64)
    bias = torch.zeros(s.shape[0], ways, 1, dtype=torch.float64)
    target = onehot.T[None]  # 1 × ways × n
    for _ in range(100):
        probs = torch.softmax(torch.bmm(a, gram) + bias, dim=1)
        grad = (probs - target) / n
        a = (1.0 - 1e-4) * a - grad
        bias = bias - grad.sum(2, keepdim=True)
    probe = ((torch.bmm(a, cross.transpose(1, 2)) + bias).argmax(1) == q_class).double().mean()
    return float(ncm), float(probe)


def fewshot(x, y, xt, yt, hidden, batch, seed):
    """Seconds of the episodic protocol (base training excluded) and its accuracies."""
    base = y < 5
    model = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    bp_epoch(model, x[base], y[base], batch, seed)
    start = time.perf_counter()
    novel = yt >= 5
    pixels, labels = xt[novel], yt[novel].numpy()
    with torch.no_grad():
        codes = torch.relu(model[0](pixels))
    rng = np.random.default_rng(seed)
    results = {}
    for name, f in [("pixels", pixels), ("hidden", codes)]:
        f = torch.nn.functional.normalize(f, dim=1)
        for shots in (1, 5):
            results[f"{name}_{shots}shot"] = episode_accuracies(f, labels, [5, 6, 7, 8, 9], shots, 600, 15, 5, rng)
    return time.perf_counter() - start, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--data", help="directory of the Fashion-MNIST IDX .gz files")
    ap.add_argument("--hidden", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--pgd-batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-pgd", action="store_true")
    ap.add_argument("--skip-fewshot", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = find_data(a.data)
    x, y = load(data, "train")
    xt, yt = load(data, "test")
    model = torch.nn.Sequential(torch.nn.Linear(784, a.hidden), torch.nn.ReLU(), torch.nn.Linear(a.hidden, 10))
    epoch_s = bp_epoch(model, x, y, a.batch, a.seed)
    with torch.no_grad():
        test_acc = float((model(xt).argmax(1) == yt).float().mean())
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "train": len(x),
        "test": len(xt),
        "bp_epoch_s": epoch_s,
        "test_accuracy": test_acc,
    }
    if not a.skip_pgd:
        robust, pgd_s = pgd(model, xt, yt, 0.1, 0.01, 40, a.pgd_batch, a.seed)
        out.update({"pgd40_s": pgd_s, "pgd40_robust_accuracy": robust})
    if not a.skip_fewshot:
        fewshot_s, accuracies = fewshot(x, y, xt, yt, a.hidden, a.batch, a.seed)
        out.update({"fewshot_s": fewshot_s, "fewshot_accuracy": accuracies})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
