"""The main job as a newcomer runs it: `diversification reproduce --quick` from a fresh report folder.

Checks what the quick size promises (README): its models are trained on a reduced design sized for minutes, so
classification accuracies reach 0.70 and segmentation mIoU 0.25 on the embedded data; the report opens with the
claims ledger; one seed gives no verdicts; the experiments left out are named. The wall time is printed, not asserted.
"""
import json, os, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

from diversification.claims import LEDGER_COLS, CLAIMS


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out, data = tmp_path_factory.mktemp('quick'), tmp_path_factory.mktemp('data')
    exe = Path(sys.executable).with_name('diversification')
    t0 = time.time()
    r = subprocess.run([str(exe), 'reproduce', '--quick', '--out', str(out), '--data-dir', str(data)],
                       capture_output=True, text=True, env={**os.environ, 'MPLBACKEND': 'Agg'})
    wall = time.time() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"\nquick run: {wall:.0f} s wall")
    return out, r.stdout


def test_quick_report_opens_with_the_ledger(quick):
    out, stdout = quick
    md = (out/'results.md').read_text()
    assert md.index('## Claims ledger') < md.index('## Wall time of each part') < md.index('## AugMix + Mixup')
    assert 'plots/claims_forest.png' in md and (out/'plots'/'claims_forest.png').stat().st_size > 1000
    assert 'run with `--full`' in md and all(n in md for n in ('seg_augmix', 'efficientseg', 'tail_cutmix', 'ensemble'))
    assert 'class="v-unresolved"' in (out/'results.html').read_text() and 'Claims ledger' in stdout


def test_quick_ledger_is_single_seed_unresolved(quick):
    out, _ = quick
    led = pd.read_csv(out/'claims.csv')
    assert list(led.columns[:12]) == LEDGER_COLS
    expected = {c.claim for c in CLAIMS if c.experiment == 'augmix_mixup' or c.claim in ('sumix_cutmix', 'sumix_cutmix_occlusion')}
    assert set(led.claim) == expected
    assert (led.seeds == 1).all() and set(led.verdict) == {'unresolved'} and led.delta_mean.notna().all()
    assert json.loads((out/'results.json').read_text())['claims_ledger'][0]['verdict'] == 'unresolved'


def test_quick_models_are_trained(quick):
    out, _ = quick
    js = json.loads((out/'results.json').read_text())
    t2 = pd.DataFrame(js['augmix_mixup']['table'])
    assert (t2.test_accuracy_mean >= 0.70).all(), t2[['setting', 'test_accuracy_mean']]
    su = pd.DataFrame(js['sumix']['table'])
    assert (su.test_accuracy_mean >= 0.70).all(), su[['mixer', 'sumix', 'test_accuracy_mean']]
    seg = pd.DataFrame(js['baseline_segmentation']['table'])
    assert (seg.miou >= 0.25).all(), seg.miou
    for f in ('augmix_mixup_loss', 'sumix_loss', 'seg_loss'): assert (out/'plots'/f'{f}.png').exists()
    assert set(js) - {'claims_ledger'} == {'augmix_mixup', 'sumix', 'baseline_segmentation'}
