"""Learned layer weights: sparse non-negative weights over layers that maximise separation.

The paper's layer-wise pooled representation mixes layers instead of picking
one. Here the mix is ``z = Σ_l w_l · x_l / σ_l`` (each layer scaled by its total
standard deviation on the training split), with ``w = sparsemax(θ)`` —
non-negative, summing to one and exactly zero on most layers. ``θ`` is fitted
by Adam to maximise the (differentiable, un-clamped) AQI on a training split;
the AQI, its CI and null are then reported on the held-out split only, so the
search over weights cannot inflate the reported figure. Matched pairs are kept
on the same side of the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..activations.store import ActivationStore
from .alignment_quality import AQIResult, SuffStats, alignment_quality_index, aqi_from_stats

__all__ = ["LayerWeights", "learn_layer_weights", "sparsemax"]


def sparsemax(z: torch.Tensor) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo, 2016) of a 1-D tensor: the Euclidean projection
    onto the probability simplex. Differentiable almost everywhere.

    Examples
    --------
    >>> sparsemax(torch.tensor([2.0, 1.0, -1.0])).tolist()
    [1.0, 0.0, 0.0]
    >>> [round(v, 4) for v in sparsemax(torch.tensor([1.0, 0.8, 0.0])).tolist()]
    [0.6, 0.4, 0.0]
    """
    zs, _ = torch.sort(z, descending=True)
    k = torch.arange(1, z.numel() + 1, dtype=z.dtype, device=z.device)
    cssv = zs.cumsum(0)
    support = 1 + k * zs > cssv
    k_z = support.sum()
    tau = (cssv[k_z - 1] - 1) / k_z
    return torch.clamp(z - tau, min=0)


@dataclass(frozen=True)
class LayerWeights:
    """Fitted layer weights and the held-out AQI of the pooled representation.

    Attributes
    ----------
    layers : tuple of str
    weights : np.ndarray
        Non-negative, sum to one, sparse.
    heldout : AQIResult
        AQI of the pooled representation on the held-out split.
    best_single : AQIResult
        Held-out AQI of the single layer that scored best on the training split
        (the baseline the pooling must beat).
    train_value : float
        AQI of the pooled representation on the training split (optimistic).
    n_train, n_heldout : int
    """

    layers: tuple[str, ...]
    weights: np.ndarray
    heldout: AQIResult
    best_single: AQIResult
    train_value: float
    n_train: int
    n_heldout: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "weights": self.weights.tolist(),
            "heldout": self.heldout.to_dict(),
            "best_single": self.best_single.to_dict(),
            "train_value": self.train_value,
            "n_train": self.n_train,
            "n_heldout": self.n_heldout,
        }

    def __repr__(self) -> str:
        used = [f"{la}: {w:.2f}" for la, w in zip(self.layers, self.weights, strict=True) if w > 0]
        return (
            f"LayerWeights(held-out AQI {self.heldout.value:.1f} "
            f"[{self.heldout.ci_low:.1f}, {self.heldout.ci_high:.1f}] vs best single layer "
            f"{self.best_single.layer} {self.best_single.value:.1f}; weights {{{', '.join(used)}}})"
        )


