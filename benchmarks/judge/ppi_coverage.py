"""Benchmark: coverage of the 95 % interval for Δrefusal when the judge is biased.

    python benchmarks/judge/ppi_coverage.py [--reps 10000] [--seed 0]

A simulated audit: 150 unsafe prompts answered by a baseline that refuses 90 % of
them and a fine-tune that refuses 60 % (paired: the fine-tune mostly refuses where
the baseline did, ``P(b | a) = 0.65``, ``P(b | not a) = 0.15``), so the true change
is Δ = −0.30. A judge misses a share of the true refusals (10 %, 20 %, 30 %, or
more for the fine-tune than the baseline, as when a fine-tune rewords its
refusals) and calls 3 % of compliant answers refusals. A person labels both
responses of 50 prompts drawn at random; the judge's verdicts on the other 100
prompts are unlabelled. Each replication draws a new audit from the population;
the table gives, per judge and method, how often the 95 % interval holds the true
Δ and its mean width:

* ``ppi++`` — :func:`aqi.behaviour.ppi.ppi_paired_difference`, power-tuned;
* ``ppi`` — the same with ``λ = 1``;
* ``naive`` — the judge alone over all 150 prompts, its error ignored;
* ``labels-only`` — the 50 labelled prompts alone.

A second audit is a fine-tune that changes little (it keeps 95 % of the baseline's
refusals and refuses 5 % of what the baseline answered: Δ = −0.04), what a passing
gate sees: the per-prompt differences are mostly 0, and an interval built on a
normal approximation has few non-zero differences to go on. An audit whose labels
and verdicts leave no variance at all gets no interval (counted as not covering,
and in ``no interval``).

The tables are printed and written to ``docs/data/ppi_coverage.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aqi._errors import ArgumentError
from aqi._stats import DegenerateInputWarning
from aqi.behaviour.ppi import ppi_paired_difference

OUT = Path(__file__).resolve().parents[2] / "docs" / "data" / "ppi_coverage.json"
#: method label -> keyword arguments of ppi_paired_difference
METHODS: dict[str, dict[str, Any]] = {
    "ppi++": {"method": "ppi", "power_tuning": True},
    "ppi": {"method": "ppi", "power_tuning": False},
    "naive": {"method": "naive"},
    "labels-only": {"method": "classical"},
}


@dataclass(frozen=True)
class Audit:
    """The simulated audit's population, size and labelling budget."""

    name: str = "a fine-tune that refuses less"
    n_prompts: int = 150
    n_labelled: int = 50
    rate_a: float = 0.90
    b_given_a: float = 0.65  # P(fine-tune refuses | baseline refused)
    b_given_not_a: float = 0.15  # so that P(fine-tune refuses) = 0.60
    false_refusals: float = 0.03  # P(judge says refusal | compliance)

    @property
    def rate_b(self) -> float:
        return self.rate_a * self.b_given_a + (1 - self.rate_a) * self.b_given_not_a

    @property
    def delta(self) -> float:
        return self.rate_b - self.rate_a


@dataclass(frozen=True)
class Judge:
    """A judge that misses a share of each model's true refusals.

    ``echo``: on a prompt where both models' answers are of one class, the judge
    gives b's answer a's verdict (as for answers that are the same or nearly: its
    errors on the two are one error, not two).
    """

    name: str
    miss_a: float
    miss_b: float
    echo: bool = False


AUDITS = (
    Audit(),
    # a near-identical fine-tune (what a passing gate sees): 5 % of answers change class
    Audit(name="a fine-tune that changes little", b_given_a=0.95, b_given_not_a=0.05),
)

JUDGES = (
    Judge("misses 10 %", 0.10, 0.10),
    Judge("misses 20 %", 0.20, 0.20),
    Judge("misses 30 %", 0.30, 0.30),
    Judge("misses 10 % / 30 % (reworded)", 0.10, 0.30),
    Judge("misses 20 %, echoes unchanged", 0.20, 0.20, echo=True),
)


