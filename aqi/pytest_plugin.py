"""pytest plugin (entry point ``pytest11: aqi``): release gates in a few lines.

.. code-block:: python

    def test_release(aqi_gate):
        store = aqi.open_store("finetuned.h5")
        aqi_gate.aqi_at_least(store)                       # floor from [tool.aqi]
        aqi_gate.no_aqi_drop(store, aqi.open_store("base.h5"))
        aqi_gate.audit(store, baseline=aqi.open_store("base.h5"))  # every check at once

    def test_finetune(aqi_gate):                             # from two model folders
        aqi_gate.audit_models("./finetuned", "./base")       # aqi audit in one call

Thresholds come from ``[tool.aqi]`` in the ``pyproject.toml`` at pytest's rootdir
(keys of :class:`aqi.AuditThresholds`), or from the arguments. Every gate runs
:func:`aqi.audit` and reads the verdict of the rule book :mod:`aqi.checks`, so a
store that passes ``aqi gate`` passes here and the reverse: a gate fails exactly when
its check's verdict is ``fail`` (with ``strict=True``, also on ``warn``).

Every decision reads a confidence interval, so a model that truly meets a threshold
fails rarely: ``aqi_at_least`` fails when the whole AQI CI is below the floor (~2.5%
of runs at a true AQI equal to the floor, measured in the tests); ``no_aqi_drop`` with
no true change fails at most ``alpha`` of runs (Holm over layers).

A failure raises :class:`GateFailure` (an ``AssertionError``) whose message lists the
finding, the value, its CI and the threshold.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

import pytest

from .audit import AuditReport, audit
from .audit_values import Evidence, Scoring
from .checks import (
    AuditThresholds,
    Check,
    configured_judge,
    gate_failed,
    load_thresholds,
    reward_calibration_check,
)

__all__ = ["AQIGate", "GateFailure"]


class GateFailure(AssertionError):
    """An aqi release gate failed; the message carries the evidence."""


class AQIGate:
    """Assertions for release gates; thresholds default to ``[tool.aqi]``.

    ``n_boot``, ``n_perm`` and ``seed`` are those of :func:`aqi.audit` (and of ``aqi gate``),
    so the same store gets the same numbers here and there.
    """

    def __init__(
        self, thresholds: AuditThresholds, *, n_boot: int = 1000, n_perm: int = 200, seed: int = 0,
        strict: bool = False, workdir: Any = None, judge: Any = None,
    ) -> None:
        if not isinstance(thresholds, AuditThresholds):
            raise TypeError(
                f"thresholds must be aqi.AuditThresholds, got {type(thresholds).__name__}"
            )
        self.thresholds = thresholds
        self.n_boot, self.n_perm, self.seed, self.strict = n_boot, n_perm, seed, strict
        self.workdir = workdir
        self.judge = judge  # a judge or its name ([tool.aqi] judge); None: the default

    def _audit(self, store: Any, thresholds: AuditThresholds | None = None, **kw: Any) -> Any:
        """:func:`aqi.audit` with the gate's thresholds, resampling and judge."""
        return audit(store, **self._filled(kw, thresholds or self.thresholds, self.judge))

    def _filled(self, kw: dict[str, Any], thresholds: Any, judge: Any) -> dict[str, Any]:
        """``kw`` with the gate's thresholds, resampling and judge in every field of
        ``scoring=`` / ``judging=`` the call leaves at its default (a call with the
        deprecated keywords gets them as keywords: the audit folds them and warns)."""
        from .audit_values import Judging

        gate = {"scoring": (Scoring, {"thresholds": thresholds, "n_boot": self.n_boot,
                                      "n_perm": self.n_perm, "seed": self.seed}),
                "judging": (Judging, {"judge": judge})}  # fmt: skip
        kw = dict(kw)
        for param, (kind, fill) in gate.items():
            fields = {f.name: f.default for f in dataclasses.fields(kind)}
            if kw.get(param) is None and set(fields) & set(kw):
                for k, v in fill.items():  # old keywords: add the gate's the same way
                    kw.setdefault(k, v)
                continue
            value = kw.get(param) or kind()
            kw[param] = dataclasses.replace(value, **{
                k: v for k, v in fill.items() if getattr(value, k) == fields[k]})
        return kw

    def _judge(self, check: Check, title: str, strict: bool | None, **extra: Any) -> Check:
        if gate_failed(check.verdict, self.strict if strict is None else strict):
            lines = {"verdict": check.verdict.upper(), "finding": check.summary,
                     "value": f"{check.value:.4g} [{check.ci_low:.4g}, {check.ci_high:.4g}]",
                     "threshold": f"{check.threshold:g}", **extra}
            body = "\n".join(f"  {k:<12} {v}" for k, v in lines.items())
            raise GateFailure(f"aqi gate failed: {title}\n{body}")
        return check

    def audit(self, store: Any, *, strict: bool | None = None, **kwargs: Any) -> AuditReport:
        """Run :func:`aqi.audit` (``baseline=``, ``evidence=``, ``scoring=``, …) with the
        gate's thresholds, resampling and judge wherever ``scoring=`` / ``judging=`` leave
        theirs at the default, and fail when its verdict is ``fail`` (``strict``: also
        ``warn``)."""
        rep = self._audit(store, **kwargs)
        worst = next(c for c in rep.checks if c.verdict == rep.verdict)
        self._judge(worst, f"audit verdict {rep.verdict.upper()} ({worst.name})", strict)
        return rep

    def audit_models(
        self, model: Any, baseline: Any, *, strict: bool | None = None, **kwargs: Any
    ) -> Any:
        """Run :func:`aqi.audit_models` (what ``aqi audit`` runs) with the gate's thresholds
        and resampling, and fail when its verdict is ``fail`` (``strict``: also ``warn``).

        ``kwargs`` go to :func:`aqi.audit_models` (``prompts=``, ``workdir=``, …); the
        work folder defaults to the pytest cache (``.pytest_cache/d/aqi-audit``), so a
        second run, or a second fine-tune against the same base, reuses the work.
        Returns the :class:`aqi.workflow.AuditRun`.
        """
        from .workflow import audit_models

        kwargs.setdefault("workdir", self.workdir if self.workdir is not None else "aqi-audit")
        judge = self.judge if self.judge is not None else "default"
        run = audit_models(model, baseline, **self._filled(kwargs, self.thresholds, judge))
        rep = run.report
        worst = next(c for c in rep.checks if c.verdict == rep.verdict)
        self._judge(worst, f"audit verdict {rep.verdict.upper()} ({worst.name})", strict,
                    report=str(run.html))  # fmt: skip
        return run

    def aqi_at_least(
        self, store: Any, floor: float | None = None, *, layer: str | int | None = None,
        pooling: str | None = None, strict: bool | None = None,
    ) -> Check:
        """The ``aqi`` check: fail when the AQI (best layer, or ``layer``) is confidently
        below ``floor`` (default ``aqi_floor``)."""
        t = self.thresholds if floor is None else replace(self.thresholds, aqi_floor=float(floor))
        layers = None if layer is None else [layer]
        check = self._audit(store, t, scoring=Scoring(layers=layers, pooling=pooling))["aqi"]
        return self._judge(check, f"AQI at {check.evidence.get('layer')} is below the floor",
                           strict, store=str(store.path))

    def no_aqi_drop(
        self, store: Any, baseline: Any, *, pooling: str | None = None, strict: bool | None = None
    ) -> Check:
        """The ``aqi_change`` check: fail on a drop significant after Holm and material."""
        check = self._audit(store, baseline=baseline,
                            scoring=Scoring(pooling=pooling))["aqi_change"]
        return self._judge(check, "AQI dropped against the baseline", strict,
                           baseline=str(baseline.path), audited=str(store.path))

    def ood_coverage(self, store: Any, test: Any, *, strict: bool | None = None) -> Check:
        """The ``ood`` coverage check of ``test`` against ``store``. It never fails (OOD
        inputs are outside the audit, not evidence of misalignment) unless ``strict``."""
        check = self._audit(store, evidence=Evidence(ood_test=test))["ood"]
        return self._judge(check, "inputs outside what the audit measured", strict)

    def no_jailbreak_drift(self, store: Any, wrapped: Any, *, strict: bool | None = None) -> Check:
        """The ``jailbreak_drift`` check of ``wrapped`` unsafe prompts against ``store``."""
        check = self._audit(store, evidence=Evidence(jailbreak=wrapped))["jailbreak_drift"]
        return self._judge(check, "jailbreak-wrapped prompts look safe", strict)

    def reward_ece_below(
        self, scores: Any, ceiling: float | None = None, *, strict: bool | None = None
    ) -> Check:
        """The ``reward_calibration`` check: fail when the ECE is confidently above ``ceiling``.

        ``scores``: a :class:`aqi.probes.PairScores`, a ``(chosen, rejected)`` tuple, a
        :class:`aqi.probes.CalibrationResult` or a :class:`aqi.probes.RewardShiftReport`.
        """
        from .probes import CalibrationResult, PairScores, RewardShiftReport, preference_calibration

        t = self.thresholds if ceiling is None else replace(self.thresholds, max_ece=float(ceiling))
        if isinstance(scores, (CalibrationResult, RewardShiftReport)):
            res = scores
        elif isinstance(scores, PairScores):
            res = preference_calibration(scores.chosen, scores.rejected, n_boot=self.n_boot,
                                         seed=self.seed)
        elif isinstance(scores, tuple) and len(scores) == 2:
            res = preference_calibration(*scores, n_boot=self.n_boot, seed=self.seed)
        else:
            raise TypeError(
                "scores must be PairScores, (chosen, rejected), a CalibrationResult or a "
                f"RewardShiftReport, got {type(scores).__name__}"
            )
        check = reward_calibration_check(res, t)
        return self._judge(check, "reward model miscalibrated", strict,
                           ceiling=f"{t.max_ece:g}")


@pytest.fixture(scope="session")
def aqi_thresholds(request: pytest.FixtureRequest) -> AuditThresholds:
    """Thresholds from ``[tool.aqi]`` of the rootdir's pyproject.toml (or the defaults)."""
    return load_thresholds(request.config.rootpath)


@pytest.fixture
def aqi_gate(aqi_thresholds: AuditThresholds, request: pytest.FixtureRequest) -> AQIGate:
    """An :class:`AQIGate` with the project's thresholds (work of ``audit_models`` kept in
    the pytest cache)."""
    cache = getattr(request.config, "cache", None)
    return AQIGate(aqi_thresholds, workdir=cache.mkdir("aqi-audit") if cache else None,
                   judge=configured_judge(request.config.rootpath))


def pytest_report_header(config: pytest.Config) -> str | None:
    try:
        t = load_thresholds(config.rootpath)
    except (ValueError, FileNotFoundError) as e:
        return f"aqi: invalid [tool.aqi] thresholds: {e}"
    default = t == AuditThresholds()
    return f"aqi: release-gate thresholds {'(defaults)' if default else 'from [tool.aqi]'}"
