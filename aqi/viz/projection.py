"""2-D projections of a layer's activations (PCA, UMAP, t-SNE), coloured by label.

UMAP and t-SNE embeddings are cached on disk per store, layer, pooling and
settings (``~/.cache/aqi/projections`` or ``$AQI_CACHE_DIR/projections``), keyed
by the store's path, size and modification time, so a notebook re-plots instantly.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..activations.store import ActivationStore
from .style import COLORS, MARKERS, axes, label_color

__all__ = ["plot_projection", "project"]

METHODS = ("pca", "umap", "tsne")


def _cache_dir() -> Path:
    root = os.environ.get("AQI_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "aqi") / "projections"


def _key(store: ActivationStore, layer: str, pooling: str, method: str, seed: int) -> str:
    st = Path(store.path).stat()
    where = f"{Path(store.path).resolve()}|{st.st_size}|{st.st_mtime_ns}"
    raw = f"{where}|{layer}|{pooling}|{method}|{seed}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def project(
    store: ActivationStore,
    layer: str | int,
    *,
    method: str = "pca",
    pooling: str | None = None,
    seed: int = 0,
    cache: bool = True,
) -> np.ndarray:
    """``(n, 2)`` projection of a layer's pooled activations.

    ``"pca"`` is exact and instant (not cached); ``"umap"`` (umap-learn, cosine metric on
    standardised rows) and ``"tsne"`` (scikit-learn) are cached on disk.
    """
    if not isinstance(store, ActivationStore):
        raise TypeError(f"store must be an aqi ActivationStore, got {type(store).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    name = store.layer_name(layer)
    pooling = store.resolve_pooling(pooling)
    X = store.activations(name, pooling).astype(np.float64)
    X = (X - X.mean(0)) / (X.std(0) + 1e-12)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(X)
    path = _cache_dir() / f"{method}-{_key(store, name, pooling, method, seed)}.npy"
    if cache and path.is_file():
        return np.load(path)
    if method == "umap":
        import umap

        from .._progress import umap_progress

        Y = umap.UMAP(
            n_components=2, metric="cosine", random_state=seed, n_jobs=1,
            tqdm_kwds=umap_progress(),
        ).fit_transform(X)  # fmt: skip
    else:
        from sklearn.manifold import TSNE

        Y = TSNE(
            2, random_state=seed, init="pca", perplexity=min(30, (len(X) - 1) / 3)
        ).fit_transform(X)
    Y = np.asarray(Y, dtype=np.float64)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, Y)
        os.replace(tmp, path)
    return Y


def plot_projection(
    store: ActivationStore,
    layer: str | int,
    *,
    method: str = "pca",
    pooling: str | None = None,
    seed: int = 0,
    cache: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """Scatter of a 2-D projection: colour = safe / unsafe, marker = category.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib, aqi
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[np.zeros((20, 5)), np.ones((20, 5))] + rng.normal(size=(40, 5))
    >>> s = aqi.store_from_arrays(pathlib.Path(tempfile.mkdtemp()) / "s.h5", {"L": X},
    ...                           labels=["safe"] * 20 + ["unsafe"] * 20)
    >>> fig = plot_projection(s, "L")
    >>> fig.axes[0].get_title()
    'L — PCA'
    """
    Y = project(store, layer, method=method, pooling=pooling, seed=seed, cache=cache)
    name = store.layer_name(layer)
    fig, ax = axes(ax, (5.2, 4.2))
    labels, cats = store.labels, store.categories
    ucats = [c for c in dict.fromkeys(cats.tolist())]
    for lab in ("safe", "unsafe"):
        for i, c in enumerate(ucats):
            m = (labels == lab) & (cats == c)
            if m.any():
                ax.scatter(
                    Y[m, 0], Y[m, 1], s=14, alpha=0.75, c=label_color(lab),
                    marker=MARKERS[i % len(MARKERS)], linewidths=0,
                    label=f"{lab} · {c}" if c else lab,
                )  # fmt: skip
    ax.set_title(f"{name} — {method.upper() if method != 'tsne' else 't-SNE'}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    handles = [
        ax.scatter([], [], c=COLORS[k], marker="o", label=k) for k in ("safe", "unsafe")
    ] + [ax.scatter([], [], c="#444444", marker=MARKERS[i % len(MARKERS)], label=c)
         for i, c in enumerate(ucats) if c]  # fmt: skip
    ax.legend(handles=handles, fontsize=6, loc="best", frameon=False, ncol=2)
    return fig
