"""Inference throughput and peak memory of EfficientSeg (1.5), EfficientSeg (6.0) and the challenge's U-Net, side by side.

Run from the repository root:  python bench/bench_efficientseg.py [--size 384 768] [--batch 1] [--reps 5] [--device cpu] [--csv out.csv]
Each model runs in a fresh process (`diversification.efficientseg.bench_segmenters`), so its peak memory is its own.
Nothing here is asserted: the numbers depend on the machine (threads: torch's default unless --threads).
"""
import argparse, platform

import torch

from diversification.efficientseg import bench_segmenters, SEGMENTERS


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--models', nargs='+', default=list(SEGMENTERS))
    ap.add_argument('--size', type=int, nargs=2, default=(384, 768), metavar=('H', 'W'))
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int)
    ap.add_argument('--csv')
    a = ap.parse_args()
    df = bench_segmenters(a.models, tuple(a.size), a.batch, a.reps, a.device, a.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {a.device}, batch {a.batch}, {a.size[0]}x{a.size[1]}")
    print(df.round(3).to_string(index=False))
    if a.csv: df.to_csv(a.csv, index=False)


if __name__ == '__main__':
    main()
