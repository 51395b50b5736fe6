"""Throughput of AugMix on CPU: our batched `diversification.ops` (after, and before the issue-20 rewrite) vs timm's and
torchvision's per-image AugMix, the single ops, the view share of a 28 px AugMix + Mixup training step, and seg-AugMix views.

Run from the repository root:  python bench/bench_augmix.py [--reps 3] [--repeat 1] [--json out.json] [--quick] [--before COMMIT]
[--workers 2]
Images are the real photo crops of tests/fixtures/photos resized to `size` x `size`, cycled to fill the batch.
"before" is `diversification/ops.py` as of commit 2925559 (the ops before the issue-20 rewrite; `--before` names another
commit), read with `git show` and run on the same inputs in the same process.
The implementations are timed in turns (one run of each per round). `--repeat N` measures the AugMix comparisons N times,
all configurations in each pass, and reports the median rates and the range of the ratios over the passes: on a host
with slow spells one pass can land in a spell. In that comparison timm's PIL runs on one core while our ops and
torchvision's may use the torch threads; `--workers N` also times all three in N DataLoader worker processes of one
thread each (ours on whole batches, the others per image), the way a loader spreads AugMix over the cores.
Nothing here is asserted: the numbers depend on the machine and its load.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time, types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from diversification import ops as after  # noqa: E402
from diversification.core import to_float  # noqa: E402

PHOTOS = ROOT / 'tests' / 'fixtures' / 'photos'
BEFORE_COMMIT = '2925559'


def ops_from_source(src: str, name: str) -> types.ModuleType:
    "A module made from the source of a version of `diversification/ops.py` (its relative import made absolute)."
    mod = types.ModuleType(name); sys.modules[name] = mod
    exec(compile(src.replace('from .core import', 'from diversification.core import'), f'{name}.py', 'exec'), mod.__dict__)
    return mod


def load_before(commit: str = BEFORE_COMMIT) -> types.ModuleType | None:
    "The ops module as of `commit` (from git), or None where git or the commit is unavailable."
    try: src = subprocess.run(['git', '-C', str(ROOT), 'show', f'{commit}:diversification/ops.py'], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError): return None
    return ops_from_source(src, 'ops_before')


def load_photos(n: int, size: int, mode: str = 'RGB', hw=None) -> list[Image.Image]:
    "`n` images of `size` x `size` (or `hw` = (H, W)), cycling through the fixture photos (each resized with bilinear)."
    H, W = hw or (size, size)
    ims = [Image.open(p).convert(mode).resize((W, H), Image.BILINEAR) for p in sorted(PHOTOS.glob('*.png'))]
    return [ims[i % len(ims)] for i in range(n)]


def as_batch(ims) -> torch.Tensor:
    a = np.stack([np.asarray(im) for im in ims])
    return torch.from_numpy(a[..., None] if a.ndim == 3 else a).permute(0, 3, 1, 2).contiguous()   # (B, C, H, W) uint8


def rates_interleaved(fns: dict, batch: int, reps: int) -> dict:
    """images/s of each of `fns` (median of `reps`), timed in turns (one run of each per round), so load that comes and
    goes on a shared machine falls on all of them alike."""
    for f in fns.values(): f()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
    return {k: batch / statistics.median(v) for k, v in times.items()}


AM = dict(severity=3, width=3, depth=-1, alpha=1.0)      # our AugMix settings, those of timm's 'augmix-m3-w3' and torchvision's below


def reference_transforms(size: int) -> tuple:
    "timm's (PIL) and torchvision's (uint8 tensors) per-image AugMix for `size` px images, with the settings of `AM`."
    from timm.data.auto_augment import augment_and_mix_transform
    import torchvision.transforms.v2 as T
    return (augment_and_mix_transform('augmix-m3-w3', dict(translate_const=int(size * 0.45), img_mean=(124, 116, 104))),
            T.AugMix(severity=3, mixture_width=3, chain_depth=-1, alpha=1.0))


def bench_augmix(before, size: int, batch: int, threads: int, reps: int) -> dict:
    "images/s of one AugMix view of a batch: ours after and before, timm (PIL) and torchvision (uint8 tensors), per image."
    torch.set_num_threads(threads)
    ims = load_photos(batch, size)
    x = as_batch(ims)
    torch.manual_seed(0)
    timm_t, tv_t = reference_transforms(size)
    fns = {'after': lambda: after.augmix(x, **AM, generator=0),
           'timm': lambda: [timm_t(im) for im in ims], 'torchvision': lambda: [tv_t(img) for img in x]}
    if before is not None: fns['before'] = lambda: before.augmix(x, **AM, generator=0)
    return rates_interleaved(fns, batch, reps)


class Images(torch.utils.data.Dataset):
    "`n` items cycling through `items`, each passed through the per-image `tf`; PIL results become (C, H, W) uint8 tensors."
    def __init__(self, items, n, tf): self.items, self.n, self.tf = items, n, tf
    def __len__(self): return self.n
    def __getitem__(self, i):
        out = self.tf(self.items[i % len(self.items)])
        return out if torch.is_tensor(out) else torch.from_numpy(np.array(out)).permute(2, 0, 1)


class AugMixBatches(torch.utils.data.Dataset):
    "`n` AugMix views of the whole batch `x` with our ops, one per item (seeded by the item's index)."
    def __init__(self, x, n): self.x, self.n = x, n
    def __len__(self): return self.n
    def __getitem__(self, i): return after.augmix(self.x, **AM, generator=i)


def loader(ds, batch, workers: int) -> torch.utils.data.DataLoader:
    "A DataLoader over `ds` in `workers` processes (each with one torch thread, as DataLoader sets them); `batch=None`: items are batches."
    return torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, persistent_workers=workers > 0,
                                       prefetch_factor=4 if workers else None)


def pass_rate(dl) -> float:
    "images/s of one pass over DataLoader `dl` (its batches are (B, C, H, W))."
    t0 = time.perf_counter()
    n = sum(b.shape[0] for b in dl)
    return n / (time.perf_counter() - t0)


def loader_rate(items, tf, batch: int, workers: int, n_images: int) -> float:
    "images/s through a DataLoader of `workers` processes applying `tf` per image: the second pass over the data, timed."
    dl = loader(Images(items, n_images, tf), batch, workers)
    for _ in dl: pass                                          # the workers start and warm up
    return pass_rate(dl)


def bench_workers(size: int, batch: int, workers: int, reps: int, n_images: int) -> dict:
    """images/s with each implementation in `workers` DataLoader processes of one torch thread each: ours on whole
    batches, timm and torchvision per image, batched by the loader. After a warm-up pass, `reps` passes timed in turns."""
    ims, n_batches = load_photos(16, size), max(1, n_images // batch)
    timm_t, tv_t = reference_transforms(size)
    dls = {'after': loader(AugMixBatches(as_batch(load_photos(batch, size)), n_batches), None, workers),
           'timm': loader(Images(ims, n_batches * batch, timm_t), batch, workers),
           'torchvision': loader(Images(list(as_batch(ims)), n_batches * batch, tv_t), batch, workers)}
    for dl in dls.values():
        for _ in dl: pass
    rates = {k: [] for k in dls}
    for _ in range(reps):
        for k, dl in dls.items(): rates[k].append(pass_rate(dl))
    return dict(size=size, batch=batch, workers=workers, **{k: statistics.median(v) for k, v in rates.items()})


MAGS = {'posterize': 3., 'solarize': 128., 'rotate': 13., 'shear_x': 0.2, 'shear_y': -0.2, 'translate_x': 9., 'translate_y': -9.}


def op_args(name: str, batch: int) -> tuple:
    "`apply_op_batch`'s (op index, magnitude) for every one of `batch` images drawing op `name` (magnitude from `MAGS`, else 1.6)."
    return torch.full((batch,), after.AUGMIX_OPS.index(name)), torch.full((batch,), MAGS.get(name, 1.6), dtype=torch.float64)


def bench_ops(before, size: int, batch: int, reps: int) -> dict:
    "images/s of each op applied to a whole batch with `apply_op_batch`, after and before."
    x = as_batch(load_photos(batch, size))
    out = {}
    for name in after.AUGMIX_OPS:
        idx, mag = op_args(name, batch)
        fns = {'after': lambda: after.apply_op_batch(x, idx, mag)}
        if before is not None: fns['before'] = lambda: before.apply_op_batch(x, idx, mag)
        out[name] = rates_interleaved(fns, batch, reps)
    return out


def bench_step(before, reps: int) -> dict:
    "The view share of an AugMix + Mixup step of ResNet-10t on 64 greyscale 28 px images (`step_cost`), after and before."
    import diversification.augmix_mixup as am
    from diversification.models import timm_classifier
    x = to_float(as_batch(load_photos(64, 28, 'L')))
    y = torch.arange(64) % 10
    res = {}
    for k, fn in (('after', after.augmix), ('before', None if before is None else before.augmix)):
        if fn is None: continue
        am.augmix = fn
        torch.manual_seed(0)
        res[k] = am.step_cost(timm_classifier('resnet10t', 10, in_chans=1), x, y, n=reps)
    am.augmix = after.augmix
    return res


def bench_seg(before, batch: int, reps: int, hw=(128, 256)) -> dict:
    "images/s of the two seg-AugMix views of `SegAugMixJSD` (float input, as the callback gets it), after and before."
    import diversification.seg_augmix as sa
    x = to_float(as_batch(load_photos(batch, 0, hw=hw)))
    def views(mod):
        sa.apply_augmix = mod.apply_augmix
        return sa.seg_augmix(x, None, 2, generator=0)
    fns = {k: (lambda mod=mod: views(mod)) for k, mod in (('after', after), ('before', before)) if mod is not None}
    try: return rates_interleaved(fns, batch, reps)
    finally: sa.apply_augmix = after.apply_augmix


def run(reps: int = 3, quick: bool = False, before_commit: str = BEFORE_COMMIT, repeat: int = 1, workers: int = 2) -> dict:
    before = load_before(before_commit)
    res = dict(info=dict(cpu_count=os.cpu_count(), torch=torch.__version__, machine=platform.machine(), reps=reps,
                         repeat=repeat, before=f'diversification/ops.py at {before_commit}' if before else None),
               augmix=[], ops={})
    configs = [(size, batch, threads) for size in (224, 32) for batch in ((64,) if quick else (64, 256))
               for threads in ((2,) if quick else (1, 2))]
    runs = {c: [] for c in configs}
    for i in range(repeat):                       # every configuration once per pass: the passes are spread in time
        for size, batch, threads in configs:
            r = bench_augmix(before, size, batch, threads, reps)
            runs[size, batch, threads].append(r)
            print(f'pass {i + 1}/{repeat} augmix {size}px B={batch} threads={threads}: ' + ', '.join(f'{k} {v:.0f}' for k, v in r.items()), flush=True)
    for (size, batch, threads), rs in runs.items():
        row = dict(size=size, batch=batch, threads=threads, **{k: statistics.median(r[k] for r in rs) for k in rs[0]})
        res['augmix'].append(row | (dict(runs=rs) if repeat > 1 else {}))
    if workers:
        res['workers'] = [bench_workers(size, batch, workers, 3, 1024 if size > 64 else 8192)
                          for size in (224, 32) for batch in ((64,) if quick else (64, 256))]
        for r in res['workers']: print(f"{workers} workers {r['size']}px B={r['batch']}: " + ', '.join(f'{k} {r[k]:.0f}' for k in ('after', 'timm', 'torchvision')), flush=True)
    torch.set_num_threads(2)
    for size in (224, 32): res['ops'][size] = bench_ops(before, size, 64, reps)
    res['step'] = bench_step(before, max(reps, 5))
    res['seg'] = bench_seg(before, 16, reps)
    return res


def report(res: dict) -> str:
    "Markdown tables of `run`'s results."
    f = lambda v: f'{v:.0f}' if v is not None else '-'
    n = res['info'].get('repeat', 1)
    L = [f"CPU: {res['info']['cpu_count']} cores, torch {res['info']['torch']}, median of {res['info']['reps']} runs"
         f"{f', median over {n} passes' if n > 1 else ''}; before = {res['info']['before']}", '',
         '| size | batch | threads | ours after (img/s) | ours before | timm PIL | torchvision v2 | after / before | after / timm | after / torchvision |',
         '|---|---|---|---|---|---|---|---|---|---|']
    for r in res['augmix']:
        b = r.get('before')
        L.append(f"| {r['size']} px | {r['batch']} | {r['threads']} | {f(r['after'])} | {f(b)} | {f(r['timm'])} | {f(r['torchvision'])} | "
                 f"{r['after'] / b if b else float('nan'):.2f}x | {r['after'] / r['timm']:.2f}x | {r['after'] / r['torchvision']:.2f}x |")
    if n > 1:
        def span(r, k): v = [x['after'] / x[k] for x in r['runs']]; return f'{min(v):.2f}-{max(v):.2f}x'
        L += ['', f'The ratios over the {n} passes (min-max):', '',
              '| size | batch | threads | after / timm | after / torchvision |', '|---|---|---|---|---|']
        L += [f"| {r['size']} px | {r['batch']} | {r['threads']} | {span(r, 'timm')} | {span(r, 'torchvision')} |" for r in res['augmix']]
    if res.get('workers'):
        w = res['workers'][0]['workers']
        L += ['', f'Each in {w} DataLoader worker processes of one thread (ours on whole batches, the others per image; img/s, median of 3 passes):', '',
              '| size | batch | ours | timm PIL | torchvision v2 | ours / timm | ours / torchvision |', '|---|---|---|---|---|---|---|']
        L += [f"| {r['size']} px | {r['batch']} | {r['after']:.0f} | {r['timm']:.0f} | {r['torchvision']:.0f} | "
              f"{r['after'] / r['timm']:.2f}x | {r['after'] / r['torchvision']:.2f}x |" for r in res['workers']]
    L += ['', 'Single ops, `apply_op_batch` on a whole batch of 64 (img/s, 2 threads):', '',
          '| op | 224 px after | 224 px before | 32 px after | 32 px before |', '|---|---|---|---|---|']
    for name in after.AUGMIX_OPS:
        a, b = res['ops'][224][name], res['ops'][32][name]
        L.append(f"| {name} | {f(a['after'])} | {f(a.get('before'))} | {f(b['after'])} | {f(b.get('before'))} |")
    L += ['', 'AugMix + Mixup step, ResNet-10t, 64 greyscale 28 px images (`step_cost`, 2 threads):', '',
          '| | plain CE step (ms) | AugMix + Mixup step (ms) | views (ms) | view share |', '|---|---|---|---|---|']
    for k, s in res['step'].items():
        L.append(f"| {k} | {s['plain_s'] * 1e3:.1f} | {s['joint_s'] * 1e3:.1f} | {s['views_s'] * 1e3:.1f} | {s['views_share']:.1%} |")
    L += ['', 'seg-AugMix, the two views of `SegAugMixJSD`, 16 float images of 128x256 (img/s, 2 threads): ' +
          ', '.join(f'{k} {v:.0f}' for k, v in res['seg'].items())]
    return '\n'.join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--quick', action='store_true', help='batch 64 and 2 threads only')
    ap.add_argument('--repeat', type=int, default=1, help='passes over the AugMix comparisons (median rates, range of ratios)')
    ap.add_argument('--json', type=str, default=None, help='also write the results to this JSON file')
    ap.add_argument('--before', type=str, default=BEFORE_COMMIT, help='the commit whose ops.py is timed as "before"')
    ap.add_argument('--workers', type=int, default=2, help='also time all three in this many DataLoader worker processes (0: skip)')
    a = ap.parse_args()
    if a.repeat < 1: ap.error('--repeat must be >= 1')
    res = run(a.reps, a.quick, a.before, a.repeat, a.workers)
    print(report(res))
    if a.json: Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == '__main__':
    main()
