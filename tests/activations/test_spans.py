"""Spans located against real chat templates: instruction, post-instruction, response onset.

Four templates as their models ship them (SmolLM2's own, and Llama-3, Qwen2 and Gemma 3 as
strings), each on a fast tokenizer built offline from SmolLM2's with the template's special
tokens added. The located tokens are compared with the template's own text; captures of
several spans in one forward pass are compared with hidden states computed independently.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aqi
from aqi.activations import PromptEncoder, PromptSet, check_spans
from aqi.prompts import decision_point_tokens
from aqi.prompts.spans import CharRegions, token_ranges

from ..conftest import _decoder_tokenizer, build_tiny

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
QWEN2 = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
GEMMA3 = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
#: template -> (special tokens to add, bos token, the template's post-instruction text)
TEMPLATES: dict[str, tuple[str | None, list[str], str | None, str]] = {
    "smollm2": (None, [], None, "<|im_end|>\n<|im_start|>assistant\n"),
    "llama3": (
        LLAMA3,
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "<|begin_of_text|>",
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    "qwen2": (QWEN2, [], None, "<|im_end|>\n<|im_start|>assistant\n"),
    "gemma3": (
        GEMMA3,
        ["<bos>", "<start_of_turn>", "<end_of_turn>"],
        "<bos>",
        "<end_of_turn>\n<start_of_turn>model\n",
    ),
}


def templated(decoder_tokenizer_dir: Any, name: str, side: str = "right") -> Any:
    template, special, bos, _ = TEMPLATES[name]
    tok = _decoder_tokenizer(decoder_tokenizer_dir, side)
    if special:
        tok.add_special_tokens({"additional_special_tokens": special})
    if bos is not None:
        tok.bos_token = bos
    if template is not None:
        tok.chat_template = template
    return tok


ROWS = PromptSet.from_records(
    [
        {"id": "a", "text": "How do I bake bread?", "label": "safe",
         "response": "Mix flour, water and yeast, then knead it."},
        {"id": "b", "text": "  Tell me a story about a lighthouse keeper.  ", "label": "safe",
         "response": "Once upon a time"},
        {"id": "c", "text": "Explain how locks work, step by step, in detail.", "label": "unsafe",
         "response": "Sure."},
    ]
)  # fmt: skip


@pytest.mark.filterwarnings("ignore:.*fewer than onset_tokens")
@pytest.mark.parametrize("name", list(TEMPLATES))
@pytest.mark.parametrize("system", [None, "You are careful. How do I bake bread?"])
@pytest.mark.parametrize("include_response", [False, True])
def test_spans_are_the_templates_own_text(decoder_tokenizer_dir, name, system, include_response):
    tok = templated(decoder_tokenizer_dir, name)
    spans = ["instruction", "post_instruction", "all"]
    if include_response:
        spans += ["response_onset", "response"]
    enc = PromptEncoder(
        tok, span=spans, system_prompt=system, include_response=include_response, onset_tokens=3
    )
    post_text = TEMPLATES[name][3]
    for row, e in zip(ROWS, enc.encode(list(ROWS)), strict=True):
        got = {s: tok.decode(e.input_ids[a:b]) for s, (a, b) in zip(spans, e.span_ranges)}
        # The user's text (the system prompt repeats it: the user's turn is read, not that).
        assert got["instruction"].strip() == row.text.strip()
        assert got["post_instruction"] == post_text
        a_inst, b_inst = e.span_ranges[0]
        a_post, b_post = e.span_ranges[1]
        assert a_post == b_inst  # nothing between the user's text and the template's tail
        assert e.span_ranges[2] == (0, len(e.input_ids))
        if include_response:
            a_resp, b_resp = e.span_ranges[4]
            assert a_resp == b_post  # the response starts where the template's tail ends
            assert got["response"].strip() == row.response.strip()
            onset = tok.convert_ids_to_tokens(e.input_ids[a_resp : a_resp + 3])
            assert e.span_ranges[3] == (a_resp, min(a_resp + 3, b_resp))
            assert len(onset) == 3
        else:
            assert b_post == len(e.input_ids)  # the generation prompt ends the input
        if system is not None:  # the system turn (Gemma: the user turn's prefix) comes first
            assert system in tok.decode(e.input_ids[:a_inst])


@pytest.mark.filterwarnings("ignore:.*fewer than onset_tokens")
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_post_instruction_last_is_the_last_prompt_token_and_onset_follows_it(
    decoder_tokenizer_dir, name
):
    """Independent reference: the generation prompt's own tokenization."""
    tok = templated(decoder_tokenizer_dir, name)
    with_resp = PromptEncoder(tok, span=["post_instruction", "response_onset"],
                              include_response=True).encode(list(ROWS))  # fmt: skip
    for row, e in zip(ROWS, with_resp, strict=True):
        prompt_ids = tok.apply_chat_template(
            [{"role": "user", "content": row.text}], add_generation_prompt=True, tokenize=True
        )
        prompt_ids = list(getattr(prompt_ids, "input_ids", prompt_ids))
        assert e.input_ids[: len(prompt_ids)] == prompt_ids
        (_, post_stop), (onset_start, _) = e.span_ranges
        assert post_stop == onset_start == len(prompt_ids)


