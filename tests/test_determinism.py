"""Determinism on the CPU: after `set_seed`, every augmentation gives bit-identical batches and short training runs
(classification with AugMix + Mixup + JSD and with SUMix; segmentation with seg-AugMix + OHEM and with tail CutMix)
give identical metrics and weights twice; another seed changes them (the checks are not vacuous)."""
import tempfile
from pathlib import Path
import pytest
import torch
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.callback.schedule import fit_one_cycle  # noqa: F401

from diversification.core import set_seed
from diversification.data import fashion_mnist_dls, cityscapes_items, load_seg_pair, IGNORE_INDEX
from diversification.models import timm_classifier, UNet
from diversification.synthcity import make_synthcity
from diversification.reliability import assert_reproducible, augmentation_calls, _leaves, _same
from diversification.augmix_mixup import AugMixMixup
from diversification.sumix import MixCallback
from diversification.seg_augmix import SegAugMixJSD, OhemCrossEntropy
from diversification.tail_cutmix import tail_bank, tail_cutmix_dls
from diversification.segtrain import seg_train_dls

@pytest.fixture(scope='module')
def scenes():
    root = make_synthcity(Path(tempfile.mkdtemp())/'sc', n_train=6, n_val=2, size=(48, 96), seed=0, progress=False)
    pairs = [load_seg_pair(*it) for it in cityscapes_items(root, 'train')]
    xu = torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i, _ in pairs])
    y = torch.stack([torch.from_numpy(m).long() for _, m in pairs])
    return root, xu, y

def differs(a, b): return not all(_same(u, v) for (_, u), (_, v) in zip(_leaves(a), _leaves(b)))

def test_every_augmentation_is_bit_identical_after_set_seed(scenes):
    _, xu, y = scenes
    present = [c for c in range(19) if (y == c).any()]
    bank = tail_bank(xu, y, tail=present[-2:])
    calls = augmentation_calls(xu[:3].float() / 255, y[:3], bank)
    assert len(calls) >= 12
    for name, fn in calls.items():
        a = assert_reproducible(fn, seed=3)
        set_seed(4); b = fn()
        assert differs(a, b), f"{name}: another seed gave the same batch"

def _cls_run(cb):
    dls = fashion_mnist_dls(n_per_class=5, seed=0, bs=25, n_test_per_class=5)
    learn = Learner(dls, timm_classifier('resnet10t', 10, in_chans=1), metrics=accuracy, cbs=cb())
    with learn.no_logging(), learn.no_bar(): learn.fit_one_cycle(1, 3e-3)
    return [list(map(float, v)) for v in learn.recorder.values], list(learn.model.state_dict().values())

@pytest.mark.parametrize('cb', [lambda: AugMixMixup(gamma=12.), lambda: MixCallback('cutmix', sumix=True)], ids=['augmix_mixup', 'sumix'])
def test_short_classification_training_is_identical_twice(cb):
    a = assert_reproducible(lambda: _cls_run(cb), seed=0)
    set_seed(1); b = _cls_run(cb)
    assert differs(a, b)

def _seg_run(root, kind):
    if kind == 'seg_augmix':
        dls = seg_train_dls(root, bs=3, seed=None)                  # the base pipeline the seg-AugMix rows train on
        cbs, loss = [SegAugMixJSD()], OhemCrossEntropy(min_kept=500)
    else:
        dls = tail_cutmix_dls(root, tail=['person'], p=1.0, levels=(0, 1), bs=3, seed=None)
        cbs, loss = [], torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    learn = Learner(dls, UNet(19, base=4), loss_func=loss, cbs=cbs)
    with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-3)
    return [list(map(float, v)) for v in learn.recorder.values], list(learn.model.state_dict().values())

@pytest.mark.parametrize('kind', ['seg_augmix', 'tail_cutmix'])
def test_short_segmentation_training_is_identical_twice(scenes, kind):
    root = scenes[0]
    a = assert_reproducible(lambda: _seg_run(root, kind), seed=0)
    set_seed(1); b = _seg_run(root, kind)
    assert differs(a, b)
