"""`diversification.ops` against PIL on real photos (tests/fixtures/photos), plus masks, dtypes and determinism.

Tolerances (also stated in nbs/02_ops.ipynb), on uint8 images:
* autocontrast, equalize, posterize, solarize, translate_x/y (integer pixels): exact.
* brightness, color, contrast, sharpness (PIL blends): max abs diff <= 1, on at most 0.1% of values.
* rotate, shear_x, shear_y (bilinear): exact on the CPU, where the compiled kernels follow PIL's float64 steps; the torch
  path (other devices, or `ops._KERNELS = False`) within max abs diff 1 over the whole image (fill region included), on
  at most 2% of values. Both paths are tested.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageEnhance, ImageOps

from diversification import ops
from diversification.core import to_float, to_uint8
from diversification.ops import (AUGMIX_OPS, OPS, PIXEL_OPS, adjust_brightness, adjust_color, adjust_contrast, adjust_sharpness,
                                 apply_augmix, apply_op_batch, augmix, autocontrast, draw_augmix_params, draw_op_params, equalize,
                                 posterize, rotate, shear_x, shear_y, solarize, translate_x, translate_y)

PHOTOS = sorted((Path(__file__).parent / 'fixtures' / 'photos').glob('*.png'))
BLEND_MAX_FRAC, GEOM_MAX_FRAC = 0.001, 0.02


def to_tensor(im: Image.Image) -> torch.Tensor:
    a = np.asarray(im)
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(a.copy()).permute(2, 0, 1)[None]


def to_pil(x: torch.Tensor) -> Image.Image:
    a = x[0].permute(1, 2, 0).numpy()
    return Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)


@pytest.fixture(scope='module', params=[(p, mode) for p in PHOTOS for mode in ('RGB', 'L')], ids=lambda v: f'{v[0].stem}-{v[1]}')
def photo(request):
    path, mode = request.param
    im = Image.open(path).convert(mode)
    return im, to_tensor(im)


def diff(ours: torch.Tensor, ref: Image.Image) -> torch.Tensor:
    ref = to_tensor(ref)
    assert ours.shape == ref.shape and ours.dtype == torch.uint8
    return (ours.int() - ref.int()).abs()


def assert_close(d: torch.Tensor, max_abs: int, max_frac: float):
    assert d.max() <= max_abs, f'max abs diff {d.max().item()} > {max_abs}'
    assert (d > 0).float().mean() <= max_frac, f'{(d > 0).float().mean().item():.4%} of values differ'


@pytest.fixture(params=[True, False], ids=['kernels', 'torch'])
def kernels(request, monkeypatch):
    "Run a test with the compiled CPU kernels and with the torch code they replace (the path other devices take)."
    if request.param: assert ops._compiled() is not None, 'numba is a dependency: the kernels must be there'
    monkeypatch.setattr(ops, '_KERNELS', request.param)
    return request.param


def test_photos_present():
    assert len(PHOTOS) >= 3 and all(Image.open(p).size[0] >= 128 for p in PHOTOS)


# ---- pixel ops -------------------------------------------------------------------------------------------------------
def test_autocontrast_equalize_exact(photo):
    im, x = photo
    assert diff(autocontrast(x), ImageOps.autocontrast(im)).max() == 0
    assert diff(equalize(x), ImageOps.equalize(im)).max() == 0
    low = im.point(lambda v: 60 + v // 3)             # a low-contrast version exercises the LUT maths
    assert diff(autocontrast(to_tensor(low)), ImageOps.autocontrast(low)).max() == 0
    assert diff(equalize(to_tensor(low)), ImageOps.equalize(low)).max() == 0


@pytest.mark.parametrize('bits', [1, 2, 3, 4, 6, 8])
def test_posterize_exact(photo, bits):
    im, x = photo
    assert diff(posterize(x, bits), ImageOps.posterize(im, bits)).max() == 0


@pytest.mark.parametrize('threshold', [0, 26, 128, 180, 254, 256])
def test_solarize_exact(photo, threshold):
    im, x = photo
    assert diff(solarize(x, threshold), ImageOps.solarize(im, threshold)).max() == 0


ENHANCE = [(adjust_color, ImageEnhance.Color), (adjust_contrast, ImageEnhance.Contrast),
           (adjust_brightness, ImageEnhance.Brightness), (adjust_sharpness, ImageEnhance.Sharpness)]


@pytest.mark.parametrize('factor', [0.1, 0.37, 0.9, 1.0, 1.28, 1.9])
@pytest.mark.parametrize('op,cls', ENHANCE, ids=[o.__name__ for o, _ in ENHANCE])
def test_enhance_blends(photo, op, cls, factor):
    im, x = photo
    assert_close(diff(op(x, factor), cls(im).enhance(factor)), 1, BLEND_MAX_FRAC)


def test_pixel_ops_batched_per_sample_magnitudes():
    "A batch with a different magnitude per sample equals the ops applied one image at a time."
    ims = [Image.open(p).convert('RGB') for p in PHOTOS if Image.open(p).size == (160, 160)]
    x = torch.cat([to_tensor(im) for im in ims])
    f = torch.linspace(0.2, 1.8, len(ims))
    for op, cls in ENHANCE:
        out = op(x, f)
        for i, im in enumerate(ims): assert_close(diff(out[i:i + 1], cls(im).enhance(f[i].item())), 1, BLEND_MAX_FRAC)
    t = torch.tensor([100, 200])[:len(ims)]
    out = solarize(x, t)
    for i, im in enumerate(ims): assert diff(out[i:i + 1], ImageOps.solarize(im, t[i].item())).max() == 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from([1, 3]))
def test_lut_ops_exact_on_random_small_images(seed, levels, c):
    "Few distinct values, tiny images: the degenerate cases of PIL's autocontrast/equalize tables."
    g = torch.Generator().manual_seed(seed)
    vals = torch.randint(0, 256, (levels,), generator=g)
    x = vals[torch.randint(0, levels, (1, c, 5, 7), generator=g)].to(torch.uint8)
    im = to_pil(x)
    assert diff(autocontrast(x), ImageOps.autocontrast(im)).max() == 0
    assert diff(equalize(x), ImageOps.equalize(im)).max() == 0
    for op, cls in ENHANCE: assert_close(diff(op(x, 1.6), cls(im).enhance(1.6)), 1, 0.05)


# ---- geometric ops ---------------------------------------------------------------------------------------------------
def pil_affine(im, data): return im.transform(im.size, Image.AFFINE, data, resample=Image.BILINEAR)


@pytest.mark.parametrize('degrees', [-30, -8, 3, 17, 29])
def test_rotate(photo, degrees, kernels):
    im, x = photo
    assert_close(diff(rotate(x, float(degrees)), im.rotate(degrees, resample=Image.BILINEAR)), 0 if kernels else 1, GEOM_MAX_FRAC)


@pytest.mark.parametrize('level', [-0.3, -0.12, 0.05, 0.29])
def test_shear(photo, level, kernels):
    im, x = photo
    tol = 0 if kernels else 1
    assert_close(diff(shear_x(x, level), pil_affine(im, (1, level, 0, 0, 1, 0))), tol, GEOM_MAX_FRAC)
    assert_close(diff(shear_y(x, level), pil_affine(im, (1, 0, 0, level, 1, 0))), tol, GEOM_MAX_FRAC)


def test_affine_kernel_exact_on_any_matrix():
    "The kernel is PIL's AFFINE for any matrix (scale, skew, translation, fill), not just AugMix's."
    im = Image.open(PHOTOS[0]).convert('RGB')
    x = to_tensor(im)
    for data in [(0.8, 0.3, 12.5, -0.2, 1.1, -7.25), (1.3, -0.05, -20, 0.1, 0.7, 30), (1, 0, 0.5, 0, 1, -0.5)]:
        ref = im.transform(im.size, Image.AFFINE, data, resample=Image.BILINEAR, fillcolor=(77, 77, 77))
        assert diff(ops.affine(x, torch.tensor([data], dtype=torch.float64), fill=77), ref).max() == 0, data


def test_kernels_are_the_torch_path():
    "On real photos: the pixel ops and AugMix's mix give bitwise the torch path's values; the warps are within 1 level."
    x = torch.cat([to_tensor(Image.open(p).convert('RGB')) for p in PHOTOS if Image.open(p).size == (160, 160)])
    f = torch.linspace(0.1, 1.9, x.shape[0])
    runs = {}
    for on in (True, False):
        with ops._kernels_set(on):
            runs[on] = [op(x, f) for op in (adjust_color, adjust_contrast, adjust_brightness, adjust_sharpness)]
            runs[on] += [op(x[:, :1].contiguous(), f) for op in (adjust_contrast, adjust_brightness, adjust_sharpness)]
            runs[on] += [autocontrast(x), equalize(x), ops.histogram(x), augmix(x, ops=PIXEL_OPS, generator=3)]
            runs[on] += [rotate(x, 20 * f - 19), shear_x(x, f - 1), shear_y(x, 1 - f)]
    for i, (a, b) in enumerate(zip(runs[True], runs[False])):
        if i < len(runs[True]) - 3: assert torch.equal(a, b), i
        else: assert (a.int() - b.int()).abs().max() <= 1, i


@pytest.mark.parametrize('pixels', [-53, -17, 3, 40])
def test_translate_exact(photo, pixels):
    im, x = photo
    assert diff(translate_x(x, pixels), pil_affine(im, (1, 0, pixels, 0, 1, 0))).max() == 0
    assert diff(translate_y(x, pixels), pil_affine(im, (1, 0, 0, 0, 1, pixels))).max() == 0


def pil_augmix_op(name, im, mag):
    "The PIL call google-research/augmix makes for op `name` with an already mapped magnitude."
    return {'autocontrast': lambda: ImageOps.autocontrast(im), 'equalize': lambda: ImageOps.equalize(im),
            'posterize': lambda: ImageOps.posterize(im, int(mag)), 'solarize': lambda: ImageOps.solarize(im, int(mag)),
            'rotate': lambda: im.rotate(mag, resample=Image.BILINEAR),
            'shear_x': lambda: pil_affine(im, (1, mag, 0, 0, 1, 0)), 'shear_y': lambda: pil_affine(im, (1, 0, 0, mag, 1, 0)),
            'translate_x': lambda: pil_affine(im, (1, 0, mag, 0, 1, 0)), 'translate_y': lambda: pil_affine(im, (1, 0, 0, 0, 1, mag)),
            'color': lambda: ImageEnhance.Color(im).enhance(mag), 'contrast': lambda: ImageEnhance.Contrast(im).enhance(mag),
            'brightness': lambda: ImageEnhance.Brightness(im).enhance(mag),
            'sharpness': lambda: ImageEnhance.Sharpness(im).enhance(mag)}[name]()


@pytest.mark.parametrize('severity', [1, 3, 10])
def test_apply_op_batch_matches_pil_with_drawn_magnitudes(severity, kernels):
    "Every op of the registry, with magnitudes drawn as AugMix does, against the corresponding PIL call."
    im = Image.open(PHOTOS[0]).convert('RGB')
    n = 4 * len(AUGMIX_OPS)
    idx, mag = draw_op_params(n, im.size[::-1], severity, generator=severity)
    x = to_tensor(im).expand(n, -1, -1, -1)
    out = apply_op_batch(x, idx, mag)
    for b in range(n):
        name = AUGMIX_OPS[idx[b]]
        tol = (0 if kernels else 1, GEOM_MAX_FRAC) if name in ('rotate', 'shear_x', 'shear_y') else (1, BLEND_MAX_FRAC)
        assert_close(diff(out[b:b + 1], pil_augmix_op(name, im, mag[b].item())), *tol)


# ---- masks -----------------------------------------------------------------------------------------------------------
GEOMETRIC = [(rotate, 23.0), (rotate, -30.0), (shear_x, 0.25), (shear_y, -0.3), (translate_x, -37.0), (translate_y, 21.0)]


@pytest.mark.parametrize('op,mag', GEOMETRIC, ids=[f'{o.__name__}{m}' for o, m in GEOMETRIC])
def test_mask_follows_image(op, mag, kernels):
    im = Image.open(PHOTOS[1]).convert('RGB')
    x = to_tensor(im).clone()
    H, W = x.shape[-2:]
    mask = torch.randint(0, 3, (1, H, W), generator=torch.Generator().manual_seed(0))
    x[..., 40:80, 60:100] = torch.tensor([255, 0, 255], dtype=torch.uint8).view(3, 1, 1)   # a constant-colour square
    mask[..., 40:80, 60:100] = 7
    out, m = op(x, torch.tensor([mag]), mask=mask, ignore_index=255)
    assert m.dtype == mask.dtype and set(m.unique().tolist()) <= {0, 1, 2, 7, 255}
    # the fill region is the ignore label, and exactly where the image got the fill value
    filled = (m == 255)
    assert filled.any() and (out[:, :, filled[0]] == 0).all()
    # the square's label sits on the square's colour: interior of the warped label region is exactly magenta
    sq = (m == 7).float()[:, None]
    inner = torch.nn.functional.max_pool2d(1 - sq, 3, 1, 1) == 0                        # label 7 in the whole 3x3 neighbourhood
    assert inner.sum() > 500
    assert (out[:, 0][inner[:, 0]] == 255).all() and (out[:, 1][inner[:, 0]] == 0).all() and (out[:, 2][inner[:, 0]] == 255).all()
    # and nearly all magenta pixels carry label 7
    magenta = (out[:, 0] == 255) & (out[:, 1] == 0) & (out[:, 2] == 255)
    assert (m[magenta] == 7).float().mean() > 0.97


def test_mask_unchanged_by_pixel_ops_and_augmix():
    x = to_tensor(Image.open(PHOTOS[0]).convert('RGB')).expand(4, -1, -1, -1)
    mask = torch.randint(0, 5, (4, *x.shape[-2:]))
    n = len(PIXEL_OPS)
    out, m = apply_op_batch(x, torch.arange(4) % n, torch.ones(4), ops=PIXEL_OPS, mask=mask)
    assert torch.equal(m, mask)
    out, m = augmix(x, ops=PIXEL_OPS, mask=mask, generator=0)
    assert torch.equal(m, mask) and out.shape == x.shape
    with pytest.raises(ValueError, match='`ops`'): augmix(x, ops=AUGMIX_OPS, mask=mask)


# ---- dtypes, shapes, determinism -------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', [n for n in AUGMIX_OPS])
def test_float_path_close_to_uint8_path(name):
    x = to_tensor(Image.open(PHOTOS[2]).convert('RGB'))
    mag = torch.tensor([{'posterize': 3., 'solarize': 128., 'rotate': 13., 'shear_x': 0.2, 'shear_y': -0.2,
                         'translate_x': 9., 'translate_y': -9.}.get(name, 1.6)])
    o8 = apply_op_batch(x, torch.tensor([AUGMIX_OPS.index(name)]), mag)
    of = apply_op_batch(to_float(x), torch.tensor([AUGMIX_OPS.index(name)]), mag)
    assert of.dtype == torch.float32 and 0 <= of.min() and of.max() <= 1
    d = (to_uint8(of).int() - o8.int()).abs()
    assert d.max() <= 1 and (d > 0).float().mean() < 0.6, name     # uint8 truncates where float does not


def test_b1_c1_and_float64():
    x = to_tensor(Image.open(PHOTOS[0]).convert('L'))
    assert x.shape[:2] == (1, 1)
    for name in AUGMIX_OPS:
        out = apply_op_batch(x, torch.tensor([AUGMIX_OPS.index(name)]), torch.tensor([2.]))
        assert out.shape == x.shape and out.dtype == torch.uint8
    assert augmix(x, generator=0).shape == x.shape
    xd = to_float(x).double()
    assert augmix(xd, generator=0).dtype == torch.float64


def test_augmix_determinism_and_split():
    x = torch.cat([to_tensor(Image.open(p).convert('RGB')) for p in PHOTOS if Image.open(p).size == (160, 160)]).repeat(3, 1, 1, 1)
    a, b = augmix(x, generator=123), augmix(x, generator=123)
    assert torch.equal(a, b) and not torch.equal(a, augmix(x, generator=124))
    p = draw_augmix_params(x.shape[0], 160, 160, generator=123)
    assert torch.equal(apply_augmix(x, p), a)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(augmix(to_float(x), generator=g1), augmix(to_float(x), generator=g2))
    # the float result is the uint8 one up to the chains' uint8 quantisation
    assert (to_uint8(augmix(to_float(x), generator=123)).int() - a.int()).abs().float().mean() < 2


def test_registry_complete():
    assert AUGMIX_OPS == ('autocontrast', 'equalize', 'posterize', 'rotate', 'solarize', 'shear_x', 'shear_y',
                          'translate_x', 'translate_y', 'color', 'contrast', 'brightness', 'sharpness')
    assert 'identity' in OPS and not (set(PIXEL_OPS) & {'rotate', 'shear_x', 'shear_y', 'translate_x', 'translate_y'})
