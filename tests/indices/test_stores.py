"""score / compare / learned layer pooling on stores, including the real SmolLM2-135M-Instruct."""

from __future__ import annotations

import numpy as np
import pytest

import aqi
from aqi.activations import store_from_arrays
from aqi.indices import learn_layer_weights, paper_pipeline, score


def _synthetic(tmp_path, name="s.h5", shift=(0.0, 1.0, 3.0), seed=0, n=120):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    arrays = {}
    for i, g in enumerate(shift):
        X = rng.normal(size=(n, 6))
        X[:, 0] += g * y
        arrays[f"layer{i}"] = X
    cats = np.array(["a", "b"] * (n // 2))
    ids = [f"r{i}" for i in range(n)]
    return store_from_arrays(tmp_path / name, arrays, labels=y, ids=ids, categories=cats)


def test_score_profile_layers_categories(tmp_path):
    s = _synthetic(tmp_path)
    prof = score(s, n_boot=200, n_perm=100)
    assert prof.names == ["layer0", "layer1", "layer2"]
    v = prof.values
    assert v[0] < v[1] < v[2]
    assert prof.best().layer == "layer2" and prof["layer2"].above_chance
    assert not prof["layer0"].above_chance
    assert set(prof.categories["layer2"]) == {"a", "b"}
    assert prof.lexical == {}  # bring-your-own store: no texts, no embedding layer
    d = prof.to_dict()
    assert len(d["layers"]) == 3 and "best layer2" in repr(prof)


def test_compare_detects_a_drop_and_not_a_copy(tmp_path):
    a = _synthetic(tmp_path, "a.h5", shift=(0.0, 3.0, 3.0))
    same = _synthetic(tmp_path, "same.h5", shift=(0.0, 3.0, 3.0))
    worse = _synthetic(tmp_path, "worse.h5", shift=(0.0, 3.0, 0.5))
    c = aqi.compare(a, worse, n_boot=500)
    drop = c.layers[2]
    assert drop.difference > 0 and drop.significant and drop.p_value < 0.01
    assert not c.layers[1].significant
    assert c.largest_drop().layer_a == "layer2"
    none = aqi.compare(a, same, n_boot=500)
    assert all(abs(d.difference) < 1e-9 and not d.significant for d in none.layers)


def test_compare_layer_mapping_errors(tmp_path):
    a = _synthetic(tmp_path, "a.h5")
    b = store_from_arrays(
        tmp_path / "b.h5",
        {"x": np.zeros((120, 2))},
        labels=np.repeat([0, 1], 60),
        ids=[f"r{i}" for i in range(120)],
    )
    with pytest.raises(ValueError, match="share no layer name"):
        aqi.compare(a, b)


def test_learned_pooling_finds_the_informative_layer(tmp_path):
    s = _synthetic(tmp_path, shift=(0.0, 0.0, 2.5, 0.0), n=200)
    lp = learn_layer_weights(s, n_boot=200, n_perm=100)
    assert lp.weights.sum() == pytest.approx(1.0) and (lp.weights >= 0).all()
    assert int(np.argmax(lp.weights)) == 2
    assert (lp.weights == 0).sum() >= 1  # sparse
    assert lp.n_train + lp.n_heldout == 200
    assert lp.heldout.above_chance
    from aqi.viz import plot_layer_weights  # drawn by aqi.viz, not by the result

    fig = plot_layer_weights(lp)
    assert len(fig.axes[0].patches) == 4
    assert "learned pooling" in repr(lp) or "LayerWeights(" in repr(lp)


def test_paper_pipeline_min_max_within_run():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    layers = [rng.normal(size=(80, 5)) + g * y[:, None] for g in (0.0, 1.0, 3.0)]
    v = paper_pipeline(layers, y, projection="tsne", seed=0)
    assert v.shape == (3,) and np.nanmin(v) >= 0 and np.nanmax(v) <= 1
    with pytest.raises(ValueError, match="at least 2 units"):
        paper_pipeline(layers[:1], y)


def test_smollm2_deep_layer_aqi_above_permutation_null(smol_store):
    prof = score(smol_store, pooling="mean", n_boot=500, n_perm=200)
    deep = prof["model.layers.20"]
    assert deep.above_chance and deep.p_value < 0.01
    assert "bag_of_words" in prof.lexical and "embeddings" in prof.lexical
    # The deep layer separates the matched pairs better than their surface wording.
    assert deep.value > prof.lexical["embeddings"].value


def test_smollm2_learned_pooling_reports_heldout(smol_store):
    lp = learn_layer_weights(
        smol_store, pooling="mean", layers=list(range(30)), n_boot=200, n_perm=100, steps=150
    )
    assert lp.n_train + lp.n_heldout == 294
    assert lp.heldout.above_chance


def test_compare_never_pairs_layers_by_position(tmp_path):
    """Before: two stores with equally many layers but no shared name were paired by position
    and printed under the second store's names."""
    a = _synthetic(tmp_path, "a.h5")
    rng = np.random.default_rng(0)
    b = store_from_arrays(tmp_path / "b.h5", {f"other{i}": rng.normal(size=(len(a), 3))
                                              for i in range(len(a.layers))},
                          prompts=a.prompts())
    assert len(a.layers) == len(b.layers)
    with pytest.raises(ValueError, match=r"share no layer name") as e:
        aqi.compare(a, b)
    assert "layer0" in str(e.value) and "other0" in str(e.value)  # both sides listed


def test_compare_refuses_same_ids_with_different_texts(tmp_path):
    a = _synthetic(tmp_path, "a.h5")
    from dataclasses import replace

    rows = list(a.prompts())
    rows[3] = replace(rows[3], text=rows[3].text + " (edited)")
    rows[7] = replace(rows[7], text="another prompt")
    b = store_from_arrays(tmp_path / "b.h5", {la: a.activations(la) for la in a.layers},
                          prompts=aqi.PromptSet(rows))
    with pytest.raises(ValueError, match=r"2 of \d+ prompt ids have different texts.*"
                                         r"allow_text_mismatch=True"):
        aqi.compare(a, b)
    with pytest.warns(UserWarning, match="2 of .* different texts.*comparing them anyway"):
        c = aqi.compare(a, b, n_boot=50, allow_text_mismatch=True)
    assert len(c.layers) == len(a.layers)
