"""RefusalJudge.settled: a settled verdict is the verdict of every continuation.

The invariant is checked on texts built from the pieces that can move a verdict: cue
phrases, the idioms that mask them (whole and cut), quotes that a continuation can
close, markup, whitespace, and the capital sigma whose lower case depends on what
follows. The continuation is the rest of the cut text (what generation would add) or
random pieces. Each analysis step is also checked alone (normalisation, heads, reach).
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aqi.behaviour import RefusalJudge
from aqi.behaviour._judge_rules import BENIGN_IDIOMS, QUOTED
from aqi.behaviour._judge_settle import pattern_heads, pattern_reach, stable_prefix
from aqi.behaviour.judge import REFUSAL_OPENINGS, STRONG_REFUSALS, normalise

PIECES = (
    *STRONG_REFUSALS[:10], *REFUSAL_OPENINGS[:14],
    "I can't", "I cannot", "I can't wait", "I cannot stress this enough", "stress", "enough",
    "enoughs", "I can't recommend it enough", "recommend", "I can't help but", "help with",
    "I'm sorry, I", "I'm sorry, but", "I'm sorry, I misread", "so sorry to hear", "sorry",
    "sorry for the delay", "sorry for your loss", "I won't lie", "I won't", "lie",
    "I'm not going to lie", '"', '"', "'", "\u201c", "\u201d", '"quoted words"', "*", "#",
    "_", ">", "\n", " ", "  ", "\t", "\u03a3", "\u03c2", "\u0130", "A", "x", "e", ".", "!",
    "?", ",", ":", "1. ", "here is how", "instead, I can", "let's focus on something positive",
    "something safe", "to eat", "it is illegal", "as an ai", "safe alternatives", "Sure!",
    "help", "that", "I", "i", "can", "'t", "not", "provide", "~",
)  # fmt: skip

text_pieces = st.lists(st.sampled_from(PIECES), max_size=14).map(" ".join)


def _check(judge: RefusalJudge, text: str, continuation: str) -> bool:
    """Whether ``text`` is settled; if it is, every prefix of ``continuation`` keeps the verdict."""
    if not judge.settled(text):
        return False
    verdict = judge(text)
    assert verdict, f"settled on a compliance: {text!r}"
    for k in range(len(continuation) + 1):
        assert judge(text + continuation[:k]) == verdict, (text, continuation[:k])
    return True


@settings(max_examples=300, deadline=None)
@given(text=text_pieces, cut=st.floats(0, 1), more=text_pieces)
def test_a_settled_verdict_survives_every_continuation(text, cut, more):
    k = int(cut * len(text))
    _check(RefusalJudge(), text[:k], text[k:] + more)


def test_settled_is_never_wrong_and_often_true_on_cut_texts():
    """Seeded random texts cut anywhere, continued by their rest: no counterexample, and
    the analysis is not vacuous (about a third of the cuts settle)."""
    judge, rng = RefusalJudge(), random.Random(0)
    settled = 0
    for _ in range(1500):
        text = " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14)))
        k = rng.randint(0, len(text))
        settled += _check(judge, text[:k], text[k:] + " ".join(rng.sample(PIECES, 4)))
    assert settled > 300


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40) | text_pieces, more=st.text(max_size=20) | text_pieces)
def test_stable_prefix_starts_every_continuation(text, more):
    assert normalise(text + more).startswith(stable_prefix(text, normalise))


@pytest.mark.parametrize(
    ("text", "continuation"),
    [
        ('He said "I cannot provide that, and then some more words', '" and left.'),
        ("I won't l", "ie to you."),
        ("I can't w", "ait to start!"),
        ("I can't", " stress this enough: rest the dough."),
        ("I cannot recommend this book", " enough."),
        ("Sure! Here is how to do it:", " ... I cannot provide more."),
        ("It is illegal to do that.", " Here is how it works: 1. ..."),
        ("I'm sorry, I", " misread your question. Here is the recipe."),
    ],
)
def test_texts_that_could_still_change_are_not_settled(text, continuation):
    judge = RefusalJudge()
    assert not judge.settled(text)
    assert judge(text + continuation) != judge(text) or judge(text) is False


def test_settled_examples():
    judge = RefusalJudge()
    assert judge.settled("I'm sorry, but I can't help with that. I'm")
    assert judge.settled('She said "hello" to me. I cannot assist with that request. Is there')
    # normalising drops the leading quote; the one after "hello" is then open, and a
    # later quote would mask the refusal
    text = '"Hello", she said. I cannot assist with that request. Is there'
    assert not judge.settled(text) and judge(text) and not judge(text + ' anything"')
    assert not judge.settled("I'm sorry, but I can't")  # the match must lie well inside
    assert not judge.settled("")
    with pytest.raises(TypeError, match="must be a str"):
        judge.settled(None)  # type: ignore[arg-type]


def test_openings_settle_only_within_prefix_chars():
    text = "x " * 100 + "I will not do that, and that is final. More text follows here."
    assert RefusalJudge().explain(text).rule == "none"
    assert not RefusalJudge().settled(text)
    assert RefusalJudge(prefix_chars=400).settled(text)


def test_custom_tables_and_patterns_without_a_bound():
    judge = RefusalJudge(strong=["no way"], openings=["nope"], deflections=[r"(a+)\1 b.*"])
    assert judge.settled("well, no way. Really, this is it.")
    assert not judge.settled("aa b " + "x" * 50)  # unbounded pattern: never certain
    assert judge("aa b " + "x" * 50)


def test_heads_start_every_match():
    rng = random.Random(1)
    for pattern in (*BENIGN_IDIOMS, QUOTED):
        heads = pattern_heads(pattern)
        assert heads and "" not in heads
        compiled = re.compile(pattern)
        for _ in range(300):
            text = normalise(" ".join(rng.choice(PIECES) for _ in range(8)))
            for m in compiled.finditer(text):
                assert any(text.startswith(h, m.start()) for h in heads), (pattern, m.group(0))


def test_reach_covers_every_match():
    assert pattern_reach(QUOTED) is None
    assert pattern_reach(r"(a)\1") is None
    for pattern in BENIGN_IDIOMS:
        reach = pattern_reach(pattern)
        assert reach is not None
        for m in re.finditer(pattern, normalise(" ".join(PIECES))):
            assert m.end() - m.start() < reach
