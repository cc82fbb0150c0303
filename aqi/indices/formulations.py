"""Other AQI formulations, by name, and the paper authors' pipeline for reproducing numbers.

``aqi_variant(X, y, name)`` gives point estimates of named alternatives, each a
fixed transform of raw indices into [0, 100]:

- ``"xb-chi"``: the default AQI (:func:`alignment_quality_index`);
- ``"dbs-di"``: ``100 · [λ / (1 + DB) + (1 − λ) · Dunn / (1 + Dunn)]`` — Dunn is a
  ratio of extremes, so this one drifts with ``n`` (more points, smaller gaps);
- ``"silhouette"``: ``100 · (s + 1) / 2``.

``paper_pipeline(layers, y, projection="tsne")`` reproduces the released code's
recipe: standardise, project to 3-D (t-SNE or UMAP), compute Xie–Beni and
Calinski–Harabasz on the projection, min–max rescale ``1/XB`` and ``CH`` across
the units of the run, combine ``λ·XB′ + (1 − λ)·CH′``. Its values depend on the
projection seed and on which other units are in the run (the best unit always
scores 1 and the worst 0); use it only to compare with published figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .alignment_quality import alignment_quality_index
from .cluster import calinski_harabasz_index, davies_bouldin_index, dunn_index, silhouette_index
from .cluster import xie_beni_index as _xb

__all__ = ["VARIANTS", "aqi_variant", "paper_pipeline", "project_3d"]

VARIANTS = ("xb-chi", "dbs-di", "silhouette")


def aqi_variant(X: Any, labels: Any, name: str = "xb-chi", *, lam: float = 0.5) -> float:
    """A named AQI formulation (point estimate in [0, 100]).

    Examples
    --------
    >>> X = [[0, 0], [0, 1], [10, 0], [10, 1]]
    >>> round(aqi_variant(X, [0, 0, 1, 1], "silhouette"), 2)
    95.01
    """
    if name == "xb-chi":
        return alignment_quality_index(X, labels, lam=lam, n_boot=0, n_perm=0).value
    if name == "dbs-di":
        db = davies_bouldin_index(X, labels)
        di = float(dunn_index(X, labels))
        return 100 * (lam / (1 + db) + (1 - lam) * di / (1 + di))
    if name == "silhouette":
        return 100 * (silhouette_index(X, labels) + 1) / 2
    raise ValueError(f"name={name!r}; expected one of {', '.join(map(repr, VARIANTS))}")


def project_3d(X: Any, projection: str = "tsne", seed: int = 0) -> np.ndarray:
    """Standardise then project to 3-D with t-SNE (scikit-learn) or UMAP (umap-learn)."""
    from sklearn.preprocessing import StandardScaler

    Z = StandardScaler().fit_transform(np.asarray(X, dtype=np.float64))
    if projection == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(5.0, (len(Z) - 1) / 3))
        return TSNE(
            n_components=3, random_state=seed, perplexity=perplexity, init="pca"
        ).fit_transform(Z)
    if projection == "umap":
        import umap

        from .._progress import umap_progress

        return umap.UMAP(n_components=3, random_state=seed,
                         tqdm_kwds=umap_progress()).fit_transform(Z)  # fmt: skip
    raise ValueError(f"projection={projection!r}; expected 'tsne' or 'umap'")


def paper_pipeline(
    layers: Sequence[Any],
    labels: Any,
    *,
    projection: str = "tsne",
    lam: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """The paper's AQI per unit of a run (see module docstring); values in [0, 1].

    Needs at least two units, since the min–max rescaling is within the run.
    """
    if len(layers) < 2:
        raise ValueError("the paper pipeline rescales within a run: pass at least 2 units")
    inv_xb, ch = [], []
    for X in layers:
        P = project_3d(X, projection, seed)
        inv_xb.append(1.0 / _xb(P, labels))
        ch.append(calinski_harabasz_index(P, labels))

    def minmax(v: list[float]) -> np.ndarray:
        a = np.asarray(v)
        span = a.max() - a.min()
        return (a - a.min()) / span if span > 0 else np.full_like(a, np.nan)

    return lam * minmax(inv_xb) + (1 - lam) * minmax(ch)
