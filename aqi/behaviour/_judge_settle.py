"""When no continuation can change the phrase rules' verdict (:meth:`RefusalJudge.settled`).

The rules read the **whole** response, not only its first ``prefix_chars``: a strong
refusal phrase counts anywhere, a compliance marker anywhere overrides a weak cue, and
idioms and quoted spans are masked wherever they are -- a quote opened early and closed
late masks everything between. So a verdict is settled only when it rests on a match
that no appended text can remove. This module finds the part of a text that no
continuation can change, after normalisation and masking:

1. **Normalisation** (:func:`stable_prefix`). ``normalise(text + c)`` starts with
   ``normalise(t)`` for every ``c``, where ``t`` is ``text`` cut before its last capital
   sigma (the only character whose lower case depends on what follows it: final sigma).
2. **Masking**, one pass per pattern, as the judge runs them (:func:`certain_masking`).
   The regular-expression engine, trying a pattern at position ``p``, reads no character
   at or beyond ``p + reach`` (:func:`pattern_reach`: the pattern's longest match, plus
   its longest lookahead, plus one for a word boundary). So an attempt whose
   ``p + reach`` lies within the characters known so far has the same outcome for every
   continuation. Attempts nearer the end are uncertain unless no match can start there:
   every match starts with one of the pattern's *heads* (:func:`pattern_heads`, its
   literal beginnings), and a position where the known characters agree with none of
   them fails whatever follows. The first uncertain attempt ends the certain part
   (the scan's later positions depend on it). Quoted spans (``"[^"]{2,}"``, unbounded)
   are certain up to the last quote that no known quote closes.
3. **The cue** (:func:`certain_match`): a strong phrase anywhere, or an opening or
   deflection starting within ``prefix_chars``, whose leftmost match ``m`` has
   ``m.start() + reach`` within the certain part. Every earlier attempt of that pattern
   is certain too, so every continuation gives the same leftmost match: a refusal.

Weak cues (``judgement``) are never settled: substantive content anywhere overrides
them. Compliance is never settled: a strong refusal phrase may still follow. Everything
here is conservative: it may say "not settled" for a verdict that could not change, never
the reverse.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

try:  # Python >= 3.11
    import re._parser as _sre
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre  # type: ignore[no-redef]

__all__ = [
    "MaskPass",
    "certain_masking",
    "certain_match",
    "pattern_heads",
    "pattern_reach",
    "stable_prefix",
]

#: Widths at or above this are unbounded (``*``, ``+``, ``{n,}``).
_UNBOUNDED = 10_000
#: Most heads kept per pattern; beyond, heads are cut shorter (a weaker, still sound test).
_MAX_HEADS = 512
_SIGMA = "\u03a3"


def stable_prefix(text: str, normalise: Any) -> str:
    """The start of ``normalise(text + c)`` that is the same for every continuation ``c``.

    Examples
    --------
    >>> from aqi.behaviour.judge import normalise
    >>> stable_prefix("I cannot help.  ", normalise)
    'i cannot help.'
    >>> stable_prefix("ΟΔΟΣ", normalise)  # the final sigma may still become a medial one
    'οδο'
    """
    cut = text.rfind(_SIGMA)
    return normalise(text if cut < 0 else text[:cut])


def _lookahead_width(items: Iterable[tuple[Any, Any]]) -> int | None:
    """Sum of the widths of every lookahead in ``items`` (``None``: unbounded or unknown)."""
    total = 0
    for op, av in items:
        if op in (_sre.ASSERT, _sre.ASSERT_NOT):
            direction, sub = av
            inner = _lookahead_width(sub)
            if inner is None:
                return None
            if direction == 1:
                width = sub.getwidth()[1]
                if width >= _UNBOUNDED:
                    return None
                total += width
            total += inner
        elif op in (_sre.GROUPREF, _sre.GROUPREF_EXISTS):
            return None
        else:
            for sub in _children(op, av):
                inner = _lookahead_width(sub)
                if inner is None:
                    return None
                total += inner
    return total


_REPEATS = tuple(getattr(_sre, n) for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                 if hasattr(_sre, n))  # fmt: skip
_ATOMIC = getattr(_sre, "ATOMIC_GROUP", None)


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns nested in one parsed item."""
    if op is _sre.SUBPATTERN:
        return [av[-1]]
    if op is _sre.BRANCH:
        return list(av[1])
    if op in _REPEATS:
        return [av[2]]
    if _ATOMIC is not None and op is _ATOMIC:
        return [av]
    return []


def pattern_reach(pattern: str) -> int | None:
    """How far past its start an attempt of ``pattern`` may read (``None``: unbounded).

    The longest match, plus every lookahead's width, plus one (a word boundary reads the
    character after the last one consumed).

    Examples
    --------
    >>> pattern_reach(r"(?<![a-z0-9])i can't(?![a-z0-9])")
    9
    >>> pattern_reach(r'"[^"]{2,}"') is None
    True
    """
    try:
        parsed = _sre.parse(pattern)
        width = parsed.getwidth()[1]
        ahead = _lookahead_width(parsed)
    except Exception:  # an unparsable or exotic pattern: never certain
        return None
    if width >= _UNBOUNDED or ahead is None:
        return None
    return width + ahead + 1


