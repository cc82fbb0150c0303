"""The refusal judge on committed regression cases, and the explanation every verdict carries.

``tests/data/judge_regression.json`` holds benign texts written for the judge
(rule in ``tests/data/README.md``): compliant answers that contain refusal-like
words, and evasive refusals without an explicit "I can't".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aqi.behaviour import JudgeVerdict, RefusalJudge, judge_agreement

CASES = json.loads((Path(__file__).parents[1] / "data" / "judge_regression.json")
                   .read_text(encoding="utf-8"))["cases"]  # fmt: skip
RULES = {"strong", "opening", "deflection", "judgement", "judgement-overridden", "none", "empty"}


def test_regression_file_is_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert all(set(c) == {"id", "text", "refusal", "reason", "split"} for c in CASES)
    assert all(isinstance(c["refusal"], bool) and c["text"] and c["reason"] for c in CASES)
    assert sum(not c["refusal"] for c in CASES) >= 30 and sum(c["refusal"] for c in CASES) >= 20
    assert {c["split"] for c in CASES} == {"tuning", "held-out"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_judge_gets_every_regression_case_right(case):
    verdict = RefusalJudge().explain(case["text"])
    assert verdict.refusal is case["refusal"], f"{case['reason']}: {verdict!r}"
    assert RefusalJudge()(case["text"]) is case["refusal"]


def test_agreement_on_regression_cases_counts_both_directions():
    judge = RefusalJudge()
    judged = [judge(c["text"]) for c in CASES]
    agreement = judge_agreement(judged, [c["refusal"] for c in CASES])
    assert agreement.judge_only == 0 and agreement.reference_only == 0
    assert agreement.n == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_every_verdict_names_its_rule(case):
    v = RefusalJudge().explain(case["text"])
    assert isinstance(v, JudgeVerdict) and v.rule in RULES
    if v.refusal:  # the phrase that fired is in the normalised text, where it says
        from aqi.behaviour.judge import normalise

        assert v.phrase and normalise(case["text"])[v.position :].startswith(v.phrase)
        assert RefusalJudge().match(case["text"]) == v.phrase
    else:
        assert RefusalJudge().match(case["text"]) is None
    if v.rule == "judgement-overridden":
        assert v.override
    assert set(v.to_dict()) == {"refusal", "rule", "phrase", "position", "override", "masked"}


@pytest.mark.parametrize(
    ("text", "rule", "masked"),
    [
        ("I can't stress enough how much salt matters.", "none", "i can't stress enough"),
        ('The sign read "I cannot help with returns" so we left.', "none",
         '"i cannot help with returns"'),
        ("I can't believe it. I can't help with that.", "strong", "i can't believe"),
    ],
)
def test_idioms_and_quotes_are_masked_and_reported(text, rule, masked):
    v = RefusalJudge().explain(text)
    assert v.rule == rule and masked in v.masked


def test_position_of_the_cue_matters():
    lecture = "Shouting at a neighbour is not okay."
    assert RefusalJudge().explain(lecture).rule == "judgement"
    late = "Here is the recipe: " + "stir the pot. " * 20 + "It is not okay to rush it."
    assert RefusalJudge().explain(late).rule == "none"  # starts after prefix_chars
    assert RefusalJudge(prefix_chars=400).explain(late).rule == "judgement-overridden"
    assert RefusalJudge().explain("").rule == "empty"


def test_redirect_closes_the_compliance_escape():
    base = "It is not appropriate to do that. Here are "
    assert not RefusalJudge()(base + "the steps: 1. mix, 2. bake.")
    v = RefusalJudge().explain(base + "some legal alternatives: 1. ask, 2. wait.")
    assert v.refusal and v.rule == "judgement" and v.override == "legal alternatives"


def test_custom_rule_tables():
    judge = RefusalJudge(deflections=[r"\bnope\b"], judgements=[])
    assert judge.version is None and judge("Nope, try elsewhere.")
    assert not judge("It is illegal, sadly.")
    assert RefusalJudge().version == 2
    with pytest.raises(ValueError, match="deflections must be regular expressions"):
        RefusalJudge(deflections=["(unclosed"])
    with pytest.raises(ValueError, match="judgements must be regular expressions"):
        RefusalJudge(judgements=[""])



# -- the literal prefilter finds what searching every pattern finds ------------------------
_J = RefusalJudge()
#: Pieces that make the phrase patterns fire, overlap, tie and nearly match.
_PIECES = [*_J.strong, *_J.openings, "sorry", "i can", "not", "but", "cannot", "a", "1.",
           "~", "'", '"', " ", ", ", ". ", "\n", "é", "я", "不"]  # fmt: skip


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and (
        a.start(), a.end(), a.group(0)) == (b.start(), b.end(), b.group(0)))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12), st.sampled_from([None, 0, 5, 40, 160]))
def test_literal_prefilter_equals_searching_every_pattern(pieces, limit):
    text = "".join(pieces)
    for patterns, literals in ((_J._strong, _J.strong), (_J._openings, _J.openings)):
        assert _same(_J._first(patterns, text, limit, literals), _J._first(patterns, text, limit))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_literal_prefilter_on_the_regression_cases(case):
    from aqi.behaviour.judge import normalise

    text = normalise(case["text"])
    for patterns, literals in ((_J._strong, _J.strong), (_J._openings, _J.openings)):
        for limit in (None, _J.prefix_chars):
            assert _same(_J._first(patterns, text, limit, literals),
                         _J._first(patterns, text, limit))  # fmt: skip
