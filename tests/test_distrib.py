"""The callbacks under fastai's own scale-out engine: `learn.distrib_ctx()` (accelerate + DDP, 2 CPU processes over
gloo, launched by torchrun) and mixed precision (bf16 / fp16 autocast), via `scripts/distrib_smoke.py`."""
import importlib.util, math, os, subprocess, sys
from pathlib import Path

import pytest
import torch

pytest.importorskip('accelerate', reason='accelerate is not installed (fastai`s distrib_ctx needs it): pip install -e ".[dev]"')

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'distrib_smoke.py'


def _load_smoke():
    spec = importlib.util.spec_from_file_location('distrib_smoke', SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


smoke = _load_smoke()
DIST_ENV = ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'GROUP_RANK', 'ROLE_RANK')


def test_distrib_ctx_two_cpu_processes(tmp_path):
    "Every callback trains one epoch in `learn.distrib_ctx()` on 2 processes with autocast: finite losses, synced weights, own shards."
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    env.update(OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    try:
        r = subprocess.run([sys.executable, str(SCRIPT), '--data', str(tmp_path / 'synthcity'), '--timeout', '90'],
                           capture_output=True, text=True, timeout=400, env=env)
    except subprocess.TimeoutExpired as e:
        tail = lambda b: (b.decode() if isinstance(b, bytes) else b or '')[-3000:]
        pytest.fail(f"distrib_smoke.py timed out after {e.timeout}s\n--- stdout ---\n{tail(e.stdout)}\n--- stderr (tail) ---\n{tail(e.stderr)}")
    lines = r.stdout.splitlines()
    report = f"exit code {r.returncode}\n--- stdout ---\n{r.stdout[-4000:]}\n--- stderr (tail) ---\n{r.stderr[-4000:]}"
    missing = [c for c in smoke.CASES if not any(l.startswith(f'OK {c}:') for l in lines)]
    assert not missing, f"no OK line for {missing}\n{report}"
    assert r.returncode == 0 and any(l.startswith('ALL OK') for l in lines), report
    assert 'backend gloo' in lines[0] or 'backend nccl' in lines[0], report


@pytest.fixture(autouse=True)
def one_thread():
    "One intra-op thread: the tiny models gain nothing from more, and on a busy machine OpenMP's waiting threads can slow them 100x."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return smoke.synthcity(tmp_path_factory.mktemp('distrib') / 'synthcity')


@pytest.mark.parametrize('case', smoke.CASES)
def test_mixed_precision_single_process(case, root):
    "One process, no DDP: each callback trains with bf16 autocast (the model runs in bf16, losses stay finite, weights move)."
    torch.manual_seed(0)
    learn, desc = smoke.build(case, root, n_cls=16)
    info = smoke.train(smoke.add_amp(learn, 'bf16'), distributed=False)
    line = smoke.check(case, desc, [info], 'bf16')
    assert line.startswith('OK'), line
    assert info['dtypes'] == ['bfloat16'] and all(math.isfinite(l) for l in info['losses'])
    assert not torch.is_autocast_enabled('cpu')                      # the autocast was left after the fit


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_losses_take_reduced_precision_logits(dtype):
    """The JSD, OHEM and SUMix losses get fp16 / bf16 logits under autocast (the loss runs inside it in fastai) and compute
    in float32: the same value as float32 on the rounded logits, even for logits far beyond what softmax survives in fp16."""
    from diversification.augmix_mixup import jsd_loss
    from diversification.seg_augmix import pixel_jsd, OhemCrossEntropy
    from diversification.sumix import draw_mix, sumix_loss
    g = torch.Generator().manual_seed(0)
    low = lambda t: t.to(dtype).requires_grad_(True)
    cls = [low(torch.randn(8, 5, generator=g) * 300) for _ in range(3)]
    v = jsd_loss(*cls)
    assert v.dtype == torch.float32 and torch.isfinite(v) and torch.equal(v, jsd_loss(*[c.detach().float() for c in cls]))
    v.backward()
    assert all(c.grad.dtype == dtype and torch.isfinite(c.grad).all() for c in cls)
    seg = [low(torch.randn(2, 19, 16, 24, generator=g) * 300) for _ in range(3)]
    y = torch.randint(0, 19, (2, 16, 24), generator=g); y[:, :2] = 255
    ohem = OhemCrossEntropy(min_kept=100)
    for f in (lambda s: pixel_jsd(s, y), lambda s: ohem(tuple(s[:2]), y)):
        v = f(seg)
        assert v.dtype == torch.float32 and torch.isfinite(v) and torch.equal(v, f([s.detach().float() for s in seg]))
        v.backward()
    assert all(torch.isfinite(s.grad).all() for s in seg)
    head, x = torch.nn.Linear(16, 5), torch.rand(8, 3, 8, 8, generator=g)
    feats, logits_m, yc = torch.randn(16, 16, generator=g), low(torch.randn(8, 5, generator=g) * 30), torch.randint(0, 5, (8,), generator=g)
    with torch.autocast('cpu', dtype=dtype):
        h = torch.nn.Linear(16, 16)(feats)                             # features as autocast hands them to the head
        assert h.dtype == dtype
        out = sumix_loss(logits_m, logits_m.detach().float().softmax(1), *h.split(8), head, yc, draw_mix('cutmix', x, generator=0))
    assert out['loss'].dtype == torch.float32 and torch.isfinite(out['loss']) and out['reg'] > 0
    out['loss'].backward()
    assert torch.isfinite(logits_m.grad).all() and torch.isfinite(head.weight.grad).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only behaviour of fastai`s MixedPrecision')
def test_fastai_to_bf16_is_float32_on_cpu(root):
    """Why the smoke test uses `DeviceMixedPrecision`: fastai`s `to_bf16()` builds a CUDA autocast, disabled on a CPU-only
    machine. (If this fails, fastai now autocasts on the CPU: update the note in nbs/scale_out.ipynb.)"""
    torch.manual_seed(0)
    learn, desc = smoke.build('mixup', root, n_cls=16)
    info = smoke.train(learn.to_bf16(), distributed=False)
    assert info['dtypes'] == ['float32'] and all(math.isfinite(l) for l in info['losses'])
