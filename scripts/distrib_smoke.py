"""Smoke test: the library's callbacks under fastai's own distributed engine (`learn.distrib_ctx()`: accelerate + DDP)
with mixed precision, on CPU with 2 processes (gloo) or on GPUs (nccl).

    python scripts/distrib_smoke.py                                            # relaunches itself under torchrun, 2 processes
    python -m torch.distributed.run --standalone --nproc_per_node 2 scripts/distrib_smoke.py
    accelerate launch --multi_gpu --num_processes 2 scripts/distrib_smoke.py    # accelerate's launcher (torchrun inside)

(`accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is set up; the script then relaunches itself.)

For every callback it builds a tiny Learner, trains one short epoch inside `with learn.distrib_ctx():` with mixed
precision on (bf16 autocast on CPU, fp16 + GradScaler on CUDA), and checks that
  1. the model was wrapped in DistributedDataParallel while training, and every training and validation loss is finite;
  2. the model's output had the autocast dtype (the forward really ran in mixed precision);
  3. all parameters, the SUMix uncertainty head included, are bitwise identical on every rank after training although
     each rank started from its own random init and trained on other samples: DDP broadcast rank 0's weights and
     all-reduced every gradient (the head is checked to have been trained too, i.e. it is in the optimiser);
  4. each rank trained on its own shard of the training indices (fastai's DistributedDL).
Rank 0 prints one `OK <case>: ...` or `FAIL <case>: ...` line per case and `ALL OK` or `SOME FAILED` at the end.
"""
from __future__ import annotations
import argparse, math, os, subprocess, sys, tempfile, time, traceback, warnings

CASES = ('augmix_mixup', 'seg_augmix_ohem', 'sumix_cutmix', 'sumix_lamhat', 'mixup', 'efficientseg_aug', 'tail_cutmix')


