"""AugMix on a GPU: our batched ops on CUDA against timm's and torchvision's per-image AugMix in DataLoader workers.

Run from the repository root on a machine with a CUDA GPU:  python bench/bench_augmix_cuda.py [--workers 16] [--json out.json]
(`--device cpu --smoke` runs every part small on the CPU, to check the script itself.)

1. Exactness: every op and whole AugMix / seg-AugMix views computed on the GPU against the same calls on the CPU (same drawn
   parameters, uint8 images), as the largest difference and the share of values that differ.
2. Throughput of one AugMix view of a batch (224 and 32 px, batch 64 and 256): ours with the batch on the GPU, ours including
   the copy of the uint8 batch from pinned host memory, ours on the host's CPU threads; timm (PIL) and torchvision v2
   (uint8 tensors), per image in `--workers` DataLoader worker processes on the host, batched by the loader.
3. One AugMix call under the profiler (CUDA only): the kernels it launches and the share of its wall time the GPU is busy.
4. The single ops on the GPU, the two seg-AugMix views of 128x256 images, and the view share of a 28 px AugMix + Mixup
   step of ResNet-10t (`step_cost`) on the GPU.
`--compare PATH` also times another version of `diversification/ops.py` on the GPU, beside the current one.
The host loaders run first, before CUDA is initialised (their workers fork). Images are the fixture photos, as in
`bench_augmix.py`. Nothing is asserted: the numbers depend on the machine.
"""
import argparse, json, os, platform, statistics, sys, time, traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_augmix import AM, as_batch, load_photos, loader_rate, op_args, ops_from_source, reference_transforms  # noqa: E402
from diversification import ops  # noqa: E402
from diversification.core import to_float  # noqa: E402


def device_rate(fn, batch: int, reps: int, device) -> float:
    "images/s of `fn()` (median of `reps` runs after two warm-ups), synchronising the device around each run."
    sync = (lambda: torch.cuda.synchronize(device)) if torch.device(device).type == 'cuda' else (lambda: None)
    fn(); fn(); sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); sync(); ts.append(time.perf_counter() - t0)
    return batch / statistics.median(ts)


def _guard(res: dict, key: str, fn):
    "Run one part; a failure is recorded (with its traceback) instead of ending the run."
    t0 = time.perf_counter()
    try: res[key] = fn()
    except Exception as e:                                     # noqa: BLE001 - a bench part that fails is a finding
        res[key] = dict(error=f'{type(e).__name__}: {e}', traceback=traceback.format_exc())
    print(f'[{time.perf_counter() - t0:.1f} s] {key}: {json.dumps(res[key])[:600]}', flush=True)


def host_baselines(sizes, batches, workers: int, n_images: dict) -> list[dict]:
    rows = []
    for size in sizes:
        ims = load_photos(16, size)
        x = as_batch(ims)
        timm_t, tv_t = reference_transforms(size)
        for batch in batches:
            r = dict(size=size, batch=batch, workers=workers)
            r['timm'] = loader_rate(ims, timm_t, batch, workers, n_images[size])
            r['torchvision'] = loader_rate(list(x), tv_t, batch, workers, n_images[size])
            rows.append(r)
            print(f'host loaders {size}px B={batch}: timm {r["timm"]:.0f}, torchvision {r["torchvision"]:.0f} img/s', flush=True)
    return rows