def test_plain_text_post_instruction_is_the_final_prompt_token_said_once(decoder_tokenizer_dir):
    tok = _decoder_tokenizer(decoder_tokenizer_dir, "right")
    enc = PromptEncoder(tok, span=["instruction", "post_instruction"], chat=False)
    with pytest.warns(UserWarning, match="final prompt token") as caught:
        out = enc.encode(list(ROWS)) + enc.encode(list(ROWS))
    assert sum("final prompt token" in str(w.message) for w in caught) == 1
    for e in out:
        (_a, b), (c, d) = e.span_ranges
        assert (c, d) == (b - 1, b)


def test_a_template_that_renders_nothing_after_the_user_is_a_clear_error(decoder_tokenizer_dir):
    tok = _decoder_tokenizer(decoder_tokenizer_dir, "right")
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    enc = PromptEncoder(tok, span="post_instruction", chat=True)
    with pytest.raises(ValueError, match=r"span 'post_instruction' selects no token .*chat "
                                         r"template of .*sha256"):  # fmt: skip
        enc.encode(list(ROWS[:1]))


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_decision_point_tokens_are_the_templates_post_instruction_text(decoder_tokenizer_dir,
                                                                        name):
    tok = templated(decoder_tokenizer_dir, name)
    tokens = decision_point_tokens(tok, system_prompt="Be brief.")
    assert "".join(tokens) == TEMPLATES[name][3] and all(tokens)
    if name == "smollm2":
        assert tokens == ("<|im_end|>", "\n", "<|im_start|>", "ass", "istant", "\n")


def test_decision_point_tokens_refuse_a_template_without_one_and_quote_it(
        decoder_tokenizer_dir):
    tok = _decoder_tokenizer(decoder_tokenizer_dir, "right")
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match=r"chat template of .*sha256.* renders no decision "
                                         r"point.*template: .*m\['content'\]"):
        decision_point_tokens(tok)
    tok.chat_template = None
    with pytest.raises(ValueError, match=r"has no chat template.*post_instruction"):
        decision_point_tokens(tok)


def test_a_template_that_rewrites_the_users_text_names_the_template(decoder_tokenizer_dir):
    tok = _decoder_tokenizer(decoder_tokenizer_dir, "right")
    tok.chat_template = "{% for m in messages %}<|im_start|>{{ m['content'] | upper }}{% endfor %}"
    with pytest.raises(ValueError, match=r"the chat template of .* changed its text"):
        PromptEncoder(tok, span="instruction").encode(list(ROWS[:1]))


