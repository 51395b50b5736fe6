"The GPU bench script (`bench/bench_augmix_cuda.py`) runs end to end on the CPU in its smoke mode, so it keeps working between the rare sessions with a GPU."
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
