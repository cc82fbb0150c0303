"""TransformerLens and nnsight models in capture(): exactness, hook-point grammar, extras.

TransformerLens models are built offline from a config: a ``TransformerBridge`` around
TransformerLens's own native transformer (TransformerLens >= 3; the 4.x replacement of
``HookedTransformer``, with ``enable_compatibility_mode()`` for its hook names) and,
where the installed TransformerLens still has it (< 4), a ``HookedTransformer``. The
reference runs ``model.run_with_cache`` on each prompt alone (no padding at all).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import aqi
from aqi.activations import PromptEncoder, PromptSet
from aqi.activations.adapters import model_family

from ..conftest import build_tiny, hook_count

TL_KINDS = ("bridge", "hooked")


def _tokenizer(path: Path, side: str = "right") -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = side
    return tok


def build_transformerlens(
    kind: str, tok: Any, positional: str = "standard", seed: int = 0
) -> torch.nn.Module:
    """A tiny random TransformerLens model (2 blocks, d_model 32, LayerNorm, GELU), eval mode."""
    pytest.importorskip("transformer_lens")
    cfg = {
        "d_model": 32,
        "d_head": 8,
        "n_heads": 4,
        "n_layers": 2,
        "n_ctx": 128,
        "d_vocab": len(tok),
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": positional,
        "seed": seed,
    }
    torch.manual_seed(seed)
    if kind == "hooked":
        try:
            from transformer_lens import HookedTransformer, HookedTransformerConfig
        except ImportError:
            pytest.skip("TransformerLens >= 4 has no HookedTransformer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 3.x
            model = HookedTransformer(HookedTransformerConfig(**cfg), tokenizer=tok)
    else:
        try:
            from transformer_lens.config import TransformerBridgeConfig
            from transformer_lens.model_bridge import TransformerBridge
        except ImportError:
            pytest.skip("TransformerLens < 3 has no TransformerBridge")

        model = TransformerBridge.boot_native(TransformerBridgeConfig(**cfg), tokenizer=tok)
        model.enable_compatibility_mode()
    model.eval()
    with torch.inference_mode():  # a bridge wires its own pre-hooks on its first forward
        model(torch.tensor([[5, 6, 7]]), return_type=None)
    return model


@pytest.fixture(scope="module", params=TL_KINDS)
def tl_model(request: pytest.FixtureRequest, decoder_tokenizer_dir: Path) -> Any:
    return build_transformerlens(request.param, _tokenizer(decoder_tokenizer_dir))


def reference(model: Any, tok: Any, prompts: PromptSet, names: list[str]) -> dict:
    """``{(hook, pooling): rows}`` from ``run_with_cache`` on each prompt alone, pooled by hand."""
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for e in PromptEncoder(tok, span="user").encode(list(prompts)):
        with torch.inference_mode():
            _, cache = model.run_with_cache(torch.tensor([e.input_ids]), names_filter=names)
        for name in names:
            h = cache[name][0, e.start : e.stop].float().numpy()  # the span, no padding
            out.setdefault((name, "mean"), []).append(h.mean(0))
            out.setdefault((name, "last"), []).append(h[-1])
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("kind", TL_KINDS)
@pytest.mark.parametrize("positional", ["standard", "rotary"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_transformerlens_rows_equal_run_with_cache_alone(
    decoder_tokenizer_dir, small_prompts, tmp_path, kind, positional, side
):
    tok = _tokenizer(decoder_tokenizer_dir, side)
    model = build_transformerlens(kind, tok, positional)
    before = hook_count(model)
    store = aqi.capture(
        model, tok, small_prompts, tmp_path / "tl.h5", layers="all",
        writing=aqi.Writing(batch_size=5, progress=False)
    )
    names = [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
        "ln_final.hook_normalized",
    ]
    assert list(store.layers) == names
    assert [li.role for li in store.layer_info] == ["embeddings", "block", "block", "final_norm"]
    assert len(set(store.token_counts.tolist())) > 3  # batches really were padded
    ref = reference(model, tok, small_prompts, names)
    for (name, pooling), expected in ref.items():
        got = store.activations(name, pooling)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0, err_msg=f"{name} {pooling}")
    assert hook_count(model) == before


@pytest.mark.parametrize("kind", TL_KINDS)
def test_transformerlens_rows_do_not_depend_on_batching(
    decoder_tokenizer_dir, small_prompts, tmp_path, kind
):
    rows = []
    for side, bs in [("right", 1), ("right", 4), ("left", 4)]:
        tok = _tokenizer(decoder_tokenizer_dir, side)
        model = build_transformerlens(kind, tok, "rotary")
        s = aqi.capture(
            model, tok, small_prompts, tmp_path / f"{side}{bs}.h5", spans="all",
            rendering=aqi.Rendering(chat=False), writing=aqi.Writing(batch_size=bs, progress=False),
            pooling=("mean", "last", "max"),
        )
        rows.append({(la, p): s.activations(la, p) for la in s.layers for p in s.poolings})
    for other in rows[1:]:
        for k, v in rows[0].items():
            np.testing.assert_allclose(other[k], v, atol=1e-5, rtol=0, err_msg=str(k))


def test_hook_point_grammar(tl_model):
    def names(spec):
        return [r.name for r in aqi.resolve_layers(tl_model, spec)]

    post = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert names("blocks") == names(None) == post
    assert names([0, -1]) == names(["0", "-1"]) == post
    assert names(-1) == ["blocks.1.hook_resid_post"]
    assert names("embeddings") == ["blocks.0.hook_resid_pre"]
    assert names("final_norm") == ["ln_final.hook_normalized"]
    assert names("all") == ["blocks.0.hook_resid_pre", *post, "ln_final.hook_normalized"]
    assert names("blocks.*.hook_resid_mid") == [
        "blocks.0.hook_resid_mid",
        "blocks.1.hook_resid_mid",
    ]
    # Forward order, whatever the order asked for.
    assert names(["ln_final.hook_normalized", "blocks.1.hook_resid_pre", "hook_embed"]) == [
        "hook_embed",
        "blocks.1.hook_resid_pre",
        "ln_final.hook_normalized",
    ]
    refs = aqi.resolve_layers(tl_model, ["hook_embed", 1])
    assert [(r.role, r.block) for r in refs] == [("module", None), ("block", 1)]
    assert refs[0].module is tl_model.hook_dict["hook_embed"]


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ("blocks.1.hook_resid_pots", r"did you mean 'blocks\.1\.hook_resid_post'"),
        ("blocks.0.hook_mlp_outt", r"did you mean 'blocks\.0\.hook_mlp_out'"),
        ("blocks.*.hook_resid_postt", r"layer glob 'blocks\.\*\.hook_resid_postt' matches no"),
        (2, r"layer index 2 out of range: .* has 2 blocks .*use -2 … 1"),
        ([], "layers is empty"),
    ],
)
def test_unknown_hook_point_is_an_error_with_close_matches(
    tl_model, small_prompts, tmp_path, layers, match
):
    before = hook_count(tl_model)
    with pytest.raises(ValueError, match=match):
        aqi.capture(tl_model, None, small_prompts[:2], tmp_path / "a.h5", layers=layers)
    assert hook_count(tl_model) == before
    assert not (tmp_path / "a.h5").exists()


def test_early_exit_skips_deeper_hook_points(tl_model, small_prompts, tmp_path):
    seen: list[str] = []
    handles = [
        tl_model.hook_dict[n].register_forward_hook(lambda *a, n=n: seen.append(n))
        for n in ("blocks.0.hook_resid_post", "blocks.1.hook_resid_pre", "ln_final.hook_normalized")
    ]
    try:
        aqi.capture(tl_model, None, small_prompts[:4], tmp_path / "a.h5", layers=[0],
                    writing=aqi.Writing(batch_size=2))  # fmt: skip
    finally:
        for h in handles:
            h.remove()
    assert seen == ["blocks.0.hook_resid_post"] * 2  # two batches, nothing after block 0


def test_transformerlens_store_records_the_model_and_scores(tl_model, prompts, tmp_path):
    rows = prompts[:40]
    store = aqi.capture(tl_model, None, rows, tmp_path / "tl.h5", layers="all",
                        writing=aqi.Writing(batch_size=8))  # fmt: skip
    # The same call again returns the finished store (a changed identity would raise).
    mtime = (tmp_path / "tl.h5").stat().st_mtime_ns
    aqi.capture(tl_model, None, rows, tmp_path / "tl.h5", layers="all",
                writing=aqi.Writing(batch_size=8))  # fmt: skip
    assert (tmp_path / "tl.h5").stat().st_mtime_ns == mtime
    prov = store.provenance
    assert prov["model"]["family"] == "transformerlens"
    assert prov["identity"]["model_class"] == type(tl_model).__name__
    assert prov["identity"]["model_config_sha256"] is not None
    assert prov["capture"]["n_blocks"] == 2
    assert prov["versions"]["transformer-lens"] != "not installed"
    # Negative block indices resolve against the recorded block count.
    np.testing.assert_array_equal(
        store.activations(-1), store.activations("blocks.1.hook_resid_post")
    )
    profile = aqi.score(store, n_boot=40, n_perm=20)
    assert profile.names == list(store.layers)
    direct = aqi.alignment_quality_index(
        store.activations("blocks.1.hook_resid_post"), store.y, n_boot=40, n_perm=20
    )
    assert profile.layers[2].value == pytest.approx(direct.value, abs=1e-9)
    assert "embeddings" in profile.lexical  # blocks.0.hook_resid_pre is the embedding layer


def test_hooks_on_a_transformerlens_model(tl_model):
    tokens = torch.tensor([[5, 6, 7, 8], [9, 10, 2, 2]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with aqi.ActivationHooks(tl_model, ["blocks.1.hook_resid_post"], "mean") as hooks:
        out = hooks.run(tokens, attention_mask=mask, span=mask.bool(), return_type=None)
    with torch.inference_mode():
        _, cache = tl_model.run_with_cache(tokens[1:, :2])
    expected = cache["blocks.1.hook_resid_post"][0].mean(0)
    torch.testing.assert_close(out["blocks.1.hook_resid_post"]["mean"][1], expected)


# -- nnsight ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nnsight_model(decoder_tokenizer_dir: Path) -> tuple[Any, Any, Any]:
    """``(LanguageModel, the tiny Llama it wraps, tokenizer)``; the Llama is this module's own."""
    nnsight = pytest.importorskip("nnsight")
    tok = _tokenizer(decoder_tokenizer_dir)
    hf = build_tiny("llama", len(tok), seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nnsight 0.8 deprecates the LanguageModel name
        lm = nnsight.LanguageModel(hf, tokenizer=tok)
    return lm, hf, tok


def test_nnsight_rows_equal_the_bare_model_exactly(nnsight_model, small_prompts, tmp_path):
    lm, hf, tok = nnsight_model
    assert model_family(lm) == "nnsight" and not isinstance(lm, torch.nn.Module)
    before = hook_count(hf)
    bare = aqi.capture(hf, tok, small_prompts, tmp_path / "hf.h5", layers="all",
                       writing=aqi.Writing(batch_size=5))  # fmt: skip
    wrapped = aqi.capture(lm, None, small_prompts, tmp_path / "nn.h5", layers="all",
                          writing=aqi.Writing(batch_size=5))  # fmt: skip
    assert wrapped.layers == bare.layers
    assert wrapped.layers[1] == "model.layers.0"
    for layer in bare.layers:
        for p in bare.poolings:
            np.testing.assert_array_equal(wrapped.activations(layer, p), bare.activations(layer, p))
    assert wrapped.provenance["identity"] == bare.provenance["identity"]
    assert wrapped.provenance["versions"]["nnsight"] != "not installed"
    assert "nnsight" not in bare.provenance["versions"]
    assert hook_count(hf) == before
    assert [r.name for r in aqi.resolve_layers(lm, [0, -1])] == [
        "model.layers.0",
        "model.layers.2",
    ]


# -- missing extras ------------------------------------------------------------------------


def test_broken_transformerlens_install_names_the_extra(tl_model, small_prompts, tmp_path,
                                                         monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens.hook_points", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'aqi\[transformerlens\]'"):
        aqi.capture(tl_model, None, small_prompts[:2], tmp_path / "a.h5")
    with pytest.raises(ImportError, match=r"pip install 'aqi\[transformerlens\]'"):
        aqi.activations.adapters.hook_points(tl_model)


def test_broken_nnsight_install_names_the_extra(nnsight_model, small_prompts, tmp_path,
                                                monkeypatch):
    monkeypatch.setitem(sys.modules, "nnsight", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'aqi\[nnsight\]'"):
        aqi.capture(nnsight_model[0], None, small_prompts[:2], tmp_path / "a.h5")


def test_adapters_refuse_other_models_by_name(tiny_factory, small_prompts, tmp_path):
    from aqi.activations.adapters import hook_points, unwrap_nnsight

    model, tok = tiny_factory("gpt2")
    with pytest.raises(TypeError, match=r"must be a TransformerLens HookedTransformer or "
                                        r"TransformerBridge .* got GPT2LMHeadModel"):
        hook_points(model)
    with pytest.raises(TypeError, match="must be an nnsight model, got GPT2LMHeadModel"):
        unwrap_nnsight(model)
    with pytest.raises(ValueError, match="tokenizer=None; pass the model's tokenizer"):
        aqi.capture(model, None, small_prompts[:2], tmp_path / "a.h5")
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module, got dict; also "
                                        r"accepted: a TransformerLens"):
        aqi.capture({}, tok, small_prompts[:2], tmp_path / "a.h5")


def test_hf_capture_imports_neither_extra(decoder_tokenizer_dir, tmp_path):
    """Detection reads class module names: a Hugging Face capture never loads the extras."""
    code = textwrap.dedent(
        f"""
        import sys
        import aqi
        from tests.conftest import build_tiny
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained({str(decoder_tokenizer_dir)!r})
        model = build_tiny("gpt2", len(tok))
        rows = [{{"text": "hello there", "label": "safe"}}, {{"text": "bye", "label": "unsafe"}}]
        aqi.capture(model, tok, rows, {str(tmp_path / "a.h5")!r}, progress=False)
        print(sorted(m for m in ("transformer_lens", "nnsight") if m in sys.modules))
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
