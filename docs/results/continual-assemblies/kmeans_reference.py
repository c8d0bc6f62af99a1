"""Reference point for the class-assembly rule (issue 30): offline spherical k-means per class on
Fashion-MNIST pixels (P prototypes per class, 15 passes over all of the class's training images),
then the same vote as `--readout assembly`: the k most similar prototypes of all classes win
(k-WTA on cosine similarity) and each class sums its winners' margins. Not part of the project's
harness (numpy, offline, every image seen 15 times): what prototypes found without the one-pass,
online, local constraint reach. Usage: python kmeans_reference.py [validation|test]
"""
import gzip
import sys

import numpy as np

D = "/usr/share/datasets/fashion-mnist/"


def load(name, offset):
    return np.frombuffer(gzip.open(D + name).read(), np.uint8, offset=offset)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


split = sys.argv[1] if len(sys.argv) > 1 else "validation"
X = unit(load("train-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32))
Y = load("train-labels-idx1-ubyte.gz", 8)
rng = np.random.default_rng(0)
if split == "test":
    train, (Xe, Ye) = np.arange(len(Y)), (
        unit(load("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float32)),
        load("t10k-labels-idx1-ubyte.gz", 8),
    )
else:  # 600 per class held out (not the harness's exact images; a reference only)
    held = np.concatenate([rng.permutation(np.flatnonzero(Y == c))[:600] for c in range(10)])
    train = np.setdiff1d(np.arange(len(Y)), held)
    Xe, Ye = X[held], Y[held]
for P, ks in [(40, [1, 2, 20]), (200, [1, 10, 100])]:
    protos = []
    for c in range(10):
        Xc = X[train][Y[train] == c]
        M = Xc[rng.choice(len(Xc), P, replace=False)].copy()
        for _ in range(15):
            a = (Xc @ M.T).argmax(1)
            for p in range(P):
                if (a == p).any():
                    M[p] = unit(Xc[a == p].mean(0, keepdims=True))[0]
        protos.append(M)
    W, owner = np.concatenate(protos), np.repeat(np.arange(10), P)
    U = Xe @ W.T
    for k in ks:
        theta = -np.sort(-U, 1)[:, k][:, None]
        H = np.maximum(U - theta, 0)
        votes = np.stack([H[:, owner == c].sum(1) for c in range(10)], 1)
        print(f"{split}: {P} prototypes per class ({10 * P} units), k = {k}: {(votes.argmax(1) == Ye).mean():.4f}")
