"""Settings values (aqi.Rendering, aqi.Writing, aqi.Decoding; aqi.Scoring, aqi.Judging,
aqi.Evidence, aqi.Running) and the keyword arguments that moved into them: checked when
made, accepted the old way until v0.4 with a DeprecationWarning that says what to write
instead, refused when given both ways."""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import numpy as np
import pytest

import aqi
from aqi._errors import ArgumentError
from aqi._settings import moved_keywords

QUIET = aqi.Writing(progress=False)


# -- the values ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [aqi.Rendering, aqi.Writing, aqi.Decoding, aqi.Scoring,
                                  aqi.Judging, aqi.Evidence, aqi.Running])  # fmt: skip
def test_values_are_frozen_keyword_only_and_exported(kind):
    value = kind()
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        kind(1)  # fields by keyword only
    assert kind.__name__ in aqi.__all__ and getattr(aqi, kind.__name__) is kind
    assert kind(**dataclasses.asdict(value)) == value


@pytest.mark.parametrize(
    ("kind", "fields", "match"),
    [
        (aqi.Rendering, {"chat": "yes"}, r"chat='yes'; expected True, False or None"),
        (aqi.Rendering, {"system_prompt": 3}, r"system_prompt=3; expected a string or None"),
        (aqi.Rendering, {"max_length": 0}, r"max_length=0; expected a positive int or None"),
        (aqi.Rendering, {"max_prompt_tokens": -1},
         r"max_prompt_tokens=-1; expected a positive int or None \(no limit\)"),
        (aqi.Rendering, {"include_response": 1}, r"include_response=1; expected True or False"),
        (aqi.Rendering, {"onset_tokens": 0}, r"onset_tokens=0; expected a positive int$"),
        (aqi.Writing, {"batch_size": True}, r"batch_size=True; expected a positive int$"),
        (aqi.Writing, {"overwrite": "no"}, r"overwrite='no'; expected True or False"),
        (aqi.Writing, {"progress": 1}, r"progress=1; expected True, False or None"),
        (aqi.Writing, {"max_tokens_per_batch": 0},
         r"max_tokens_per_batch=0; expected a positive int or None"),
        (aqi.Writing, {"padding_side": "top"},
         r"padding_side='top'; expected 'left', 'right' or None"),
        (aqi.Writing, {"commit_rows": 2.5}, r"commit_rows=2.5; expected a positive int or None"),
        (aqi.Writing, {"compression": "zip"},
         r"compression='zip'; expected 'lzf', 'gzip' or None"),
        (aqi.Decoding, {"max_new_tokens": 0}, r"max_new_tokens=0; expected a positive int"),
        (aqi.Decoding, {"n": 2}, r"n=2 samples per prompt needs do_sample=True"),
        (aqi.Decoding, {"top_p": 0.9}, r"top_p=0.9 has no effect on greedy decoding"),
        (aqi.Decoding, {"do_sample": True, "top_k": 0}, r"top_k=0; expected a positive int"),
        (aqi.Decoding, {"seed": 1.0}, r"seed=1.0; expected an int"),
        (aqi.Scoring, {"n_boot": -1}, r"n_boot=-1; expected an integer in \[0, 1000000\]"),
        (aqi.Scoring, {"n_perm": 2.0}, r"n_perm=2.0; expected an integer in \[0, 1000000\]"),
        (aqi.Scoring, {"seed": -1}, r"seed=-1; expected an int >= 0"),
        (aqi.Scoring, {"pooling": ["mean"]}, r"pooling=\['mean'\]; expected one pooling name"),
        (aqi.Scoring, {"thresholds": 0.5}, r"thresholds=0.5; expected an aqi.AuditThresholds"),
        (aqi.Judging, {"generate": "no"}, r"generate='no'; expected True .* or False"),
        (aqi.Judging, {"verify": -2}, r"verify=-2; expected a whole number of prompts >= 0"),
        (aqi.Judging, {"verify": 4}, r"verify=4 checks a latent prediction: it needs generate"),
        (aqi.Judging, {"labels": 3}, r"labels=3; expected the path of a labels file"),
        (aqi.Judging, {"labels": "l.json", "generate": False},
         r"labels='l.json' label generated responses; a latent audit"),
        (aqi.Judging, {"early_stop": "no"}, r"early_stop='no'; expected True or False"),
        (aqi.Running, {"batch_size": 0}, r"batch_size=0; expected a positive int$"),
        (aqi.Running, {"chat": 1}, r"chat=1; expected True, False or None"),
        (aqi.Running, {"max_new_tokens": 0}, r"max_new_tokens=0; expected a positive int or None"),
        (aqi.Running, {"max_prompt_tokens": 0}, r"max_prompt_tokens=0; expected a positive int"),
        (aqi.Running, {"rebuild": None}, r"rebuild=None; expected True or False"),
        (aqi.Running, {"response_text": "yes"}, r"response_text='yes'; expected True or False"),
    ],
)  # fmt: skip
def test_a_bad_field_is_refused_when_the_value_is_made(kind, fields, match):
    # the resample counts are checked as every resampling function checks them (ValueError)
    error = ValueError if set(fields) <= {"n_boot", "n_perm"} else ArgumentError
    with pytest.raises(error, match=match):
        kind(**fields)


