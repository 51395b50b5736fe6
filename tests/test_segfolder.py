"""A user's own segmentation data through the CLI: the folder layout with a `classes.txt` of 16 classes (mask ids 0..15),
the `ci` size's baseline segmentation. The report must name the user's classes and dataset, never Cityscapes' classes,
and train at the data's own aspect (40x60 -> 64x96), not squished to the SynthCity size."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

from diversification.data import toy_seg_folder, TOY_CLASSES, CITYSCAPES_CLASSES, LabelError, seg_classes, load_seg_pair, seg_items
from diversification.efficientseg import build_segmenter, efficientseg_learner
from diversification.data import seg_dls
from diversification.reproduce import _unframe


def test_cli_reports_the_users_classes(tmp_path):
    root, out = toy_seg_folder(tmp_path/'garden'), tmp_path/'report'
    exe = Path(sys.executable).with_name('diversification')
    r = subprocess.run([str(exe), 'reproduce', '--ci', '--only', 'baseline_segmentation',
                        '--segfolder', str(root), '--out', str(out)],
                       capture_output=True, text=True, env={**os.environ, 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, r.stderr[-3000:]
    md = (out/'results.md').read_text()
    rec = json.loads((out/'parts'/'baseline_segmentation.json').read_text())
    assert 'garden' in rec['title'] and 'SynthCity' not in rec['title'] and 'SynthCity' not in rec['note']
    per_class = _unframe(rec['tables']['per-class IoU'])
    assert per_class['class'].tolist() == list(TOY_CLASSES)
    assert all(c in md for c in ('soil', 'bud')) and not any(f'| {c} ' in md for c in CITYSCAPES_CLASSES)
    assert 'at 64x96' in rec['note']                                   # the data's aspect (40x60), rounded to multiples of 32


def test_user_masks_and_models_are_checked(tmp_path):
    root = toy_seg_folder(tmp_path/'garden')
    img, mask = load_seg_pair(*seg_items(root)[0], classes=seg_classes(root))
    with pytest.raises(LabelError):                                    # the Cityscapes table is not applied silently
        load_seg_pair(*seg_items(root)[0])
    dls = seg_dls(root, bs=2)
    with pytest.raises(ValueError, match='predicts 19 classes but the data \\(garden\\) has 16'):
        efficientseg_learner(dls, build_segmenter('efficientseg_1.5'))
    assert efficientseg_learner(dls, build_segmenter('efficientseg_1.5', num_classes=16)).loss_func.weight is None
