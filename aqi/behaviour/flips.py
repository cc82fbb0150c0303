"""Which prompts changed behaviour between two models: the paired refusal flips.

:func:`aqi.behaviour.compare_refusal` counts them (the off-diagonal of the 2×2
table); :func:`refusal_flips` names them, so that a reviewer reads the prompts
behind the counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .judge import judge_responses
from .refusal import _responses
from .responses import Responses

__all__ = ["RefusalFlip", "first_line", "refusal_flips"]

#: A response's first line is cut to this many characters in a flip.
FIRST_LINE_CHARS = 200


def first_line(text: str, limit: int = FIRST_LINE_CHARS) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters (``…`` added).

    Examples
    --------
    >>> first_line("\\n  Sure! Here is how.\\nStep 1 ...")
    'Sure! Here is how.'
    >>> first_line("x" * 5, limit=3)
    'xxx…'
    """
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[:limit] + "…"


@dataclass(frozen=True)
class RefusalFlip:
    """One prompt judged differently in the baseline's response and the audited model's.

    ``direction`` is ``"stopped refusing"`` (the baseline refused, the audited model
    does not) or ``"started refusing"``; ``baseline_response`` / ``response`` hold the
    first line of each response (``None`` when left out of the report).
    """

    prompt_id: str
    label: str
    category: str
    prompt: str
    baseline_refused: bool
    refused: bool
    baseline_response: str | None
    response: str | None

    @property
    def direction(self) -> str:
        return "stopped refusing" if self.baseline_refused else "started refusing"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "direction": self.direction}

    def without_text(self) -> RefusalFlip:
        """The same flip without the responses' text (``--no-response-text``)."""
        from dataclasses import replace

        return replace(self, baseline_response=None, response=None)


def refusal_flips(
    baseline: Responses,
    audited: Responses,
    judge: Callable[[str], Any] | None = None,
    *,
    texts: Mapping[str, str] | None = None,
    sample: int = 0,
) -> tuple[RefusalFlip, ...]:
    """The prompts whose judged refusal differs between ``baseline`` and ``audited``.

    Pairs by prompt id (so two models with different tokenizers pair as well), judges
    both responses with the same judge, and returns the flips sorted by category, then
    label and prompt id.

    Parameters
    ----------
    baseline, audited : Responses
        The two models' responses to the same prompts (ids present in only one are
        left out: :func:`aqi.behaviour.compare_refusal` refuses them).
    judge : judge, judge name or None
        Anything :func:`~aqi.behaviour.resolve_judge` takes (default the
        :class:`~aqi.behaviour.RefusalJudge`); a pair with an unsure label is no flip.
    texts : mapping, optional
        ``{prompt id: prompt text}`` (e.g. from the store); default: empty texts.
    sample : int, default 0
        Which sample to pair when several were drawn.

    Examples
    --------
    >>> from aqi.behaviour import Response
    >>> a = [Response("u1", 0, "I cannot help with that.", "unsafe", "weapons"),
    ...      Response("u2", 0, "I won't.", "unsafe", "fraud")]
    >>> b = [Response("u1", 0, "Sure! First, ...", "unsafe", "weapons"),
    ...      Response("u2", 0, "I won't.", "unsafe", "fraud")]
    >>> [(f.prompt_id, f.direction) for f in refusal_flips(a, b)]
    [('u1', 'stopped refusing')]
    """
    ra = {r.prompt_id: r for r in _responses(baseline) if r.sample == sample}
    rb = {r.prompt_id: r for r in _responses(audited) if r.sample == sample}
    ids = [i for i in ra if i in rb]
    from .judges import resolve_judge

    judge = resolve_judge(judge)
    va = judge_responses([ra[i] for i in ids], judge)
    vb = judge_responses([rb[i] for i in ids], judge)
    texts = texts or {}
    flips = [
        RefusalFlip(
            prompt_id=i, label=rb[i].label, category=rb[i].category,
            prompt=str(texts.get(i, "")), baseline_refused=bool(a), refused=bool(b),
            baseline_response=first_line(ra[i].text), response=first_line(rb[i].text),
        )
        for i, a, b in zip(ids, va, vb, strict=True)
        if a is not None and b is not None and a != b  # an unsure label flips nothing
    ]
    return tuple(sorted(flips, key=lambda f: (f.category, f.label, f.prompt_id)))
