"""Whole AugMix views against the reference chain replayed with PIL, on the real photos of tests/fixtures/photos.

The reference (google-research/augmix `augment_and_mix`): every chain runs PIL ops on the uint8 image, the chains and
the image are mixed in float, `m*x + (1 - m)*sum_k w_k*chain_k`. Our views come from the same drawn parameters
(`draw_augmix_params`), in uint8 and in float [0, 1] (the float path quantises the image and runs the uint8 chains, as
the training callbacks do). Single ops are PIL-exact or within 1 grey level (tests/test_ops_pil.py); a 1-level
difference can grow in a later op of the chain (posterize, equalize, autocontrast), so whole views are compared by
their mean and by the share of values off by more than 1 level.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diversification.core import as_generator, to_float
from diversification.ops import AUGMIX_OPS, PIXEL_OPS, apply_augmix, draw_augmix_params
from test_ops_pil import pil_augmix_op, to_tensor

PHOTOS = sorted((Path(__file__).parent / 'fixtures' / 'photos').glob('*.png'))


def pil_view(im: Image.Image, p, b: int) -> np.ndarray:
    "The reference AugMix view (float64, 0..255 units, HWC or HW) of PIL image `im` for sample `b` of params `p`."
    x = np.asarray(im, dtype=np.float64)
    mix = np.zeros_like(x)
    for k in range(p.op_idx.shape[1]):
        c = im
        for d in range(p.op_idx.shape[2]):
            i = int(p.op_idx[b, k, d])
            if i >= 0: c = pil_augmix_op(p.ops[i], c, p.magnitude[b, k, d].item())
        mix += float(p.weights[b, k]) * np.asarray(c, dtype=np.float64)
    m = float(p.m[b])
    return m * x + (1 - m) * mix


def replay(mode: str, severity: float, ops=AUGMIX_OPS, n: int = 8, seed: int = 0):
    "Our uint8 and float views and the PIL reference, (B, C, H, W) in 0..255 units, for `n` views of each photo."
    ims = [Image.open(p).convert(mode).resize((128, 128), Image.BILINEAR) for p in PHOTOS]
    ims = [im for im in ims for _ in range(n)]
    x = torch.cat([to_tensor(im) for im in ims])
    p = draw_augmix_params(x.shape[0], 128, 128, severity, ops=ops, generator=seed)
    ref = torch.stack([torch.from_numpy(pil_view(im, p, b)).reshape(128, 128, -1).permute(2, 0, 1) for b, im in enumerate(ims)])
    return apply_augmix(x, p).double(), apply_augmix(to_float(x), p).double() * 255, ref


def stats(ours: torch.Tensor, ref: torch.Tensor) -> dict:
    d = (ours - ref).abs()
    return dict(max=d.max().item(), mean=d.mean().item(), over1=(d > 1).double().mean().item())


@pytest.mark.parametrize('mode', ['RGB', 'L'])
@pytest.mark.parametrize('severity', [3, 6])
def test_whole_views_match_pil_replay(mode, severity):
    u8, fl, ref = replay(mode, severity)
    su, sf = stats(u8, ref.round()), stats(fl, ref)
    print(f'{mode} severity {severity}: uint8 {su}, float {sf}')
    # uint8 views are the reference rounded, float views the reference itself, up to the ops' 1-level tolerance
    for s in (su, sf):
        assert s['mean'] < 0.01 and s['over1'] < 0.001, s
    assert (fl.round() - u8).abs().max() <= 1          # the float and uint8 paths are the same view


def test_pixel_ops_views_exact_where_ops_are_exact():
    "Without the bilinear ops (rotate, shear), every chain is PIL-exact: the views are the reference up to float rounding."
    u8, fl, ref = replay('RGB', 6, ops=PIXEL_OPS + ('translate_x', 'translate_y'))
    assert (u8 - ref.round()).abs().max() <= 1 and (fl - ref).abs().max() < 1e-3


def test_training_callback_views_are_the_uint8_path():
    "AugMixMixup builds its views from the un-normalised floats through the uint8 chains: the PIL replay, in float."
    from diversification.augmix_mixup import AugMixMixup
    ims = [Image.open(p).convert('RGB').resize((64, 64), Image.BILINEAR) for p in PHOTOS] * 2
    x = to_float(torch.cat([to_tensor(im) for im in ims]))
    cb = AugMixMixup(beta=0.0, severity=6, seed=0)
    cb.gen, cb.norm = as_generator(0), None
    xs, _ = cb.stack_batch(x)
    g = as_generator(0)
    for v in range(2):
        p = draw_augmix_params(len(ims), 64, 64, 6, generator=g)
        ref = torch.stack([torch.from_numpy(pil_view(im, p, b)).permute(2, 0, 1) for b, im in enumerate(ims)])
        s = stats(xs[(v + 1) * len(ims):(v + 2) * len(ims)].double() * 255, ref)
        assert s['mean'] < 0.01 and s['over1'] < 0.001, s
