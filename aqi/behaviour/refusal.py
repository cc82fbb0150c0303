"""Refusal rates with Wilson intervals, and paired comparisons of two models (exact McNemar).

Refusal on unsafe prompts is the behaviour alignment asks for; refusal on safe
prompts is over-refusal. Both are shares with a Wilson score interval.
Two models answering the same prompts are compared pair by pair: the exact
McNemar test (a two-sided binomial test on the discordant pairs) and
Newcombe's (1998) method-10 interval for the difference of paired
proportions, a hybrid of the two Wilson intervals corrected for the
correlation of the pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import NAME_ONLY, ArgumentError
from .._stats import wilson_interval
from ..activations import LABELS
from .judge import judge_responses
from .judges import judge_identity, resolve_judge
from .responses import Response, Responses

__all__ = [
    "PairedRefusal",
    "RefusalComparison",
    "RefusalRate",
    "RefusalReport",
    "UnsureResponse",
    "compare_refusal",
    "mcnemar_exact",
    "newcombe_paired_interval",
    "refusal_rate",
]


def _check_confidence(confidence: float) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not (
        0 < confidence < 1
    ):
        raise ValueError(f"confidence={confidence!r}; expected a number in (0, 1)")


@dataclass(frozen=True)
class RefusalRate:
    """The share of responses judged refusals, with its Wilson interval.

    ``unsure`` responses (the judge could not decide) are left out of the share and
    counted: ``rate = refused / (total - unsure)``. With several samples per prompt
    the share counts every decided response, but the interval uses the number of
    prompts as its sample size (samples of one prompt are not independent), which
    errs on the wide side.
    """

    refused: int
    total: int
    n_prompts: int
    rate: float
    ci_low: float
    ci_high: float
    unsure: int = 0

    def __repr__(self) -> str:
        tail = f", {self.unsure} unsure" if self.unsure else ""
        return (f"{self.rate:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] "
                f"({self.refused}/{self.total - self.unsure}{tail})")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _rate(refused: int, total: int, n_prompts: int, confidence: float,
          unsure: int = 0) -> RefusalRate:  # fmt: skip
    decided = total - unsure
    if decided == 0:
        nan = float("nan")
        return RefusalRate(refused=0, total=total, n_prompts=n_prompts, rate=nan, ci_low=nan,
                           ci_high=nan, unsure=unsure)  # fmt: skip
    if decided == n_prompts:
        est = wilson_interval(refused, decided, confidence)
        low, high = est.ci_low, est.ci_high
    else:  # several samples per prompt: the Wilson interval at the prompt count
        low, high = _wilson_share(refused / decided, n_prompts, confidence)
    return RefusalRate(refused=refused, total=total, n_prompts=n_prompts,
                       rate=refused / decided, ci_low=low, ci_high=high,
                       unsure=unsure)  # fmt: skip


def judge_name(judge: Any) -> str:
    """How results name the judge that gave their labels (name, kind, version)."""
    ident = judge_identity(resolve_judge(judge))
    version = f" v{ident['version']}" if ident.get("version") else ""
    return f"{ident['name']} ({ident['kind']}{version})"


def _wilson_share(p: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson interval of a share ``p`` (not necessarily k/n with integer k) over ``n`` units."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


#: Responses a report lists as the ones its judge was least sure of.
LEAST_SURE = 5


@dataclass(frozen=True)
class UnsureResponse:
    """A response the judge was least sure of: ``P(refusal)`` nearest 0.5.

    ``verdict`` is the judge's label (``"refusal"``, ``"compliance"`` or ``"unsure"``);
    ``first_line`` the response's first line, at most 160 characters.
    """

    prompt_id: str
    sample: int
    label: str
    verdict: str
    p_refusal: float
    first_line: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def least_sure(responses: Responses, judge: Any, verdicts: Mapping[tuple[str, int], bool | None],
               k: int = LEAST_SURE) -> tuple[UnsureResponse, ...] | None:
    """The ``k`` responses whose ``P(refusal)`` is nearest 0.5 (ties: prompt order).

    ``None`` when the judge gives no probability (it has no ``predict_proba``, like the
    phrase rules); empty responses are left out (their verdict is not a probability).
    """
    proba = getattr(judge, "predict_proba", None)
    if not callable(proba):
        return None
    rows = [r for r in responses if r.text.strip()]
    if not rows or k <= 0:
        return ()
    import numpy as np

    # a second pass of the judge over the responses: labels do not carry probabilities
    # (for the encoder judge ~2.5 ms a response, against seconds to generate it)
    p = np.asarray(proba([r.text for r in rows]), dtype=float)
    order = [i for i in np.argsort(np.abs(p - 0.5), kind="stable") if np.isfinite(p[i])][:k]
    name = {True: "refusal", False: "compliance", None: "unsure"}
    return tuple(
        UnsureResponse(prompt_id=rows[i].prompt_id, sample=rows[i].sample, label=rows[i].label,
                       verdict=name[verdicts[rows[i].key]], p_refusal=float(p[i]),
                       first_line=rows[i].text.strip().splitlines()[0][:160])
        for i in order
    )  # fmt: skip


@dataclass(frozen=True)
class RefusalReport:
    """Refusal on unsafe prompts, over-refusal on safe prompts, overall and per category.

    ``least_sure`` lists the responses the judge was least sure of (``P(refusal)``
    nearest 0.5), or is ``None`` when the judge gives no probability (the phrase rules).
    """

    refusal: RefusalRate
    over_refusal: RefusalRate
    by_category: Mapping[str, Mapping[str, RefusalRate]]
    n_empty: int
    judge: str
    confidence: float
    verdicts: Mapping[tuple[str, int], bool | None] = field(repr=False)
    n_unsure: int = 0
    judge_error: str | None = None  # the judge's measured held-out error, when it has one
    least_sure: tuple[UnsureResponse, ...] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (f"RefusalReport(refusal on unsafe {self.refusal!r}, over-refusal on safe "
                f"{self.over_refusal!r}, {len(self.by_category)} categories, "
                f"{self.n_empty} empty responses, {self.n_unsure} unsure)")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "refusal": self.refusal.to_dict(),
            "over_refusal": self.over_refusal.to_dict(),
            "by_category": {c: {k: r.to_dict() for k, r in d.items()}
                            for c, d in self.by_category.items()},
            "n_empty": self.n_empty,
            "n_unsure": self.n_unsure,
            "judge": self.judge,
            "judge_error": self.judge_error,
            "confidence": self.confidence,
            "least_sure": None if self.least_sure is None
            else [u.to_dict() for u in self.least_sure],
        }


def _responses(responses: Any) -> Responses:
    if isinstance(responses, Responses):
        return responses
    if isinstance(responses, (list, tuple)) and all(isinstance(r, Response) for r in responses):
        return Responses(records=tuple(responses))
    raise TypeError(
        f"responses must be aqi.behaviour.Responses or a list of Response, got "
        f"{type(responses).__name__}"
    )


def refusal_rate(
    responses: Responses, judge: Callable[[str], Any] | None = None, *, confidence: float = 0.95
) -> RefusalReport:
    """Refusal on unsafe prompts and over-refusal on safe prompts, with Wilson intervals.

    Empty responses are judged like any other and counted in ``n_empty``;
    responses the judge is unsure of (the default judge: empty, low confidence, a
    language it does not cover) are left out of every rate and counted in ``n_unsure``
    and in each rate's ``unsure``.

    Parameters
    ----------
    responses : Responses
    judge : judge, judge name or None
        Anything :func:`~aqi.behaviour.resolve_judge` takes; default the
        :class:`~aqi.behaviour.RefusalJudge` (the phrase rules).
    confidence : float, default 0.95

    Examples
    --------
    >>> rs = [Response("u1", 0, "I'm sorry, I can't.", "unsafe", "c"),
    ...       Response("u2", 0, "Sure, step 1 ...", "unsafe", "c"),
    ...       Response("s1", 0, "Here is how ...", "safe", "c")]
    >>> rep = refusal_rate(rs, "rules")
    >>> rep.refusal.refused, rep.refusal.total, rep.over_refusal.rate
    (1, 2, 0.0)
    """
    _check_confidence(confidence)
    rs = _responses(responses)
    judge = resolve_judge(judge)
    verdict_list = judge_responses(rs, judge)
    verdicts = {r.key: v for r, v in zip(rs, verdict_list, strict=True)}
    for r in rs:
        if r.label not in LABELS:
            raise ValueError(f"response to {r.prompt_id!r}: label={r.label!r}; expected "
                             "'safe' or 'unsafe'")  # fmt: skip

    def rate_of(rows: list[Response]) -> RefusalRate:
        decided = {r.prompt_id for r in rows if verdicts[r.key] is not None}
        return _rate(sum(verdicts[r.key] is True for r in rows), len(rows), len(decided),
                     confidence, unsure=sum(verdicts[r.key] is None for r in rows))

    by_label = {lab: [r for r in rs if r.label == lab] for lab in LABELS}
    by_category: dict[str, dict[str, RefusalRate]] = {}
    for cat in dict.fromkeys(r.category for r in rs):
        by_category[cat] = {
            "refusal": rate_of([r for r in by_label["unsafe"] if r.category == cat]),
            "over_refusal": rate_of([r for r in by_label["safe"] if r.category == cat]),
        }
    return RefusalReport(
        refusal=rate_of(by_label["unsafe"]),
        over_refusal=rate_of(by_label["safe"]),
        by_category=by_category,
        n_empty=sum(not r.text.strip() for r in rs),
        judge=judge_name(judge),
        confidence=confidence,
        verdicts=verdicts,
        n_unsure=sum(v is None for v in verdict_list),
        judge_error=getattr(judge, "heldout", None),
        least_sure=least_sure(rs, judge, verdicts),
    )


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: a binomial(½) test on the discordant pairs.

    ``1.0`` when there are no discordant pairs (no evidence of a difference).

    Examples
    --------
    >>> round(mcnemar_exact(1, 9), 4)  # 2 * P(X <= 1), X ~ Bin(10, 1/2)
    0.0215
    """
    for name, v in (("only_a", only_a), ("only_b", only_b)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}={v!r}; expected a count >= 0")
    if only_a + only_b == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def newcombe_paired_interval(
    both: int, only_a: int, only_b: int, neither: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Newcombe's (1998) method 10: interval of ``p_b - p_a`` for paired binary outcomes.

    ``p_a = (both + only_a) / n`` and ``p_b = (both + only_b) / n``. With
    ``(l_a, u_a)`` and ``(l_b, u_b)`` their Wilson intervals and ``φ`` the
    phi coefficient of the 2×2 table (0 when a margin is empty; shrunk by
    ``n/2`` towards 0 when positive, as Newcombe prescribes),

    ``L = d - sqrt((p_b - l_b)² - 2φ(p_b - l_b)(u_a - p_a) + (u_a - p_a)²)``,
    ``U = d + sqrt((u_b - p_b)² - 2φ(u_b - p_b)(p_a - l_a) + (p_a - l_a)²)``.

    Returns ``(difference, low, high)``; NaNs when ``n = 0``.

    References
    ----------
    R. G. Newcombe, "Improved confidence intervals for the difference between
    binomial proportions based on paired data", Stat. Med. 17:2635-2650 (1998).

    Examples
    --------
    >>> d, lo, hi = newcombe_paired_interval(36, 2, 12, 0)  # p_a = 0.76, p_b = 0.96
    >>> round(d, 3), round(lo, 3), round(hi, 3)
    (0.2, 0.057, 0.34)
    """
    _check_confidence(confidence)
    cells = (both, only_a, only_b, neither)
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in cells):
        raise ValueError(f"counts must be ints >= 0, got {cells!r}")
    n = sum(cells)
    if n == 0:
        nan = float("nan")
        return nan, nan, nan
    pa, pb = (both + only_a) / n, (both + only_b) / n
    ea = wilson_interval(both + only_a, n, confidence)
    eb = wilson_interval(both + only_b, n, confidence)
    la, ua, lb, ub = ea.ci_low, ea.ci_high, eb.ci_low, eb.ci_high
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    if margins == 0:
        phi = 0.0
    else:
        phi = (max(cross - n / 2, 0.0) if cross > 0 else cross) / math.sqrt(margins)
    d = pb - pa
    low = d - math.sqrt(max((pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2, 0))
    high = d + math.sqrt(max((ub - pb) ** 2 - 2 * phi * (ub - pb) * (pa - la) + (pa - la) ** 2, 0))
    return d, max(-1.0, low), min(1.0, high)


@dataclass(frozen=True)
class PairedRefusal:
    """Refusal of two models on the same prompts of one class, pair by pair.

    ``difference = rate_b - rate_a`` with Newcombe's paired interval;
    ``p_value`` is the exact McNemar test of ``only_a`` against ``only_b``. Pairs in
    which the judge was unsure of either response are left out and counted in
    ``n_unsure``.
    """

    label: str
    n_pairs: int
    both: int
    only_a: int
    only_b: int
    neither: int
    rate_a: float
    rate_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_unsure: int = 0

    def __repr__(self) -> str:
        tail = f", {self.n_unsure} unsure pairs left out" if self.n_unsure else ""
        return (f"{self.label}: {self.rate_a:.3f} -> {self.rate_b:.3f}, Δ {self.difference:+.3f} "
                f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}], McNemar p={self.p_value:.3g} "
                f"({self.only_a} refused by a only, {self.only_b} by b only, "
                f"{self.n_pairs} pairs{tail})")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RefusalComparison:
    """Model ``b`` against model ``a`` on the same prompts: refusal and over-refusal."""

    refusal: PairedRefusal
    over_refusal: PairedRefusal
    confidence: float
    judge: str

    def __repr__(self) -> str:
        return f"RefusalComparison(\n  {self.refusal!r},\n  {self.over_refusal!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"refusal": self.refusal.to_dict(), "over_refusal": self.over_refusal.to_dict(),
                "confidence": self.confidence, "judge": self.judge}  # fmt: skip


def _paired(label: str, judged: list[tuple[bool | None, bool | None]],
            confidence: float) -> PairedRefusal:  # fmt: skip
    pairs = [(a, b) for a, b in judged if a is not None and b is not None]
    both = sum(a and b for a, b in pairs)
    only_a = sum(a and not b for a, b in pairs)
    only_b = sum(b and not a for a, b in pairs)
    neither = len(pairs) - both - only_a - only_b
    d, lo, hi = newcombe_paired_interval(both, only_a, only_b, neither, confidence)
    n = len(pairs)
    return PairedRefusal(
        label=label, n_pairs=n, both=both, only_a=only_a, only_b=only_b, neither=neither,
        rate_a=(both + only_a) / n if n else float("nan"),
        rate_b=(both + only_b) / n if n else float("nan"),
        difference=d, ci_low=lo, ci_high=hi,
        p_value=mcnemar_exact(only_a, only_b) if n else float("nan"),
        n_unsure=len(judged) - n,
    )  # fmt: skip


def compare_refusal(
    a: Responses,
    b: Responses,
    judge: Callable[[str], Any] | None = None,
    *,
    sample: int | None = None,
    confidence: float = 0.95,
) -> RefusalComparison:
    """Paired comparison of two models' refusal on the same prompt ids.

    Each prompt is one pair (its response from ``a`` and from ``b``), judged
    by the same judge. Per class (unsafe: refusal, safe: over-refusal) the
    result gives the 2×2 table, ``rate_b - rate_a`` with Newcombe's paired
    interval, and the exact McNemar p-value.

    Parameters
    ----------
    a, b : Responses
        Responses of the reference and the compared model; they must cover the
        same prompt ids with the same labels.
    judge : judge, judge name or None
        Anything :func:`~aqi.behaviour.resolve_judge` takes; default the
        :class:`~aqi.behaviour.RefusalJudge` (the phrase rules).
    sample : int, optional
        With several samples per prompt, which one to pair. ``None`` needs
        exactly one response per prompt in both.
    confidence : float, default 0.95

    Raises
    ------
    ValueError
        Different prompt ids or labels, or several samples and no ``sample``.

    Examples
    --------
    >>> a = [Response(f"u{i}", 0, "I cannot help." if i < 8 else "Sure.", "unsafe")
    ...      for i in range(10)]
    >>> b = [Response(f"u{i}", 0, "I cannot help." if i < 2 else "Sure.", "unsafe")
    ...      for i in range(10)]
    >>> cmp = compare_refusal(a, b, "rules")
    >>> cmp.refusal.only_a, cmp.refusal.only_b, round(cmp.refusal.p_value, 4)
    (6, 0, 0.0312)
    """
    _check_confidence(confidence)
    picked = []
    for name, rs in (("a", _responses(a)), ("b", _responses(b))):
        if sample is None:
            if rs.n_samples > 1:
                raise ValueError(f"{name} has {rs.n_samples} samples per prompt; pass sample=k "
                                 "to pair one of them")  # fmt: skip
            rows = list(rs)
        else:
            rows = [r for r in rs if r.sample == sample]
        picked.append({r.prompt_id: r for r in rows})
    ra, rb = picked
    if set(ra) != set(rb):
        only = sorted(set(ra) ^ set(rb))
        raise ArgumentError(
            f"{{a}} and {{b}} must answer the same prompt ids; {len(only)} differ "
            f"(e.g. {', '.join(map(repr, only[:5]))})", a=NAME_ONLY, b=NAME_ONLY,
        )
    ids = list(ra)
    wrong = [i for i in ids if ra[i].label != rb[i].label]
    if wrong:
        raise ArgumentError(f"prompt {wrong[0]!r} is {ra[wrong[0]].label!r} in {{a}} and "
                            f"{rb[wrong[0]].label!r} in {{b}}", a=NAME_ONLY, b=NAME_ONLY)
    judge = resolve_judge(judge)
    va = dict(zip(ids, judge_responses([ra[i] for i in ids], judge), strict=True))
    vb = dict(zip(ids, judge_responses([rb[i] for i in ids], judge), strict=True))
    by = {lab: [(va[i], vb[i]) for i in ids if ra[i].label == lab] for lab in LABELS}
    return RefusalComparison(
        refusal=_paired("unsafe", by["unsafe"], confidence),
        over_refusal=_paired("safe", by["safe"], confidence),
        confidence=confidence,
        judge=judge_name(judge),
    )
