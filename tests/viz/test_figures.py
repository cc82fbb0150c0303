"""Every figure function returns a Figure with the expected content; UMAP is cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

import aqi
from aqi import viz
from aqi.probes import (
    detection_metrics,
    jailbreak_drift,
    ood_probe,
    preference_calibration,
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("viz")
    n = 120
    y = np.repeat(["safe", "unsafe"], n // 2)
    cats = np.tile(["a", "b", "c"], n // 3)
    arrays = {f"L{i}": rng.normal(size=(n, 6)) + i * (y == "unsafe")[:, None] for i in range(4)}
    plain = aqi.store_from_arrays(tmp / "p.h5", arrays, labels=y, categories=cats)
    w = {k: rng.normal(size=(40, 6)) + 1.5 for k in arrays}
    wrapped = aqi.store_from_arrays(
        tmp / "w.h5", w, labels=["unsafe"] * 40, ids=[f"u{i}::jb:t{i % 2}" for i in range(40)]
    )
    return plain, wrapped


def test_projection_pca_and_cached_umap(
    stores: tuple, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    plain, _ = stores
    monkeypatch.setenv("AQI_CACHE_DIR", str(tmp_path))
    fig = viz.plot_projection(plain, "L3")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "L3 — PCA"
    with aqi.progress_bars(True):  # UMAP's layout epochs as a bar, without its verbose log
        a = viz.project(plain, "L3", method="umap")
    err = capsys.readouterr().err
    assert "UMAP layout" in err and "Construct fuzzy simplicial set" not in err
    with aqi.progress_bars(False):
        viz.project(plain, "L1", method="umap")
    assert capsys.readouterr().err == ""
    assert len(list((tmp_path / "projections").glob("umap-*.npy"))) == 2
    import umap

    def no_refit(*_: Any, **__: Any) -> None:
        raise AssertionError("UMAP refitted although the projection is cached")

    monkeypatch.setattr(umap, "UMAP", no_refit)
    b = viz.project(plain, "L3", method="umap")  # served from the cache
    assert np.array_equal(a, b) and a.shape == (120, 2)
    with pytest.raises(AssertionError, match="UMAP refitted"):
        viz.project(plain, "L2", method="umap")  # another layer is not cached
    with pytest.raises(ValueError, match="method must be one of"):
        viz.project(plain, "L3", method="mds")


def test_result_figures(stores: tuple) -> None:
    plain, wrapped = stores
    prof = aqi.score(plain, n_boot=50, n_perm=20)
    fig = viz.plot_profile(prof)
    assert fig.axes[0].get_ylabel() == "AQI (0–100)"
    assert len(fig.axes[0].lines) >= 1
    cmp = aqi.compare(plain, plain, n_boot=50)
    assert isinstance(viz.plot_comparison(cmp), Figure)
    table = {la: viz.index_table(plain.activations(la), plain.labels) for la in plain.layers}
    assert set(table["L0"]) >= {"AQI", "Dunn ↑", "silhouette ↑"}
    assert isinstance(viz.plot_index_table(table), Figure)
    rng = np.random.default_rng(1)
    cal = preference_calibration(rng.normal(1, 2, 500), np.zeros(500), n_boot=0)
    fig = viz.plot_reliability([cal, cal])
    assert len(fig.axes[0].collections) == 2
    ood = ood_probe(plain, wrapped, n_boot=0)["L3"]
    assert isinstance(viz.plot_ood_histogram(ood), Figure)
    assert "AUROC" in viz.plot_roc(ood).axes[0].get_legend().get_texts()[0].get_text()
    drift = jailbreak_drift(plain, wrapped, layers=["L3"], n_boot=40)
    fig = viz.plot_drift(drift)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["t0", "t1"]
    pooling = aqi.learn_layer_weights(plain, steps=20)
    assert isinstance(viz.plot_layer_weights(pooling), Figure)
    det = detection_metrics(rng.normal(size=50), rng.normal(1, 1, 50), n_boot=0)
    with pytest.raises(TypeError, match="OODLayerResult"):
        viz.plot_roc(det)
    with pytest.raises(TypeError, match="profile must be an AQIProfile"):
        viz.plot_profile(cmp)


def test_no_pyplot_state_accumulates(stores: tuple) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    viz.plot_projection(stores[0], "L0")
    assert len(plt.get_fignums()) == before


def test_token_attributions_drawing() -> None:
    from aqi.probes import TokenAttribution

    a = TokenAttribution(
        text="pick a lock",
        tokens=("<s>", "Ġpick", "Ġa", "Ġlock", "</s>"),
        scores=np.array([0.0, 0.5, -0.1, 0.9, 0.0]),
        span=(1, 4),
        layer="model.layers.1",
        value=1.3,
        baseline_value=0.0,
        delta=0.001,
    )
    fig = viz.plot_token_attributions(a)
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["pick", "a", "lock"]  # the span only, cleaned of BPE markers
    assert len(viz.plot_token_attributions(a, span_only=False).axes[0].texts) == 5
    with pytest.raises(TypeError, match="TokenAttribution"):
        viz.plot_token_attributions(a.to_dict())  # type: ignore[arg-type]
