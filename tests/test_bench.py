"""The AugMix bench scripts keep working: the GPU bench (`bench/bench_augmix_cuda.py`) runs end to end on the CPU in its
smoke mode, between the rare sessions with a GPU, and the CPU bench's DataLoader comparison runs small."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))


def test_cuda_bench_smoke_on_cpu():
    import bench_augmix_cuda as bc
    threads = torch.get_num_threads()
    res = bc.run('cpu', workers=0, reps=2, smoke=True)
    assert torch.get_num_threads() == threads                       # the host-CPU timing puts the thread count back
    failed = {k: v['error'] for k, v in res.items() if isinstance(v, dict) and 'error' in v}
    assert not failed, failed
    assert set(res['exactness']) >= {'rotate', 'equalize', 'views'} and res['ours'][0]['ours_device'] > 0
    rep = bc.report(res)
    assert '| 64 px | 8 |' in rep and '| sharpness |' in rep and 'view share' in rep


def test_augmix_bench_workers_part():
    import bench_augmix as ba
    r = ba.bench_workers(16, 4, workers=0, reps=1, n_images=8)       # workers=0: the loaders run in this process
    assert (r['size'], r['batch'], r['workers']) == (16, 4, 0) and all(r[k] > 0 for k in ('after', 'timm', 'torchvision'))
    x = ba.as_batch(ba.load_photos(4, 16))
    assert torch.equal(ba.AugMixBatches(x, 2)[1], ba.after.augmix(x, generator=1))   # an item is the seeded view of the batch