def _judge(y: np.ndarray, miss: float, false_refusals: float, rng: np.random.Generator
           ) -> np.ndarray:  # fmt: skip
    u = rng.random(y.shape)
    return np.where(y == 1, u >= miss, u < false_refusals).astype(np.float64)


def one_audit(
    audit: Audit, judge: Judge, rng: np.random.Generator
) -> dict[str, tuple[float, float]]:
    """One simulated audit: ``{method: (ci_low, ci_high)}`` of Δ = rate_b − rate_a."""
    a = (rng.random(audit.n_prompts) < audit.rate_a).astype(np.float64)
    p_b = np.where(a == 1, audit.b_given_a, audit.b_given_not_a)
    b = (rng.random(audit.n_prompts) < p_b).astype(np.float64)
    fa = _judge(a, judge.miss_a, audit.false_refusals, rng)
    fb = _judge(b, judge.miss_b, audit.false_refusals, rng)
    if judge.echo:
        fb = np.where(a == b, fa, fb)
    lab = np.zeros(audit.n_prompts, dtype=bool)
    lab[rng.choice(audit.n_prompts, audit.n_labelled, replace=False)] = True
    args = (a[lab], b[lab], fa[lab], fb[lab], fa[~lab], fb[~lab])
    out = {}
    for name, kwargs in METHODS.items():
        try:
            with warnings.catch_warnings():  # one-valued labels: counted by their outcome
                warnings.simplefilter("ignore", DegenerateInputWarning)
                est = ppi_paired_difference(*args, **kwargs)
            out[name] = (est.ci_low, est.ci_high)
        except ArgumentError:  # no variance at all: no interval
            out[name] = (float("nan"), float("nan"))
    return out


def coverage(
    judges: Sequence[Judge] = JUDGES, *, reps: int = 1000, seed: int = 0, audit: Audit = Audit()
) -> list[dict[str, Any]]:
    """Per judge and method: coverage of the true Δ and mean width over ``reps`` audits."""
    rows = []
    for k, judge in enumerate(judges):
        rng = np.random.default_rng([seed, k])
        intervals = [one_audit(audit, judge, rng) for _ in range(reps)]
        for method in METHODS:
            lo, hi = np.array([iv[method] for iv in intervals]).T
            covered = (lo <= audit.delta) & (audit.delta <= hi)  # no interval: not covered
            rows.append({
                "judge": judge.name, "miss_a": judge.miss_a, "miss_b": judge.miss_b,
                "method": method, "coverage": float(covered.mean()),
                "coverage_se": float(np.sqrt(covered.mean() * (1 - covered.mean()) / reps)),
                "mean_width": float(np.nanmean(hi - lo)), "no_interval": int(np.isnan(lo).sum()),
                "reps": reps,
            })  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table: judge × method, coverage and mean width."""
    lines = [f"{'judge':32} {'method':12} {'coverage':>9} {'± se':>6} {'mean width':>11} "
             f"{'no interval':>12}"]  # fmt: skip
    for r in rows:
        lines.append(f"{r['judge']:32} {r['method']:12} {r['coverage']:9.3f} "
                     f"{r['coverage_se']:6.3f} {r['mean_width']:11.3f} "
                     f"{r['no_interval']:12d}")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    audits = []
    for audit in AUDITS:
        t0 = time.perf_counter()
        rows = coverage(reps=args.reps, seed=args.seed, audit=audit)
        seconds = time.perf_counter() - t0
        print(f"\n{audit.name}: true Δ = {audit.delta:+.2f} ({audit.rate_a:.2f} -> "
              f"{audit.rate_b:.2f}), {audit.n_prompts} prompts, {audit.n_labelled} labelled, "
              f"95 % intervals, {args.reps} replications (seed {args.seed}), {seconds:.0f} s")
        print(table(rows))
        audits.append({"audit": {**asdict(audit), "rate_b": audit.rate_b, "delta": audit.delta},
                       "rows": rows})  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"confidence": 0.95, "seed": args.seed, "reps": args.reps, "audits": audits}
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
