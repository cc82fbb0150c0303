"""capture(): exactness against output_hidden_states, padding sides, batching, bad input."""

from __future__ import annotations

import copy
import importlib.metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import aqi
from aqi.activations import PromptEncoder, PromptSet, open_store
from aqi.activations._parts import partial_dir
from aqi.prompts.encoding import pad_batch

from ..conftest import TINY_ARCHS, hook_count

POOLS = ("mean", "last", "first", "max")


def _np_pool(h: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """Brute-force pooling of one layer, row by row, from a [B, T, D] array."""
    out = []
    for row, m in zip(h, mask):
        sel = row[m]
        out.append({"mean": sel.mean(0), "last": sel[-1], "first": sel[0], "max": sel.max(0)}[how])
    return np.stack(out)


def reference(model: nn.Module, tok: Any, prompts: PromptSet, *, span: str, chat: bool | None):
    """Pool every HF hidden state independently of aqi's hooks.

    Runs each prompt alone (no padding at all) with ``output_hidden_states=True``;
    ``hidden_states[0]`` is the embedding output, ``[i + 1]`` block i's output except
    for the last block, which HF reports after the final norm; the raw last block is
    read from a copy of the model whose final norm is replaced by the identity.
    """
    enc = PromptEncoder(tok, span=span, chat=chat).encode(list(prompts))
    raw = copy.deepcopy(model)
    arch = aqi.activations.find_architecture(raw)
    if arch.final_norm is not None:
        parent, _, leaf = arch.final_norm.rpartition(".")
        setattr(raw.get_submodule(parent) if parent else raw, leaf, nn.Identity())
    names = [arch.embeddings, *arch.blocks]
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    with torch.inference_mode():
        for e in enc:
            ids = torch.tensor([e.input_ids])
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states
            hs_raw = raw(input_ids=ids, output_hidden_states=True).hidden_states
            mask = np.zeros((1, len(e.input_ids)), bool)
            mask[0, e.start : e.stop] = True
            layers = dict(zip(names, hs_raw))
            if arch.final_norm is not None:
                layers[arch.final_norm] = hs[-1]
            for name, h in layers.items():
                for p in POOLS:
                    out.setdefault((name, p), []).append(_np_pool(h.numpy(), mask, p)[0])
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_pooled_values_equal_hidden_states_reference(
    tiny_factory, small_prompts, tmp_path, arch, side
):
    model, tok = tiny_factory(arch, side)
    span = "all" if arch == "bert" else "user"
    ref = reference(model, tok, small_prompts, span=span, chat=None)
    store = aqi.capture(
        model,
        tok,
        small_prompts,
        tmp_path / "a.h5",
        layers="all",
        pooling=POOLS,
        spans=span,
        writing=aqi.Writing(batch_size=5),
    )
    assert store.n_rows == len(small_prompts)
    assert len(store.layers) == len({k[0] for k in ref})
    for (layer, p), expected in ref.items():
        got = store.activations(layer, p)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0, err_msg=f"{arch} {layer} {p}")
    # The span really is shorter than the whole input for chat models.
    if span == "user":
        assert (store.span_tokens < store.token_counts).all()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_equals_unbatched_and_padding_side_free(
    tiny_factory, small_prompts, tmp_path, arch
):
    results = []
    for side, bs in [("right", 1), ("left", 7), ("right", 24)]:
        model, tok = tiny_factory(arch, side)
        s = aqi.capture(
            model,
            tok,
            small_prompts,
            tmp_path / f"{side}{bs}.h5",
            pooling=POOLS,
            spans="all",
            rendering=aqi.Rendering(chat=False),
            writing=aqi.Writing(batch_size=bs),
        )
        results.append({(la, p): s.activations(la, p) for la in s.layers for p in POOLS})
    for other in results[1:]:
        for k, v in results[0].items():
            np.testing.assert_allclose(other[k], v, atol=1e-5, rtol=0, err_msg=str(k))


