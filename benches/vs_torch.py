#!/usr/bin/env python3
"""PyTorch (CPU) anchor for biorule's `bp` epoch and PGD-40, the same work as `bio train --rule bp`
and `bio eval robustness --attack pgd --eps 0.1`.

One epoch of a 784-2000-10 ReLU network on the full Fashion-MNIST training set (batch 100, Adam,
lr 1e-3, shuffled), then PGD-40 L-infinity (eps 0.1, step 0.01, random start, pixels clipped to
[0, 1]) on the 10 000 test images in batches of 500, against the network just trained. Prints one
JSON line with the times. Reads the IDX .gz files directly with NumPy.

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--data", help="directory of the Fashion-MNIST IDX .gz files")
    ap.add_argument("--hidden", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--pgd-batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-pgd", action="store_true")
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
    print(json.dumps(out))


if __name__ == "__main__":
    main()
