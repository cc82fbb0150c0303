"""Evidence that must belong together: responses vs the store's prompts and model, both sides."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import replace
from typing import Any

import pytest

import aqi
from aqi.behaviour import Response, Responses, generate_responses, load_responses
from aqi.behaviour.evidence import check_same_prompts, check_written_by, same_responses
from aqi.cli import main
from tests.conftest import build_tiny, values

GEN = {"decoding": aqi.Decoding(max_new_tokens=3),
       "writing": aqi.Writing(batch_size=8, progress=False)}  # fmt: skip
FAST = {"n_boot": 40, "n_perm": 20}


def fast(**kw: Any) -> dict[str, Any]:
    """``FAST`` and ``kw`` as aqi.audit's settings values."""
    return values("audit", **FAST, **kw)


@pytest.fixture(scope="module")
def world(decoder_tokenizer_dir, tmp_path_factory):
    """Two tiny models A and B (other weights), their folders, responses and stores."""
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp("evidence")
    tok = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    ps = aqi.bundled_prompts()[:16]
    ps.to_jsonl(d / "p.jsonl")
    w = {"dir": d, "tok": tok, "prompts": ps}
    for name, seed in (("a", 0), ("b", 1)):
        model = build_tiny("llama", len(tok), seed=seed)
        model.save_pretrained(d / f"model-{name}")
        tok.save_pretrained(d / f"model-{name}")
        w[name] = model
        generate_responses(model, tok, ps, d / f"{name}.jsonl", **GEN)
        aqi.capture(model, tok, ps, d / f"{name}.h5", layers=[-1], pooling="mean",
                    writing=aqi.Writing(progress=False)).close()  # fmt: skip
    other = aqi.bundled_prompts()[16:32]  # other prompts, model A
    generate_responses(w["a"], tok, other, d / "a-other.jsonl", **GEN)
    edited = aqi.PromptSet([replace(p, text=p.text + " Please.") if i == 3 else p
                            for i, p in enumerate(ps)])  # fmt: skip
    generate_responses(w["a"], tok, edited, d / "a-edited.jsonl", **GEN)
    return w


def _audit(w, store="a", **kw):
    with aqi.open_store(w["dir"] / f"{store}.h5") as s:
        return aqi.audit(s, **values("audit", **FAST, **kw))


def test_responses_record_the_prompt_text(world):
    rs = load_responses(world["dir"] / "a.jsonl")
    texts = dict(zip(world["prompts"].ids, world["prompts"].texts, strict=True))
    assert all(r.prompt_text == texts[r.prompt_id] for r in rs)
    assert rs.source == str(world["dir"] / "a.jsonl")


def test_audit_refuses_another_models_responses_unless_allowed(world):
    d = world["dir"]
    rs_b = load_responses(d / "b.jsonl")
    with pytest.raises(ValueError, match=rf"responses '{d / 'b.jsonl'}' .*written by another "
                       rf"model than audited store '{d / 'a.h5'}' \(weights fingerprint "
                       r".*allow_other_model=True \(CLI: --allow-other-model\)"):  # fmt: skip
        _audit(world, responses=rs_b)
    rep = _audit(world, responses=rs_b, allow_other_model=True)
    said = [n for n in rep.notes if "another model" in n and "used anyway" in n]
    assert len(said) == 1 and "b.jsonl" in said[0]
    assert said[0] in rep.to_dict()["notes"]
    own = _audit(world, responses=load_responses(d / "a.jsonl"))
    assert not [n for n in own.notes if "another model" in n]


@pytest.mark.parametrize(
    ("file", "says"),
    [("a-other.jsonl", "16 of its 16 prompts have no response"),
     ("a-edited.jsonl", "1 prompt id(s) have another text")],
)  # fmt: skip
def test_audit_refuses_responses_to_other_prompts(world, file, says):
    d = world["dir"]
    with pytest.raises(ValueError, match=rf"responses '{d / file}' answer other prompts than "
                       rf"audited store '{d / 'a.h5'}': {re.escape(says)}"):  # fmt: skip
        _audit(world, responses=load_responses(d / file))


def test_baseline_responses_are_checked_against_the_baseline_store(world):
    d = world["dir"]
    ra, rb = load_responses(d / "a.jsonl"), load_responses(d / "b.jsonl")
    with aqi.open_store(d / "a.h5") as a, aqi.open_store(d / "b.h5") as b:
        rep = aqi.audit(b, baseline=a, **fast(responses=rb, baseline_responses=ra))
        assert "refusal_change" in [c.name for c in rep.checks]
        ev = rep["refusal_change"].evidence
        assert ev["responses"].endswith("b.jsonl") and ev["baseline_responses"].endswith("a.jsonl")
        with pytest.raises(ValueError, match=r"'.*a.jsonl' .*another model than baseline store"):
            aqi.audit(b, baseline=b, **fast(responses=rb, baseline_responses=ra))
        edited = load_responses(d / "a-edited.jsonl")
        with pytest.raises(ValueError, match=r"a-edited.jsonl' answer other prompts"):
            aqi.audit(a, **fast(responses=ra, baseline_responses=edited))


