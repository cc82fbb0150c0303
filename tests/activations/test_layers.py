"""Layer resolution: architecture table, globs, indices, helpful errors."""

from __future__ import annotations

import pytest
import transformers as tf

from aqi.activations import ARCHITECTURES, Architecture, find_architecture, resolve_layers

from ..conftest import build_family, build_tiny


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


# Every text family of the table (multimodal Gemma 3 would build a full-size vision tower).
TEXT_FAMILIES = sorted(k for k in ARCHITECTURES if k != "gemma3")


@pytest.mark.parametrize("model_type", TEXT_FAMILIES)
def test_architecture_table_entry_matches_the_family(model_type: str) -> None:
    from torch import nn

    arch = ARCHITECTURES[model_type]
    model = build_family(model_type)
    found = find_architecture(model)
    modules = dict(model.named_modules())
    assert found.source == f"table:{model_type}"
    assert len(found.blocks) == 2
    assert all(name in modules for name in (found.embeddings, found.final_norm) if name)
    if arch.no_ablation is not None:
        assert found.residual_writers == ()
        assert found.no_ablation == f"model_type {model_type!r}: {arch.no_ablation}"
        return
    assert found.no_ablation is None
    assert len(found.residual_writers) == len(arch.embedding_writers) + 2 * len(
        arch.block_writers
    )
    hidden = model.config.hidden_size if model_type != "gpt2" else model.config.n_embd
    for name in found.residual_writers:  # each one writes hidden-size vectors
        m = modules[name]
        out = m.embedding_dim if isinstance(m, nn.Embedding) else m.weight.shape[
            0 if isinstance(m, nn.Linear) else 1
        ]
        assert out == hidden, name


def test_architecture_entries_say_writers_or_why_not() -> None:
    assert all(
        (a.no_ablation is None) == bool(a.block_writers) for a in ARCHITECTURES.values()
    )
    with pytest.raises(ValueError, match="not both or neither"):
        Architecture(blocks="layers", embeddings=None, final_norm=None)
    with pytest.raises(ValueError, match="not both or neither"):
        Architecture(
            blocks="layers",
            embeddings=None,
            final_norm=None,
            embedding_writers=("wte",),
            block_writers=("attn.c_proj",),
            no_ablation="post-norm",
        )


def test_unknown_architecture_has_no_writers() -> None:
    from torch import nn

    net = nn.Sequential(nn.ModuleList([nn.Linear(4, 4) for _ in range(3)]))
    found = find_architecture(net)
    assert (found.source, found.blocks[0], found.residual_writers) == ("heuristic", "0.0", ())
    assert "not in aqi.activations.ARCHITECTURES" in (found.no_ablation or "")
