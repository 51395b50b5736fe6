"""Label integrity of every segmentation augmentation, as hypothesis properties over random images and masks.

- pixel-only ops (seg-AugMix and its op pool) never change masks and never move pixels;
- geometric ops (EfficientSeg's joint scale/rotate/flip/crop, the tail-CutMix warps) move image and mask together: the
  label at each output pixel is the input label at the place its image content came from, read back from the image;
- pasted labels equal pasted pixels (tail CutMix levels 0..3);
- the ignore label never becomes a class, and a class becomes ignore only where the image was filled (sampled outside).
"""
import torch
from hypothesis import given, settings, HealthCheck, strategies as st

from diversification.data import IGNORE_INDEX
from diversification.ops import OPS
from diversification.seg_augmix import SEG_AUGMIX_OPS, seg_augmix, SegAugMixJSD
from diversification.segtrain import draw_seg_aug_params, apply_seg_aug, seg_aug_grid
from diversification.tail_cutmix import tail_bank, draw_tail_mix, apply_tail_mix

SETTINGS = dict(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])   # the same examples on every CI run
GEOMETRIC_ONLY = dict(p_color=0.0, p_jpeg=0.0)

@st.composite
def masks(draw, max_classes=6, with_ignore=True, B=None):
    "Random blocky masks (B, H, W): a coarse random label grid upsampled, some blocks void."
    B = B or draw(st.integers(1, 3))
    H, W = draw(st.sampled_from([(16, 16), (16, 32), (24, 20), (32, 48)]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    cell = draw(st.sampled_from([2, 4]))
    coarse = torch.randint(0, max_classes, (B, H // cell + 1, W // cell + 1), generator=g)
    if with_ignore: coarse[torch.rand(coarse.shape, generator=g) < 0.15] = IGNORE_INDEX
    return coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :H, :W].contiguous(), seed

def images_for(y, seed):
    g = torch.Generator().manual_seed(seed + 1)
    return torch.rand(y.shape[0], 3, *y.shape[-2:], generator=g)

# ---------------------------------------------------------------------------------------------- pixel-only ops
@given(masks(), st.integers(1, 3), st.integers(1, 3), st.floats(1, 10))
@settings(**SETTINGS)
def test_seg_augmix_hands_the_mask_back_untouched(ym, width, depth, severity):
    y, seed = ym
    x, y0 = images_for(y, seed), y.clone()
    views, yo = seg_augmix(x, y, 3, width, depth, severity, generator=seed)
    assert yo is y and torch.equal(y, y0)
    assert all(v.shape == x.shape for v in views)

@given(masks(with_ignore=False), st.sampled_from([o for o in SEG_AUGMIX_OPS if o != 'sharpness']), st.floats(1, 10))
@settings(**SETTINGS)
def test_pixel_ops_do_not_move_pixels(ym, op, severity):
    "Pointwise ops (per-image statistics allowed) commute with any shuffle of the pixels: nothing moves."
    y, seed = ym
    x = images_for(y, seed)
    B, C, H, W = x.shape
    perm = torch.randperm(H * W, generator=torch.Generator().manual_seed(seed))
    shuffle = lambda t: t.flatten(2)[..., perm].view(B, C, H, W)
    o = OPS[op]
    mag = o.magnitude(torch.full((B,), float(severity)), torch.ones(B), H, W)
    a, b = shuffle(o.fn(x, mag)), o.fn(shuffle(x), mag)
    assert torch.allclose(a, b, atol=1e-6), op

@given(masks(with_ignore=False), st.floats(1, 10))
@settings(**SETTINGS)
def test_sharpness_is_local_and_translation_equivariant(ym, severity):
    "Sharpness is a 3x3 filter: shifting the image shifts the output (away from the border), nothing else moves."
    y, seed = ym
    x = images_for(y, seed)
    o, B = OPS['sharpness'], x.shape[0]
    mag = o.magnitude(torch.full((B,), float(severity)), torch.ones(B), *x.shape[-2:])
    f = lambda t: o.fn(t, mag)
    a = torch.roll(f(x), shifts=(2, 3), dims=(2, 3))[..., 4:-4, 5:-5]
    b = f(torch.roll(x, shifts=(2, 3), dims=(2, 3)))[..., 4:-4, 5:-5]
    assert torch.allclose(a, b, atol=1e-6)

def test_seg_augmix_callback_never_touches_the_targets():
    from fastai.learner import Learner
    from fastai.data.core import DataLoaders
    from fastai.losses import CrossEntropyLossFlat
    x = torch.rand(8, 3, 16, 16); y = torch.randint(0, 4, (8, 16, 16)); y[:, :2] = IGNORE_INDEX
    ds = list(zip(x, y))
    dls = DataLoaders.from_dsets(ds, ds, bs=4, shuffle=False)
    seen = []
    class Spy(SegAugMixJSD):
        def before_batch(self):
            y0 = self.yb[0].clone(); super().before_batch(); seen.append(torch.equal(self.yb[0], y0))
    model = torch.nn.Conv2d(3, 4, 3, padding=1)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1, ignore_index=IGNORE_INDEX), cbs=Spy(seed=0))
    with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-3)
    assert seen and all(seen)

