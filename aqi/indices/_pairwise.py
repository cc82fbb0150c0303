"""Exact pairwise-distance reductions in bounded memory (blocked matrix products, torch).

For Dunn-type indices we need, for every pair of clusters, the smallest
between-cluster distance (single link), optionally the sum of all
between-cluster distances (average link), and for every cluster its largest
within-cluster distance (diameter). Full-matrix implementations (scipy
``cdist``, as validclust does) materialise ``n × n`` distances; here rows are
sorted by cluster, only the upper triangle of cluster-pair blocks is visited,
and each block's squared distances come from one matrix product
``|a|² + |b|² − 2 A Bᵀ`` in float64 on centred data. The extreme pairs are then
recomputed directly from their coordinates, so the reported distances are exact
(not affected by the expansion's round-off).

torch is used for the products on every backend: on CPU it runs a multithreaded
BLAS, and ``device="cuda"`` moves the same computation to a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PairwiseExtremes", "cluster_extremes"]

_BLOCK_BYTES = 48 << 20  # float64 scratch per block (a few such arrays are alive at once)


@dataclass(frozen=True)
class PairwiseExtremes:
    """Per cluster pair / cluster: min link, mean link and diameter (exact distances)."""

    min_link: np.ndarray  # (k, k), inf on the diagonal
    mean_link: np.ndarray | None  # (k, k) average distance between clusters, or None
    diameter: np.ndarray  # (k,)


def _exact(X: np.ndarray, i: int, j: int) -> float:
    return float(np.sqrt(np.sum((X[i] - X[j]) ** 2)))


def cluster_extremes(
    X: np.ndarray,
    codes: np.ndarray,
    k: int,
    *,
    mean_link: bool = False,
    device: str | torch.device = "cpu",
    block_bytes: int = _BLOCK_BYTES,
) -> PairwiseExtremes:
    """Exact single-link separations, optional average links and diameters.

    ``X`` is float64 and centred; ``codes`` are integer cluster codes ``0 … k-1``. Rows
    already sorted by code (``check_data(..., sort=True)``) are used without a copy.
    """
    if np.any(np.diff(codes) < 0):
        order = np.argsort(codes, kind="stable")
        X, codes = X[order], codes[order]
    Xs = X
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=k))])
    dev = torch.device(device)
    T = torch.from_numpy(Xs).to(dev)
    sq = (T * T).sum(1)
    n = len(Xs)
    rows = max(1, min(n, block_bytes // (8 * max(n, 1))))

    best_min = np.full((k, k), np.inf)
    arg_min = np.full((k, k, 2), -1, dtype=np.int64)
    best_max = np.zeros(k)
    arg_max = np.full((k, 2), -1, dtype=np.int64)
    sums = np.zeros((k, k)) if mean_link else None

    for a in range(k):
        a0, a1 = int(bounds[a]), int(bounds[a + 1])
        for r0 in range(a0, a1, rows):
            r1 = min(a1, r0 + rows)
            A = T[r0:r1]
            for b in range(a, k):
                b0, b1 = int(bounds[b]), int(bounds[b + 1])
                c0 = r0 if b == a else b0  # within a cluster: upper triangle only
                if c0 >= b1:
                    continue
                # In place: one block-sized buffer alive at a time.
                D2 = torch.mm(A, T[c0:b1].T).mul_(-2.0)
                D2.add_(sq[r0:r1, None]).add_(sq[None, c0:b1]).clamp_(min=0.0)
                if b == a:
                    m = float(D2.max())
                    if m > best_max[a]:
                        flat = int(torch.argmax(D2))
                        best_max[a] = m
                        arg_max[a] = (r0 + flat // D2.shape[1], c0 + flat % D2.shape[1])
                else:
                    m = float(D2.min())
                    if m < best_min[a, b]:
                        flat = int(torch.argmin(D2))
                        best_min[a, b] = m
                        arg_min[a, b] = (r0 + flat // D2.shape[1], c0 + flat % D2.shape[1])
                    if sums is not None:
                        sums[a, b] += float(D2.sqrt_().sum())

    min_link = np.full((k, k), np.inf)
    diameter = np.zeros(k)
    for a in range(k):
        if arg_max[a, 0] >= 0:
            diameter[a] = _exact(Xs, *arg_max[a])
        for b in range(a + 1, k):
            min_link[a, b] = min_link[b, a] = _exact(Xs, *arg_min[a, b])
    mean = None
    if sums is not None:
        sizes = np.diff(bounds)
        mean = np.full((k, k), np.inf)
        for a in range(k):
            for b in range(a + 1, k):
                mean[a, b] = mean[b, a] = sums[a, b] / (sizes[a] * sizes[b])
    return PairwiseExtremes(min_link, mean, diameter)