def test_rows_in_prompt_order_despite_length_sorting(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    s = aqi.capture(model, tok, small_prompts, tmp_path / "a.h5",
                    writing=aqi.Writing(batch_size=4))  # fmt: skip
    assert s.ids.tolist() == list(small_prompts.ids)
    assert s.labels.tolist() == list(small_prompts.labels)
    assert s.texts.tolist() == list(small_prompts.texts)
    # Token counts really vary, so the sort did reorder work.
    assert len(set(s.token_counts.tolist())) > 3


def test_capture_bf16_accumulates_in_float32(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    m16 = copy.deepcopy(model).to(torch.bfloat16)
    s = aqi.capture(m16, tok, small_prompts[:6], tmp_path / "a.h5", pooling="mean",
                    writing=aqi.Writing(batch_size=3))  # fmt: skip
    assert s.activations(0).dtype == np.float32
    assert s.provenance["identity"]["dtype"] == "bfloat16"
    # Means of bf16 values computed in float32 differ from the bf16 round-off of the mean.
    enc = PromptEncoder(tok, span="user").encode(list(small_prompts[:1]))
    ids, attn, span = pad_batch(enc, 0, "right")
    with torch.inference_mode():
        h = m16(input_ids=ids, attention_mask=attn, output_hidden_states=True).hidden_states[1]
    exact = h[0][span[0]].float().mean(0).numpy()
    np.testing.assert_allclose(s.activations(0)[0], exact, atol=1e-6)


def test_early_exit_skips_deeper_layers(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    calls: list[str] = []
    handles = [
        model.model.layers[2].register_forward_hook(lambda *a: calls.append("block2")),
        model.lm_head.register_forward_hook(lambda *a: calls.append("head")),
    ]
    try:
        aqi.capture(model, tok, small_prompts[:4], tmp_path / "a.h5", layers=[0, 1],
                    writing=aqi.Writing(batch_size=4))  # fmt: skip
    finally:
        for h in handles:
            h.remove()
    assert calls == []


def test_store_records_provenance(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("qwen2")
    s = aqi.capture(model, tok, small_prompts[:4], tmp_path / "a.h5", pooling=["last"])
    ident = s.provenance["identity"]
    assert ident["layers"] == [f"model.layers.{i}" for i in range(3)]
    assert ident["poolings"] == ["last"] and ident["chat"] is True
    assert ident["spans"] == ["instruction", "post_instruction"] == list(s.spans)
    assert len(ident["weights_fingerprint"]) == 64 and len(ident["tokenizer_sha256"]) == 64
    assert s.provenance["versions"]["torch"] == importlib.metadata.version("torch")
    assert s.provenance["model"]["model_type"] == "qwen2"
    assert [li.stream for li in s.layer_info] == ["residual (block output)"] * 3
    with h5py.File(tmp_path / "a.h5") as f:
        assert f.attrs["format_version"] == 2
        ds = f["activations/model.layers.0/post_instruction/last"]
        assert ds.attrs["span"] == "post_instruction"
        assert ds.chunks is not None and ds.compression == "lzf"


# -- bad input ---------------------------------------------------------------------


def test_empty_prompt_list_is_an_error(tiny_factory, tmp_path):
    model, tok = tiny_factory("llama")
    with pytest.raises(ValueError, match="prompts is empty"):
        aqi.capture(model, tok, [], tmp_path / "a.h5")


def test_empty_text_is_an_error(tiny_factory, tmp_path):
    model, tok = tiny_factory("llama")
    with pytest.raises(ValueError, match=r"row 2 \(id='b'\): text is empty"):
        aqi.capture(
            model,
            tok,
            [
                {"id": "a", "text": "hi", "label": "safe"},
                {"id": "b", "text": "  ", "label": "unsafe"},
            ],
            tmp_path / "a.h5",
        )
    assert not (tmp_path / "a.h5").exists()


def test_over_long_prompt_is_truncated_flagged_and_warned(tiny_factory, tmp_path):
    model, tok = tiny_factory("llama")
    rows = [
        {"id": "short", "text": "How are you?", "label": "safe"},
        {"id": "long", "text": "Tell me a story " * 40, "label": "unsafe"},
    ]
    with pytest.warns(UserWarning, match=r"1 prompt\(s\) longer than max_length=48"):
        s = aqi.capture(model, tok, rows, tmp_path / "a.h5", spans="all",
                        rendering=aqi.Rendering(max_length=48))  # fmt: skip
    assert s.truncated.tolist() == [False, True]
    assert s.token_counts[1] == 48


def test_long_prompt_is_truncated_before_batching_and_batches_keep_a_token_budget(
    tiny_factory, small_prompts, tmp_path
):
    model, tok = tiny_factory("llama")
    rows = [*small_prompts.to_records()[:10], {"id": "long", "text": "word " * 5000,
                                               "label": "unsafe"}]  # fmt: skip
    widths: list[tuple[int, int]] = []
    h = model.get_input_embeddings().register_forward_hook(
        lambda _m, inp, _out: widths.append(tuple(inp[0].shape))
    )
    try:
        with pytest.warns(UserWarning, match="1 prompt"):
            s = aqi.capture(model, tok, rows, tmp_path / "a.h5", spans="all",
                            rendering=aqi.Rendering(max_length=64),
                            writing=aqi.Writing(batch_size=8,
                                                max_tokens_per_batch=100))  # fmt: skip
    finally:
        h.remove()
    assert s.truncated.tolist() == [False] * 10 + [True] and s.token_counts[-1] == 64
    assert widths[0] == (1, 64)  # the long row, cut to max_length first, runs alone
    assert all(w <= 64 and (b == 1 or b * w <= 100) for b, w in widths), widths
    assert sum(b for b, _ in widths) == 11 and len(widths) > 2
    with pytest.warns(UserWarning, match="1 prompt"):
        unbounded = aqi.capture(model, tok, rows, tmp_path / "b.h5", spans="all",
                                rendering=aqi.Rendering(max_length=64),
                                writing=aqi.Writing(batch_size=8,
                                                    max_tokens_per_batch=None))  # fmt: skip
    for la in s.layers:
        np.testing.assert_allclose(
            s.activations(la, "mean"), unbounded.activations(la, "mean"), atol=1e-5
        )
    assert s.provenance["capture"]["max_tokens_per_batch"] == 100


def test_truncation_that_removes_the_span_is_an_error(tiny_factory, tmp_path):
    model, tok = tiny_factory("llama")
    tok.truncation_side = "left"  # keeps the tail: the user's text is cut away entirely
    rows = [{"id": "x", "text": "word " * 50, "label": "safe"}]
    with pytest.raises(ValueError, match="leaves none of its 'instruction' span"):
        aqi.capture(model, tok, rows, tmp_path / "a.h5", rendering=aqi.Rendering(max_length=4))


def test_non_finite_activation_names_layer_and_row(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"layer 'model\.layers\.1' .* for prompt '"):
        aqi.capture(broken, tok, small_prompts[:4], tmp_path / "a.h5", pooling="mean")
    assert hook_count(broken) == hook_count(model)


def test_unwritable_path_is_a_clear_error(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        aqi.capture(model, tok, small_prompts[:2], tmp_path / "missing" / "a.h5")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not __import__("os").access(ro, __import__("os").W_OK):  # root ignores modes
            with pytest.raises(PermissionError, match="not writable"):
                aqi.capture(model, tok, small_prompts[:2], ro / "a.h5")
        else:
            with pytest.raises(IsADirectoryError, match="is a directory"):
                aqi.capture(model, tok, small_prompts[:2], ro)
    finally:
        ro.chmod(0o700)


def test_existing_non_hdf5_file_is_refused_and_kept(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    p = tmp_path / "notes.h5"
    p.write_text("my precious notes")
    with pytest.raises(ValueError, match="exists but is not an HDF5 file"):
        aqi.capture(model, tok, small_prompts[:2], p)
    assert p.read_text() == "my precious notes"
    with pytest.raises(ValueError, match="not an HDF5 file"):
        open_store(p)


def test_resuming_a_store_of_another_model_is_refused(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    p = tmp_path / "a.h5"
    aqi.capture(model, tok, small_prompts[:4], p).close()
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.model.layers[0].mlp.up_proj.weight.mul_(1.5)
    with pytest.raises(ValueError, match="weights_fingerprint: stored"):
        aqi.capture(other, tok, small_prompts[:4], p)
    with pytest.raises(ValueError, match="layers: stored"):
        aqi.capture(model, tok, small_prompts[:4], p, layers=[0])
    with pytest.raises(ValueError, match="poolings: stored"):
        aqi.capture(model, tok, small_prompts[:4], p, pooling="max")
    # overwrite=True replaces it
    s = aqi.capture(other, tok, small_prompts[:4], p, writing=aqi.Writing(overwrite=True))
    assert s.provenance["identity"][
        "weights_fingerprint"
    ] != aqi.jobs.provenance.weights_fingerprint(model)


def test_other_tokenizer_refused_on_resume(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    p = tmp_path / "a.h5"
    # Leave an unfinished capture: commit the manifest, no part.
    aqi.capture(model, tok, small_prompts[:4], p).close()
    tok2 = copy.deepcopy(tok)
    tok2.add_tokens(["<brand-new-token>"])
    with pytest.raises(ValueError, match="tokenizer_sha256"):
        aqi.capture(model, tok2, small_prompts[:4], p)


def test_rerun_of_finished_capture_returns_it_without_work(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("gpt2")
    p = tmp_path / "a.h5"
    first = aqi.capture(model, tok, small_prompts[:6], p, rendering=aqi.Rendering(chat=False))
    a = first.activations(0, "mean")
    first.close()
    mtime = p.stat().st_mtime_ns
    again = aqi.capture(model, tok, small_prompts[:6], p, rendering=aqi.Rendering(chat=False))
    assert p.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.activations(0, "mean"), a)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"writing": {"batch_size": 0}}, "batch_size=0"),
        ({"pooling": "median"}, "pooling='median'; expected one of"),
        ({"spans": "assistant"}, "spans='assistant'; expected one of"),
        ({"spans": ["instruction", "middle"]}, "spans='middle'; expected one of"),
        ({"spans": []}, "spans is empty"),
        ({"spans": "response_onset"}, "span='response_onset' reads the response"),
        ({"rendering": {"onset_tokens": 0}}, "onset_tokens=0; expected a positive int"),
        ({"layers": "model.layer.1"}, "did you mean 'model.layers.1'"),
        ({"writing": {"padding_side": "top"}}, "padding_side='top'"),
        ({"spans": "response"}, "span='response' reads the response, so it needs include_response"),
        ({"rendering": {"include_response": True}}, "has no response but include_response=True"),
        ({"writing": {"max_tokens_per_batch": 0}},
         "max_tokens_per_batch=0; expected a positive int or None"),
    ],
)
def test_bad_arguments_name_the_argument(tiny_factory, small_prompts, tmp_path, kwargs, match):
    """Settings values (``{"writing": {...}}``) are made inside ``pytest.raises``: they check
    their fields when they are made."""
    model, tok = tiny_factory("llama")
    before = hook_count(model)
    values = {"rendering": aqi.Rendering, "writing": aqi.Writing}

    def call() -> None:
        kw = {k: values[k](**v) if k in values else v for k, v in kwargs.items()}
        aqi.capture(model, tok, small_prompts[:2], tmp_path / "a.h5", **kw)

    with pytest.raises(ValueError, match=match):
        call()
    assert hook_count(model) == before


def test_response_span_pools_only_the_response(tiny_factory, tmp_path):
    model, tok = tiny_factory("llama")
    rows = [
        {
            "id": "a",
            "text": "How do I bake bread?",
            "label": "safe",
            "response": "Mix flour, water and yeast, then bake.",
        }
    ]
    s = aqi.capture(model, tok, rows, tmp_path / "r.h5", spans="response",
                    rendering=aqi.Rendering(include_response=True))  # fmt: skip
    enc = PromptEncoder(tok, span="response", include_response=True).encode(
        list(aqi.load_prompts(rows))
    )
    piece = tok.decode(enc[0].input_ids[enc[0].start : enc[0].stop])
    assert piece.strip() == "Mix flour, water and yeast, then bake."
    assert s.span_tokens[0] == enc[0].stop - enc[0].start


def test_user_span_covers_exactly_the_user_text(tiny_factory, prompts):
    _, tok = tiny_factory("llama")
    enc = PromptEncoder(tok, span="user").encode(list(prompts[:40]))
    for e, p in zip(enc, prompts[:40]):
        assert tok.decode(e.input_ids[e.start : e.stop]).strip() == p.text


def test_default_pooling_path_type_errors(tmp_path):
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        aqi.capture("gpt2", None, [{"text": "x", "label": "safe"}], tmp_path / "a.h5")


def test_partial_dir_removed_after_success(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    p = tmp_path / "a.h5"
    aqi.capture(model, tok, small_prompts[:3], p, writing=aqi.Writing(commit_rows=1)).close()
    assert p.is_file() and not partial_dir(Path(p)).exists()


def test_encoder_text_pair_matches_the_tokenizer_pair(bert_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    from aqi.activations import Prompt
    from aqi.prompts.encoding import pad_token_type_ids

    tok = AutoTokenizer.from_pretrained(bert_tokenizer_dir)
    rows = [Prompt("a", "How do I bake bread?", "safe", response="Knead, rise, bake."),
            Prompt("b", "Hi", "safe", response="Hello there, friend.")]  # fmt: skip
    enc = PromptEncoder(tok, span="all", include_response=True, text_pair=True).encode(rows)
    for e, p in zip(enc, rows, strict=True):
        ref = tok(p.text, p.response)
        assert e.input_ids == ref["input_ids"] and e.token_type_ids == ref["token_type_ids"]
        assert (e.start, e.stop) == (0, len(ref["input_ids"]))
    types = pad_token_type_ids(enc, "left")
    assert types is not None
    pad = len(enc[0].input_ids) - len(enc[1].input_ids)
    assert types[1, :pad].sum() == 0 and types[1, pad:].tolist() == enc[1].token_type_ids
    assert pad_token_type_ids(PromptEncoder(tok, span="all").encode(rows), "right") is None
    with pytest.raises(ValueError, match="text_pair=True encodes plain"):
        PromptEncoder(tok, span="user", include_response=True, text_pair=True)
    with pytest.raises(ValueError, match="has no response but text_pair=True"):
        PromptEncoder(tok, span="all", include_response=True, text_pair=True).encode(
            [Prompt("c", "x", "safe")]
        )