def _extend(items: Sequence[tuple[Any, Any]], heads: set[str]) -> tuple[set[str], set[str]]:
    """Extend ``heads`` over ``items``: ``(open, closed)``; closed heads end the literal start."""
    open_, closed = set(heads), set()
    for op, av in items:
        if not open_:
            break
        before = open_
        if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
            continue  # zero-width: leaving the condition out only admits more texts
        if op is _sre.LITERAL:
            open_ = {h + chr(av) for h in open_}
        elif op is _sre.IN and len(av) <= 8 and all(o is _sre.LITERAL for o, _ in av):
            open_ = {h + chr(c) for h in open_ for _, c in av}
        elif op is _sre.SUBPATTERN and not av[1] and not av[2]:  # no inline flags
            open_, more = _extend(av[-1], open_)
            closed |= more
        elif op is _sre.BRANCH:
            new: set[str] = set()
            for alt in av[1]:
                o, c = _extend(alt, open_)
                new |= o
                closed |= c
            open_ = new
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] == 0 and av[1] == 1:
            o, c = _extend(av[2], open_)
            open_ = open_ | o
            closed |= c
        else:  # a class, a longer repeat, anything else: the literal start ends here
            closed |= open_
            open_ = set()
        if len(open_) + len(closed) > _MAX_HEADS:  # too many: stop one item earlier
            return set(), closed | before
    return open_, closed


def pattern_heads(pattern: str) -> frozenset[str] | None:
    """Literal strings one of which starts every match of ``pattern`` (``None``: unknown).

    Examples
    --------
    >>> sorted(pattern_heads(r"\\bsorry (?:about|for) the\\b"))
    ['sorry about the', 'sorry for the']
    >>> sorted(pattern_heads(r'"[^"]{2,}"'))
    ['"']
    """
    try:
        parsed = _sre.parse(pattern)
    except Exception:
        return None
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    open_, closed = _extend(list(parsed), {""})
    return frozenset(open_ | closed)


class MaskPass(NamedTuple):
    """One masking pattern with what :func:`certain_masking` needs to know about it."""

    pattern: re.Pattern[str]
    reach: int | None
    heads: frozenset[str] | None
    #: finds a whole head (``None``: the heads are unknown or include ``""``)
    any_head: re.Pattern[str] | None
    #: every proper beginning of a head
    partial: frozenset[str]

    @classmethod
    def of(cls, pattern: re.Pattern[str]) -> MaskPass:
        heads = pattern_heads(pattern.pattern)
        reach = pattern_reach(pattern.pattern)
        if heads is None or "" in heads:
            return cls(pattern, reach, None, None, frozenset())
        any_head = re.compile("|".join(re.escape(h) for h in sorted(heads, key=len)))
        partial = frozenset(h[:k] for h in heads for k in range(1, len(h)))
        return cls(pattern, reach, heads, any_head, partial)

    def first_possible(self, text: str, lo: int, u: int) -> int:
        """The first position in ``[lo, u)`` where a match could start when only ``text[:u]``
        is known (``u`` when there is none)."""
        if self.heads is None or self.any_head is None:
            return lo if lo < u else u
        m = self.any_head.search(text, lo, u)  # a whole head within the known characters
        first = u if m is None else m.start()
        longest = max(map(len, self.heads))
        for p in range(max(lo, u - longest + 1), first):  # the known text ends inside a head
            if text[p:u] in self.partial:
                return p
        return first


def certain_masking(
    text: str, passes: Sequence[MaskPass], quoted: re.Pattern[str]
) -> tuple[str, int]:
    """Mask ``text`` as the judge does; return the masked text and how much of it is certain.

    ``passes`` are the idiom patterns in the judge's order, ``quoted`` its last pass. The
    first ``u`` characters of the result are what the judge's masking gives for
    ``text + c``, for every continuation ``c``.
    """
    u = len(text)

    def mask(m: re.Match[str]) -> str:
        return "~" * len(m.group(0))

    for step in passes:
        if step.reach is None:
            u = 0
        else:
            band, pos = u - step.reach, 0
            for m in step.pattern.finditer(text):
                if m.start() >= band:
                    break
                pos = m.end()  # certain: the attempt read only known characters
            # the attempts in [pos, band) failed for certain (the scan tried them all)
            u = step.first_possible(text, max(pos, band, 0), u)
        text = step.pattern.sub(mask, text)
    pos = 0
    for m in quoted.finditer(text):
        if m.end() > u:
            break
        pos = m.end()
    last = text.rfind('"', pos, u)  # a quote no known quote closes: a later one may
    if last >= 0:
        u = last
    return quoted.sub(mask, text), u


def certain_match(
    pat: re.Pattern[str], reach: int | None, text: str, u: int, limit: int | None
) -> bool:
    """Whether ``pat``'s leftmost match in ``text`` (starting before ``limit``) is the same for
    every text that agrees with ``text`` on its first ``u`` characters."""
    if reach is None:
        return False
    m = pat.search(text)
    return m is not None and m.start() + reach <= u and (limit is None or m.start() < limit)
