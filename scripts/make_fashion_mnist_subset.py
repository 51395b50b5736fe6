#!/usr/bin/env python3
"""Rebuild the Fashion-MNIST subset embedded in the package, reproducibly.

Source: Debian's `dataset-fashion-mnist` package (`apt-get install dataset-fashion-mnist`), which installs the original
idx files of Zalando's Fashion-MNIST (MIT licence) under /usr/share/datasets/fashion-mnist.
Output: diversification/assets/fashion_mnist_subset.npz, 100 train + 200 test images per class, seed 0.
"""
import argparse
from pathlib import Path
from diversification.data import make_fashion_mnist_subset, EMBEDDED_FASHION_MNIST

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--source', default='debian', help="'debian' or a folder with the four idx files")
    ap.add_argument('--dest', type=Path, default=EMBEDDED_FASHION_MNIST)
    ap.add_argument('--n-train', type=int, default=100)
    ap.add_argument('--n-test', type=int, default=200)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    p = make_fashion_mnist_subset(a.dest, a.source, a.n_train, a.n_test, a.seed)
    print(f"wrote {p} ({p.stat().st_size/1024:.0f} KiB)")
