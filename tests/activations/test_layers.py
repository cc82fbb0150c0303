"""Layer resolution: architecture table, globs, indices, helpful errors."""

from __future__ import annotations

import pytest
import transformers as tf

from aqi.activations import find_architecture, resolve_layers

from ..conftest import build_tiny


@pytest.mark.parametrize(
    ("arch", "blocks", "emb", "norm"),
    [
        ("llama", "model.layers", "model.embed_tokens", "model.norm"),
        ("qwen2", "model.layers", "model.embed_tokens", "model.norm"),
        ("gpt2", "transformer.h", "transformer.drop", "transformer.ln_f"),
        ("bert", "encoder.layer", "embeddings", None),
    ],
)
def test_architecture_table(arch, blocks, emb, norm):
    found = find_architecture(build_tiny(arch, 64))
    assert found.blocks == tuple(f"{blocks}.{i}" for i in range(3))
    assert (found.embeddings, found.final_norm) == (emb, norm)
    assert found.source == f"table:{arch}"


@pytest.mark.parametrize(
    ("model", "blocks"),
    [
        (
            tf.GPTNeoXForCausalLM(
                tf.GPTNeoXConfig(
                    vocab_size=64,
                    hidden_size=16,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=32,
                )
            ),
            "gpt_neox.layers",
        ),
        (
            tf.DebertaV2Model(
                tf.DebertaV2Config(
                    vocab_size=64,
                    hidden_size=16,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=32,
                )
            ),
            "encoder.layer",
        ),
        (
            tf.RobertaForSequenceClassification(
                tf.RobertaConfig(
                    vocab_size=64,
                    hidden_size=16,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=32,
                )
            ),
            "roberta.encoder.layer",
        ),
        (
            tf.MistralForCausalLM(
                tf.MistralConfig(
                    vocab_size=64,
                    hidden_size=16,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    num_key_value_heads=1,
                    intermediate_size=32,
                )
            ),
            "model.layers",
        ),
    ],
)
def test_more_families(model, blocks):
    assert [r.name for r in resolve_layers(model)] == [f"{blocks}.0", f"{blocks}.1"]


def test_specs_indices_aliases_globs_in_forward_order():
    m = build_tiny("llama", 64)
    assert [r.name for r in resolve_layers(m, [-1, 0])] == ["model.layers.0", "model.layers.2"]
    refs = resolve_layers(m, "all")
    assert [r.role for r in refs] == ["embeddings", "block", "block", "block", "final_norm"]
    assert [r.block for r in refs] == [None, 0, 1, 2, None]
    assert [r.name for r in resolve_layers(m, "model.layers.*.mlp")] == [
        f"model.layers.{i}.mlp" for i in range(3)
    ]
    assert [r.role for r in resolve_layers(m, ["model.layers.1.mlp"])] == ["module"]
    # duplicates collapse
    assert len(resolve_layers(m, [0, "model.layers.0", "blocks"])) == 3


@pytest.mark.parametrize(
    ("spec", "exc", "match"),
    [
        (
            "model.layer.1",
            ValueError,
            r"did you mean 'model\.layers\.1'.*3 blocks: model\.layers\.0 … model\.layers\.2",
        ),
        (7, ValueError, r"layer index 7 out of range: the model has 3 blocks"),
        ("model.nothing.*", ValueError, "matches no module"),
        ([], ValueError, "layers is empty"),
        ([1.5], TypeError, "expected a str or int"),
    ],
)
def test_bad_specs(spec, exc, match):
    with pytest.raises(exc, match=match):
        resolve_layers(build_tiny("llama", 64), spec)


def test_bert_has_no_final_norm():
    with pytest.raises(ValueError, match="has no known final_norm module"):
        resolve_layers(build_tiny("bert", 64), "final_norm")
