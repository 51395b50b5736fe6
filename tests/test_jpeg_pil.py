"""`diversification.ops.jpeg_compress` (batched JPEG in tensor code) against PIL's libjpeg on real photos.

The two are the same codec up to arithmetic: libjpeg's islow integer DCT and fixed-point colour conversion against our
float32 DCT and float conversion. Stated tolerances, on uint8 RGB photos (odd sizes included, so edge MCUs are padded):
* mean abs difference to PIL's decoded image <= 1.0 grey level (measured 0.14-0.83) and 99% of values within 8 levels
  (a coefficient that rounds the other way shifts its 8x8 block by a few levels), at quality 10-95;
* the error introduced (PSNR against the original) within 0.1 dB of PIL's (measured <= 0.06 dB).
"""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diversification.ops import jpeg_compress, jpeg_quant_tables

PHOTOS = sorted((Path(__file__).parent / 'fixtures' / 'photos').glob('*.png'))


def pil_jpeg(a: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, 'JPEG', quality=q)        # PIL default: 4:2:0, baseline, standard tables
    return np.asarray(Image.open(buf).convert('RGB')).astype(np.int64)


def psnr(a, b) -> float:
    return 10 * np.log10(255 ** 2 / np.mean((np.asarray(a, np.float64) - b) ** 2))


@pytest.fixture(scope='module', params=PHOTOS, ids=lambda p: p.stem)
def photo(request):
    a = np.asarray(Image.open(request.param).convert('RGB'))
    return a[:a.shape[0] - 3, :a.shape[1] - 5].copy()       # odd size: partial MCUs at the edges


@pytest.mark.parametrize('q', [10, 30, 50, 70, 95])
def test_matches_libjpeg(photo, q):
    ref = pil_jpeg(photo, q)
    ours = jpeg_compress(torch.from_numpy(photo).permute(2, 0, 1)[None], q)[0].permute(1, 2, 0).numpy().astype(np.int64)
    d = np.abs(ours - ref)
    assert ours.shape == photo.shape
    assert d.mean() <= 1.0, d.mean()
    assert np.quantile(d, 0.99) <= 8, np.quantile(d, 0.99)
    assert abs(psnr(ours, photo) - psnr(ref, photo)) <= 0.1


def test_quality_orders_error(photo):
    x = torch.from_numpy(photo).permute(2, 0, 1)[None]
    errs = [psnr(jpeg_compress(x, q)[0].permute(1, 2, 0).numpy(), photo) for q in (10, 40, 70, 95)]
    assert errs == sorted(errs)                             # higher quality, closer to the original


def test_batch_per_image_quality(photo):
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].repeat(3, 1, 1, 1)
    out = jpeg_compress(x, torch.tensor([20, 60, 90]))
    for i, q in enumerate((20, 60, 90)):
        assert torch.equal(out[i:i + 1], jpeg_compress(x[:1], q))


def test_tables():
    t = jpeg_quant_tables(torch.tensor([50, 75, 100]))
    assert t[0, 0, 0, 0] == 16 and t[0, 1, 0, 0] == 17                                      # quality 50 = the standard tables
    assert t[1, 0, 0, 0] == 8 and (t[2] == 1).all()                                         # 75 halves; 100 is all ones
