"""The coverage section: the shipped table equals the benches' results, and it is selected
by the audit's evidence."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: benchmarks

from aqi._errors import ArgumentError
from aqi.coverage import STATUSES, audit_coverage
from benchmarks.validity import coverage as bc


def test_shipped_table_is_written_from_the_committed_results() -> None:
    """No figure in aqi/data/coverage.json is typed in: it is what the bench writes."""
    assert bc.TABLE.read_text() == bc.render(bc.table()), (
        "aqi/data/coverage.json is out of date: python -m benchmarks.validity coverage")


@pytest.mark.parametrize("mode", ["full", "latent"])
def test_rows_follow_the_audit_mode(mode: str) -> None:
    cov = audit_coverage(mode)
    assert cov.mode == mode and cov.rows
    assert all(r.status in STATUSES for r in cov.rows)
    assert all(r.rate is None or 0 <= r.rate <= 1 for r in cov.rows)
    assert all(r.bench.startswith("docs/validation.md") for r in cov.rows)
    # every failure kind appears once per mode
    assert len({r.failure for r in cov.rows}) == len(cov.rows)
    d = cov.to_dict()
    assert d["mode"] == mode and len(d["rows"]) == len(cov.rows)
    assert "docs/validation.md" in cov.sentence()
    assert "<table>" in cov._repr_html_()


def test_full_and_latent_differ_in_the_evidence_of_plain_erosion() -> None:
    full, latent = audit_coverage("full").rows[0], audit_coverage("latent").rows[0]
    assert full.failure == latent.failure == "refusal erosion on plain prompts"
    assert "judged" in full.evidence and "latent" in latent.evidence


def test_bad_mode_is_named() -> None:
    with pytest.raises(ArgumentError, match=r"mode='greedy'.*'full' or 'latent'"):
        audit_coverage("greedy")


def _v4(found: dict[str, bool], n: int = 3) -> dict[str, Any]:
    sig = {s: {"auroc": 1.0 if hit else 0.5, "tpr_at_1pct_fpr": 1.0 if hit else 0.0,
               "detected": hit} for s, hit in found.items()}
    det = {k: {"n_organisms": n, "n_controls": 7, "signals": sig, "gate_fails": 0}
           for k in bc.HIDDEN}
    return {"parts": {"A": {"detection": det, "confirmatory": False, "complete": True},
                      "C": {"detection": {k: {**v, "signals": {}} for k, v in det.items()},
                            "confirmatory": True, "complete": True}}}


@pytest.mark.parametrize(("found", "full", "latent"), [
    ({"gap": True, "model_diff": False}, "blind", "detected"),
    ({"gap": False, "model_diff": True}, "blind", "blind"),
    ({"gap": False, "model_diff": False}, "blind", "blind"),
])  # fmt: skip
def test_hidden_rows_credit_only_signals_the_audit_computes(found: dict[str, bool], full: str,
                                                            latent: str) -> None:
    rows = {r["modes"][0]: r for r in bc._hidden("backdoor", _v4(found))}
    assert rows["full"]["status"] == full and rows["latent"]["status"] == latent
    if found["model_diff"]:
        assert "only by model_diff, which this audit does not compute" in rows["latent"]["detail"]
    assert "original C" not in rows["latent"]["detail"]  # confirmatory: not in the claim


def test_hidden_rows_without_organisms_say_not_measured() -> None:
    for v4 in (None, _v4({"gap": True}, n=0)):
        rows = bc._hidden("sampling-only", v4)
        assert {r["status"] for r in rows} == {"not measured"}
        assert all(r["rate"] is None for r in rows)


def test_a_partial_part_claims_nothing() -> None:
    v4 = _v4({"gap": True})
    v4["parts"]["A"] |= {"complete": False, "n_recorded": 5, "n_planned": 16}
    rows = bc._hidden("backdoor", v4)
    assert {r["status"] for r in rows} == {"not measured"}
    assert "5 of 16 organisms recorded" in rows[0]["detail"]