def ours_rates(sizes, batches, device, reps: int, cpu_threads: int, other=None) -> list[dict]:
    rows = []
    for size in sizes:
        for batch in batches:
            xh = as_batch(load_photos(batch, size))
            pinned = xh.pin_memory() if torch.device(device).type == 'cuda' else xh
            xd = xh.to(device)
            g = torch.Generator().manual_seed(0)
            r = dict(size=size, batch=batch)
            r['ours_device'] = device_rate(lambda: ops.augmix(xd, **AM, generator=g), batch, reps, device)
            if other is not None:
                r['other_device'] = device_rate(lambda: other.augmix(xd, **AM, generator=g), batch, reps, device)
            r['ours_device_with_copy'] = device_rate(
                lambda: ops.augmix(pinned.to(device, non_blocking=True), **AM, generator=g), batch, reps, device)
            threads = torch.get_num_threads()
            torch.set_num_threads(cpu_threads)
            try: r['ours_host_cpu'] = device_rate(lambda: ops.augmix(xh, **AM, generator=g), batch, max(3, reps // 4), 'cpu')
            finally: torch.set_num_threads(threads)
            r['host_threads'] = cpu_threads
            rows.append(r)
            print(f'ours {size}px B={batch}: ' + ', '.join(f'{k} {v:.0f}' for k, v in r.items() if k.endswith(('device', 'copy', 'cpu'))), flush=True)
    return rows


def exactness(device, size: int = 224, batch: int = 32) -> dict:
    """Each op and whole views on `device` against the CPU running the same torch code (`ops._KERNELS` off: on the CPU the
    compiled kernels make the warps PIL-exact, within one level of the torch path), same photos and drawn parameters."""
    x = as_batch(load_photos(batch, size))
    def cpu(fn):
        with ops._kernels_set(False): return fn()
    xd = x.to(device)
    def diff(a, b):
        d = (a.cpu().int() - b.int()).abs()
        return dict(max=int(d.max()), mean=float(d.float().mean()), share_differing=float((d > 0).float().mean()),
                    share_over_1=float((d > 1).float().mean()))
    out = {}
    for name in ops.AUGMIX_OPS:
        idx, mag = op_args(name, batch)
        out[name] = diff(ops.apply_op_batch(xd, idx, mag), cpu(lambda: ops.apply_op_batch(x, idx, mag)))
    views = {}
    for seed in range(3):
        p = ops.draw_augmix_params(batch, size, size, **AM, generator=seed)
        views[f'augmix seed {seed}'] = diff(ops.apply_augmix(xd, p), cpu(lambda: ops.apply_augmix(x, p)))
    from diversification.seg_augmix import seg_augmix
    xs = to_float(as_batch(load_photos(8, 0, hw=(128, 256))))
    vd, _ = seg_augmix(xs.to(device), None, 2, generator=0)
    vc, _ = cpu(lambda: seg_augmix(xs, None, 2, generator=0))
    for k in range(2): views[f'seg-augmix float view {k}'] = diff((vd[k] * 255).round(), (vc[k] * 255).round())
    out['views'] = views
    return out


def gpu_busy(device, size: int = 32, batch: int = 64) -> dict:
    "One AugMix call under the profiler: its kernel count, the GPU time of its kernels and the call's wall time."
    from torch.profiler import ProfilerActivity, profile
    xd = as_batch(load_photos(batch, size)).to(device)
    g = torch.Generator().manual_seed(0)
    ops.augmix(xd, **AM, generator=g); torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter(); ops.augmix(xd, **AM, generator=g); torch.cuda.synchronize(device); wall = time.perf_counter() - t0
    ev = prof.events()
    kernels = [e for e in ev if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.time_range.elapsed_us() for e in kernels) / 1e6
    copies = sum(1 for e in ev if e.name in ('aten::copy_', 'aten::_to_copy') and e.device_type == torch.autograd.DeviceType.CPU)
    return dict(size=size, batch=batch, kernels=len(kernels), kernel_s=busy, wall_s=wall, busy_share=busy / wall, copy_calls=copies)


def gpu_ops(device, size: int, batch: int, reps: int) -> dict:
    xd = as_batch(load_photos(batch, size)).to(device)
    out = {}
    for name in ops.AUGMIX_OPS:
        idx, mag = op_args(name, batch)
        out[name] = device_rate(lambda: ops.apply_op_batch(xd, idx, mag), batch, reps, device)
    return out


def seg_views(device, batch: int, reps: int) -> float:
    from diversification.seg_augmix import seg_augmix
    xd = to_float(as_batch(load_photos(batch, 0, hw=(128, 256)))).to(device)
    g = torch.Generator().manual_seed(0)
    return device_rate(lambda: seg_augmix(xd, None, 2, generator=g), batch, reps, device)


def step_share(device, batch: int, n: int) -> dict:
    import diversification.augmix_mixup as am
    from diversification.models import timm_classifier
    x = to_float(as_batch(load_photos(batch, 28, 'L'))).to(device)
    y = (torch.arange(batch) % 10).to(device)
    torch.manual_seed(0)
    return am.step_cost(timm_classifier('resnet10t', 10, in_chans=1).to(device), x, y, n=n)


def run(device: str, workers: int, reps: int, smoke: bool, compare: str | None = None) -> dict:
    sizes, batches = ((224, 32), (64, 256)) if not smoke else ((64,), (8,))
    n_images = {224: 4096, 32: 16384} if not smoke else {64: 32}
    res = dict(info=dict(torch=torch.__version__, machine=platform.machine(), cpu_count=os.cpu_count(), device=device,
                         workers=workers, reps=reps, compared=compare))
    _guard(res, 'host', lambda: host_baselines(sizes, batches, workers, n_images))      # before CUDA starts: workers fork
    if torch.device(device).type == 'cuda':
        res['info']['gpu'] = torch.cuda.get_device_name(device)
        torch.backends.cudnn.benchmark = False
    _guard(res, 'exactness', lambda: exactness(device, *((224, 32) if not smoke else (64, 4))))
    other = ops_from_source(Path(compare).read_text(), 'ops_compared') if compare else None
    _guard(res, 'ours', lambda: ours_rates(sizes, batches, device, reps, min(16, os.cpu_count() or 1), other))
    if torch.device(device).type == 'cuda': _guard(res, 'busy', lambda: [gpu_busy(device, s, b) for s in sizes for b in batches])
    _guard(res, 'ops', lambda: {s: gpu_ops(device, s, 64 if not smoke else 4, reps) for s in sizes})
    _guard(res, 'seg', lambda: {b: seg_views(device, b, reps) for b in ((16, 64) if not smoke else (2,))})
    _guard(res, 'step', lambda: {b: step_share(device, b, max(reps, 10)) for b in ((64, 256) if not smoke else (8,))})
    return res


def report(res: dict) -> str:
    i = res['info']
    L = [f"{i.get('gpu', i['device'])}; host {i['cpu_count']} CPU cores; torch {i['torch']}; host loaders with {i['workers']} workers", '']
    host, ours = res.get('host'), res.get('ours')
    if isinstance(host, list) and isinstance(ours, list):
        L += ['| size | batch | ours, batch on the GPU | ours, incl. copy from pinned host memory | ours on the host CPU '
              '| timm in workers | torchvision in workers | GPU / timm | GPU / torchvision |', '|---|---|---|---|---|---|---|---|---|']
        for h, o in zip(host, ours):
            L.append(f"| {o['size']} px | {o['batch']} | {o['ours_device']:.0f} | {o['ours_device_with_copy']:.0f} | "
                     f"{o['ours_host_cpu']:.0f} ({o['host_threads']} threads) | {h['timm']:.0f} | {h['torchvision']:.0f} | "
                     f"{o['ours_device'] / h['timm']:.1f}x | {o['ours_device'] / h['torchvision']:.1f}x |")
        if 'other_device' in ours[0]:
            L += ['', f"Ours on the GPU against {i['compared']} (img/s): " + ', '.join(
                f"{o['size']} px B={o['batch']}: {o['ours_device']:.0f} vs {o['other_device']:.0f} ({o['ours_device'] / o['other_device']:.2f}x)" for o in ours)]
    if isinstance(res.get('busy'), list):
        L += ['', 'One AugMix call under the profiler (kernels launched, their GPU time against the wall time):', '',
              '| size | batch | kernels | GPU busy (ms) | wall (ms) | busy share |', '|---|---|---|---|---|---|']
        L += [f"| {b['size']} px | {b['batch']} | {b['kernels']} | {b['kernel_s'] * 1e3:.1f} | {b['wall_s'] * 1e3:.1f} | {b['busy_share']:.0%} |" for b in res['busy']]
    ex = res.get('exactness')
    if isinstance(ex, dict) and 'error' not in ex:
        L += ['', 'GPU against CPU (the same torch code, compiled CPU kernels off), uint8 levels (largest |difference|, share of values that differ):', '',
              '| what | max | share differing | share off by > 1 |', '|---|---|---|---|']
        for k, d in list(ex.items())[:-1] + list(ex['views'].items()):
            if k != 'views': L.append(f"| {k} | {d['max']} | {d['share_differing']:.2%} | {d['share_over_1']:.2%} |")
    if isinstance(res.get('ops'), dict) and 'error' not in res['ops']:
        sizes = list(res['ops'])
        L += ['', 'Single ops on the GPU, `apply_op_batch` on 64 images (img/s):', '',
              '| op | ' + ' | '.join(f'{s} px' for s in sizes) + ' |', '|---|' + '---|' * len(sizes)]
        for name in ops.AUGMIX_OPS: L.append(f'| {name} | ' + ' | '.join(f"{res['ops'][s][name]:.0f}" for s in sizes) + ' |')
    if isinstance(res.get('seg'), dict) and 'error' not in res['seg']:
        L += ['', 'seg-AugMix, the two views of 128x256 float images on the GPU: ' +
              ', '.join(f'batch {b}: {v:.0f} img/s' for b, v in res['seg'].items())]
    if isinstance(res.get('step'), dict) and 'error' not in res['step']:
        L += ['', 'AugMix + Mixup step of ResNet-10t on 28 px greyscale images on the GPU (`step_cost`):', '',
              '| batch | plain CE step (ms) | AugMix + Mixup step (ms) | views (ms) | view share |', '|---|---|---|---|---|']
        for b, s in res['step'].items():
            L.append(f"| {b} | {s['plain_s'] * 1e3:.1f} | {s['joint_s'] * 1e3:.1f} | {s['views_s'] * 1e3:.1f} | {s['views_share']:.1%} |")
    errs = [k for k, v in res.items() if isinstance(v, dict) and 'error' in v]
    if errs: L += ['', 'Failed parts: ' + '; '.join(f"{k}: {res[k]['error']}" for k in errs)]
    return '\n'.join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--workers', type=int, default=16, help='DataLoader worker processes for timm and torchvision')
    ap.add_argument('--reps', type=int, default=20)
    ap.add_argument('--smoke', action='store_true', help='every part, small (to check the script)')
    ap.add_argument('--json', default=None, help='also write the results to this JSON file')
    ap.add_argument('--compare', default=None, help='another ops.py to time on the device beside the current one')
    a = ap.parse_args()
    if a.device.startswith('cuda') and not torch.cuda.is_available(): ap.error('no CUDA device here (try --device cpu --smoke)')
    res = run(a.device, a.workers, a.reps, a.smoke, a.compare)
    print(report(res))
    if a.json: Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == '__main__':
    main()