# -- the signatures ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "most", "values"),
    [(aqi.generate_responses, 8, {"rendering", "writing", "decoding"}),
     # the four inputs, the store's three dimensions (layers, pooling, spans), two values
     (aqi.capture, 9, {"rendering", "writing"}),
     (aqi.audit, 8, {"evidence", "scoring", "judging"}),
     (aqi.audit_models, 8, {"scoring", "judging", "running"})],
)  # fmt: skip
def test_public_signatures_take_the_values(fn, most, values):
    params = inspect.signature(fn).parameters
    assert len(params) <= most, list(params)
    assert values <= set(params)


# -- the old keyword arguments -----------------------------------------------------------------
def test_capture_with_old_keywords_warns_and_writes_the_same_store(tiny_factory, small_prompts,
                                                                   tmp_path):  # fmt: skip
    model, tok = tiny_factory("llama")
    ps = small_prompts[:6]
    new = aqi.capture(
        model,
        tok,
        ps,
        tmp_path / "new.h5",
        layers=[0],
        spans="all",
        rendering=aqi.Rendering(chat=False),
        writing=aqi.Writing(batch_size=2, commit_rows=4, progress=False),
    )
    with pytest.warns(DeprecationWarning, match="is deprecated") as caught:
        old = aqi.capture(model, tok, ps, tmp_path / "old.h5", layers=[0], span="all",
                          chat=False, batch_size=2, commit_rows=4, progress=False)  # fmt: skip
    message = str(caught[0].message)
    assert len(caught) == 1 and caught[0].filename == __file__  # the caller's line
    assert message == (
        "capture(span=, chat=, batch_size=, commit_rows=, progress=) is deprecated and stops "
        "working in v0.4; pass spans='all', rendering=aqi.Rendering(chat=False), "
        "writing=aqi.Writing(batch_size=2, commit_rows=4, progress=False)"
    )
    with new, old:
        assert old.provenance["identity"] == new.provenance["identity"]
        np.testing.assert_array_equal(old.activations(0, "mean"), new.activations(0, "mean"))


def test_generate_with_old_keywords_warns_and_returns_the_same(tiny_factory, small_prompts):
    model, tok = tiny_factory("llama")
    ps = small_prompts[:4]
    new = aqi.generate_responses(
        model,
        tok,
        ps,
        decoding=aqi.Decoding(max_new_tokens=3),
        writing=aqi.Writing(batch_size=2, progress=False),
    )
    with pytest.warns(
        DeprecationWarning,
        match=r"pass decoding=aqi\.Decoding\(max_new_tokens=3"
        r"\), writing=aqi\.Writing\(batch_size=2, progress=False\)",
    ):
        old = aqi.generate_responses(model, tok, ps, max_new_tokens=3, batch_size=2,
                                     progress=False)  # fmt: skip
    assert old.records == new.records and old.identity == new.identity


