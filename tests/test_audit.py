"""aqi.audit: verdicts from real activations, thresholds, the JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aqi
from aqi._stats import holm
from aqi.checks import AuditThresholds
from aqi.probes import preference_calibration

LAYERS = ["model.embed_tokens", "model.layers.5", "model.layers.19"]


@pytest.fixture(scope="module")
def smol_audit(smol_store: Any) -> aqi.AuditReport:
    return aqi.audit(smol_store, baseline=smol_store,
                     scoring=aqi.Scoring(layers=LAYERS, n_boot=300, n_perm=100))  # fmt: skip


@pytest.mark.slow
def test_real_model_passes_aqi_and_has_no_drop_against_itself(smol_audit: aqi.AuditReport) -> None:
    assert smol_audit["aqi"].verdict == "pass"
    assert smol_audit["aqi"].evidence["layer"] == "model.layers.19"
    change = smol_audit["aqi_change"]
    assert change.verdict == "pass"
    assert change.value == pytest.approx(0.0, abs=1e-9)
    # A prompt-span capture cannot vouch for behaviour (docs/validation.md): warn, not fail.
    validity = smol_audit["validity"]
    assert validity.verdict == "warn" and "span='instruction'" in validity.summary
    # Both axes of a model against itself: nothing moved, no finding.
    axes = smol_audit["two_axes"]
    assert axes.verdict == "pass" and axes.summary.startswith("both axes held")
    assert axes.value == 0.0 and axes.evidence["refusal_shift"]["span"] == "post_instruction"
    assert smol_audit.verdict == "warn" and smol_audit.passed
    assert smol_audit.reason.startswith("WARN: validity:")
    assert "[pass] aqi: best layer model.layers.19" in repr(smol_audit)


@pytest.mark.slow
def test_json_document(smol_audit: aqi.AuditReport, tmp_path: Path) -> None:
    from aqi.report import to_json, write_json

    text = to_json(smol_audit)
    write_json(smol_audit, tmp_path / "audit.json")
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert json.loads(text) == doc
    assert doc["schema"] == "aqi.audit" and doc["verdict"] == "warn"
    assert [c["name"] for c in doc["checks"]] == ["aqi", "validity", "aqi_change", "two_axes"]
    assert doc["two_axes"]["disposition"]["span"] == "post_instruction"
    assert len(doc["profile"]["layers"]) == 3


def test_shuffled_labels_fail_the_aqi_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8))
    store = aqi.store_from_arrays(tmp_path / "r.h5", {"L": X}, labels=["safe", "unsafe"] * 100)
    rep = aqi.audit(store, scoring=aqi.Scoring(n_boot=200, n_perm=100))
    assert rep["aqi"].verdict == "fail"
    assert "does not clear its permutation null" in rep["aqi"].summary
    assert rep.verdict == "fail" and not rep.passed


def test_injected_drop_fails_the_change_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(["safe", "unsafe"], 150)
    base = rng.normal(size=(300, 8))
    base[150:, 0] += 3.0
    erased = base.copy()
    erased[:, 0] = rng.normal(size=300)  # the separating direction removed
    a = aqi.store_from_arrays(tmp_path / "a.h5", {"L": base}, labels=y)
    b = aqi.store_from_arrays(tmp_path / "b.h5", {"L": erased}, labels=y)
    rep = aqi.audit(b, baseline=a, scoring=aqi.Scoring(n_boot=300, n_perm=50))
    assert rep["aqi_change"].verdict == "fail"
    assert "AQI dropped at L" in rep["aqi_change"].summary


def test_reward_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    m = rng.normal(1, 3, 5000)
    won = rng.random(5000) < 0.6  # overconfident: confidence far above 0.6 accuracy
    cal = preference_calibration(np.where(won, np.abs(m), 0), np.where(won, 0, np.abs(m)))
    store = aqi.store_from_arrays(
        tmp_path / "s.h5", {"L": np.r_[rng.normal(size=(50, 4)), rng.normal(3, 1, (50, 4))]},
        labels=["safe"] * 50 + ["unsafe"] * 50,
    )  # fmt: skip
    rep = aqi.audit(store, evidence=aqi.Evidence(reward=cal),
                    scoring=aqi.Scoring(n_boot=100, n_perm=50))  # fmt: skip
    assert rep["reward_calibration"].verdict == "fail"


def test_thresholds_and_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown threshold\(s\) \['aqi_flor'\]"):
        AuditThresholds.from_mapping({"aqi_flor": 3})
    with pytest.raises(ValueError, match=r"threshold alpha must be in \(0, 1\), got 2 "):
        AuditThresholds(alpha=2)
    with pytest.raises(TypeError, match="store must be an aqi ActivationStore"):
        aqi.audit(np.zeros((3, 3)))
    store = aqi.store_from_arrays(
        tmp_path / "s.h5", {"L": np.eye(4)}, labels=["safe", "unsafe"] * 2
    )
    with pytest.raises(TypeError, match="reward must be a RewardShiftReport"):
        aqi.audit(store, evidence=aqi.Evidence(reward=0.1))


def test_holm_matches_hand_computation() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # Hand computation: sorted 0.01*4, 0.03*3, 0.04*2, 0.2*1 -> 0.04, 0.09, 0.09 (monotone), 0.2
    np.testing.assert_allclose(holm(p), [0.04, 0.09, 0.09, 0.2])
