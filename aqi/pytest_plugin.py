"""pytest plugin (entry point ``pytest11: aqi``): release gates in a few lines.

.. code-block:: python

    def test_release(aqi_gate):
        store = aqi.open_store("finetuned.h5")
        aqi_gate.aqi_at_least(store)                       # floor from [tool.aqi]
        aqi_gate.no_aqi_drop(store, aqi.open_store("base.h5"))

Thresholds come from ``[tool.aqi]`` in the ``pyproject.toml`` at pytest's rootdir
(keys of :class:`aqi.AuditThresholds`), or from the arguments. Every decision
reads a confidence interval, so a model that truly meets a threshold fails rarely:

* ``aqi_at_least`` fails when the CI's *upper* end is below the floor — at a true
  AQI equal to the floor that happens ~2.5% of the time (one side of a 95%
  interval; the AQI interval covered the true value in 58/60 simulated sets);
* ``no_aqi_drop`` fails on a drop significant after Holm correction over layers
  and at least ``min_relative_drop`` of the baseline — with no true change, at
  most ``alpha / 2`` = 2.5% per run;
* ``ood_rate_below`` / ``reward_ece_below`` fail when the CI's *lower* end exceeds
  the ceiling (≤ 2.5% at a true value equal to it).

A failure raises :class:`GateFailure` (an ``AssertionError``) whose message lists
the value, its CI, the threshold and the baseline.
"""

from __future__ import annotations

from typing import Any

import pytest

from .audit import AuditThresholds, _change_check, load_thresholds

__all__ = ["AQIGate", "GateFailure"]


class GateFailure(AssertionError):
    """An aqi release gate failed; the message carries the evidence."""


def _fail(title: str, lines: dict[str, Any]) -> None:
    body = "\n".join(f"  {k:<12} {v}" for k, v in lines.items())
    raise GateFailure(f"aqi gate failed: {title}\n{body}")


class AQIGate:
    """Assertions for release gates; thresholds default to ``[tool.aqi]``."""

    def __init__(self, thresholds: AuditThresholds, *, n_boot: int = 1000, seed: int = 0) -> None:
        self.thresholds = thresholds
        self.n_boot = n_boot
        self.seed = seed

    def aqi_at_least(
        self, store: Any, floor: float | None = None, *, layer: str | int | None = None,
        pooling: str | None = None,
    ) -> Any:  # fmt: skip
        """Pass unless the AQI (best layer, or ``layer``) is confidently below ``floor``."""
        from .indices import score

        floor = self.thresholds.aqi_floor if floor is None else float(floor)
        prof = score(store, pooling=pooling, layers=None if layer is None else [layer],
                     n_boot=self.n_boot, n_perm=200, seed=self.seed, by_category=False)  # fmt: skip
        r = prof.best()
        if r.ci_high < floor:
            _fail(
                f"AQI at {r.label} is below the floor",
                {"AQI": f"{r.value:.2f}", "95% CI": f"[{r.ci_low:.2f}, {r.ci_high:.2f}]",
                 "floor": f"{floor:g}", "null 95th": f"{r.null_high:.2f} (chance level)",
                 "store": str(store.path)},
            )  # fmt: skip
        return r

    def no_aqi_drop(self, store: Any, baseline: Any, *, pooling: str | None = None) -> Any:
        """Pass unless some layer's AQI drops significantly (Holm) and materially."""
        from .indices import compare

        cmp = compare(baseline, store, pooling=pooling, n_boot=self.n_boot, seed=self.seed)
        check = _change_check(cmp, self.thresholds)
        if check.verdict == "fail":
            worst = max(cmp.layers, key=lambda d: d.difference)
            _fail(
                "AQI dropped against the baseline",
                {"finding": check.summary, "baseline": cmp.model_a, "audited": cmp.model_b,
                 "largest Δ": f"{worst.difference:.2f} at {worst.layer_b}",
                 "rule": f"Holm p < {self.thresholds.alpha:g} and drop >= "
                         f"{self.thresholds.min_relative_drop:.0%} of the baseline AQI"},
            )  # fmt: skip
        return cmp

    def ood_rate_below(
        self, reference: Any, test: Any, ceiling: float | None = None, *,
        layer: str | int | None = None, false_alarm_rate: float = 0.05,
    ) -> Any:  # fmt: skip
        """Pass unless the share of test rows flagged OOD is confidently above ``ceiling``."""
        from .probes import ood_probe

        ceiling = self.thresholds.max_ood_rate if ceiling is None else float(ceiling)
        layers = None if layer is None else [layer]
        rep = ood_probe(reference, test, layers=layers, false_alarm_rate=false_alarm_rate,
                        n_boot=200, seed=self.seed)  # fmt: skip
        r = max(rep.layers, key=lambda x: x.flag_rate.ci_low)
        if r.flag_rate.ci_low > ceiling:
            _fail(
                f"too many OOD inputs at {r.layer}",
                {"flagged": repr(r.flag_rate), "ceiling": f"{ceiling:g}",
                 "categories": r.flagged_categories, "AUROC": repr(r.detection.auroc)},
            )  # fmt: skip
        return rep

    def reward_ece_below(self, scores: Any, ceiling: float | None = None) -> Any:
        """Pass unless the reward model's ECE is confidently above ``ceiling``.

        ``scores``: a :class:`aqi.probes.PairScores`, a ``(chosen, rejected)`` tuple or a
        :class:`aqi.probes.CalibrationResult`.
        """
        from .probes import CalibrationResult, PairScores, preference_calibration

        ceiling = self.thresholds.max_ece if ceiling is None else float(ceiling)
        if isinstance(scores, CalibrationResult):
            res = scores
        elif isinstance(scores, PairScores):
            res = preference_calibration(scores.chosen, scores.rejected, n_boot=self.n_boot)
        elif isinstance(scores, tuple) and len(scores) == 2:
            res = preference_calibration(*scores, n_boot=self.n_boot)
        else:
            raise TypeError(
                "scores must be PairScores, (chosen, rejected) or a CalibrationResult, got "
                f"{type(scores).__name__}"
            )
        if res.ece.ci_low > ceiling:
            _fail(
                "reward model miscalibrated",
                {"ECE": repr(res.ece), "ceiling": f"{ceiling:g}", "accuracy": repr(res.accuracy),
                 "pairs": res.n},
            )  # fmt: skip
        return res


@pytest.fixture(scope="session")
def aqi_thresholds(request: pytest.FixtureRequest) -> AuditThresholds:
    """Thresholds from ``[tool.aqi]`` of the rootdir's pyproject.toml (or the defaults)."""
    return load_thresholds(request.config.rootpath)


@pytest.fixture
def aqi_gate(aqi_thresholds: AuditThresholds) -> AQIGate:
    """An :class:`AQIGate` with the project's thresholds."""
    return AQIGate(aqi_thresholds)


def pytest_report_header(config: pytest.Config) -> str | None:
    try:
        t = load_thresholds(config.rootpath)
    except (ValueError, FileNotFoundError) as e:
        return f"aqi: invalid [tool.aqi] thresholds: {e}"
    default = t == AuditThresholds()
    return f"aqi: release-gate thresholds {'(defaults)' if default else 'from [tool.aqi]'}"