def relaunch(argv, nproc: int) -> int:
    "Start this script again under torchrun with `nproc` processes (the launcher that works on CPU and GPU alike)."
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', os.path.abspath(__file__), *argv]
    return subprocess.call(cmd, env={**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')})


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--cases', default=','.join(CASES), help=f'comma-separated subset of {CASES}')
    ap.add_argument('--nproc', type=int, default=2, help='processes when the script launches itself')
    ap.add_argument('--amp', default='auto', choices=('auto', 'bf16', 'fp16', 'none'), help='auto: fp16 on CUDA, bf16 on CPU')
    ap.add_argument('--timeout', type=int, default=120, help='seconds before a stuck collective fails')
    ap.add_argument('--data', default=None, help='SynthCity folder (made on rank 0 if missing; default: a temporary folder)')
    return ap.parse_args(argv)


if __name__ == '__main__' and 'WORLD_SIZE' not in os.environ:      # not launched by torchrun / accelerate: launch
    sys.exit(relaunch(sys.argv[1:], parse_args().nproc))

# ---------------------------------------------------------------- worker side (one process per rank)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from fastai.basics import Learner, Callback, rank_distrib, num_distrib  # noqa: E402
from fastai.callback.fp16 import MixedPrecision, AMPMode  # noqa: E402
import fastai.distributed as fd  # noqa: E402  (also patches `Learner.distrib_ctx` in)


# ---- fastai 2.8 on CPU: two work-arounds (harmless on GPUs), and a probe of the shards
def _broadcast(self, t, rank):
    "fastai's `DistributedDL._broadcast` moves the shuffled indices to CUDA (`.cuda()`, for nccl); keep them on the CPU for gloo."
    t = torch.tensor(t, dtype=torch.long, device='cuda' if dist.get_backend() == 'nccl' else 'cpu')
    dist.broadcast(t, rank)
    return t.cpu().tolist()


_get_idxs = fd.DistributedDL.get_idxs
def _tracked_get_idxs(self):
    "fastai's `get_idxs`, remembering on the wrapped DataLoader which indices this rank got."
    idxs = _get_idxs(self)
    self.dl.last_shard = list(idxs)
    return idxs


def patch_fastai():
    fd.DistributedDL._broadcast = _broadcast
    fd.DistributedDL.get_idxs = _tracked_get_idxs


class DeviceMixedPrecision(MixedPrecision):
    """fastai's `MixedPrecision` with autocast and GradScaler on the model's device. fastai builds them for 'cuda'
    unconditionally, so on a CPU-only machine `to_bf16()`/`to_fp16()` only warn and train in float32."""
    def before_fit(self):
        super().before_fit()
        dev = next(self.learn.model.parameters()).device.type
        if dev != 'cuda':
            dtype = torch.bfloat16 if self.amp_mode == AMPMode.BF16 else torch.float16
            self.autocast, self.learn.scaler = torch.autocast(dev, dtype=dtype), torch.amp.GradScaler(dev, **self.kwargs)


def add_amp(learn, amp: str):
    "`learn.to_fp16()` / `learn.to_bf16()` on CUDA, `DeviceMixedPrecision` elsewhere; `amp='none'`: float32."
    if amp == 'none': return learn
    if torch.cuda.is_available(): return learn.to_fp16() if amp == 'fp16' else learn.to_bf16()
    return learn.add_cb(DeviceMixedPrecision(amp_mode=amp))


class Probe(Callback):
    "Records the wrapper, the training losses, the dtype of the model's output and the parameters at the first step."
    order = 100                                                      # after DistributedTrainer (11): sees the DDP model
    def before_fit(self):
        self.losses, self.out_dtypes, self.start, self.start_head, self.wrapper = [], set(), None, None, None
        self._h = self.learn.model.register_forward_hook(
            lambda m, i, o: self.out_dtypes.add(str((o[0] if isinstance(o, (tuple, list)) else o).dtype).replace('torch.', '')))
    def before_train(self):
        if self.start is not None: return
        self.wrapper, inner = type(self.learn.model).__name__, unwrap(self.learn.model)
        self.start = flat_params(inner)                            # after DDP's broadcast from rank 0
        if hasattr(inner, 'sumix_head'): self.start_head = flat_params(inner.sumix_head)
    def after_batch(self):
        if self.training: self.losses.append(float(self.loss))
    def after_fit(self): self._h.remove()


def unwrap(model): return getattr(model, 'module', model)
def flat_params(model) -> torch.Tensor: return torch.cat([p.detach().float().flatten().cpu() for p in model.parameters()])


def all_gather(obj):
    if not dist.is_initialized(): return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# ---- tiny data and models
def cls_dls(n=64, size=32, n_classes=4, bs=8, seed=0):
    "Random uint8 images of 4 classes, identical on every rank (fastai's DistributedDL shards them)."
    from diversification.data import array_dls
    g = np.random.default_rng(seed)
    x, y = g.integers(0, 256, (n + 16, 3, size, size), dtype=np.uint8), g.integers(0, n_classes, n + 16)
    return array_dls(x[:n], y[:n], x[n:], y[n:], [str(i) for i in range(n_classes)], bs=bs, seed=seed)


def cls_model(n_classes=4):
    from diversification.models import timm_classifier
    return timm_classifier('resnet10t', n_classes)


class TwoHeadSeg(nn.Module):
    "A tiny U-Net plus an auxiliary head: `(main, aux)` logits in training, like HRNet + OCR; the main logits in eval."
    def __init__(self, n_classes=19):
        super().__init__()
        from diversification.models import UNet
        self.body, self.aux = UNet(n_classes, base=8, depth=2), nn.Conv2d(3, n_classes, 1)
    def forward(self, x):
        main = self.body(x)
        return (main, self.aux(x)) if self.training else main


def synthcity(root):
    "A 16 + 4 image SynthCity at 64 x 128, made by rank 0 while the others wait."
    from diversification.synthcity import make_synthcity
    if rank_distrib() == 0: make_synthcity(root, n_train=16, n_val=4, size=(64, 128), seed=0, progress=False)
    if dist.is_initialized(): dist.barrier()
    return root


def build(case: str, root, seed: int = 0, n_cls: int = 64):
    """(Learner, description) for `case` (`n_cls` training images for the classification cases). The callbacks' own
    random draws get `seed + rank`: with one seed on every rank, all ranks would draw the same AugMix chains, mix ratios,
    boxes and crops at every step."""
    from diversification.augmix_mixup import AugMixMixup
    from diversification.seg_augmix import SegAugMixJSD, OhemCrossEntropy
    from diversification.sumix import MixCallback
    s = seed + rank_distrib()
    if case == 'augmix_mixup':
        return Learner(cls_dls(n_cls), cls_model(), cbs=AugMixMixup(seed=s)), 'AugMix views + JSD + Mixup in one stacked forward'
    if case == 'seg_augmix_ohem':
        from diversification.data import seg_dls
        learn = Learner(seg_dls(root, bs=4), TwoHeadSeg(), loss_func=OhemCrossEntropy(min_kept=2000), cbs=SegAugMixJSD(weight=1.0, seed=s))
        return learn, 'seg-AugMix per-pixel JSD + OHEM CE on (main, aux)'
    if case == 'sumix_cutmix':
        return Learner(cls_dls(n_cls), cls_model(), cbs=MixCallback('cutmix', alpha=1.0, sumix=True, seed=s)), 'CutMix + SUMix (lambda-hat + uncertainty head)'
    if case == 'sumix_lamhat':
        return (Learner(cls_dls(n_cls), cls_model(), cbs=MixCallback('mixup', alpha=1.0, sumix=True, gamma=0.0, seed=s)),
                'Mixup + SUMix lambda-hat only (gamma=0)')
    if case == 'mixup':
        return Learner(cls_dls(n_cls), cls_model(), cbs=MixCallback('mixup', alpha=1.0, seed=s)), 'Mixup (MixCallback)'
    if case == 'efficientseg_aug':
        from diversification.efficientseg import efficientseg_dls, EfficientSeg, efficientseg_learner
        dls = efficientseg_dls(root, bs=4, n_extra=2, seed=s)
        return efficientseg_learner(dls, EfficientSeg(19, width=0.25)), 'SegAugment (EfficientSeg settings) + rare-class crops (batch transform), weighted CE'
    if case == 'tail_cutmix':
        from diversification.tail_cutmix import tail_cutmix_dls
        from diversification.models import UNet
        from diversification.segtrain import WeightedCrossEntropy
        dls = tail_cutmix_dls(root, tail=('pole', 'person'), p=1.0, levels=(0, 1), bs=4, seed=s)
        return (Learner(dls, UNet(19, base=8, depth=2), loss_func=WeightedCrossEntropy()),
                'TailCutMix (batch transform, levels 0-1)')
    raise ValueError(f'unknown case {case!r}; one of {CASES}')


def train(learn, distributed: bool = True, lr: float = 1e-3) -> dict:
    "One epoch (inside `learn.distrib_ctx()` when `distributed`); what the checks need, from this rank."
    probe = Probe(); learn.add_cb(probe)
    cpu = not torch.cuda.is_available()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
            warnings.simplefilter('ignore')
            if distributed:
                # on CPU: accelerate must be told (`cpu=True`), and SyncBatchNorm only runs on GPUs
                with learn.distrib_ctx(sync_bn=not cpu, cpu=cpu): learn.fit(1, lr)
            else: learn.fit(1, lr)
    finally:                      # an error mid-batch skips `after_fit`: leave no autocast entered for the next case
        mp = next((c for c in learn.cbs if isinstance(c, MixedPrecision)), None)
        ac = getattr(mp, 'autocast', None)
        if ac is not None and torch.is_autocast_enabled(ac.device): ac.__exit__(None, None, None)
    model = unwrap(learn.model)
    p = flat_params(model)
    mix = next((c for c in learn.cbs if type(c).__name__ == 'MixCallback'), None)
    head = flat_params(model.sumix_head) if hasattr(model, 'sumix_head') else None
    return dict(wrapper=probe.wrapper, losses=probe.losses, valid_loss=float(learn.recorder.values[-1][1]),
                dtypes=sorted(probe.out_dtypes), p=p, moved=float((p - probe.start).abs().max()),
                head=head, head_moved=None if head is None or probe.start_head is None else float((head - probe.start_head).abs().max()),
                uses_head=mix is not None and mix.sumix and mix.gamma > 0 and mix.terms is not None,
                shard=list(getattr(learn.dls.train, 'last_shard', [])), secs=time.perf_counter() - t0)


def check(case: str, desc: str, ranks: list, amp: str) -> str:
    "The `OK ...` / `FAIL ...` line of a case from every rank's `train` output."
    errs, r0 = [], ranks[0]
    losses = [l for r in ranks for l in r['losses']]
    if not losses: errs.append('no training batch ran')
    bad = [l for l in losses + [r['valid_loss'] for r in ranks] if not math.isfinite(l)]
    if bad: errs.append(f'non-finite losses {bad[:3]}')
    if len(ranks) > 1 and r0['wrapper'] != 'DistributedDataParallel': errs.append(f"the model was a {r0['wrapper']} while training, not DDP")
    want = {'bf16': 'bfloat16', 'fp16': 'float16', 'none': 'float32'}[amp]
    dts = sorted({d for r in ranks for d in r['dtypes']})
    if dts != [want]: errs.append(f'model output dtypes {dts}, expected {want}')
    diff = max(float((r['p'] - r0['p']).abs().max()) for r in ranks)
    if diff != 0: errs.append(f'parameters differ across ranks (max |diff| {diff:.3g}): gradients not synchronised')
    if min(r['moved'] for r in ranks) == 0: errs.append('the parameters did not change: no optimiser step')
    head = ''
    if r0['head'] is not None:
        hd = max(float((r['head'] - r0['head']).abs().max()) for r in ranks)
        if hd != 0: errs.append(f'the SUMix head differs across ranks (max |diff| {hd:.3g})')
        trained = all((r['head_moved'] or 0) > 0 for r in ranks)
        if r0['uses_head'] and not trained: errs.append('the SUMix head was not trained (not in the optimiser?)')
        head = f", sumix_head ({r0['head'].numel()} params) identical{' and trained' if trained else ''}"
    shards = [r['shard'] for r in ranks]
    if len(ranks) > 1:
        if not all(shards): errs.append('a rank recorded no shard')
        elif len({tuple(s) for s in shards}) != len(shards): errs.append('two ranks trained on the same indices')
    shared = len(set.intersection(*[set(s) for s in shards])) if all(shards) else 0
    msg = (f"{case}: {desc}; {len(ranks)} ranks x {len(r0['losses'])} steps, train loss {np.mean(losses):.3f}, "
           f"valid loss {r0['valid_loss']:.3f}, {r0['wrapper']}, {want} forward, {r0['p'].numel()} params identical on all ranks{head}, "
           f"shards of {'+'.join(str(len(s)) for s in shards)} samples ({shared} indices in common), {max(r['secs'] for r in ranks):.1f}s")
    return ('OK ' + msg) if not errs else f"FAIL {case}: {'; '.join(errs)} [{msg}]"


def main(args):
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, int(os.environ.get('OMP_NUM_THREADS', '1'))))
    if not dist.is_initialized():     # accelerate would make the group on first use; the data and the checks need it earlier
        import datetime
        dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo', timeout=datetime.timedelta(seconds=args.timeout))
    if torch.cuda.is_available(): torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    patch_fastai()
    amp = args.amp if args.amp != 'auto' else ('fp16' if torch.cuda.is_available() else 'bf16')
    tmp = None if args.data else all_gather(tempfile.mkdtemp(prefix='distrib_smoke_') if rank_distrib() == 0 else None)[0]
    root = synthcity(args.data or os.path.join(tmp, 'synthcity'))
    if rank_distrib() == 0:
        print(f"fastai distrib_ctx smoke test: {num_distrib()} processes, backend {dist.get_backend()}, "
              f"{'cuda' if torch.cuda.is_available() else 'cpu'}, mixed precision {amp}", flush=True)
    ok = True
    for case in [c for c in args.cases.split(',') if c]:
        try:
            torch.manual_seed(1000 + rank_distrib())                 # a different init per rank: DDP must broadcast rank 0's
            learn, desc = build(case, root)
            info = train(add_amp(learn, amp))
            ranks = all_gather(info)
            line = check(case, desc, ranks, amp) if rank_distrib() == 0 else ''
        except Exception as e:
            traceback.print_exc()
            line = f"FAIL {case}: rank {rank_distrib()} raised {type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1][:300]}"
        lines = all_gather(line)
        if rank_distrib() == 0:
            out = next((l for l in lines if l.startswith('FAIL')), lines[0])
            ok &= out.startswith('OK')
            print(out, flush=True)
    ok = all(all_gather(ok))
    if rank_distrib() == 0:
        print(f"{'ALL OK' if ok else 'SOME FAILED'} ({time.perf_counter() - t0:.1f}s after start-up)", flush=True)
        if tmp:
            import shutil; shutil.rmtree(tmp, ignore_errors=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(parse_args()))