def test_short_responses_are_counted_not_dropped(tiny_factory, tmp_path):
    model, tok = tiny_factory("llama")
    with pytest.warns(UserWarning, match=r"2 response\(s\) have fewer than onset_tokens=5"):
        s = aqi.capture(model, tok, ROWS, tmp_path / "o.h5", spans=["response_onset"],
                        rendering=aqi.Rendering(include_response=True), pooling="mean")  # fmt: skip
    assert s.n_rows == 3
    counts = s.span_tokens_of("response_onset").tolist()
    assert counts[0] == 5 and all(0 < c < 5 for c in counts[1:])


def test_truncation_that_cuts_the_post_instruction_names_it(tiny_factory, tmp_path):
    model, tok = tiny_factory("llama")
    tok.truncation_side = "right"
    rows = [{"id": "x", "text": "word " * 40, "label": "safe"}]
    e = PromptEncoder(tok, span=["instruction", "post_instruction"]).encode(
        list(PromptSet.from_records(rows))
    )[0]
    keep = e.span_ranges[0][1]  # the instruction survives whole, the template's tail does not
    with pytest.raises(ValueError, match="leaves none of its 'post_instruction' span"):
        aqi.capture(model, tok, rows, tmp_path / "a.h5", rendering=aqi.Rendering(max_length=keep))


def test_tokenizer_without_offsets_names_the_fast_tokenizer(decoder_tokenizer_dir):
    from transformers import ByT5Tokenizer  # pure Python: needs no files, reports no offsets

    slow = ByT5Tokenizer()
    assert not slow.is_fast
    with pytest.raises(ValueError, match=r"slow tokenizer.*PreTrainedTokenizerFast"):
        PromptEncoder(slow, span="post_instruction", chat=False)


# -- several spans, one forward pass -------------------------------------------------


