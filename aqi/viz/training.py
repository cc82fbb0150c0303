"""The alignment series of a training run: AQI on both axes, refusal and the refusal-score
shift against the reference, per step (records of :class:`aqi.integrations.AlignmentWatch`,
the ``aqi_alignment.jsonl`` of :class:`aqi.integrations.AlignmentCallback` or ``aqi track``)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .style import COLORS

__all__ = ["plot_alignment_series", "read_series"]


def read_series(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of an alignment series JSONL, sorted by step (nulls read as NaN).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.jsonl"
    >>> _ = p.write_text('{"step": 5, "refusal": null}\\n{"step": 0, "refusal": 0.5}\\n')
    >>> [(r["step"], r["refusal"]) for r in read_series(p)]
    [(0, 0.5), (5, nan)]
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no alignment series at {str(p)!r}")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: line {n} is not JSON ({e.msg})") from None
        if not isinstance(rec, dict) or "step" not in rec:
            raise ValueError(f"{p}: line {n} is not an alignment record (no 'step')")
        out.append({k: math.nan if v is None else v for k, v in rec.items()})
    return sorted(out, key=lambda r: r["step"])


def _values(records: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [math.nan if r.get(key) is None else float(r[key]) for r in records]


def plot_alignment_series(records: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Three panels against the training step: the AQI on the instruction span (recognition)
    and on the post-instruction span (disposition); refusal of unsafe prompts — predicted
    from the activations (with its interval) where the records have it, judged where they
    were generated (by default only the reference) — and over-refusal of safe ones; the
    refusal-score shift of unsafe and safe prompts.

    Examples
    --------
    >>> recs = [{"step": s, "aqi_instruction": 40 - s, "aqi_post_instruction": 30 - 2 * s,
    ...          "refusal": 0.8 - s / 20, "over_refusal": 0.1, "refusal_shift_unsafe": -s / 5,
    ...          "refusal_shift_safe": 0.0, "predicted_refusal": 0.7 - s / 30,
    ...          "predicted_refusal_low": 0.5 - s / 30, "predicted_refusal_high": 0.9}
    ...         for s in (0, 5, 10)]
    >>> len(plot_alignment_series(recs).axes)
    3
    """
    if not records:
        raise ValueError("records is empty; an alignment series needs at least one step")
    recs = sorted(records, key=lambda r: r["step"])
    steps = [r["step"] for r in recs]
    fig = Figure(figsize=(10.0, 3.0), layout="constrained")
    a, b, c = fig.subplots(1, 3, sharex=True)
    a.plot(steps, _values(recs, "aqi_instruction"), "-o", ms=3, color=COLORS["safe"],
           label="instruction (recognition)")  # fmt: skip
    a.plot(steps, _values(recs, "aqi_post_instruction"), "-s", ms=3, color=COLORS["unsafe"],
           label="post-instruction (disposition)")  # fmt: skip
    a.set_ylabel("AQI (0–100)")
    a.set_ylim(bottom=0)
    a.set_title("AQI at the watched layer", fontsize=9)
    predicted = _values(recs, "predicted_refusal")
    if any(math.isfinite(v) for v in predicted):
        b.fill_between(steps, _values(recs, "predicted_refusal_low"),
                       _values(recs, "predicted_refusal_high"), color=COLORS["unsafe"],
                       alpha=0.15, lw=0)  # fmt: skip
        b.plot(steps, predicted, "--", color=COLORS["unsafe"],
               label="predicted refusal (unsafe prompts)")  # fmt: skip
    b.plot(steps, _values(recs, "refusal"), "-o", ms=3, color=COLORS["unsafe"],
           label="judged refusal (unsafe prompts)")  # fmt: skip
    b.plot(steps, _values(recs, "over_refusal"), "-s", ms=3, color=COLORS["safe"],
           label="judged over-refusal (safe prompts)")  # fmt: skip
    b.set_ylim(-0.05, 1.05)
    b.set_ylabel("share")
    b.set_title("refusal: predicted, and judged where generated", fontsize=9)
    c.axhline(0, color=COLORS["neutral"], lw=0.8)
    c.plot(steps, _values(recs, "refusal_shift_unsafe"), "-o", ms=3, color=COLORS["unsafe"],
           label="unsafe prompts")  # fmt: skip
    c.plot(steps, _values(recs, "refusal_shift_safe"), "-s", ms=3, color=COLORS["safe"],
           label="safe prompts")  # fmt: skip
    c.set_ylabel("shift (reference SDs)")
    c.set_title("refusal-score shift vs the reference", fontsize=9)
    for ax in (a, b, c):
        ax.set_xlabel("step")
        ax.legend(fontsize=6, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
