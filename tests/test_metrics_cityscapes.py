"""`diversification.metrics` against the official `cityscapesscripts` pixel-level evaluator.

Small synthetic street scenes are written as a Cityscapes-like folder (GT `labelIds` + `instanceIds` PNGs and
prediction label-id PNGs), scored by `evalPixelLevelSemanticLabeling.evaluateImgLists`, and by `SegEvaluator` on
the same files converted to trainIds. Class / category IoU and iIoU, their means and the confusion matrix must agree.
"""
import copy
import math

import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import labels
from PIL import Image

from diversification.metrics import (
    CITYSCAPES_AVG_INSTANCE_SIZE,
    CITYSCAPES_CATEGORIES,
    CITYSCAPES_CLASSES,
    INSTANCE_CATEGORIES,
    INSTANCE_CLASSES,
    SegEvaluator,
    confusion_matrix,
    label_to_train_id,
    train_to_label_id,
)

ev = pytest.importorskip('cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling')

STUFF = [7, 8, 11, 13, 17, 19, 20, 21, 22, 23]               # road .. sky label ids used as background (no wall, 12)
VOID = [0, 1, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18]              # labels ignored in evaluation
THINGS = [24, 24, 25, 26, 26, 26, 27, 29, 30, 32, 33]        # person .. bicycle incl. caravan/trailer; no bus, no train
PRED_NOISE = [7, 8, 11, 17, 21, 23, 24, 26, 28, 33]           # prediction errors; bus (28) only as false positive


