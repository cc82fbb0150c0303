"""Two axes: recognition at the instruction, disposition at the decision point."""

from __future__ import annotations

import numpy as np
import pytest

import aqi
from aqi.checks import AuditThresholds, two_axes_check
from aqi.probes.axes import two_axes

SPANS = ("instruction", "post_instruction")
N, DIM = 160, 8


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = ["safe", "unsafe"] * (N // 2)
    u = np.array([lab == "unsafe" for lab in labels])
    e0, e1 = np.eye(DIM)[0], np.eye(DIM)[1]
    inst = rng.normal(size=(N, DIM)) + 4 * u[:, None] * e0   # harmfulness, at the instruction
    post = rng.normal(size=(N, DIM)) + 4 * u[:, None] * e1   # refusal, at the decision point
    return rng, labels, u, inst, post, e1


def _store(path, inst, post, labels):
    return aqi.store_from_arrays(path, {"instruction": {"h.0": inst}, "post_instruction":
                                        {"h.0": post}}, spans=SPANS, labels=labels)  # fmt: skip


@pytest.fixture
def world(tmp_path):
    rng, labels, u, inst, post, e1 = _world()
    base = _store(tmp_path / "base.h5", inst, post, labels)
    return tmp_path, rng, labels, u, inst, post, e1, base


def test_a_model_that_recognises_but_complies_is_named(world):
    tmp, rng, labels, u, inst, post, e1, base = world
    # The fine-tune keeps the instruction's geometry and pulls unsafe prompts toward safe
    # at the decision point: the refusal direction no longer separates them.
    ft = _store(tmp / "ft.h5", inst + rng.normal(0, 0.05, inst.shape),
                post - 3.5 * u[:, None] * e1, labels)  # fmt: skip
    axes = two_axes(ft, base, n_boot=300, n_perm=50, seed=1)
    assert axes.recognition.span == "instruction" and axes.disposition.span == "post_instruction"
    assert axes.refusal.unsafe.ci_high < -2
    check = two_axes_check(axes, AuditThresholds())
    assert check.verdict == "warn"
    assert check.summary.startswith("recognises but complies: unsafe prompts' refusal score")
    assert "not yet validated on the bench" in check.summary
    rows = axes.rows()
    assert rows[0]["recognition"] > 20 and rows[0]["disposition"] < rows[0]["recognition"] / 4


def test_over_refusal_is_its_own_finding(world):
    tmp, _rng, labels, u, inst, post, e1, base = world
    ft = _store(tmp / "ft.h5", inst, post + 3.5 * (~u)[:, None] * e1, labels)
    check = two_axes_check(two_axes(ft, base, n_boot=300, n_perm=50), AuditThresholds())
    assert check.verdict == "warn" and check.summary.startswith("over-refusal: safe prompts")
    assert "recognises but complies" not in check.summary


def test_erased_refusal_with_lost_recognition_says_both(world):
    tmp, _rng, labels, u, inst, post, e1, base = world
    ft = _store(tmp / "ft.h5", inst - 3.8 * u[:, None] * np.eye(DIM)[0],
                post - 3.5 * u[:, None] * e1, labels)  # fmt: skip
    check = two_axes_check(two_axes(ft, base, n_boot=300, n_perm=50), AuditThresholds())
    assert check.summary.startswith("refusal erased:")
    assert "separation dropped too" in check.summary and check.evidence["recognition_dropped"]


def test_a_model_against_a_copy_of_itself_holds_both_axes(world):
    tmp, _rng, labels, _u, inst, post, _e1, base = world
    same = _store(tmp / "same.h5", inst, post, labels)
    check = two_axes_check(two_axes(same, base, n_boot=300, n_perm=50), AuditThresholds())
    assert check.verdict == "pass" and check.summary.startswith("both axes held")


def test_without_a_baseline_recognition_without_disposition_warns(tmp_path):
    rng, labels, _u, inst, _, _ = _world(3)
    flat = rng.normal(size=(N, DIM))  # the decision point does not separate at all
    s = _store(tmp_path / "s.h5", inst, flat, labels)
    check = two_axes_check(two_axes(s, n_boot=300, n_perm=50), AuditThresholds())
    assert check.verdict == "warn" and check.summary.startswith("recognition without disposition")
    ok = _store(tmp_path / "ok.h5", inst, inst, labels)
    assert two_axes_check(two_axes(ok, n_boot=300, n_perm=50), AuditThresholds()).verdict == "pass"


def test_without_resamples_the_finding_is_not_computed(world):
    tmp, _rng, labels, u, inst, post, e1, base = world
    ft = _store(tmp / "ft.h5", inst, post - 3.5 * u[:, None] * e1, labels)
    check = two_axes_check(two_axes(ft, base, n_boot=0, n_perm=0), AuditThresholds())
    assert check.verdict == "warn" and check.summary.startswith("not computed")


def test_the_audit_shows_both_axes_and_the_report_draws_them(world):
    from aqi.report import render_html

    tmp, _rng, labels, u, inst, post, e1, base = world
    ft = _store(tmp / "ft.h5", inst, post - 3.5 * u[:, None] * e1, labels)
    rep = aqi.audit(ft, baseline=base, scoring=aqi.Scoring(n_boot=200, n_perm=50))
    assert rep["two_axes"].summary.startswith("recognises but complies")
    doc = rep.to_dict()
    assert doc["schema_version"] == "1.8"
    assert doc["coverage"]["mode"] == "full" and doc["coverage"]["rows"]
    assert doc["two_axes"]["refusal_shift"]["layer"] == "h.0"
    page = render_html(rep)
    assert "harmfulness recognition" in page and "refusal disposition" in page


def test_a_store_without_a_decision_span_is_refused(tmp_path):
    _, labels, _, inst, _, _ = _world()
    s = aqi.store_from_arrays(tmp_path / "s.h5", {"h.0": inst}, labels=labels)
    with pytest.raises(ValueError, match=r"holds spans \['given'\]; the two axes need"):
        two_axes(s)
    rep = aqi.audit(s, scoring=aqi.Scoring(n_boot=200, n_perm=50))
    assert "two_axes" not in [c.name for c in rep.checks]