def _split(groups: np.ndarray, train_fraction: float, seed: int) -> np.ndarray:
    """Boolean train mask; rows sharing a group (pair id) stay together."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    chosen = set(rng.permutation(uniq)[: max(1, round(train_fraction * len(uniq)))].tolist())
    return np.array([g in chosen for g in groups])


def _soft_aqi(Z: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """The AQI of two classes without its clamps at zero (so it has a gradient everywhere).

    :func:`~aqi.indices.alignment_quality.aqi_from_stats` on torch sufficient statistics.
    """
    onehot = torch.stack([y == 0, y == 1], dim=1).to(Z.dtype)  # (n, 2)
    stats = SuffStats(onehot.sum(0), onehot.T @ Z, onehot.T @ (Z * Z).sum(1))
    return aqi_from_stats(stats, lam, clamp=False)[0]


def learn_layer_weights(
    store: ActivationStore,
    *,
    pooling: str | None = None,
    layers: Sequence[str | int] | None = None,
    train_fraction: float = 0.5,
    steps: int = 300,
    lr: float = 0.05,
    lam: float = 0.5,
    n_boot: int = 1000,
    n_perm: int = 200,
    seed: int = 0,
) -> LayerWeights:
    """Fit sparse layer weights on a training split; report AQI on the held-out split.

    Parameters
    ----------
    store : ActivationStore
        Two classes; layers of equal width (one model).
    train_fraction : float, default 0.5
        Share of rows (of pairs, when the store has pair ids) used to fit.
    steps, lr : optimiser settings (Adam on the sparsemax logits).

    Examples
    --------
    >>> import tempfile, os
    >>> from aqi.activations import store_from_arrays
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 100)
    >>> noise = {f"l{i}": rng.normal(size=(200, 4)) for i in range(3)}
    >>> noise["l1"][:, 0] += 4 * y                      # only layer l1 carries the signal
    >>> s = store_from_arrays(os.path.join(tempfile.mkdtemp(), "s.h5"), noise, labels=y)
    >>> lp = learn_layer_weights(s, n_boot=100, n_perm=50)
    >>> int(np.argmax(lp.weights)), lp.heldout.above_chance
    (1, True)
    """
    if not 0.1 <= train_fraction <= 0.9:
        raise ValueError(f"train_fraction={train_fraction!r}; expected a value in [0.1, 0.9]")
    pooling = store.resolve_pooling(pooling)
    names = store.resolve_layers(layers)
    if len(names) < 2:
        raise ValueError(f"learned pooling needs at least 2 layers, got {names}")
    y = store.y.astype(np.int64)
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError("learned layer pooling needs both safe and unsafe rows")
    train = _train_split(store, y, train_fraction, seed)
    arrays = [store.activations(n, pooling).astype(np.float64) for n in names]
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1:
        raise ValueError(f"layers have different widths {sorted(dims)}; pick layers of one width")
    # Scale each layer by its total SD on the training split (centre too: invariance).
    scaled = []
    for a in arrays:
        mu = a[train].mean(0)
        sd = np.sqrt(((a[train] - mu) ** 2).sum(1).mean())
        scaled.append((a - mu) / (sd if sd > 0 else 1.0))
    w = _fit_weights(np.stack(scaled), y, train, steps=steps, lr=lr, lam=lam, seed=seed)
    pooled = np.einsum("l,lnd->nd", w, np.stack(scaled))
    kw = {"n_boot": n_boot, "n_perm": n_perm, "lam": lam, "seed": seed}
    train_value = alignment_quality_index(
        pooled[train], y[train], n_boot=0, n_perm=0, lam=lam
    ).value
    heldout = alignment_quality_index(pooled[~train], y[~train], layer="learned pooling", **kw)
    train_scores = [
        alignment_quality_index(a[train], y[train], n_boot=0, n_perm=0, lam=lam).value
        for a in arrays
    ]
    best = int(np.nanargmax(train_scores))
    best_single = alignment_quality_index(arrays[best][~train], y[~train], layer=names[best], **kw)
    return LayerWeights(
        tuple(names),
        w,
        heldout,
        best_single,
        float(train_value),
        int(train.sum()),
        int((~train).sum()),
    )


def _train_split(store: ActivationStore, y: np.ndarray, train_fraction: float,
                 seed: int) -> np.ndarray:  # fmt: skip
    """The training rows (a pair never straddles the split); refuse a split with fewer than
    three rows of a class on either side."""
    pairs = store.pair_ids
    groups = np.where(pairs != "", pairs, store.ids)
    train = _split(groups, train_fraction, seed)
    for part, mask in (("training", train), ("held-out", ~train)):
        counts = np.bincount(y[mask], minlength=2)
        if counts.min() < 3:
            raise ValueError(
                f"the {part} split has {counts.tolist()} rows per class; need >= 3 each"
            )
    return train


def _fit_weights(scaled: np.ndarray, y: np.ndarray, train: np.ndarray, *, steps: int,
                 lr: float, lam: float, seed: int) -> np.ndarray:  # fmt: skip
    """Sparse layer weights (sparsemax of learned logits) that maximise the soft AQI of the
    weighted layers on the training rows, by Adam from uniform logits."""
    stack = torch.tensor(scaled, dtype=torch.float32)  # (L, n, d)
    yt = torch.tensor(y)
    tr = torch.tensor(train)
    torch.manual_seed(seed)
    theta = torch.zeros(len(scaled), requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        w = sparsemax(theta)
        Z = torch.einsum("l,lnd->nd", w, stack[:, tr])
        loss = -_soft_aqi(Z, yt[tr], lam)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return sparsemax(theta).numpy().astype(np.float64)
