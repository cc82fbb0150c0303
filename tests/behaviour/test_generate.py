"""generate_responses on tiny random models: padding, resume, settings, sampling, bad input,
early stop (and one slow check of early stop on the real demo model)."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import aqi
from aqi.behaviour import (
    Responses,
    generate_responses,
    load_responses,
    refusal_rate,
    with_responses,
)
from tests.conftest import build_tiny

SHORT = aqi.Decoding(max_new_tokens=6)
GEN = {"decoding": SHORT, "writing": aqi.Writing(progress=False)}


def batches_of(batch_size: int, **kw) -> aqi.Writing:
    """A quiet test run's writing, ``batch_size`` prompts per ``generate`` call."""
    return aqi.Writing(batch_size=batch_size, progress=False, **kw)


@pytest.fixture
def few(prompts):
    """Six prompts of varied length (three pairs)."""
    return prompts[:6]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_greedy_equals_one_at_a_time(tiny_factory, few, arch):
    model, tok = tiny_factory(arch)
    batched = generate_responses(model, tok, few, decoding=SHORT, writing=batches_of(6))
    lengths = {r.n_prompt_tokens for r in batched}
    assert len(lengths) > 1  # the batch really needs padding
    single = generate_responses(model, tok, few, decoding=SHORT, writing=batches_of(1))
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.n_new_tokens for r in batched] == [r.n_new_tokens for r in single]
    assert [r.prompt_id for r in batched] == list(few.ids)  # prompt order, not length order


