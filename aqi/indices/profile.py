"""AQI over a store: a per-layer profile, per-category scores and a lexical control."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._progress import bar
from ..activations.store import ActivationStore
from .alignment_quality import AQIResult, alignment_quality_index
from .lexical import bag_of_words

__all__ = ["AQIProfile", "score"]


@dataclass(frozen=True)
class AQIProfile:
    """AQI of every layer of a store, with per-category scores and lexical controls.

    Attributes
    ----------
    layers : tuple of AQIResult
        One result per layer, in depth order (``result.layer`` is the layer name).
    categories : dict
        ``{layer: {category: AQIResult}}`` for categories with both classes (>= 2 rows each).
    lexical : dict
        ``{"bag_of_words": AQIResult, "embeddings": AQIResult}`` where available: the
        same AQI on surface features, so separation that is only wording is visible.
    pooling : str
    model : str
    """

    layers: tuple[AQIResult, ...]
    categories: dict[str, dict[str, AQIResult]] = field(default_factory=dict)
    lexical: dict[str, AQIResult] = field(default_factory=dict)
    pooling: str = ""
    model: str = ""

    @property
    def names(self) -> list[str]:
        return [r.layer for r in self.layers]

    @property
    def values(self) -> np.ndarray:
        return np.array([r.value for r in self.layers])

    def best(self) -> AQIResult:
        """The layer with the highest AQI.

        Raises
        ------
        ValueError
            When the AQI is undefined (NaN) at every layer, e.g. constant activations.
        """
        values = np.asarray(self.values, dtype=np.float64)
        if not np.isfinite(values).any():
            raise ValueError(
                f"the AQI is undefined at every one of the {len(values)} layers (e.g. identical "
                "activations, or one class only); there is no best layer — see the "
                "DegenerateInputWarning for why"
            )
        return self.layers[int(np.nanargmax(values))]

    def __getitem__(self, layer: str | int) -> AQIResult:
        if isinstance(layer, int):
            return self.layers[layer]
        for r in self.layers:
            if r.layer == layer:
                return r
        raise KeyError(f"layer {layer!r} not in profile ({len(self.layers)} layers)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "pooling": self.pooling,
            "layers": [r.to_dict() for r in self.layers],
            "categories": {
                la: {c: r.to_dict() for c, r in cats.items()}
                for la, cats in self.categories.items()
            },
            "lexical": {k: r.to_dict() for k, r in self.lexical.items()},
        }

    def __repr__(self) -> str:
        b = self.best()
        lex = ", ".join(f"{k} {r.value:.1f}" for k, r in self.lexical.items())
        return (
            f"AQIProfile({self.model!r}, {len(self.layers)} layers, pooling={self.pooling!r}: "
            f"best {b.layer} AQI {b.value:.1f} [{b.ci_low:.1f}, {b.ci_high:.1f}]"
            + (f"; lexical control: {lex}" if lex else "")
            + ")"
        )


def score(
    store: ActivationStore,
    *,
    pooling: str | None = None,
    layers: Sequence[str | int] | None = None,
    by_category: bool = True,
    lexical_control: bool = True,
    n_boot: int = 1000,
    n_perm: int = 200,
    confidence: float = 0.95,
    lam: float = 0.5,
    seed: int = 0,
) -> AQIProfile:
    """Score every layer of a store with the AQI, its CI and null.

    Parameters
    ----------
    store : ActivationStore
        From :func:`aqi.capture`, :func:`aqi.open_store` or :func:`aqi.store_from_arrays`.
    pooling : str, optional
        Which pooling to score; default as in :meth:`ActivationStore.resolve_pooling`
        (``"mean"`` when stored, else the only one).
    layers : str, int or sequence, optional
        Subset of layers as in :meth:`ActivationStore.resolve_layers` (an int is a
        block index, ``"@5"`` a position); default all.
    by_category : bool
        Also score each category that has both classes.
    lexical_control : bool
        Score a bag-of-words baseline of the prompt texts (and the embedding layer, when
        the store has one), beside the deep layers.
    n_boot, n_perm, confidence, lam, seed
        As in :func:`aqi.indices.alignment_quality_index`.
    """
    if not isinstance(store, ActivationStore):
        raise TypeError(f"store must be an aqi ActivationStore, got {type(store).__name__}")
    pooling = store.resolve_pooling(pooling)
    names = store.resolve_layers(layers)
    y = store.labels
    cats = store.categories
    kw = {"n_boot": n_boot, "n_perm": n_perm, "confidence": confidence, "lam": lam, "seed": seed}
    results, per_cat = [], {}
    cat_rows = {}
    if by_category:
        for c in np.unique(cats):
            rows = np.flatnonzero(cats == c)
            _, counts = np.unique(y[rows], return_counts=True)
            if len(counts) >= 2 and counts.min() >= 2:
                cat_rows[str(c)] = rows
    for name in bar(names, desc="AQI per layer", total=len(names), unit="layer", rows=len(y)):
        X = store.activations(name, pooling)
        results.append(alignment_quality_index(X, y, layer=name, **kw))
        if cat_rows:
            per_cat[name] = {
                c: alignment_quality_index(X[r], y[r], layer=f"{name} · {c}", **kw)
                for c, r in cat_rows.items()
            }
    lexical: dict[str, AQIResult] = {}
    if lexical_control:
        texts = store.texts.tolist()
        if not all(t.startswith("<row ") for t in texts):  # bring-your-own stores have no text
            lexical["bag_of_words"] = alignment_quality_index(
                bag_of_words(texts), y, layer="bag of words", **kw
            )
        emb = [li.name for li in store.layer_info if li.role == "embeddings"]
        if emb:
            done = {r.layer: r for r in results}
            lexical["embeddings"] = done.get(emb[0]) or alignment_quality_index(
                store.activations(emb[0], pooling), y, layer=emb[0], **kw
            )
    return AQIProfile(
        tuple(results),
        per_cat,
        lexical,
        pooling,
        store.model_name,
    )
