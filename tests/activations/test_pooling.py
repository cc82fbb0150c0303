"""Pooling: property tests against brute force, independence from padding side."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aqi.activations import POOLINGS, SpanMask, pool


@st.composite
def batches(draw):
    b = draw(st.integers(1, 4))
    t = draw(st.integers(1, 7))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(b, t, d)).astype(np.float32) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    starts = [draw(st.integers(0, t - 1)) for _ in range(b)]
    stops = [draw(st.integers(s + 1, t)) for s in starts]
    mask = np.zeros((b, t), bool)
    for i, (s, e) in enumerate(zip(starts, stops)):
        mask[i, s:e] = True
    return h, mask


@settings(max_examples=60, deadline=None)
@given(batches(), st.sampled_from(POOLINGS))
def test_pool_matches_brute_force(data, how):
    h, mask = data
    got = pool(torch.from_numpy(h), how, SpanMask(torch.from_numpy(mask))).numpy()
    for i in range(h.shape[0]):
        sel = h[i][mask[i]].astype(np.float64)
        ref = {"mean": sel.mean(0), "last": sel[-1], "first": sel[0], "max": sel.max(0)}[how]
        np.testing.assert_allclose(got[i], ref, rtol=1e-5, atol=1e-6 * np.abs(sel).max())


@settings(max_examples=40, deadline=None)
@given(batches(), st.sampled_from(POOLINGS), st.integers(0, 5))
def test_pool_ignores_padding_content_and_position(data, how, shift):
    """Moving the real tokens right (left padding) and filling pads with NaN changes nothing."""
    h, mask = data
    b, t, d = h.shape
    h2 = np.full((b, t + shift, d), np.nan, np.float32)
    m2 = np.zeros((b, t + shift), bool)
    h2[:, shift:] = np.where(mask[..., None], h, np.nan)
    m2[:, shift:] = mask
    a = pool(torch.from_numpy(h), how, SpanMask(torch.from_numpy(mask)))
    c = pool(torch.from_numpy(h2), how, SpanMask(torch.from_numpy(m2)))
    # Exact up to float32 summation order (the position of the real tokens changes how
    # the sum is vectorised): a few ulps of the largest value per summed token.
    atol = 2 * t * np.finfo(np.float32).eps * max(1.0, float(np.abs(h).max()))
    torch.testing.assert_close(a, c, rtol=0, atol=atol)


def test_half_precision_mean_accumulates_in_float32():
    h = torch.full((1, 4096, 1), 1.0009765625, dtype=torch.float16)  # 1 + 2**-10
    h[0, ::2] = 1.0
    m = SpanMask.full(1, 4096)
    got = pool(h, "mean", m)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(1.00048828125, abs=1e-7)


def test_unknown_pooling_lists_accepted():
    with pytest.raises(ValueError, match="pooling='avg'; expected one of 'mean', 'last'"):
        pool(torch.zeros(1, 2, 3), "avg", SpanMask.full(1, 2))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="does not match span mask"):
        pool(torch.zeros(2, 3, 4), "mean", SpanMask.full(2, 4))