# ---------------------------------------------------------------------------------------------- geometric ops
def coordinate_image(B, H, W):
    "Float images whose channels are the pixel's own (row, col) centre: bilinear sampling returns the exact source point."
    iy = (torch.arange(H, dtype=torch.float64) + 0.5) / H
    ix = (torch.arange(W, dtype=torch.float64) + 0.5) / W
    return torch.stack([iy.view(H, 1).expand(H, W), ix.view(1, W).expand(H, W), torch.full((H, W), 0.5, dtype=torch.float64)]).float().expand(B, 3, H, W).contiguous()

def read_source(xo, H, W):
    "The input point (row, col) each output pixel's image content came from, read back from a coordinate image."
    return xo[:, 0] * H, xo[:, 1] * W

@given(masks(), st.sampled_from([(16, 16), (12, 24), (20, 20)]), st.integers(0, 2**31 - 1))
@settings(**SETTINGS)
def test_joint_aug_moves_image_and_mask_together(ym, out_size, gseed):
    y, _ = ym
    B, H, W = y.shape
    p = draw_seg_aug_params(y, out_size, generator=gseed, **GEOMETRIC_ONLY)
    xo, yo = apply_seg_aug(coordinate_image(B, H, W), y, p)
    sy, sx = read_source(xo, H, W)
    # away from the border (where bilinear sampling reads part of the fill) and off pixel boundaries (ties)
    fy, fx = sy - sy.floor(), sx - sx.floor()
    clear = (sy >= 1) & (sy <= H - 1) & (sx >= 1) & (sx <= W - 1) & (fy > 1e-3) & (fy < 1 - 1e-3) & (fx > 1e-3) & (fx < 1 - 1e-3)
    b = torch.arange(B).view(B, 1, 1).expand_as(sy)
    src = y[b[clear], sy[clear].floor().long(), sx[clear].floor().long()]
    assert clear.sum() >= 10                                                  # the property is not vacuous
    assert torch.equal(yo[clear], src)

def test_joint_aug_alignment_check_covers_most_pixels():
    "On a typical draw (no zoom-out beyond the image) the alignment property above checks most output pixels."
    y = torch.randint(0, 5, (4, 32, 48), generator=torch.Generator().manual_seed(0))
    p = draw_seg_aug_params(y, (24, 32), generator=0, scale=(1.0, 1.5), **GEOMETRIC_ONLY)
    xo, yo = apply_seg_aug(coordinate_image(4, 32, 48), y, p)
    sy, sx = read_source(xo, 32, 48)
    fy, fx = sy - sy.floor(), sx - sx.floor()
    clear = (sy >= 1) & (sy <= 31) & (sx >= 1) & (sx <= 47) & (fy > 1e-3) & (fy < 1 - 1e-3) & (fx > 1e-3) & (fx < 1 - 1e-3)
    assert clear.float().mean() > 0.5

