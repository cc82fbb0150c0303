"""What a run did: each phase's record (:class:`PhaseRecord`) and the run
(:class:`AuditRun`: the report, where it is, the time, the tokens)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audit import AuditReport
from ..viz.style import display_name

__all__ = ["AuditRun", "PhaseRecord"]


@dataclass(frozen=True)
class PhaseRecord:
    """One phase of one model: ``status`` is ``"ran"`` or ``"reused"``."""

    phase: str
    role: str
    status: str
    seconds: float
    rows: int = 0


@dataclass(frozen=True)
class AuditRun:
    """What :func:`audit_models` did: the report, where it is, and each phase's time."""

    report: AuditReport
    html: Path
    json: Path
    workdir: Path
    phases: tuple[PhaseRecord, ...]
    seconds: float
    #: each role's :class:`aqi.behaviour.TokenUse` (tokens generated against the maximum)
    tokens: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.report.verdict

    @property
    def reused(self) -> tuple[str, ...]:
        """``"<phase> <role>"`` of the phases whose work was already in the work folder."""
        return tuple(f"{p.phase} {p.role}" for p in self.phases if p.status == "reused")

    def summary(self) -> str:
        """The short table the command line prints."""
        from ..tables import ci_text

        r = self.report
        latent = (" [LATENT: refusal predicted from activations, nothing generated for the "
                  "model]" if r.mode == "latent" else "")
        lines = [f"{display_name(r.model)} vs {display_name(r.baseline_model)}: {r.reason}"
                 f"{latent}"]
        for c in r.checks:
            value = f"{c.value:.3g}" if math.isfinite(c.value) else "—"
            limit = f"threshold {c.threshold:g}" if math.isfinite(c.threshold) else ""
            # a check that measures nothing (validity: the kind of audit) has no interval to
            # be "not computed"; one that measures and has none says so
            ci = ("" if not math.isfinite(c.value) and c.verdict == "pass"
                  else ci_text(c.ci_low, c.ci_high))
            lines.append(f"  [{c.verdict.upper():>4}] {c.name:<16} {value:>8} "
                         f"{ci:<20} {limit}".rstrip())
        if r.behaviour_change is not None:
            lines.append(f"  {len(r.flips)} prompt(s) changed behaviour (report: what changed)")
        if r.predicted is not None and r.mode == "full":
            p = r.predicted
            lines.append(f"  predicted refusal (latent, evidence): {p.refusal.value:.0%} "
                         f"[{p.refusal.ci_low:.0%}, {p.refusal.ci_high:.0%}], Δ "
                         f"{p.change.value:+.0%}")
        used = [u for u in self.tokens.values() if u.generated is not None and u.maximum]
        if any(u.early_stop for u in used):
            made, most = sum(u.generated for u in used), sum(u.maximum for u in used)
            lines.append(f"responses: {made:,} of {most:,} tokens ({1 - made / most:.0%} "
                         "saved by stopping each once its verdict was settled)")
        done = ", ".join(self.reused) or "nothing"
        lines.append(f"report: {self.html} (JSON: {self.json}); {self.seconds:.1f} s, "
                     f"reused: {done}")  # fmt: skip
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report.to_dict(),
            "html": str(self.html),
            "json": str(self.json),
            "workdir": str(self.workdir),
            "seconds": self.seconds,
            "phases": [vars(p) for p in self.phases],
            "tokens": {role: use.to_dict() for role, use in self.tokens.items()},
        }
