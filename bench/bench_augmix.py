"""Throughput of AugMix on CPU: our batched `diversification.ops.augmix` vs timm's and torchvision's per-image AugMix.

Run from the repository root:  python bench/bench_augmix.py [--batch 64] [--reps 3] [--size 224] [--json out.json]
Images are the real photo crops of tests/fixtures/photos resized to `size` x `size`, cycled to fill the batch.
Nothing here is asserted: the numbers depend on the machine (threads: torch's default).
"""
import argparse, json, os, platform, statistics, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diversification.ops import augmix

PHOTOS = Path(__file__).resolve().parent.parent / 'tests' / 'fixtures' / 'photos'


def load_photos(n: int, size: int) -> list[Image.Image]:
    "`n` RGB images of `size` x `size`, cycling through the fixture photos (each resized with bilinear)."
    ims = [Image.open(p).convert('RGB').resize((size, size), Image.BILINEAR) for p in sorted(PHOTOS.glob('*.png'))]
    return [ims[i % len(ims)] for i in range(n)]


def throughput(fn, n_images: int, reps: int, warmup: int = 1) -> float:
    "Median images/s of `fn()` (which processes `n_images`) over `reps` timed runs after `warmup` runs."
    for _ in range(warmup): fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def bench(batch: int = 64, reps: int = 3, size: int = 224) -> list[dict]:
    from timm.data.auto_augment import augment_and_mix_transform
    import torchvision.transforms.v2 as T
    ims = load_photos(batch, size)
    x = torch.from_numpy(np.stack([np.asarray(im) for im in ims])).permute(0, 3, 1, 2).contiguous()   # (B, 3, H, W) uint8
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    ours = lambda: augmix(x, severity=3, width=3, depth=-1, alpha=1.0, generator=gen)
    timm_t = augment_and_mix_transform('augmix-m3-w3', dict(translate_const=int(size * 0.45), img_mean=(124, 116, 104)))
    timm_f = lambda: [timm_t(im) for im in ims]
    tv_t = T.AugMix(severity=3, mixture_width=3, chain_depth=-1, alpha=1.0)
    tv_f = lambda: [tv_t(img) for img in x]
    rows = [dict(name=f'ours: diversification.ops.augmix, batched uint8 (B={batch})', ips=throughput(ours, batch, reps)),
            dict(name="timm AugMixAugment 'augmix-m3-w3', PIL, per image", ips=throughput(timm_f, batch, reps)),
            dict(name='torchvision.transforms.v2.AugMix, uint8 tensor, per image', ips=throughput(tv_f, batch, reps))]
    for r in rows: r['ratio_to_ours'] = r['ips'] / rows[0]['ips']
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--json', type=str, default=None, help='also write the results to this JSON file')
    a = ap.parse_args()
    rows = bench(a.batch, a.reps, a.size)
    info = dict(cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
                machine=platform.machine(), size=a.size, batch=a.batch, reps=a.reps)
    print(f"AugMix throughput at {a.size}x{a.size} on CPU ({info['cpu_count']} cores, torch threads {info['torch_threads']}), "
          f"median of {a.reps} runs")
    print(f"{'method':62s} {'images/s':>10s} {'x ours':>8s}")
    for r in rows: print(f"{r['name']:62s} {r['ips']:10.1f} {r['ratio_to_ours']:8.2f}")
    if a.json: Path(a.json).write_text(json.dumps(dict(info=info, results=rows), indent=2))


if __name__ == '__main__':
    main()
