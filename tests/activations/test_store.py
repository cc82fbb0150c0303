"""The store: bring-your-own arrays, pairing by id, format checks, errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import aqi
from aqi.activations import FORMAT_VERSION, open_store, pair_by_id, store_from_arrays


def _arrays(n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "emb": rng.normal(size=(n, 3)).astype("f4"),
        "deep": rng.normal(size=(n, 5)).astype("f4"),
    }


LABELS = ["safe", "unsafe"] * 3


def test_bring_your_own_roundtrip(tmp_path):
    arr = _arrays()
    s = store_from_arrays(
        tmp_path / "s.h5",
        arr,
        labels=LABELS,
        categories=list("abcabc"),
        provenance={"model": "my-extractor"},
    )
    assert s.layers == ("emb", "deep") and s.complete and len(s) == 6
    np.testing.assert_array_equal(s.activations("deep"), arr["deep"])
    np.testing.assert_array_equal(s.activations("@0"), arr["emb"])  # a position
    with pytest.raises(ValueError, match=r"records no transformer blocks.*'@0'"):
        s.activations(0)  # an int is a block index, and these layers are not blocks
    assert s.categories.tolist() == list("abcabc") and s.y.tolist() == [0, 1] * 3
    assert s.provenance["user"] == {"model": "my-extractor"}
    assert s.token_counts.tolist() == [-1] * 6
    with h5py.File(tmp_path / "s.h5") as f:
        assert f.attrs["format"] == "aqi.activations"
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert json.loads(f["rows/label"].attrs["names"]) == ["safe", "unsafe"]
    assert "complete rows" in repr(s)


def test_store_from_arrays_refuses_other_data_at_same_path(tmp_path):
    store_from_arrays(tmp_path / "s.h5", _arrays(), labels=LABELS).close()
    with pytest.raises(ValueError, match="data_sha256: stored"):
        store_from_arrays(tmp_path / "s.h5", _arrays(seed=1), labels=LABELS)
    s = store_from_arrays(tmp_path / "s.h5", _arrays(seed=1), labels=LABELS, overwrite=True)
    np.testing.assert_array_equal(s.activations("emb"), _arrays(seed=1)["emb"])


@pytest.mark.parametrize(
    ("arrays", "kwargs", "match"),
    [
        ({}, {"labels": LABELS}, "arrays is empty"),
        ({"a": np.zeros((6,))}, {"labels": LABELS}, r"must be \(n, dim\)"),
        ({"a": np.zeros((6, 2)), "b": np.zeros((5, 2))}, {"labels": LABELS}, "same number of rows"),
        ({"a": np.full((6, 2), np.nan)}, {"labels": LABELS}, "non-finite value in row 0"),
        ({"a": np.zeros((6, 2))}, {}, "pass prompts="),
        ({"a/b": np.zeros((6, 2))}, {"labels": LABELS}, "without '/'"),
        ({"a": np.zeros((4, 2))}, {"labels": LABELS}, "6 rows of metadata for arrays of 4 rows"),
    ],
)
def test_store_from_arrays_errors(tmp_path, arrays, kwargs, match):
    with pytest.raises(ValueError, match=match):
        store_from_arrays(tmp_path / "s.h5", arrays, **kwargs)


def test_accessor_errors(tmp_path):
    s = store_from_arrays(
        tmp_path / "s.h5",
        {"layer": {"mean": np.zeros((6, 2)), "last": np.ones((6, 2))}},
        labels=LABELS,
    )
    np.testing.assert_array_equal(s.activations("layer"), np.zeros((6, 2)))  # "mean" preferred
    with pytest.raises(
        ValueError, match=r"layer 'layr' is not in this store; did you mean 'layer'"
    ):
        s.activations("layr", "mean")
    with pytest.raises(ValueError, match=r"position '@3' out of range for 1 stored layers"):
        s.activations("@3", "mean")
    with pytest.raises(ValueError, match=r"pooling='max' is not in this store \['mean', 'last'\]"):
        s.activations("layer", "max")
    with pytest.raises(KeyError, match="'nope' is not among"):
        s.positions(["nope"])


def test_open_store_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no activation store"):
        open_store(tmp_path / "none.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="not an aqi activation store"):
        open_store(tmp_path / "other.h5")
    store_from_arrays(tmp_path / "s.h5", _arrays(), labels=LABELS).close()
    with h5py.File(tmp_path / "s.h5", "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="upgrade aqi"):
        open_store(tmp_path / "s.h5")


def test_pair_by_id(tmp_path):
    ids = [f"r{i}" for i in range(6)]
    a = store_from_arrays(tmp_path / "a.h5", _arrays(), labels=LABELS, ids=ids)
    order = [5, 4, 3, 2, 1]
    b = store_from_arrays(
        tmp_path / "b.h5",
        {k: v[order] for k, v in _arrays(seed=2).items()},
        labels=[LABELS[i] for i in order],
        ids=[ids[i] for i in order],
    )
    with pytest.warns(UserWarning, match="keeps 5 rows"):
        shared, ia, ib = pair_by_id(a, b)
    assert shared.tolist() == ids[1:]
    assert (a.ids[ia] == b.ids[ib]).all()
    np.testing.assert_array_equal(b.activations("emb")[ib], _arrays(seed=2)["emb"][1:])
    c = store_from_arrays(tmp_path / "c.h5", _arrays(), labels=LABELS[::-1], ids=ids)
    with pytest.raises(ValueError, match="different labels"):
        pair_by_id(a, c)
    d = store_from_arrays(tmp_path / "d.h5", _arrays(), labels=LABELS)
    with pytest.raises(ValueError, match="share no row id"):
        pair_by_id(a, d)


def test_prompts_roundtrip_through_store(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("gpt2")
    s = aqi.capture(model, tok, small_prompts, tmp_path / "a.h5",
                    rendering=aqi.Rendering(chat=False), pooling="mean")  # fmt: skip
    assert s.prompts() == small_prompts
    assert [li.block for li in s.layer_info] == [0, 1, 2]
    assert s.dim("transformer.h.1") == 32


def test_str_path_and_model_name(tmp_path):
    p = tmp_path / "base.h5"
    store_from_arrays(p, _arrays(), labels=LABELS).close()
    s = aqi.ActivationStore(str(p))
    assert s.layers == ("emb", "deep") and s.model_name == "base"  # no name: the file stem
    named = store_from_arrays(
        tmp_path / "n.h5", _arrays(), labels=LABELS, provenance={"model": {"name": "org/m"}}
    )
    assert named.model_name == "org/m" and "model='org/m'" in repr(named)
    with pytest.raises(TypeError, match="path must be a str or path-like"):
        aqi.ActivationStore(3)


def test_resolve_pooling_prefers_mean_else_the_only_one(tmp_path):
    two = {"L": {"last": np.zeros((6, 2)), "mean": np.ones((6, 2))}}
    s = store_from_arrays(tmp_path / "a.h5", two, labels=LABELS)
    assert s.resolve_pooling(None) == "mean" and s.resolve_pooling("last") == "last"
    one = store_from_arrays(tmp_path / "b.h5", {"L": {"max": np.zeros((6, 2))}}, labels=LABELS)
    assert one.resolve_pooling(None) == "max"
    no_mean = {"L": {"last": np.zeros((6, 2)), "max": np.ones((6, 2))}}
    s = store_from_arrays(tmp_path / "c.h5", no_mean, labels=LABELS)
    with pytest.raises(ValueError, match=r"several poolings \['last', 'max'\] and none is 'mean'"):
        s.activations("L")
    with pytest.raises(ValueError, match=r"pooling='mean' is not in this store \['last', 'max'\]"):
        s.resolve_pooling("mean")


def test_resolve_layers_ints_are_blocks_not_positions(tmp_path):
    names = ["model.embed_tokens", *(f"model.layers.{i}" for i in range(6)), "model.norm"]
    X = np.zeros((6, 2), "f4")
    s = store_from_arrays(tmp_path / "a.h5", {n: X for n in names}, labels=LABELS)
    assert s.resolve_layers([5, "1"]) == ["model.layers.1", "model.layers.5"]
    assert s.layer_name(5) == "model.layers.5"  # position 5 would be model.layers.4
    assert s.resolve_layers("@5") == ["model.layers.4"]
    assert s.resolve_layers("@-1") == ["model.norm"]
    assert s.resolve_layers(None) == list(names) == s.resolve_layers("all")
    assert s.resolve_layers("model.layers.[45]") == ["model.layers.4", "model.layers.5"]
    with pytest.raises(ValueError, match=r"block 9 is not in this store; stored blocks: 0 \("):
        s.resolve_layers(9)
    with pytest.raises(ValueError, match="needs the model's block count"):
        s.resolve_layers(-1)
    with pytest.raises(ValueError, match=r"did you mean 'model.layers.1'"):
        s.resolve_layers(["model.layer.1"])
    with pytest.raises(ValueError, match="position '@8' out of range for 8 stored layers"):
        s.resolve_layers("@8")
    with pytest.raises(ValueError, match="layers is empty"):
        s.resolve_layers([])
    with pytest.raises(TypeError, match="expected a str or int"):
        s.resolve_layers([1.5])


def test_captured_store_resolves_blocks_with_embeddings_first(
    tiny_factory, small_prompts, tmp_path
):
    model, tok = tiny_factory("llama")
    p = tmp_path / "a.h5"
    s = aqi.capture(model, tok, small_prompts[:2], p, layers="all",
                    writing=aqi.Writing(progress=False))  # fmt: skip
    assert s.layers[0] == "model.embed_tokens"
    assert s.resolve_layers([0, -1]) == ["model.layers.0", "model.layers.2"]
    np.testing.assert_array_equal(s.activations(0, "mean"), s.activations("@1", "mean"))


def test_shared_layers_by_name_in_a_order(tmp_path):
    X = np.zeros((6, 2), "f4")
    a = store_from_arrays(tmp_path / "a.h5", {"x": X, "h.2": X, "h.1": X}, labels=LABELS)
    b = store_from_arrays(tmp_path / "b.h5", {"h.1": X, "h.2": X, "y": X}, labels=LABELS)
    assert aqi.activations.shared_layers(a, b) == ["h.2", "h.1"]
    c = store_from_arrays(tmp_path / "c.h5", {"z": X}, labels=LABELS)
    with pytest.raises(ValueError, match=r"share no layer name \(a: stored: x, h.2, h.1; b: .*z\)"):
        aqi.activations.shared_layers(a, c)


def test_truncated_or_foreign_file_is_one_clear_line(tmp_path):
    p = tmp_path / "s.h5"
    store_from_arrays(p, _arrays(), labels=LABELS).close()
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"store '{p}' is damaged or truncated .*again") as e:
        open_store(p)
    assert "\n" not in str(e.value) and e.value.__cause__ is None
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match=r"other.h5' is an HDF5 file but not .*store_from_arrays"):
        open_store(str(tmp_path / "other.h5"))
