"""Agreement of a judge with reference labels: raw agreement and Cohen's kappa."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["JudgeAgreement", "judge_agreement"]


@dataclass(frozen=True)
class JudgeAgreement:
    """How often a judge agrees with reference labels (``True`` = refusal).

    ``kappa`` is Cohen's κ, ``(p_o - p_e) / (1 - p_e)`` with ``p_e`` the
    agreement expected from the two marginal rates; NaN when ``p_e = 1``
    (both raters constant and equal).
    """

    n: int
    agreement: float
    kappa: float
    both: int
    judge_only: int
    reference_only: int
    neither: int

    def __repr__(self) -> str:
        return (f"JudgeAgreement({self.agreement:.1%} of {self.n}, κ={self.kappa:.3f}; "
                f"judge-only refusals {self.judge_only}, missed refusals "
                f"{self.reference_only})")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def judge_agreement(judged: Sequence[bool], reference: Sequence[bool]) -> JudgeAgreement:
    """Agreement and Cohen's κ between a judge's verdicts and reference labels.

    Examples
    --------
    >>> judge_agreement([True, True, False, False], [True, False, False, False])
    JudgeAgreement(75.0% of 4, κ=0.500; judge-only refusals 1, missed refusals 0)
    """
    a, b = list(judged), list(reference)
    if len(a) != len(b) or not a:
        raise ValueError(f"judged ({len(a)}) and reference ({len(b)}) must be equally long "
                         "and non-empty")  # fmt: skip
    if not all(isinstance(x, bool) for x in a + b):
        raise TypeError("judged and reference must hold bools")
    n = len(a)
    both = sum(x and y for x, y in zip(a, b, strict=True))
    judge_only = sum(x and not y for x, y in zip(a, b, strict=True))
    reference_only = sum(y and not x for x, y in zip(a, b, strict=True))
    neither = n - both - judge_only - reference_only
    p_o = (both + neither) / n
    pa, pb = sum(a) / n, sum(b) / n
    p_e = pa * pb + (1 - pa) * (1 - pb)
    kappa = float("nan") if p_e == 1 else (p_o - p_e) / (1 - p_e)
    return JudgeAgreement(n=n, agreement=p_o, kappa=kappa, both=both, judge_only=judge_only,
                          reference_only=reference_only, neither=neither)  # fmt: skip
