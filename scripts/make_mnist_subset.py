#!/usr/bin/env python3
"""Writes the first N MNIST training digits (and their labels) as gzipped IDX files.

Usage: python3 scripts/make_mnist_subset.py SRC_DIR OUT_DIR N
e.g.   python3 scripts/make_mnist_subset.py data/mnist data/mnist-subset 4000   (after scripts/fetch_data.sh mnist)

SRC_DIR holds the original train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz.
The output is byte-reproducible: gzip level 9 with no file name and mtime 0 in the header.
Only the standard library is used.
"""
import gzip
import io
import os
import struct
import sys


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got = struct.unpack(">I", data[:4])[0]
    if got != magic:
        sys.exit(f"{path}: magic {got:#010x}, expected {magic:#010x}")
    return data


def write_gz(path, payload):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
        g.write(payload)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    images = read_idx(os.path.join(src, "train-images-idx3-ubyte.gz"), 0x803)
    labels = read_idx(os.path.join(src, "train-labels-idx1-ubyte.gz"), 0x801)
    count, rows, cols = struct.unpack(">III", images[4:16])
    if not 0 < n <= count:
        sys.exit(f"N must be in 1..{count}")
    os.makedirs(out, exist_ok=True)
    write_gz(
        os.path.join(out, "train-images-idx3-ubyte.gz"),
        struct.pack(">IIII", 0x803, n, rows, cols) + images[16 : 16 + n * rows * cols],
    )
    write_gz(
        os.path.join(out, "train-labels-idx1-ubyte.gz"),
        struct.pack(">II", 0x801, n) + labels[8 : 8 + n],
    )
    hist = [labels[8 : 8 + n].count(d) for d in range(10)]
    print(f"wrote {n} images of {rows}x{cols} to {out}; label counts 0..9: {hist}")


if __name__ == "__main__":
    main()
