#!/usr/bin/env python3
"""Writes the first N training images (and all test images) of an IDX dataset directory to a new
directory, for CPU-budgeted runs: idx-subset.py SRC DST N. The files stay valid IDX (gzip)."""
import gzip, os, shutil, struct, sys

src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst, exist_ok=True)
for stem, per in (("train-images-idx3-ubyte", 784), ("train-labels-idx1-ubyte", 1)):
    with gzip.open(os.path.join(src, stem + ".gz")) as f:
        data = f.read()
    header = 16 if per == 784 else 8
    fields = list(struct.unpack(">" + "I" * (header // 4), data[:header]))
    n = min(n, fields[1])
    fields[1] = n
    with gzip.open(os.path.join(dst, stem + ".gz"), "wb") as f:
        f.write(struct.pack(">" + "I" * (header // 4), *fields) + data[header:header + n * per])
for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
    shutil.copy(os.path.join(src, stem + ".gz"), os.path.join(dst, stem + ".gz"))
print(f"{dst}: {n} training images")