@given(masks(), st.sampled_from([(16, 16), (12, 24)]), st.integers(0, 2**31 - 1))
@settings(**SETTINGS)
def test_joint_aug_ignore_only_where_filled(ym, out_size, gseed):
    y, seed = ym
    B, H, W = y.shape
    p = draw_seg_aug_params(y, out_size, generator=gseed, **GEOMETRIC_ONLY)
    x = torch.ones(B, 3, H, W)
    xo, yo = apply_seg_aug(x, y, p)
    grid = seg_aug_grid(p, (H, W))
    edge = ((grid.abs() - 1).abs() <= 1e-4).any(-1)                            # exactly on the image's edge: a rounding tie
    outside = (grid.abs() > 1).any(-1) & ~edge                                 # sampled outside the image: filled
    # no new values: every output label is an input label or ignore
    assert set(yo.unique().tolist()) <= set(y.unique().tolist()) | {IGNORE_INDEX}
    # outside the image: ignore label and black (filled) pixels where no input pixel reaches
    assert (yo[outside] == IGNORE_INDEX).all()
    assert (xo.amax(1)[(grid.abs() > 1 + 2 / min(H, W)).any(-1)] == 0).all()
    # inside: ignore exactly where the nearest input pixel is ignore (never a class turned void, never void turned class)
    gy = ((grid[..., 1] + 1) * H / 2).floor().long().clamp(0, H - 1); gx = ((grid[..., 0] + 1) * W / 2).floor().long().clamp(0, W - 1)
    b = torch.arange(B).view(B, 1, 1).expand_as(gy)
    near = y[b, gy, gx]
    ok = ~outside & ~edge
    on_edge = ((((grid[..., 1] + 1) * H / 2) % 1 - 0.5).abs() > 0.499) | ((((grid[..., 0] + 1) * W / 2) % 1 - 0.5).abs() > 0.499)
    sel = ok & ~on_edge
    assert torch.equal(yo[sel] == IGNORE_INDEX, near[sel] == IGNORE_INDEX)

# ---------------------------------------------------------------------------------------------- tail CutMix
KEY = torch.tensor([250, 10, 240], dtype=torch.uint8)                          # a colour no target image has

@st.composite
def tail_case(draw):
    (y, seed) = draw(masks(max_classes=5, B=draw(st.integers(1, 3))))
    B, H, W = y.shape
    g = torch.Generator().manual_seed(seed)
    # the bank: images of one constant key colour, masks with tail class 7 regions and other labels (incl. void)
    by = draw(masks(max_classes=5, B=3))[0]
    while by.shape[-2:] != (H, W): by = draw(masks(max_classes=5, B=3))[0]
    by = by.clone()
    for i in range(3):
        r0, c0 = int(torch.randint(0, H - 4, (1,), generator=g)), int(torch.randint(0, W - 4, (1,), generator=g))
        by[i, r0:r0 + 4, c0:c0 + 4] = 7
    bank = tail_bank(KEY.view(1, 3, 1, 1).expand(3, 3, H, W).contiguous(), by, tail=[7], levels=(1, 2))
    x = (torch.rand(B, 3, H, W, generator=g) * 200).to(torch.uint8)            # never the key colour (R < 250)
    level = draw(st.sampled_from([0, 1, 2]))
    return x, y, bank, level, draw(st.integers(0, 2**31 - 1))

@given(tail_case())
@settings(**SETTINGS)
def test_tail_cutmix_pasted_labels_equal_pasted_pixels(case):
    x, y, bank, level, gseed = case
    p = draw_tail_mix(y, bank, 1.0, (level,), generator=gseed, aug_kwargs=GEOMETRIC_ONLY)
    xo, yo = apply_tail_mix(x, y, bank, p)
    pasted = (xo == KEY.view(1, 3, 1, 1)).all(1)
    assert pasted.any()
    # outside the paste, image and labels are the target's, untouched
    assert torch.equal(yo[~pasted], y[~pasted]) and torch.equal(xo.permute(0, 2, 3, 1)[~pasted], x.permute(0, 2, 3, 1)[~pasted])
    if level == 0:   # level 0 pastes exactly the tail-class pixels: every pasted label is the tail class
        assert (yo[pasted] == 7).all()
    # pasted labels come from the bank (its classes or its void), never a value the bank does not have
    assert set(yo[pasted].unique().tolist()) <= set(bank.masks.unique().tolist())
    # a class becomes void only where bank void was pasted (the target's own void is kept elsewhere)
    new_void = (yo == IGNORE_INDEX) & (y != IGNORE_INDEX)
    assert not (new_void & ~pasted).any()