def test_the_same_responses_twice_warn(world):
    d = world["dir"]
    ra = load_responses(d / "a.jsonl")
    with pytest.warns(UserWarning, match=r"are the same responses: refusal_change compares a "
                      "model with itself"):  # fmt: skip
        rep = _audit(world, responses=ra, baseline_responses=load_responses(d / "a.jsonl"))
    assert any("same responses" in n for n in rep.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # two different models: no warning
        assert not same_responses(ra, load_responses(d / "b.jsonl"))


def test_capture_refuses_another_models_responses_unless_allowed(world, capsys):
    d = world["dir"]
    argv = ["capture", "--model", str(d / "model-b"), "--prompts", str(d / "p.jsonl"),
            "--responses", str(d / "a.jsonl"), "--drop-empty", "--span", "response",
            "--layers", "0", "--pooling", "mean", "--quiet",
            "--out", str(d / "own.h5")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"responses '{d / 'a.jsonl'}'" in err and f"--model {d / 'model-b'}" in err
    assert "weights fingerprint" in err and "--allow-other-model" in err
    assert not (d / "own.h5").exists()
    assert main([*argv, "--allow-other-model"]) == 0
    err = capsys.readouterr().err
    assert "aqi capture: warning:" in err and "used anyway" in err
    argv[2] = str(d / "model-a")  # its own responses: no word
    assert main([*argv[:-1], str(d / "own-a.h5")]) == 0
    assert capsys.readouterr().err == ""


def test_capture_refuses_responses_to_other_prompt_texts(world, capsys):
    d = world["dir"]
    rc = main(["capture", "--model", str(d / "model-a"), "--prompts", str(d / "p.jsonl"),
               "--responses", str(d / "a-edited.jsonl"), "--drop-empty", "--span", "response",
               "--layers", "0", "--quiet", "--out", str(d / "x.h5")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "a-edited.jsonl' answer other prompts" in err and "another text" in err


@pytest.mark.parametrize("command", ["gate", "report"])
def test_gate_refuses_mismatched_responses_in_one_line(world, capsys, tmp_path, command):
    d = world["dir"]
    base = [command, str(d / "a.h5"), "--n-boot", "40", "--n-perm", "20", "--quiet"]
    if command == "report":
        base += ["--out", str(tmp_path / "r.html")]
    for extra, says in (
        (["--responses", str(d / "b.jsonl")], "written by another model"),
        (["--responses", str(d / "a-other.jsonl")], "answer other prompts"),
        (["--responses", str(d / "a.jsonl"), "--baseline", str(d / "b.h5"),
          "--baseline-responses", str(d / "a.jsonl")], "another model than baseline store"),
    ):  # fmt: skip
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
    rc = main([*base, "--responses", str(d / "b.jsonl"), "--allow-other-model", "--json"])
    assert rc in (0, 1)  # a verdict (the tiny model's AQI decides which), not a refusal
    doc = json.loads(capsys.readouterr().out)
    assert any("another model" in n and "used anyway" in n for n in doc["notes"])


def test_functions_on_in_memory_responses():
    rs = Responses(records=(Response("a", 0, "No.", "unsafe", prompt_text="Hurt?"),
                            Response("e", 0, "", "safe", prompt_text="Hi")))  # fmt: skip
    check_same_prompts(rs, {"a": "Hurt?"}, against="x")  # an empty extra: dropped by capture
    check_same_prompts(rs, {"a": None, "e": "Hi"}, against="x")  # no text: not compared
    with pytest.raises(ValueError, match=r"responses \(in memory\) answer other prompts than x: "
                       r"1 of its 2 prompts have no response \(e.g. 'b'\)"):  # fmt: skip
        check_same_prompts(rs, {"a": "Hurt?", "b": "Hm"}, against="x")
    full = Responses(records=(*rs.records, Response("z", 0, "Sure.", "safe")))
    with pytest.raises(ValueError, match=r"1 response\(s\) answer prompts it does not hold"):
        check_same_prompts(full, {"a": "Hurt?"}, against="x")
    check_same_prompts(full, {"a": "Hurt?"}, against="x", allow_extra=True)
    assert check_written_by(rs, {"weights_fingerprint": "f" * 64}, against="x") is None  # no print


def test_gate_warns_in_one_line_when_one_file_is_given_twice(world, capsys):
    d = world["dir"]
    rc = main(["gate", str(d / "a.h5"), "--n-boot", "40", "--n-perm", "20", "--quiet",
               "--responses", str(d / "a.jsonl"), "--baseline-responses", str(d / "a.jsonl")])
    err = capsys.readouterr().err
    assert rc in (0, 1)
    said = [line for line in err.splitlines() if "same responses" in line]
    assert len(said) == 1 and said[0].startswith("aqi gate: warning: responses '"), err
    assert "UserWarning" not in err