def _hidden(model: Any, ids: list[int]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states


@pytest.mark.filterwarnings("ignore:.*fewer than onset_tokens")
@pytest.mark.parametrize("name", ["llama3", "gemma3"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_every_span_of_one_capture_equals_the_models_own_hidden_states(
    decoder_tokenizer_dir, tmp_path, name, side
):
    tok = templated(decoder_tokenizer_dir, name, side)
    model = build_tiny("llama", len(tok))
    spans = ("instruction", "post_instruction", "response_onset", "response")
    s = aqi.capture(model, tok, ROWS, tmp_path / "s.h5", spans=spans,
                    rendering=aqi.Rendering(include_response=True),
                    writing=aqi.Writing(batch_size=3), pooling=("mean", "last"),
                    layers=[1])  # fmt: skip
    assert s.spans == spans
    enc = PromptEncoder(tok, span=spans, include_response=True).encode(list(ROWS))
    for i, e in enumerate(enc):
        h = _hidden(model, e.input_ids)[2][0]  # block 1's output
        for span, (a, b) in zip(spans, e.span_ranges, strict=True):
            np.testing.assert_allclose(
                s.activations(1, "mean", span)[i], h[a:b].mean(0).numpy(), atol=2e-5
            )
            np.testing.assert_allclose(
                s.activations(1, "last", span)[i], h[b - 1].numpy(), atol=2e-5
            )


def test_two_spans_in_one_store_equal_two_single_span_stores(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("qwen2")
    both = aqi.capture(model, tok, small_prompts, tmp_path / "b.h5", layers="blocks",
                       spans=("instruction", "post_instruction"))  # fmt: skip
    for span in both.spans:
        one = aqi.capture(model, tok, small_prompts, tmp_path / f"{span}.h5", spans=span)
        assert one.spans == (span,)
        for la in one.layers:
            for p in one.poolings:
                np.testing.assert_array_equal(both.activations(la, p, span), one.activations(la, p))
        np.testing.assert_array_equal(both.span_tokens_of(span), one.span_tokens)
    view = aqi.open_store(tmp_path / "b.h5", span="post_instruction")
    np.testing.assert_array_equal(
        view.activations(0), both.activations(0, span="post_instruction")
    )
    assert both.with_span("user").span == "instruction"  # the older name still reads


def test_a_span_the_store_lacks_lists_the_spans_it_has(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    s = aqi.capture(model, tok, small_prompts[:4], tmp_path / "a.h5", spans="instruction")
    with pytest.raises(ValueError, match=r"holds no span 'response'; it has 'instruction'"):
        s.activations(0, span="response")
    with pytest.raises(ValueError, match=r"holds no span 'post_instruction'"):
        aqi.open_store(tmp_path / "a.h5", span="post_instruction")


def test_format_1_stores_still_open(tmp_path):
    """A store written by aqi 0.1 (one span, named in provenance) reads as before."""
    import json

    p = tmp_path / "old.h5"
    X = np.arange(12, dtype="f4").reshape(4, 3)
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "aqi.activations"
        f.attrs["format_version"] = 1
        f.attrs["n_rows"] = 4
        f.attrs["provenance"] = json.dumps({"identity": {}, "capture": {"span": "user"}})
        f.attrs["layers"] = json.dumps(
            [{"name": "h.0", "role": "block", "block": 0, "stream": "residual (block output)"}]
        )
        f.attrs["poolings"] = json.dumps(["mean"])
        g = f.create_group("rows")
        str_dt = h5py.string_dtype("utf-8")
        g.create_dataset("id", data=list("abcd"), dtype=str_dt)
        for col in ("text", "response", "category", "pair_id"):
            g.create_dataset(col, data=[""] * 4, dtype=str_dt)
        g.create_dataset("label", data=np.array([0, 1, 0, 1], "i1"))
        g.create_dataset("token_count", data=np.full(4, 7, "i4"))
        g.create_dataset("span_tokens", data=np.full(4, 3, "i4"))
        g.create_dataset("truncated", data=np.zeros(4, bool))
        f.create_dataset("activations/h.0/mean", data=X)
    s = aqi.open_store(p)
    assert s.spans == ("instruction",) and s.span == "instruction"
    np.testing.assert_array_equal(s.activations("h.0"), X)
    np.testing.assert_array_equal(s.activations("h.0", span="user"), X)
    assert s.span_tokens.tolist() == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="holds no span 'post_instruction'"):
        s.activations("h.0", span="post_instruction")


# -- the grammar -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "match"),
    [("assistant", "spans='assistant'; expected one of"), ([], "spans is empty"),
     (3, "spans=3; expected a span name"), ([None], "spans=None; expected one of")],
)  # fmt: skip
def test_bad_spans_name_the_value(value, match):
    with pytest.raises(ValueError, match=match):
        check_spans(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lengths=st.lists(st.integers(1, 4), min_size=3, max_size=20),
    cut=st.data(),
)
def test_token_ranges_partition_the_prompt(lengths, cut):
    """For any tokenization, instruction, post-instruction and response are disjoint, in
    order, and post-instruction holds exactly the tokens strictly between the others."""
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    offsets = list(itertools.pairwise(bounds))
    n = len(offsets)
    i0 = cut.draw(st.integers(0, n - 3))
    i1 = cut.draw(st.integers(i0 + 1, n - 2))
    r0 = cut.draw(st.integers(i1 + 1, n - 1))
    regions = CharRegions(bounds[-1], (bounds[i0], bounds[i1]), (bounds[r0], bounds[-1]))
    spans = ("instruction", "post_instruction", "response_onset", "response")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ranges, problems = token_ranges(offsets, regions, spans, chat=True, onset_tokens=2)
    assert problems == {}
    assert ranges["instruction"] == (i0, i1)
    assert ranges["post_instruction"] == (i1, r0)
    assert ranges["response"] == (r0, n)
    assert ranges["response_onset"] == (r0, min(n, r0 + 2))


def test_compare_refuses_stores_read_at_different_spans(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    s = aqi.capture(model, tok, small_prompts, tmp_path / "a.h5", pooling="mean")
    with pytest.raises(ValueError, match=r"a reads span 'instruction' and b span "
                                         r"'post_instruction'"):  # fmt: skip
        aqi.compare(s, s.with_span("post_instruction"), n_boot=0)