def test_old_keywords_keep_their_messages(tiny_factory, small_prompts, tmp_path):
    """A bad value given the old way is refused by the value, with the message it had."""
    model, tok = tiny_factory("llama")

    def old():
        return pytest.warns(DeprecationWarning, match="is deprecated")

    with old(), pytest.raises(ValueError, match="batch_size=0"):
        aqi.capture(model, tok, small_prompts[:2], tmp_path / "a.h5", batch_size=0)
    with old(), pytest.raises(ValueError, match=r"temperature=0\.3 has no effect on greedy"):
        aqi.generate_responses(model, tok, small_prompts[:2], temperature=0.3)
    with old(), pytest.raises(ValueError, match="spans='assistant'; expected"):
        aqi.capture(model, tok, small_prompts[:2], tmp_path / "a.h5", span="assistant")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ({"chat": False, "rendering": aqi.Rendering()},
         r"give rendering= or chat=, not both \(chat=False\); chat= is deprecated: put it in "
         r"rendering=aqi\.Rendering\(\.\.\.\)"),
        ({"progress": False, "writing": QUIET}, r"give writing= or progress=, not both"),
        ({"span": "user", "spans": ["all"]},
         r"give spans= or span=, not both \(spans=\['all'\], span='user'\); span= is the older "
         r"spelling of spans="),
    ],
)  # fmt: skip
def test_old_and_new_forms_together_are_refused(tiny_factory, small_prompts, tmp_path, call,
                                                match):  # fmt: skip
    model, tok = tiny_factory("llama")
    with pytest.raises(ValueError, match=match):
        aqi.capture(model, tok, small_prompts[:2], tmp_path / "a.h5", **call)
    assert not (tmp_path / "a.h5").exists()


def test_generate_refuses_both_forms_and_unknown_keywords(tiny_factory, small_prompts):
    model, tok = tiny_factory("llama")
    with pytest.raises(ValueError, match=r"give decoding= or n=, not both \(n=2\)"):
        aqi.generate_responses(model, tok, small_prompts[:2], n=2, decoding=aqi.Decoding())
    with pytest.raises(TypeError, match="unexpected keyword argument 'commit_rows'"):
        aqi.generate_responses(model, tok, small_prompts[:2], commit_rows=4)  # never one


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"rendering": aqi.Rendering(include_response=True)},
         r"include_response=True has no effect on generation \(it sets how a capture"),
        ({"rendering": aqi.Rendering(onset_tokens=3)}, r"onset_tokens=3 has no effect"),
        ({"writing": aqi.Writing(commit_rows=64)},
         r"commit_rows=64 has no effect on generation \(it sets a capture's forward passes"),
        ({"writing": aqi.Writing(compression=None)}, r"compression=None has no effect"),
    ],
)  # fmt: skip
def test_generation_refuses_capture_only_settings(tiny_factory, small_prompts, value, match):
    model, tok = tiny_factory("llama")
    with pytest.raises(ValueError, match=match):
        aqi.generate_responses(model, tok, small_prompts[:2], **value)


def test_a_value_of_another_kind_is_a_type_error(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    with pytest.raises(TypeError, match=r"writing must be an aqi\.Writing, got dict"):
        aqi.capture(model, tok, small_prompts[:2], tmp_path / "a.h5", writing={"batch_size": 2})


def test_the_library_itself_uses_no_old_keyword(tiny_factory, small_prompts, tmp_path):
    """What the library calls on its own (the command line here) raises no
    DeprecationWarning: its callers were moved to the values."""
    from aqi.cli import main

    model, tok = tiny_factory("llama")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    small_prompts[:4].to_jsonl(tmp_path / "p.jsonl")
    common = ["--model", str(tmp_path / "m"), "--prompts", str(tmp_path / "p.jsonl"), "--quiet"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*is deprecated and stops working",
                                category=DeprecationWarning)  # fmt: skip
        assert main(["capture", *common, "--out", str(tmp_path / "c.h5"), "--layers", "0"]) == 0
        assert main(["generate", *common, "--out", str(tmp_path / "r.jsonl"),
                     "--max-new-tokens", "2"]) == 0  # fmt: skip


def test_moved_keywords_keeps_the_new_signature():
    @dataclasses.dataclass(frozen=True)
    class Knobs:
        a: int = 1

    @moved_keywords({"knobs": (Knobs, ("a",))}, renamed={"old": "new"})
    def f(x, *, new=0, knobs=None):
        """Doc."""
        return x, new, knobs

    assert list(inspect.signature(f).parameters) == ["x", "new", "knobs"]
    assert f.__doc__ == "Doc." and f(1) == (1, 0, None)
    with pytest.warns(
        DeprecationWarning,
        match=r"f\(old=, a=\) is deprecated .*; pass "
        r"new=5, knobs=aqi\.Knobs\(a=2\)",
    ):
        assert f(1, old=5, a=2) == (1, 5, Knobs(a=2))


def test_warnings_still_point_at_the_callers_line(tiny_factory, small_prompts, tmp_path):
    """The shim and the job add frames between the caller and the warning: the training-mode
    warnings of capture and generation still name the caller's line."""
    import copy

    model, tok = tiny_factory("llama")
    model = copy.deepcopy(model).train()
    ps = small_prompts[:2]
    with pytest.warns(UserWarning, match="training mode") as caught:
        aqi.generate_responses(model, tok, ps, decoding=aqi.Decoding(max_new_tokens=2),
                               writing=QUIET)  # fmt: skip
    assert {w.filename for w in caught if "training mode" in str(w.message)} == {__file__}
    with pytest.warns(UserWarning, match="training mode") as caught:
        aqi.capture(model, tok, ps, tmp_path / "a.h5", layers=[0], writing=QUIET)
    assert {w.filename for w in caught if "training mode" in str(w.message)} == {__file__}


# -- aqi.audit and aqi.audit_models ------------------------------------------------------------
@pytest.fixture
def separable(tmp_path):
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (40, 4)), rng.normal(4, 1, (40, 4))]
    labels = ["safe"] * 40 + ["unsafe"] * 40
    return aqi.store_from_arrays(tmp_path / "s.h5", {"L": X}, labels=labels)


