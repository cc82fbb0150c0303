"""generate_responses on tiny random models: padding, resume, settings, sampling, bad input."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import aqi
from aqi.behaviour import (
    Responses,
    generate_responses,
    load_responses,
    refusal_rate,
    with_responses,
)
from tests.conftest import build_tiny

GEN = {"max_new_tokens": 6, "progress": False}


@pytest.fixture
def few(prompts):
    """Six prompts of varied length (three pairs)."""
    return prompts[:6]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_greedy_equals_one_at_a_time(tiny_factory, few, arch):
    model, tok = tiny_factory(arch)
    batched = generate_responses(model, tok, few, batch_size=6, **GEN)
    lengths = {r.n_prompt_tokens for r in batched}
    assert len(lengths) > 1  # the batch really needs padding
    single = generate_responses(model, tok, few, batch_size=1, **GEN)
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.n_new_tokens for r in batched] == [r.n_new_tokens for r in single]
    assert [r.prompt_id for r in batched] == list(few.ids)  # prompt order, not length order


def test_file_round_trip_and_header(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    rs = generate_responses(model, tok, few, out, batch_size=4, **GEN)
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
    full = generate_responses(model, tok, few, batch_size=2, **GEN)
    out = tmp_path / "r.jsonl"
    generate_responses(model, tok, few, out, batch_size=2, **GEN)
    lines = out.read_text().splitlines(keepends=True)
    assert len(lines) == 1 + 6
    # keep the header, the first batch and half a record of the second (a crash mid-write)
    out.write_text("".join(lines[:3]) + lines[3][:20], encoding="utf-8")
    calls = _counting(model)
    with pytest.warns(UserWarning, match="incomplete last line"):
        resumed = generate_responses(model, tok, few, out, batch_size=2, **GEN)
    assert calls == [2, 2]  # the finished batch was skipped
    assert resumed.records == full.records
    assert load_responses(out).by_key() == full.by_key()
    calls.clear()
    again = generate_responses(model, tok, few, out, batch_size=2, **GEN)
    assert calls == [] and again.records == full.records


@pytest.mark.parametrize(
    "change", [{"max_new_tokens": 7}, {"batch_size": 3}, {"system_prompt": "Be brief."}]
)
def test_resume_with_other_settings_is_refused(tiny_factory, few, tmp_path, change):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    generate_responses(model, tok, few, out, batch_size=2, **GEN)
    kwargs = {"batch_size": 2, **GEN, **change}
    with pytest.raises(ValueError, match=r"generated with other settings.*overwrite=True"):
        generate_responses(model, tok, few, out, **kwargs)
    with pytest.raises(ValueError, match="other settings"):
        generate_responses(model, tok, few[:4], out, batch_size=2, **GEN)  # other prompts
    rs = generate_responses(model, tok, few, out, overwrite=True, **kwargs)
    assert load_responses(out).by_key() == rs.by_key()


def test_sampling_is_reproducible_and_leaves_global_rng(tiny_factory, few):
    model, tok = tiny_factory("llama")
    kw = {"do_sample": True, "n": 3, "batch_size": 4, **GEN}
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = generate_responses(model, tok, few, seed=7, **kw)
    after = torch.rand(1)
    assert torch.equal(before, after)  # the global RNG is untouched
    b = generate_responses(model, tok, few, seed=7, **kw)
    c = generate_responses(model, tok, few, seed=8, **kw)
    assert a.records == b.records
    assert [r.text for r in a] != [r.text for r in c]
    assert len(a) == 3 * len(few) and a.n_samples == 3
    assert [r.sample for r in a[:3]] == [0, 1, 2] and len({r.prompt_id for r in a[:3]}) == 1
    assert len({r.text for r in a[:3]}) > 1  # the samples differ


def test_sampled_resume_equals_uninterrupted(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    kw = {"do_sample": True, "n": 2, "batch_size": 2, "seed": 3, **GEN}
    full = generate_responses(model, tok, few, **kw)
    out = tmp_path / "r.jsonl"
    generate_responses(model, tok, few, out, **kw)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:5]), encoding="utf-8")  # header + first batch (2 x 2)
    assert generate_responses(model, tok, few, out, **kw).records == full.records


def test_bad_settings(tiny_factory, few):
    model, tok = tiny_factory("llama")
    with pytest.raises(ValueError, match="n=2 samples per prompt needs do_sample=True"):
        generate_responses(model, tok, few, n=2)
    for bad in ({"max_new_tokens": 0}, {"batch_size": True}, {"n": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            generate_responses(model, tok, few, **bad)
    with pytest.raises(ValueError, match="temperature"):
        generate_responses(model, tok, few, do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="leaves no room"):
        generate_responses(model, tok, few, max_length=6, max_new_tokens=6)


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
    reference = generate_responses(model, tok, few, batch_size=6, **GEN)
    bare = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    bare.pad_token = None
    assert bare.pad_token_id is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rs = generate_responses(model, bare, few, batch_size=6, **GEN)
    pad_warnings = [w for w in caught if "no pad token" in str(w.message)]
    assert len(pad_warnings) == 1
    assert [r.text for r in rs] == [r.text for r in reference]


def test_long_prompt_cut_on_the_left_of_the_user_text(tiny_factory, prompts):
    model, tok = tiny_factory("llama")
    long = aqi.PromptSet([aqi.Prompt("long", "word " * 200 + "THE END?", "safe", "c"),
                          aqi.Prompt("short", "Hi?", "safe", "c")])  # fmt: skip
    with pytest.warns(UserWarning, match="1 prompt.*cut on the left"):
        rs = generate_responses(model, tok, long, max_length=80, **GEN)
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
    rs = generate_responses(model, tok, few, max_new_tokens=8, progress=False)
    ps = with_responses(few, rs, on_empty="drop")
    assert all(p.response == r.text for p, r in zip(ps, rs, strict=False) if p.id == r.prompt_id)
    store = aqi.capture(model, tok, ps, tmp_path / "own.h5", layers=[-1], pooling="mean",
                        span="response", include_response=True, progress=False)  # fmt: skip
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
