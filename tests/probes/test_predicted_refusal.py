"""Predicted refusal (the latent verdict) and its check by active inference."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aqi
from aqi._errors import ArgumentError
from aqi.checks import AuditThresholds, predicted_refusal_check
from aqi.probes import (
    predicted_refusal,
    verification_sample,
    verified_refusal,
)
from aqi.probes.predicted_refusal import fit_logistic

RNG_N, DIM = 240, 24


def _world(seed: int, shift: float, n: int = RNG_N, dim: int = DIM) -> dict[str, Any]:
    """A baseline whose refusal follows one direction (strong, anisotropic), and an audited
    model whose unsafe prompts moved ``shift`` along it; the audited model's *true* refusal
    follows the same latent rule."""
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * (n // 2))
    scale = np.r_[3.0, np.full(dim - 1, 0.5)]
    base = rng.normal(size=(n, dim)) * scale + 4.0 * y[:, None] * np.eye(dim)[0]
    noise = rng.logistic(size=n)
    refused = base[:, 0] + noise > 2.5
    audited = base - shift * y[:, None] * np.eye(dim)[0]
    truth = float(np.mean((audited[:, 0] + noise)[y == 1] > 2.5))
    return {"y": y, "base": base, "audited": audited, "refused": refused, "truth": truth}


def _stores(tmp: Path, w: dict[str, Any], scale_b: float = 1.0) -> tuple[Any, Any, dict]:
    labels = ["unsafe" if v else "safe" for v in w["y"]]
    a = aqi.store_from_arrays(os.path.join(tmp, "a.h5"), {"h.0": w["base"] * scale_b},
                              labels=labels)  # fmt: skip
    b = aqi.store_from_arrays(os.path.join(tmp, "b.h5"), {"h.0": w["audited"] * scale_b},
                              labels=labels)  # fmt: skip
    refused = {str(i): bool(v) for i, v in enumerate(w["refused"])}
    return a, b, refused


def _predict(a: Any, b: Any, refused: dict, **kw: Any) -> Any:
    kw = {"span": "given", "pooling": None, "n_boot": 300, **kw}
    return predicted_refusal(a, b, refused, **kw)


@pytest.mark.parametrize("shift", [0.0, 2.0, 5.0])
def test_the_prediction_follows_the_true_refusal_of_the_moved_model(tmp_path: Path,
                                                                    shift: float) -> None:
    w = _world(0, shift)
    a, b, refused = _stores(tmp_path, w)
    r = _predict(a, b, refused)
    judged = float(np.mean(w["refused"][w["y"] == 1]))
    assert r.baseline_judged == pytest.approx(judged)
    assert abs(r.refusal.value - w["truth"]) < 0.08, (r, w["truth"])
    assert r.refusal.ci_low <= r.refusal.value <= r.refusal.ci_high
    if shift == 0:
        assert r.change.value == pytest.approx(0.0, abs=1e-12) and not r.fails()
        assert r.gap_fraction.value == pytest.approx(0.0, abs=1e-12)
    else:
        assert r.change.value < -0.15 and r.p_drop < 0.01 and r.fails(margin=0.10)
        assert r.gap_fraction.value == pytest.approx(-shift / 4.0, abs=0.15)


def test_the_prediction_does_not_depend_on_the_activations_scale(tmp_path: Path) -> None:
    """Behaviour's units: rescaling both models' activations changes nothing (the pooled-SD
    rule's problem was a unit that depended on the original)."""
    w = _world(1, 2.0)
    a, b, refused = _stores(tmp_path, w)
    other = tmp_path / "x"
    other.mkdir()
    a2, b2, _ = _stores(other, w, scale_b=37.0)
    r1, r2 = _predict(a, b, refused), _predict(a2, b2, refused)
    assert r1.refusal.value == pytest.approx(r2.refusal.value, abs=1e-9)
    assert r1.change.value == pytest.approx(r2.change.value, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(a=st.floats(-2, 2), b=st.floats(0.5, 3), seed=st.integers(0, 10_000))
def test_fit_logistic_recovers_its_parameters(a: float, b: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=4000)
    r = (rng.random(4000) < 1 / (1 + np.exp(-(a + b * z)))).astype(float)
    if r.min() == r.max():
        return
    ah, bh = fit_logistic(z, r, penalty=0.0)
    assert abs(ah - a) < 0.25 and abs(bh - b) < 0.35


def test_perfect_separation_stays_finite() -> None:
    z = np.linspace(-2, 2, 100)
    a, b = fit_logistic(z, (z > 0).astype(float))
    assert np.isfinite(a) and np.isfinite(b) and b > 0


def test_the_block_is_chosen_off_the_embedding_end(smol_store: Any) -> None:
    """On SmolLM2's 30 blocks only blocks 7..23 are candidates (25 % to 80 %)."""
    y = smol_store.y.astype(int)
    rng = np.random.default_rng(0)
    refused = {str(i): bool(v ^ (rng.random() < 0.1)) for i, v in zip(smol_store.ids, y,
                                                                          strict=True)}
    span = smol_store.spans[0]
    r = predicted_refusal(smol_store, smol_store, refused, span=span, pooling="last", n_boot=0)
    blocks = {li.name: li.block for li in smol_store.layer_info if li.block is not None}
    assert set(r.layer_scores) == {n for n, k in blocks.items() if 7 <= k < 24}
    assert 7 <= blocks[r.layer] < 24
    assert r.change.value == pytest.approx(0.0, abs=1e-12)


def test_a_baseline_that_refused_nothing_is_named_with_its_counts(tmp_path: Path) -> None:
    w = _world(2, 1.0)
    a, b, refused = _stores(tmp_path, w)
    none = dict.fromkeys(refused, False)
    with pytest.raises(ValueError, match=r"refused 0 of its 240 judged prompts \(0 of 120 unsafe"):
        _predict(a, b, none)
    unsure = {k: (None if i % 2 else True) for i, k in enumerate(refused)}
    with pytest.raises(ValueError, match=r"refused 120 of its 120 judged prompts.*120 unsure"):
        _predict(a, b, unsure)


@pytest.mark.parametrize(("refused", "match"), [
    ({"0": True}, r"no judged label for 239 of the 240 prompts"),
    (["x"], r"refused=list; expected a mapping"),
])  # fmt: skip
def test_bad_labels_are_named(tmp_path: Path, refused: Any, match: str) -> None:
    a, b, _ = _stores(tmp_path, _world(3, 0.0))
    with pytest.raises((ValueError, TypeError), match=match):
        _predict(a, b, refused)


def test_a_label_that_is_not_a_verdict_is_named(tmp_path: Path) -> None:
    a, b, refused = _stores(tmp_path, _world(3, 0.0))
    with pytest.raises(ValueError, match=r"refused\['5'\]='maybe'; expected True, False or None"):
        _predict(a, b, {**refused, "5": "maybe"})


def test_models_of_another_width_are_refused(tmp_path: Path) -> None:
    w = _world(4, 0.0)
    labels = ["unsafe" if v else "safe" for v in w["y"]]
    a = aqi.store_from_arrays(str(tmp_path / "a.h5"), {"h.0": w["base"]}, labels=labels)
    b = aqi.store_from_arrays(str(tmp_path / "b.h5"), {"h.0": w["base"][:, :10]}, labels=labels)
    refused = {str(i): bool(v) for i, v in enumerate(w["refused"])}
    with pytest.raises(ValueError, match=r"width 24 in the baseline and 10 in the audited"):
        _predict(a, b, refused)


@pytest.mark.parametrize("depth", [(0.8, 0.25), (0, 1.5), [0.2, 0.8]])
def test_bad_depth_is_named(tmp_path: Path, depth: Any) -> None:
    a, b, refused = _stores(tmp_path, _world(5, 0.0))
    with pytest.raises(ValueError, match=r"depth=.*expected \(lo, hi\) with 0 <= lo < hi <= 1"):
        _predict(a, b, refused, depth=depth)


# -- the check -----------------------------------------------------------------------------
@pytest.mark.parametrize(("shift", "verdict"), [(0.0, "pass"), (4.0, "fail")])
def test_the_check_fails_a_significant_material_drop(tmp_path: Path, shift: float,
                                                     verdict: str) -> None:
    a, b, refused = _stores(tmp_path, _world(6, shift))
    c = predicted_refusal_check(_predict(a, b, refused), AuditThresholds())
    assert c.name == "predicted_refusal" and c.verdict == verdict
    assert c.evidence["mode"] == "latent" and "predicted from the activations" in c.summary


def test_a_significant_drop_below_the_margin_warns(tmp_path: Path) -> None:
    a, b, refused = _stores(tmp_path, _world(6, 1.0))
    p = _predict(a, b, refused)
    assert p.p_gap < 0.05 and -0.5 < p.gap_fraction.value < -0.1
    assert predicted_refusal_check(p, AuditThresholds()).verdict == "fail"
    c = predicted_refusal_check(p, AuditThresholds(min_gap_fraction=0.9))
    assert c.verdict == "warn" and "below 90% of the gap" in c.summary


# -- active inference ---------------------------------------------------------------------------
def test_the_sample_favours_uncertain_prompts_and_averages_k(tmp_path: Path) -> None:
    a, b, refused = _stores(tmp_path, _world(7, 2.0))
    p = _predict(a, b, refused, n_boot=0)
    sizes = [len(verification_sample(p, 20, seed=s)) for s in range(200)]
    assert abs(np.mean(sizes) - 20) < 1.0
    f = p.probabilities
    certain = [i for i, y in p.labels.items() if y == 1 and min(f[i], 1 - f[i]) < 0.02]
    unsure = [i for i, y in p.labels.items() if y == 1 and abs(f[i] - 0.5) < 0.2]
    s = verification_sample(p, 20, seed=0)
    pi = {**{i: 0.0 for i in f}, **s}
    if certain and unsure:
        drawn = [verification_sample(p, 20, seed=k) for k in range(100)]
        rate = lambda ids: np.mean([sum(i in d for i in ids) / len(ids) for d in drawn])  # noqa: E731
        assert rate(unsure) > rate(certain)
    assert all(0 < v <= 1 for v in pi.values() if v)


@pytest.mark.parametrize("k", [0, 121, 2.5, True])
def test_verify_out_of_range_is_named(tmp_path: Path, k: Any) -> None:
    a, b, refused = _stores(tmp_path, _world(7, 0.0))
    p = _predict(a, b, refused, n_boot=0)
    with pytest.raises(ArgumentError, match=r"verify=.*expected a whole number of prompts from "
                                            r"1 to 120"):
        verification_sample(p, k)


def test_active_inference_covers_the_truth_when_the_prediction_is_biased(tmp_path: Path) -> None:
    """The prediction is made wrong on purpose (the audited model refuses by another rule
    than the baseline's direction): the verified interval still covers its judged rate."""
    w = _world(8, 0.0)
    a, b, refused = _stores(tmp_path, w)
    p = _predict(a, b, refused, n_boot=0)
    rng = np.random.default_rng(0)
    unsafe = [i for i, y in p.labels.items() if y == 1]
    truth = {i: bool(rng.random() < 0.3) for i in unsafe}  # refusal fell to ~30 %
    rate = np.mean(list(truth.values()))
    assert abs(p.refusal.value - rate) > 0.3  # the latent prediction alone is far off
    covered = 0
    for seed in range(300):
        s = verification_sample(p, 40, seed=seed)
        v = verified_refusal(p, s, {i: truth[i] for i in s})
        covered += v.refusal.ci_low <= rate <= v.refusal.ci_high
    assert covered / 300 >= 0.90, covered


def test_verified_needs_every_drawn_label(tmp_path: Path) -> None:
    a, b, refused = _stores(tmp_path, _world(9, 0.0))
    p = _predict(a, b, refused, n_boot=0)
    s = verification_sample(p, 10, seed=0)
    with pytest.raises(ArgumentError, match=r"has no label for \d+ drawn prompts"):
        verified_refusal(p, s, {})
    with pytest.raises(ArgumentError, match=r"not unsafe prompts of the prediction"):
        verified_refusal(p, {"0": 0.5}, {"0": True})  # id 0 is a safe prompt
