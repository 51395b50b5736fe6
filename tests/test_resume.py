"""A training run killed mid-epoch (SIGKILL to its process) resumes from its last checkpoint with nothing lost: the
resumed run trains only the missing epochs and ends with the same weights and metrics, bit for bit, as a run that
was never interrupted."""
import os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import torch

CHILD = textwrap.dedent('''
    import json, os, sys, time, torch
    torch.set_num_threads(1)
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from fastai.callback.core import Callback
    from fastai.callback.schedule import fit_one_cycle
    from diversification.core import set_seed
    from diversification.data import fashion_mnist_dls
    from diversification.models import timm_classifier
    from diversification.augmix_mixup import AugMixMixup
    from diversification.reliability import ResumeCallback
    ckpt, out, pause_at = sys.argv[1], sys.argv[2], sys.argv[3]
    class Progress(Callback):
        "Count the epochs this process trains; park at `pause_at` (epoch:batch) until killed."
        def before_fit(self): self.trained = set()
        def before_batch(self):
            if not self.training: return
            self.trained.add(self.epoch)
            if pause_at and f'{self.epoch}:{self.iter}' == pause_at:
                open(out + '.paused', 'w').write('x'); time.sleep(120)
    set_seed(0)
    dls = fashion_mnist_dls(n_per_class=10, seed=0, bs=25)
    learn = Learner(dls, timm_classifier('resnet10t', 10, in_chans=1), metrics=accuracy, cbs=AugMixMixup(gamma=12.))
    prog = Progress()
    with learn.no_logging(), learn.no_bar():
        learn.fit_one_cycle(4, 3e-3, cbs=[ResumeCallback(ckpt, dict(test='resume')), prog])
    torch.save(dict(state=learn.model.state_dict(), values=[[float(v) for v in r] for r in learn.recorder.values],
                    trained=sorted(prog.trained)), out)
''')

def _run(tmp, ckpt, out, pause_at='', wait=True):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    p = subprocess.Popen([sys.executable, '-c', CHILD, str(ckpt), str(out), pause_at], cwd=tmp, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        log, _ = p.communicate(timeout=600)
        assert p.returncode == 0, log[-3000:]
        return log
    return p

def test_killed_training_resumes_with_nothing_lost(tmp_path):
    ckpt, out = tmp_path/'run.pt', tmp_path/'resumed.pt'
    # 1. start a run and kill it (SIGKILL: no cleanup, no chance to save) in the middle of its third epoch
    p = _run(tmp_path, ckpt, out, pause_at='2:1', wait=False)
    t0 = time.time()
    while not Path(str(out) + '.paused').exists():
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.time() - t0 < 600, "the child never reached the pause point"
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL); p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL and not out.exists()
    ck = torch.load(ckpt, weights_only=True)
    assert ck['info']['epoch'] == 2                                             # two finished epochs on disk
    # 2. start it again: it resumes and trains only epochs 2 and 3
    log = _run(tmp_path, ckpt, out)
    assert 'resuming from' in log and '2 of 4 epochs done' in log
    resumed = torch.load(out, weights_only=True)
    assert resumed['trained'] == [2, 3]
    # 3. a run that was never interrupted
    straight_out = tmp_path/'straight.pt'
    _run(tmp_path, tmp_path/'other.pt', straight_out)
    straight = torch.load(straight_out, weights_only=True)
    assert straight['trained'] == [0, 1, 2, 3]
    assert resumed['values'] == straight['values'] and len(resumed['values']) == 4
    assert resumed['state'].keys() == straight['state'].keys()
    for k in straight['state']: assert torch.equal(resumed['state'][k], straight['state'][k]), k