def test_file_round_trip_and_header(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    rs = generate_responses(model, tok, few, out, decoding=SHORT, writing=batches_of(4))
    header = json.loads(out.read_text().splitlines()[0])
    assert header["schema"] == "aqi-responses" and header["version"] == 1
    assert header["identity"]["max_new_tokens"] == 6
    assert header["identity"]["weights_fingerprint"]
    loaded = load_responses(out)
    assert loaded.by_key() == rs.by_key()  # the file is in generation (length-sorted) order
    assert isinstance(loaded, Responses) and loaded.identity == rs.identity


def _counting(model):
    calls = []
    original = model.generate

    def generate(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    model.generate = generate
    return calls


def test_resume_skips_finished_batches_and_repairs_torn_line(few, decoder_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    model = build_tiny("llama", len(tok))
    full = generate_responses(model, tok, few, decoding=SHORT, writing=batches_of(2))
    out = tmp_path / "r.jsonl"
    generate_responses(model, tok, few, out, decoding=SHORT, writing=batches_of(2))
    lines = out.read_text().splitlines(keepends=True)
    assert len(lines) == 1 + 6
    # keep the header, the first batch and half a record of the second (a crash mid-write)
    out.write_text("".join(lines[:3]) + lines[3][:20], encoding="utf-8")
    calls = _counting(model)
    with pytest.warns(UserWarning, match="incomplete last line"):
        resumed = generate_responses(model, tok, few, out, decoding=SHORT,
                                     writing=batches_of(2))
    assert calls == [2, 2]  # the finished batch was skipped
    assert resumed.records == full.records
    assert load_responses(out).by_key() == full.by_key()
    calls.clear()
    again = generate_responses(model, tok, few, out, decoding=SHORT, writing=batches_of(2))
    assert calls == [] and again.records == full.records


@pytest.mark.parametrize(
    "change",
    [{"decoding": aqi.Decoding(max_new_tokens=7)}, {"writing": batches_of(3)},
     {"rendering": aqi.Rendering(system_prompt="Be brief.")}],
)  # fmt: skip
def test_resume_with_other_settings_is_refused(tiny_factory, few, tmp_path, change):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    generate_responses(model, tok, few, out, decoding=SHORT, writing=batches_of(2))
    kwargs = {"decoding": SHORT, "writing": batches_of(2), **change}
    with pytest.raises(ValueError, match=r"generated with other settings.*overwrite=True"):
        generate_responses(model, tok, few, out, **kwargs)
    with pytest.raises(ValueError, match="other settings"):  # other prompts
        generate_responses(model, tok, few[:4], out, decoding=SHORT, writing=batches_of(2))
    again = {**kwargs, "writing": replace(kwargs["writing"], overwrite=True)}
    rs = generate_responses(model, tok, few, out, **again)
    assert load_responses(out).by_key() == rs.by_key()


def test_sampling_is_reproducible_and_leaves_global_rng(tiny_factory, few):
    model, tok = tiny_factory("llama")
    sampled = {"max_new_tokens": 6, "do_sample": True, "n": 3}
    kw = {"writing": batches_of(4)}
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = generate_responses(model, tok, few, decoding=aqi.Decoding(seed=7, **sampled), **kw)
    after = torch.rand(1)
    assert torch.equal(before, after)  # the global RNG is untouched
    b = generate_responses(model, tok, few, decoding=aqi.Decoding(seed=7, **sampled), **kw)
    c = generate_responses(model, tok, few, decoding=aqi.Decoding(seed=8, **sampled), **kw)
    assert a.records == b.records
    assert [r.text for r in a] != [r.text for r in c]
    assert len(a) == 3 * len(few) and a.n_samples == 3
    assert [r.sample for r in a[:3]] == [0, 1, 2] and len({r.prompt_id for r in a[:3]}) == 1
    assert len({r.text for r in a[:3]}) > 1  # the samples differ


def test_sampled_resume_equals_uninterrupted(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    kw = {"decoding": aqi.Decoding(max_new_tokens=6, do_sample=True, n=2, seed=3),
          "writing": batches_of(2)}  # fmt: skip
    full = generate_responses(model, tok, few, **kw)
    out = tmp_path / "r.jsonl"
    generate_responses(model, tok, few, out, **kw)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:5]), encoding="utf-8")  # header + first batch (2 x 2)
    assert generate_responses(model, tok, few, out, **kw).records == full.records


def test_bad_settings(tiny_factory, few):
    model, tok = tiny_factory("llama")
    with pytest.raises(ValueError, match="n=2 samples per prompt needs do_sample=True"):
        aqi.Decoding(n=2)
    for kind, bad in ((aqi.Decoding, {"max_new_tokens": 0}), (aqi.Writing, {"batch_size": True}),
                      (aqi.Decoding, {"n": 0})):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            kind(**bad)
    with pytest.raises(ValueError, match="temperature"):
        aqi.Decoding(do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="leaves no room"):
        generate_responses(model, tok, few, rendering=aqi.Rendering(max_length=6),
                           decoding=SHORT)  # fmt: skip


def test_model_without_generate_is_a_type_error(tiny_factory, few):
    bert, tok = tiny_factory("bert")
    with pytest.raises(TypeError, match="has no generate method"):
        generate_responses(bert, tok, few)
    with pytest.raises(TypeError, match="Linear"):
        generate_responses(torch.nn.Linear(2, 2), tok, few)


def test_nan_weights_refused_before_generating(decoder_tokenizer_dir, few):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    model = build_tiny("llama", len(tok))
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[3, 4] = float("nan")
    calls = _counting(model)
    with pytest.raises(ValueError, match=r"'model.layers.1.mlp.up_proj.weight' holds 1 NaN"):
        generate_responses(model, tok, few)
    assert calls == []


def test_missing_pad_token_uses_eos_with_one_warning(tiny_factory, few, decoder_tokenizer_dir):
    from transformers import AutoTokenizer

    model, tok = tiny_factory("llama")
    reference = generate_responses(model, tok, few, decoding=SHORT, writing=batches_of(6))
    bare = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    bare.pad_token = None
    assert bare.pad_token_id is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rs = generate_responses(model, bare, few, decoding=SHORT, writing=batches_of(6))
    pad_warnings = [w for w in caught if "no pad token" in str(w.message)]
    assert len(pad_warnings) == 1
    assert [r.text for r in rs] == [r.text for r in reference]


def test_long_prompt_cut_on_the_left_of_the_user_text(tiny_factory, prompts):
    model, tok = tiny_factory("llama")
    long = aqi.PromptSet([aqi.Prompt("long", "word " * 200 + "THE END?", "safe", "c"),
                          aqi.Prompt("short", "Hi?", "safe", "c")])  # fmt: skip
    with pytest.warns(UserWarning, match="1 prompt.*cut on the left"):
        rs = generate_responses(model, tok, long, rendering=aqi.Rendering(max_length=80), **GEN)
    by = {r.prompt_id: r for r in rs}
    assert by["long"].truncated and not by["short"].truncated
    assert by["long"].n_prompt_tokens <= 80 - 6
    assert by["long"].n_prompt_tokens > 80 - 6 - 8  # cut no more than needed


def test_empty_generations_are_kept_and_judged(decoder_tokenizer_dir, few):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    model = build_tiny("llama", len(tok))
    with torch.no_grad():  # every step's argmax is an end-of-sequence token
        model.lm_head.weight.zero_()
    model.generation_config.eos_token_id = 0
    rs = generate_responses(model, tok, few, **GEN)
    assert len(rs) == len(few)
    assert all(r.text == "" and r.n_new_tokens == 0 and r.finish_reason == "eos" for r in rs)
    rep = refusal_rate(rs)
    assert rep.n_empty == len(few)
    assert rep.refusal.total == 3 and rep.refusal.refused == 0
    with pytest.raises(ValueError, match=r"6 empty response.*on_empty='drop'"):
        with_responses(few, rs)


def test_capture_on_own_responses_end_to_end(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    rs = generate_responses(model, tok, few, decoding=aqi.Decoding(max_new_tokens=8),
                            writing=aqi.Writing(progress=False))  # fmt: skip
    ps = with_responses(few, rs, on_empty="drop")
    assert all(p.response == r.text for p, r in zip(ps, rs, strict=False) if p.id == r.prompt_id)
    store = aqi.capture(model, tok, ps, tmp_path / "own.h5", layers=[-1], pooling="mean",
                        spans="response", rendering=aqi.Rendering(include_response=True),
                        writing=aqi.Writing(progress=False))  # fmt: skip
    with store:
        assert store.span == "response"
        assert store.n_rows == len(ps)
        assert list(store.ids) == list(ps.ids)
        assert store.activations(store.layers[0]).shape[0] == len(ps)


def test_cli_generate(tiny_factory, few, tmp_path, capsys):
    from aqi.cli import main

    model, tok = tiny_factory("llama")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    few.to_jsonl(tmp_path / "p.jsonl")
    out = tmp_path / "r.jsonl"
    argv = ["generate", "--model", str(tmp_path / "m"), "--prompts", str(tmp_path / "p.jsonl"),
            "--out", str(out), "--max-new-tokens", "4", "--batch-size", "3", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out  # a summary line and the refusal table
    assert "6 responses to 6 prompts (1 per prompt)" in printed
    assert "\nall " in printed and "RefusalReport(" not in printed
    rs = load_responses(out)
    assert len(rs) == 6 and rs.identity["max_new_tokens"] == 4
    assert main([*argv[:-5], "--max-new-tokens", "5", "--quiet"]) == 2  # other settings
    assert "other settings" in capsys.readouterr().err


# --- early stop: stop_when_settled -------------------------------------------------------


def _word_judge(rs):
    """A rules judge whose one strong phrase is the first word of the second response: the
    random model's responses contain it early, so the rows that do can settle."""
    from aqi.behaviour import RefusalJudge
    from aqi.behaviour.judge import normalise

    word = re.search(r"(?<![a-z0-9])[a-z]{4,}(?![a-z0-9])", normalise(rs[1].text)).group(0)
    return RefusalJudge(strong=[word])


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_early_stop_keeps_every_label_and_generates_fewer_tokens(tiny_factory, few, arch):
    from aqi.behaviour import judge_labels

    model, tok = tiny_factory(arch)
    kw = {"decoding": aqi.Decoding(max_new_tokens=24), "writing": batches_of(3)}
    full = generate_responses(model, tok, few, **kw)
    judge = _word_judge(full)
    early = generate_responses(model, tok, few, stop_when_settled=judge, **kw)
    assert judge_labels(early, judge) == judge_labels(full, judge)
    stopped = [(a, b) for a, b in zip(full, early) if b.finish_reason == "settled"]
    assert stopped, "no response settled: the test checks nothing"
    for a, b in zip(full, early):
        if b.finish_reason == "settled":  # a prefix of what it would have been
            assert a.text.startswith(b.text) and b.n_new_tokens < a.n_new_tokens
        else:  # the other rows of the batch are untouched
            assert (a.text, a.n_new_tokens, a.finish_reason) == (
                b.text, b.n_new_tokens, b.finish_reason)
    use, base = early.token_use(), full.token_use()
    assert base.generated == base.maximum == 24 * len(few) and base.stopped_early == 0
    assert use.generated < base.generated and use.stopped_early == len(stopped)
    assert use.early_stop == {"name": "rules (custom)", "kind": "rules", "version": None,
                              "prefix_chars": 160, "tail_chars": 8}
    assert full.identity["stop_when_settled"] is None


def test_early_stop_with_sampling_keeps_each_sample(tiny_factory, few):
    from aqi.behaviour import judge_labels

    model, tok = tiny_factory("llama")
    kw = {"decoding": aqi.Decoding(max_new_tokens=16, do_sample=True, n=2, seed=1),
          "writing": batches_of(3)}  # fmt: skip
    full = generate_responses(model, tok, few, **kw)
    judge = _word_judge(full)
    early = generate_responses(model, tok, few, stop_when_settled=judge, **kw)
    assert judge_labels(early, judge) == judge_labels(full, judge)
    assert all(a.text.startswith(b.text) for a, b in zip(full, early))


def test_early_stop_is_recorded_and_resumed_only_with_it(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    probe = generate_responses(model, tok, few, **GEN)
    judge = _word_judge(probe)
    rs = generate_responses(model, tok, few, out, stop_when_settled=judge, **GEN)
    header = json.loads(out.read_text().splitlines()[0])
    assert header["identity"]["stop_when_settled"]["name"] == "rules (custom)"
    assert load_responses(out).token_use() == rs.token_use()
    with pytest.raises(ValueError, match=r"other settings \(stop_when_settled"):
        generate_responses(model, tok, few, out, **GEN)
    calls = _counting(model)
    again = generate_responses(model, tok, few, out, stop_when_settled=judge, **GEN)
    assert calls == [] and again.records == rs.records


def test_a_judge_that_cannot_settle_is_refused_before_generating(tiny_factory, few):
    model, tok = tiny_factory("llama")
    calls = _counting(model)
    with pytest.raises(TypeError, match=r"has no settled\(text\) method.*pass None"):
        generate_responses(model, tok, few, stop_when_settled=lambda text: True, **GEN)
    assert calls == []


class _Chars:
    """A tokenizer stand-in: token id ``i`` decodes to ``chr(i)``; 0 is special."""

    def __init__(self) -> None:
        self.decoded: list[list[int]] = []

    def batch_decode(self, rows, skip_special_tokens):
        self.decoded.extend(rows)
        return ["".join(chr(t) for t in row if t) for row in rows]


class _Xs:
    def settled(self, text: str) -> bool:
        return "x" in text


def test_settled_stop_finishes_rows_and_skips_finished_ones():
    from aqi.behaviour.early_stop import TAIL_CHARS, SettledStop

    tok = _Chars()
    crit = SettledStop(_Xs(), tok, prompt_length=2, eos_ids=[0])
    a, x, prompt = ord("a"), ord("x"), [5, 5]
    rows = [[*prompt, a], [*prompt, 0], [*prompt, x]]
    assert crit(torch.tensor(rows), None).tolist() == [False, False, False]  # within the tail
    assert [r[-1] for r in tok.decoded] == [a, x]  # the row that ended was not decoded
    step = [r + [a] * TAIL_CHARS for r in rows]
    assert crit(torch.tensor(step), None).tolist() == [False, False, True]
    assert crit.stopped_at == {2: 1 + TAIL_CHARS}
    tok.decoded.clear()
    assert crit(torch.tensor([[*r, a] for r in step]), None).tolist() == [False] * 3
    assert len(tok.decoded) == 1  # only the row still running


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(0, 49151), min_size=1, max_size=40), cut=st.floats(0, 1))
def test_decoded_prefix_less_its_tail_starts_every_longer_decoding(decoder_tokenizer_dir, ids,
                                                                   cut):
    """What SettledStop shows the judge is a prefix of the text generation would store
    (SmolLM2's byte-level tokenizer, 49,152 ids: split multi-byte characters included)."""
    from aqi.behaviour.early_stop import TAIL_CHARS

    tok = _smol_tokenizer(decoder_tokenizer_dir)
    prefix = tok.decode(ids[: int(cut * len(ids))], skip_special_tokens=True)
    if len(prefix) > TAIL_CHARS:
        assert tok.decode(ids, skip_special_tokens=True).startswith(prefix[:-TAIL_CHARS])


_TOKENIZERS: dict[str, object] = {}


def _smol_tokenizer(path):
    from transformers import AutoTokenizer

    if str(path) not in _TOKENIZERS:
        _TOKENIZERS[str(path)] = AutoTokenizer.from_pretrained(path)
    return _TOKENIZERS[str(path)]


@pytest.mark.slow
def test_early_stop_on_the_safety_tuned_demo_model():
    """The demo's safety-tuned SmolLM2-135M-Instruct on 8 of its pairs, with and without
    stopping at the rules' settled verdict: the same labels, fewer tokens
    (benchmarks/speed/early_stop.py measures all 48 pairs)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aqi.behaviour import JUDGE_NEW_TOKENS, RefusalJudge, judge_labels
    from aqi.demo.assets import demo_models, demo_prompts

    base = demo_models().base
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(base)
    prompts, judge = demo_prompts(8), RefusalJudge()
    kw = {"decoding": aqi.Decoding(max_new_tokens=JUDGE_NEW_TOKENS), "writing": batches_of(8)}
    full = generate_responses(model, tok, prompts, **kw)
    early = generate_responses(model, tok, prompts, stop_when_settled=judge, **kw)
    assert judge_labels(early, judge) == judge_labels(full, judge)
    assert all(a.text.startswith(b.text) for a, b in zip(full, early))
    use = early.token_use()
    assert use.stopped_early >= 4 and use.generated < full.token_use().generated