def scene(rng, h=60, w=80):
    "GT label ids, GT instance ids and predicted label ids for one synthetic street scene."
    gt = np.full((h, w), 7, np.uint8)
    gt[: h // 3] = 23
    gt[h // 3: h // 2] = rng.choice(STUFF)
    for _ in range(6):                                          # random stuff and void blocks
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        gt[y: y + rng.integers(3, 15), x: x + rng.integers(3, 20)] = rng.choice(STUFF + VOID)
    inst = gt.astype(np.int32)
    for k in range(int(rng.integers(4, 9))):                    # instances of several sizes, some as group regions
        lab = int(rng.choice(THINGS))
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        sl = np.s_[y: y + rng.integers(2, 20), x: x + rng.integers(2, 25)]
        gt[sl] = lab
        inst[sl] = lab if rng.random() < .2 else lab * 1000 + k
    pred = gt.copy()
    void = label_to_train_id(gt) == 255                         # void, caravan, trailer
    pred[void] = rng.choice(PRED_NOISE, size=void.sum())       # predictions are always evaluated classes
    pred = np.roll(pred, int(rng.integers(-2, 3)), axis=1)      # boundary errors
    for _ in range(8):                                          # blobs of wrong classes
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        pred[y: y + rng.integers(2, 12), x: x + rng.integers(2, 12)] = rng.choice(PRED_NOISE)
    flip = rng.random((h, w)) < .03                             # salt noise
    pred[flip] = rng.choice(PRED_NOISE, size=flip.sum())
    return gt, inst, pred


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    "A Cityscapes-like folder with 4 scenes; returns (prediction files, GT labelIds files)."
    root = tmp_path_factory.mktemp('cityscapes')
    (root / 'gtFine' / 'val' / 'toy').mkdir(parents=True)
    (root / 'results').mkdir()
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for i in range(4):
        gt, inst, pred = scene(rng)
        stem = f"toy_000000_{i:06d}"
        gts.append(str(root / 'gtFine' / 'val' / 'toy' / f"{stem}_gtFine_labelIds.png"))
        preds.append(str(root / 'results' / f"{stem}_pred.png"))
        Image.fromarray(gt).save(gts[-1])
        Image.fromarray(inst.astype(np.uint16)).save(gts[-1].replace('labelIds', 'instanceIds'))  # 16-bit, as Cityscapes
        Image.fromarray(pred).save(preds[-1])
    return preds, gts


def load(path): return np.array(Image.open(path)).astype(np.int64)


def ours(dataset, avg_instance_size=None):
    "Our scores on the files, via trainIds; one image per update (streaming)."
    e = SegEvaluator(avg_instance_size=avg_instance_size)
    for p, g in zip(*dataset):
        e.update(label_to_train_id(load(p)), label_to_train_id(load(g)), load(g.replace('labelIds', 'instanceIds')))
    return e.compute()


def theirs(dataset, avg_class_size, monkeypatch, tmp_path):
    "cityscapesscripts' own evaluator on the same files."
    monkeypatch.setenv('CITYSCAPES_DATASET', str(tmp_path))
    if not hasattr(np, 'in1d'):   # removed in numpy 2.4, still called by cityscapesscripts
        monkeypatch.setattr(np, 'in1d', lambda a, b, invert=False: np.isin(np.ravel(a), b, invert=invert), raising=False)
    args = copy.copy(ev.args)
    args.quiet, args.JSONOutput, args.colorized = True, False, False
    args.evalInstLevelScore, args.evalPixelAccuracy = True, False   # its pixel accuracy counts ignored/wrong pixels
    args.avgClassSize = avg_class_size
    args.exportFile = str(tmp_path / 'result.json')
    return ev.evaluateImgLists(list(dataset[0]), list(dataset[1]), args)


def max_diff(a: dict, b: dict, keys) -> float:
    "Largest |a - b| over `keys`; NaN must match NaN (an inf otherwise)."
    d = 0.
    for k in keys:
        x, y = a[k], b[k]
        if math.isnan(x) or math.isnan(y): d = max(d, 0. if math.isnan(x) and math.isnan(y) else math.inf)
        else: d = max(d, abs(x - y))
    return d


@pytest.mark.parametrize('which', ['measured', 'cityscapes'])
def test_agrees_with_cityscapesscripts(dataset, monkeypatch, tmp_path, which):
    mine = ours(dataset, None if which == 'measured' else 'cityscapes')
    ref = theirs(dataset, mine.avg_instance_size if which == 'measured' else ev.args.avgClassSize, monkeypatch, tmp_path)
    diffs = {
        'class IoU': max_diff(mine.class_iou, ref['classScores'], CITYSCAPES_CLASSES),
        'class iIoU': max_diff(mine.class_iiou, ref['classInstScores'], INSTANCE_CLASSES),
        'category IoU': max_diff(mine.category_iou, ref['categoryScores'], CITYSCAPES_CATEGORIES),
        'category iIoU': max_diff(mine.category_iiou, ref['categoryInstScores'], INSTANCE_CATEGORIES),
        'means': max_diff(mine.summary(), {'miou': ref['averageScoreClasses'], 'iiou': ref['averageScoreInstClasses'],
                                           'category_miou': ref['averageScoreCategories'],
                                           'category_iiou': ref['averageScoreInstCategories']},
                          ['miou', 'iiou', 'category_miou', 'category_iiou']),
    }
    print(which, diffs)
    assert max(diffs.values()) <= 1e-6, diffs
    # the data exercises the interesting cases: absent classes (NaN), FP-only instance class, real iIoU != IoU
    assert math.isnan(mine.class_iou['wall']) and math.isnan(mine.class_iou['train'])
    assert mine.class_iiou['bus'] == 0 and 0 < mine.class_iiou['person'] != mine.class_iou['person']
    assert set(mine.avg_instance_size) >= {'person', 'car', 'bicycle'}
    # everything cityscapesscripts leaves out of its means is NaN there
    assert all(math.isnan(ref['classScores'][lb.name]) for lb in labels if lb.id >= 0 and lb.ignoreInEval)
    assert math.isnan(ref['categoryScores']['void'])


def test_confusion_matrix_matches(dataset, monkeypatch, tmp_path):
    ref = np.array(theirs(dataset, CITYSCAPES_AVG_INSTANCE_SIZE, monkeypatch, tmp_path)['confMatrix'])
    ids = train_to_label_id(np.arange(19))
    mine = ours(dataset)
    assert (mine.confusion == ref[np.ix_(ids, ids)]).all()
    assert mine.pixel_acc == pytest.approx(np.trace(ref[np.ix_(ids, ids)]) / ref[ids].sum())


def test_avg_sizes_constant_is_cityscapes():
    assert CITYSCAPES_AVG_INSTANCE_SIZE == ev.args.avgClassSize


def test_streaming_equals_one_shot(dataset):
    p = torch.stack([torch.as_tensor(label_to_train_id(load(f))) for f in dataset[0]])
    g = torch.stack([torch.as_tensor(label_to_train_id(load(f))) for f in dataset[1]])
    i = torch.stack([torch.as_tensor(load(f.replace('labelIds', 'instanceIds'))) for f in dataset[1]])
    one, many = SegEvaluator().update(p, g, i).compute(), ours(dataset)
    assert torch.equal(confusion_matrix(p, g), torch.as_tensor(many.confusion))
    for field in ('class_iou', 'class_iiou', 'category_iou', 'category_iiou', 'avg_instance_size'):
        assert max_diff(getattr(one, field), getattr(many, field), getattr(one, field)) <= 1e-12, field