def test_audit_with_old_keywords_warns_and_reports_the_same(separable):
    t = aqi.AuditThresholds(aqi_floor=1.0)
    new = aqi.audit(separable, scoring=aqi.Scoring(n_boot=50, n_perm=20, seed=2, thresholds=t))
    with pytest.warns(DeprecationWarning, match=r"audit\(n_boot=, n_perm=, seed=, thresholds=\) "
                      r"is deprecated and stops working in v0.4; pass scoring=aqi.Scoring\("
                      r"n_boot=50, n_perm=20, seed=2, thresholds="):
        old = aqi.audit(separable, n_boot=50, n_perm=20, seed=2, thresholds=t)
    assert [c.to_dict() for c in old.checks] == [c.to_dict() for c in new.checks]
    with pytest.raises(ArgumentError, match=r"give scoring= or n_boot=, not both"):
        aqi.audit(separable, n_boot=50, scoring=aqi.Scoring())


def test_audit_refuses_judging_fields_that_only_audit_models_reads(separable):
    with pytest.raises(ArgumentError, match=r"generate=False has no effect on aqi.audit"):
        aqi.audit(separable, judging=aqi.Judging(generate=False))
    with pytest.raises(TypeError, match=r"scoring must be an aqi.Scoring, got dict"):
        aqi.audit(separable, scoring={"n_boot": 50})


def test_audit_models_with_old_keywords_warns_before_any_model_loads(tmp_path):
    """The old keywords fold into the values (one warning naming them) and the call goes
    on to its first check: the same model twice, refused before anything loads."""
    said = (r"audit_models\(batch_size=, judge=, n_boot=\) is deprecated .* pass "
            r"scoring=aqi.Scoring\(n_boot=9\), judging=aqi.Judging\(judge='rules'\), "
            r"running=aqi.Running\(batch_size=4\)")
    with pytest.warns(DeprecationWarning, match=said), \
            pytest.raises(ValueError, match="model and baseline are the same model"):
        aqi.audit_models("./m", "./m", batch_size=4, judge="rules", n_boot=9)
    with pytest.raises(ArgumentError, match=r"verify=3 checks a latent prediction"):
        aqi.audit_models("./m", "./b", judging=aqi.Judging(verify=3))


def test_the_gate_fills_what_the_call_leaves_at_its_default(separable):
    from aqi.pytest_plugin import AQIGate

    gate = AQIGate(aqi.AuditThresholds(aqi_floor=1.0), n_boot=50, n_perm=20, seed=4)
    filled = gate._filled({"scoring": aqi.Scoring(pooling="given", n_perm=30)},
                          gate.thresholds, "rules")  # fmt: skip
    assert filled["scoring"] == aqi.Scoring(pooling="given", n_boot=50, n_perm=30, seed=4,
                                            thresholds=gate.thresholds)  # fmt: skip
    assert filled["judging"] == aqi.Judging(judge="rules")
    rep = gate.audit(separable)
    assert rep.to_dict()["checks"] == aqi.audit(
        separable, scoring=aqi.Scoring(n_boot=50, n_perm=20, seed=4,
                                       thresholds=gate.thresholds)).to_dict()["checks"]
    with pytest.warns(DeprecationWarning, match=r"audit\(pooling=.*\) is deprecated"):
        old = gate.audit(separable, pooling="given")
    assert old.to_dict()["checks"] == rep.to_dict()["checks"]
