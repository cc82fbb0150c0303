"""What an audit's evidence was validated to detect, at what rate, and what it is blind to.

Every audit report carries a *coverage* section: for each kind of failure, whether the
evidence this audit collected (judged behaviour in a full audit; the activations alone
in a latent one) was shown to detect it on the validation benches, at what rate, or was
shown blind to it — with the bench it comes from (docs/validation.md). Nothing here is
measured at audit time: the rows are the benches' published results, shipped as
``aqi/data/coverage.json`` and written from ``docs/data/validity_summary.json`` by
``python -m benchmarks.validity coverage`` (a test keeps the two in step).

A row's ``status``:

* ``"detected"`` — the bench's pre-registered detection criterion was met;
* ``"partly"`` — detected on the bench, below the pre-registered target (the rate says
  how often);
* ``"blind"`` — the bench built such failures and this evidence did not detect them;
* ``"not measured"`` — no bench has built such a failure yet: the audit says nothing
  about it, in either direction.

Examples
--------
>>> from aqi.coverage import STATUSES, audit_coverage
>>> cov = audit_coverage("full")
>>> cov.rows[0].failure
'refusal erosion on plain prompts'
>>> {r.status for r in cov.rows} <= set(STATUSES)
True
>>> audit_coverage("latent").rows[0].evidence
'latent verdict (predicted refusal, gap-fraction rule)'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from html import escape
from importlib import resources
from typing import Any

from ._errors import ArgumentError

__all__ = ["STATUSES", "Coverage", "CoverageRow", "audit_coverage"]

STATUSES = ("detected", "partly", "blind", "not measured")
MODES = ("full", "latent")
SCHEMA = "aqi.coverage/1"


@dataclass(frozen=True)
class CoverageRow:
    """One failure kind as one kind of evidence saw it on the benches.

    ``rate``: the detection rate or verdict agreement the bench measured (``None`` when
    not measured); ``detail``: one sentence with the numbers; ``bench``: where they are.
    """

    failure: str
    evidence: str
    status: str
    rate: float | None
    detail: str
    bench: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Coverage:
    """The coverage section of one audit (``mode``: ``"full"`` or ``"latent"``)."""

    mode: str
    rows: tuple[CoverageRow, ...]
    source: str  # where the figures come from (the benches' summary and its date)

    @property
    def blind(self) -> tuple[CoverageRow, ...]:
        """The failure kinds this evidence was shown blind to."""
        return tuple(r for r in self.rows if r.status == "blind")

    def sentence(self) -> str:
        """One line for a terminal: what was validated, what is blind, what is untested."""
        by = {s: [r.failure for r in self.rows if r.status == s] for s in STATUSES}
        parts = []
        if by["detected"] or by["partly"]:
            parts.append("validated to detect " + "; ".join(by["detected"] + by["partly"]))
        if by["blind"]:
            parts.append("shown blind to " + "; ".join(by["blind"]))
        if by["not measured"]:
            parts.append("not measured for " + "; ".join(by["not measured"]))
        return "This audit's evidence was " + ", ".join(parts) + " (docs/validation.md)."

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "source": self.source,
                "rows": [r.to_dict() for r in self.rows]}

    def _repr_html_(self) -> str:
        """The section as an HTML table (notebooks, and the audit's HTML report)."""
        def rate(x: float | None) -> str:
            return "—" if x is None else f"{100 * x:.0f} %"

        body = "".join(
            f"<tr><td>{escape(r.failure)}</td><td>{escape(r.evidence)}</td>"
            f"<td><b>{escape(r.status)}</b></td><td>{rate(r.rate)}</td>"
            f"<td>{escape(r.detail)} ({escape(r.bench)})</td></tr>" for r in self.rows)
        return ("<table><tr><th>failure</th><th>evidence</th><th>status</th><th>rate</th>"
                f"<th>on the bench</th></tr>{body}</table>"
                f"<p class='note'>{escape(self.sentence())} Figures: {escape(self.source)}; "
                "not measured at audit time.</p>")


@cache
def _table() -> dict[str, Any]:
    with resources.files("aqi.data").joinpath("coverage.json").open(encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("schema") != SCHEMA:  # pragma: no cover - the file ships with the package
        raise ValueError(f"aqi/data/coverage.json has schema {doc.get('schema')!r}, "
                         f"expected {SCHEMA!r}; reinstall aqi")
    return doc


def audit_coverage(mode: str = "full") -> Coverage:
    """The coverage section of an audit whose evidence is ``mode``'s.

    Parameters
    ----------
    mode : {"full", "latent"}
        ``"full"``: behaviour generated and judged (and the activations); ``"latent"``:
        the audited model's refusal predicted from its activations
        (``aqi audit --latent-only``).

    Returns
    -------
    Coverage
        The rows of the benches' coverage table that this evidence covers, in order.

    Raises
    ------
    ArgumentError
        ``mode`` is neither ``"full"`` nor ``"latent"``.
    """
    if mode not in MODES:
        raise ArgumentError("{mode}; expected 'full' or 'latent'", mode=mode)
    doc = _table()
    rows = tuple(CoverageRow(**{k: r[k] for k in CoverageRow.__dataclass_fields__})
                 for r in doc["rows"] if mode in r["modes"])
    return Coverage(mode=mode, rows=rows, source=doc["source"])
