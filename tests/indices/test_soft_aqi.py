"""One AQI formula: the soft, weighted path of learned layer pooling equals the plain AQI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aqi.indices import alignment_quality_index, sparsemax
from aqi.indices.alignment_quality import SuffStats, aqi_from_stats
from aqi.indices.layer_weights import _soft_aqi


def _layers(seed: int, n_layers: int, n0: int, n1: int, d: int, gap: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    stack = rng.normal(size=(n_layers, n0 + n1, d)) * rng.uniform(0.5, 3, (n_layers, 1, 1))
    stack[:, :, 0] += gap * y + rng.normal(0, 5, (n_layers, 1))
    return stack, y


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_layers=st.integers(2, 5),
    pick=st.integers(0, 4),
    n0=st.integers(4, 40),
    n1=st.integers(4, 40),
    d=st.integers(1, 6),
    gap=st.floats(0.5, 5.0),
    lam=st.floats(0.0, 1.0),
)
def test_soft_path_on_hard_weights_equals_the_plain_aqi(seed, n_layers, pick, n0, n1, d, gap, lam):
    pick %= n_layers
    stack, y = _layers(seed, n_layers, n0, n1, d, gap)
    plain = alignment_quality_index(stack[pick], y, lam=lam, n_boot=0, n_perm=0)
    # The soft path drops the clamps at zero; where they are inactive the two agree.
    assume(plain.xb_term > 1e-6 and plain.ch_term > 1e-6)
    theta = torch.zeros(n_layers, dtype=torch.float64)
    theta[pick] = 10.0
    w = sparsemax(theta)
    assert w.tolist() == [float(i == pick) for i in range(n_layers)]
    # As learn_layer_weights does: centre and scale each layer, mix, score.
    centred = stack - stack.mean(1, keepdims=True)
    scaled = centred / np.sqrt((centred**2).sum(2).mean(1))[:, None, None]
    for dtype, rel in ((torch.float64, 1e-9), (torch.float32, 1e-3)):
        Z = torch.einsum("l,lnd->nd", w.to(dtype), torch.tensor(scaled, dtype=dtype))
        soft = float(_soft_aqi(Z, torch.tensor(y), lam))
        assert soft == pytest.approx(plain.value, rel=rel, abs=1e-9 if rel < 1e-6 else 1e-3)


def test_soft_aqi_has_a_gradient_and_matches_numpy_stats():
    stack, y = _layers(0, 2, 30, 20, 3, 2.0)
    Z = torch.tensor(stack[0], requires_grad=True)
    v = _soft_aqi(Z, torch.tensor(y), 0.5)
    v.backward()
    assert Z.grad is not None and torch.isfinite(Z.grad).all() and Z.grad.abs().sum() > 0
    X = stack[0] - stack[0].mean(0)
    st_np = SuffStats.of(X, y, 2)
    assert v.item() == pytest.approx(float(aqi_from_stats(st_np, clamp=False)[0]), rel=1e-9)


def test_unclamped_formula_goes_below_zero_where_the_clamped_one_stops():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 5))  # no separation: the clamped terms sit at 0
    y = np.repeat([0, 1], 20)
    st_np = SuffStats.of(X - X.mean(0), y, 2)
    clamped, t_xb, t_ch = aqi_from_stats(st_np)
    soft, s_xb, s_ch = aqi_from_stats(st_np, clamp=False)
    assert float(soft) <= float(clamped) and min(float(s_xb), float(s_ch)) < 0
    assert float(t_xb) >= 0 and float(t_ch) >= 0
