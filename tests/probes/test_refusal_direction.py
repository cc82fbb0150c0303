"""The refusal score shift: direction fitted on the baseline, measured on held-out pairs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aqi
from aqi.probes import refusal_shift, split_by_pair


def _stores(tmp_path, base, ft, labels, pairs=None, names=("h.0",)):
    recs = [{"id": f"r{i}", "text": f"t{i}", "label": lab, "pair_id": None if pairs is None
             else pairs[i]} for i, lab in enumerate(labels)]  # fmt: skip
    ps = aqi.PromptSet.from_records(recs)
    mk = aqi.store_from_arrays
    a = mk(tmp_path / "a.h5", {n: base for n in names}, prompts=ps, overwrite=True)
    b = mk(tmp_path / "b.h5", {n: ft for n in names}, prompts=ps, overwrite=True)
    return a, b


def _world(seed=0, n=120, dim=8, sep=3.0):
    rng = np.random.default_rng(seed)
    labels = ["safe", "unsafe"] * (n // 2)
    u = np.array([lab == "unsafe" for lab in labels])
    base = rng.normal(size=(n, dim)) + sep * u[:, None] * np.eye(dim)[0]
    return rng, labels, u, base


def test_unsafe_prompts_pulled_toward_safe_give_a_negative_shift(tmp_path):
    rng, labels, u, base = _world(dim=64)
    ft = base - 2.0 * u[:, None] * np.eye(64)[0] + rng.normal(0, 0.05, base.shape)
    r = refusal_shift(*_stores(tmp_path, base, ft, labels), span="given", pooling=None,
                      n_boot=300)  # fmt: skip
    assert r.unsafe.ci_high < -1.0 and r.p_unsafe < 0.01
    assert r.safe.ci_low < 0 < r.safe.ci_high  # safe prompts did not move
    assert r.separation > 2  # the baseline separates the classes along its direction
    # A random direction of 64 sees ~1/8 of a change along one axis; shuffled labels no more.
    assert abs(r.controls["random_direction_unsafe"]) < 0.6
    assert abs(r.controls["shuffled_labels_unsafe"]) < 0.6
    assert r.n_fit + r.n_eval == 120


def test_safe_prompts_pushed_toward_refusal_give_a_positive_safe_shift(tmp_path):
    rng, labels, u, base = _world(1)
    ft = base + 2.0 * (~u)[:, None] * np.eye(8)[0] + rng.normal(0, 0.05, base.shape)
    r = refusal_shift(*_stores(tmp_path, base, ft, labels), span="given", pooling=None,
                      n_boot=300)  # fmt: skip
    assert r.safe.ci_low > 1.0 and r.p_safe < 0.01
    assert r.unsafe.ci_low < 0 < r.unsafe.ci_high


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.5, 20), offset=st.floats(-50, 50))
def test_the_shift_is_in_sd_units_so_it_ignores_scale_and_offset(tmp_path_factory, seed, scale,
                                                                 offset):  # fmt: skip
    tmp = tmp_path_factory.mktemp("inv")
    rng, labels, u, base = _world(seed, n=60)
    ft = base - 1.0 * u[:, None] * np.eye(8)[0] + rng.normal(0, 0.3, base.shape)
    kw = {"span": "given", "pooling": None, "n_boot": 0}
    r1 = refusal_shift(*_stores(tmp, base, ft, labels), **kw)
    r2 = refusal_shift(*_stores(tmp, base * scale + offset, ft * scale + offset, labels), **kw)
    assert r1.layer == r2.layer
    np.testing.assert_allclose([r1.unsafe.value, r1.safe.value],
                               [r2.unsafe.value, r2.safe.value], rtol=1e-4, atol=1e-5)


def test_the_layer_is_chosen_on_the_baseline_alone(tmp_path):
    rng, labels, u, base = _world(2)
    weak = rng.normal(size=base.shape) + 0.3 * u[:, None] * np.eye(8)[0]
    arrays = {"model.layers.0": weak, "model.layers.1": base}
    ps = aqi.PromptSet.from_records([{"id": f"r{i}", "text": "t", "label": lab}
                                     for i, lab in enumerate(labels)])  # fmt: skip
    a = aqi.store_from_arrays(tmp_path / "a.h5", arrays, prompts=ps)
    picks = set()
    for k, ft in enumerate((weak, base, rng.normal(size=base.shape))):
        b = aqi.store_from_arrays(tmp_path / f"b{k}.h5", {n: ft for n in arrays}, prompts=ps)
        picks.add(refusal_shift(a, b, span="given", pooling=None, n_boot=0).layer)
    assert picks == {"model.layers.1"}


def test_splits_are_disjoint_by_pair_and_cover_every_row():
    ids = np.array([f"r{i}" for i in range(40)])
    pairs = np.array([f"p{i // 2}" if i < 30 else "" for i in range(40)])
    fit, ev = split_by_pair(ids, pairs, 0.5, seed=3)
    assert sorted([*fit, *ev]) == list(range(40))
    assert not ({p for p in pairs[fit] if p} & {p for p in pairs[ev] if p})
    again = split_by_pair(ids, pairs, 0.5, seed=3)
    assert (again[0] == fit).all()


def test_models_without_a_shared_residual_space_are_refused(tmp_path):
    _, labels, _, base = _world()
    a, _ = _stores(tmp_path, base, base, labels)
    b = aqi.store_from_arrays(tmp_path / "w.h5", {"h.0": np.zeros((120, 4), "f4")},
                              prompts=a.prompts())  # fmt: skip
    with pytest.raises(ValueError, match="width 8 in the baseline and 4 in the audited"):
        refusal_shift(a, b, span="given", pooling=None, n_boot=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"span": "post_instruction"}, "holds no span 'post_instruction'; it has 'given'"),
     ({"fit_fraction": 1.0}, r"fit_fraction=1.0; expected a number in \(0, 1\)"),
     ({"max_depth": 0}, r"max_depth=0; expected a number in \(0, 1\]")],
)  # fmt: skip
def test_bad_arguments_name_themselves(tmp_path, kwargs, match):
    _, labels, _, base = _world()
    a, b = _stores(tmp_path, base, base, labels)
    with pytest.raises(ValueError, match=match):
        refusal_shift(a, b, **{"span": "given", "pooling": None, "n_boot": 0, **kwargs})


def test_a_split_without_both_classes_is_refused(tmp_path):
    labels = ["safe"] * 10 + ["unsafe"] * 2
    base = np.random.default_rng(0).normal(size=(12, 3))
    a, b = _stores(tmp_path, base, base, labels)
    with pytest.raises(ValueError, match="split has fewer than 2 prompts of a class"):
        refusal_shift(a, b, span="given", pooling=None, n_boot=0)
