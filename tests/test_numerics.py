"""Numerical safety of the consistency and SUMix terms: finite values and gradients for saturated and uniform
predictions, fp16 / bf16 inputs and single-sample batches."""
import math
import pytest
import torch
from hypothesis import given, settings, strategies as st

from diversification.augmix_mixup import js_divergence, jsd_loss, augmix_mixup_loss, draw_mixup_params
from diversification.seg_augmix import pixel_jsd, ohem_cross_entropy
from diversification.sumix import sumix_lambda, sumix_regulariser, normalized_uncertainty, sumix_loss, draw_mix

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

def logits_kind(kind, B, C, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind == 'uniform': z = torch.zeros(B, C)
    elif kind in ('saturated', 'extreme'):      # softmax exactly one-hot (+-1e4), or logits at a quarter of the dtype's largest value
        big = 1e4 if kind == 'saturated' else torch.finfo(dtype).max / 4
        z = torch.full((B, C), -big); z[torch.arange(B), torch.randint(C, (B,), generator=g)] = big
    elif kind == 'large': z = torch.randn(B, C, generator=g) * 1e4
    else: z = torch.randn(B, C, generator=g)
    return z.to(dtype)

KINDS = ['uniform', 'saturated', 'extreme', 'large', 'normal']

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('B', [1, 5])
def test_jsd_finite_with_finite_gradients(dtype, kind, B):
    zs = [logits_kind(kind, B, 10, dtype, s).requires_grad_() for s in range(3)]
    d = jsd_loss(*zs)
    assert d.dtype == torch.float32 and torch.isfinite(d) and d >= -1e-6 and d <= math.log(3) + 1e-5
    d.backward()
    assert all(torch.isfinite(z.grad).all() for z in zs)

@pytest.mark.parametrize('dtype', DTYPES)
def test_jsd_is_zero_for_identical_saturated_predictions(dtype):
    z = logits_kind('saturated', 4, 10, dtype)
    assert js_divergence(z, z.clone(), z.clone()).abs().max() < 1e-6
    u = logits_kind('uniform', 4, 10, dtype)
    assert js_divergence(u, u, u).abs().max() < 1e-6

def test_jsd_of_disjoint_one_hot_predictions_is_log_n():
    "The largest value, reached exactly when the predictions are saturated on different classes."
    z = torch.full((3, 3), -1e30); z[0, 0] = z[1, 1] = z[2, 2] = 1e30
    assert torch.allclose(js_divergence(z[0:1], z[1:2], z[2:3]), torch.tensor([math.log(3)]), atol=1e-6)

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('kind', KINDS)
def test_pixel_jsd_finite_even_when_every_pixel_is_void(dtype, kind):
    B, C, H, W = 1, 19, 4, 6
    zs = [logits_kind(kind, B * H * W, C, dtype, s).view(B, H, W, C).permute(0, 3, 1, 2).contiguous().requires_grad_() for s in range(3)]
    for target in (torch.zeros(B, H, W, dtype=torch.long), torch.full((B, H, W), 255)):
        d = pixel_jsd(zs, target)
        assert torch.isfinite(d)
        d.backward(); assert all(torch.isfinite(z.grad).all() for z in zs)
    assert pixel_jsd(zs, torch.full((B, H, W), 255)) == 0

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('kind', KINDS)
def test_augmix_mixup_loss_single_sample(dtype, kind):
    z = [logits_kind(kind, 1, 10, dtype, s).requires_grad_() for s in range(4)]
    y = torch.tensor([3])
    out = augmix_mixup_loss(z[0], y, (z[1], z[2]), logits_mix=z[3], mix=draw_mixup_params(1, 0.2, generator=0), gamma=12.)
    assert all(torch.isfinite(v) for v in out.values()); out['loss'].backward()
    assert all(torch.isfinite(t.grad).all() for t in z)

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('B', [1, 6])
def test_sumix_terms_finite(dtype, kind, B):
    C = 10
    y = torch.arange(B) % C
    p_a = logits_kind(kind, B, C, dtype, 1).float().softmax(1).to(dtype)
    p_m = logits_kind(kind, B, C, dtype, 2).float().softmax(1).to(dtype)
    perm = torch.randperm(B, generator=torch.Generator().manual_seed(0)); lam = torch.rand(B, generator=torch.Generator().manual_seed(1))
    lh = sumix_lambda(p_a, p_m, y, perm, lam)
    assert torch.isfinite(lh).all() and (lh >= 0).all() and (lh <= 1).all()
    g = logits_kind(kind, B, C, dtype, 3).requires_grad_()
    u_a = normalized_uncertainty(g); u_m = normalized_uncertainty(logits_kind(kind, B, C, dtype, 4))
    r = sumix_regulariser(p_a, p_m, u_a, u_m, y, perm, lam)
    assert torch.isfinite(r).all()
    r.mean().backward(); assert torch.isfinite(g.grad).all()

def test_sumix_lambda_when_the_labelled_class_has_zero_probability():
    "p(y) = 0 for both images (saturated the wrong way): no division by zero, lambda-hat falls back to lambda."
    p = torch.zeros(2, 4); p[:, 3] = 1
    lh = sumix_lambda(p, p, torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([0.3, 0.8]))
    assert torch.allclose(lh, torch.tensor([0.3, 0.8]))

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('B', [1, 4])
def test_sumix_loss_end_to_end(dtype, B):
    C, F = 10, 8
    x = torch.rand(B, 3, 8, 8)
    p = draw_mix('cutmix', x, 1.0, generator=0)
    head = torch.nn.Linear(F, C)
    logits_m = (torch.randn(B, C) * 50).to(dtype).requires_grad_()
    h_a, h_m = torch.randn(B, F), torch.randn(B, F)
    p_a = (torch.randn(B, C) * 50).softmax(1)
    out = sumix_loss(logits_m, p_a, h_a, h_m, head, torch.arange(B) % C, p, gamma=0.5)
    assert all(torch.isfinite(v).all() for v in out.values())
    out['loss'].backward()
    assert torch.isfinite(logits_m.grad).all() and all(torch.isfinite(q.grad).all() for q in head.parameters())

@given(st.integers(1, 4), st.floats(0.01, 1.0), st.sampled_from(['uniform', 'saturated', 'normal']))
@settings(max_examples=20, deadline=None, derandomize=True)
def test_ohem_finite_for_any_threshold(B, thresh, kind):
    C, H, W = 19, 4, 4
    z = logits_kind(kind, B * H * W, C, torch.float32).view(B, H, W, C).permute(0, 3, 1, 2).contiguous().requires_grad_()
    t = torch.randint(0, C, (B, H, W), generator=torch.Generator().manual_seed(0)); t[:, 0] = 255
    loss = ohem_cross_entropy(z, t, thresh=thresh, min_kept=5)
    assert torch.isfinite(loss); loss.backward(); assert torch.isfinite(z.grad).all()

@pytest.mark.parametrize('dtype', [torch.bfloat16])
def test_jsd_under_cpu_autocast(dtype):
    "Mixed precision on the CPU: logits come out of the model in bf16; the divergence is computed in float32."
    lin = torch.nn.Linear(16, 10)
    with torch.autocast('cpu', dtype=dtype):
        zs = [lin(torch.randn(4, 16) * 100) for _ in range(3)]
        assert zs[0].dtype == dtype
        d = jsd_loss(*zs)
    assert d.dtype == torch.float32 and torch.isfinite(d)
    d.backward(); assert torch.isfinite(lin.weight.grad).all()
