"""Cluster-quality indices of a labelled point set ``(X, labels)``.

Every index accepts any number of clusters >= 2, accumulates in float64 on
data centred at the global mean (robust to large offsets) and, on degenerate
input, raises a clear error or returns NaN with a
:class:`DegenerateInputWarning` — never a silently perfect score.

=======================  ==========  =============================================
index                    better      reference
=======================  ==========  =============================================
Davies–Bouldin           lower       Davies & Bouldin, IEEE TPAMI 1979
Dunn (classic)           higher      Dunn, J. Cybernetics 1973
generalised Dunn GD33,   higher      Bezdek & Pal, IEEE TSMC-B 28(3), 1998
GD43, GD53
Xie–Beni (crisp, fuzzy)  lower       Xie & Beni, IEEE TPAMI 1991
Calinski–Harabasz        higher      Calinski & Harabasz, Comm. Stat. 1974
silhouette               higher      Rousseeuw, J. Comput. Appl. Math. 1987
=======================  ==========  =============================================

Formulas are in ``docs/aqi.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ._pairwise import cluster_extremes
from .validation import DegenerateInputWarning, check_data, check_matrix, undefined

__all__ = [
    "DegenerateInputWarning",
    "DunnResult",
    "calinski_harabasz_index",
    "davies_bouldin_index",
    "dunn_index",
    "generalized_dunn_index",
    "silhouette_index",
    "xie_beni_index",
]


def _centroids(X: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    sums = np.zeros((k, X.shape[1]))
    np.add.at(sums, codes, X)
    return sums / counts[:, None], counts


def _all_identical(X: np.ndarray) -> bool:
    return bool(np.all(X[0] == X))


def davies_bouldin_index(X: Any, labels: Any) -> float:
    """Davies–Bouldin index (lower is better).

    ``DB = (1/k) Σ_i max_{j≠i} (S_i + S_j) / ‖c_i − c_j‖`` with ``S_i`` the mean
    distance of cluster i's points to its centroid ``c_i``.

    Unlike ``sklearn.metrics.davies_bouldin_score``, which returns 0.0 (the best
    value) when all points coincide, this returns NaN with a warning when the
    index is undefined: identical points or two coincident centroids.

    Examples
    --------
    >>> X = [[0, 0], [0, 1], [10, 0], [10, 1]]
    >>> round(davies_bouldin_index(X, [0, 0, 1, 1]), 6)
    0.1
    """
    X, codes, names = check_data(X, labels)
    k = len(names)
    if _all_identical(X):
        return undefined("Davies–Bouldin", "all points are identical")
    c, _ = _centroids(X, codes, k)
    S = np.zeros(k)
    np.add.at(S, codes, np.sqrt(((X - c[codes]) ** 2).sum(1)))
    S /= np.bincount(codes, minlength=k)
    M = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    off = ~np.eye(k, dtype=bool)
    if np.any(M[off] == 0):
        return undefined("Davies–Bouldin", "two clusters have the same centroid")
    R = np.where(off, (S[:, None] + S[None, :]) / np.where(off, M, 1.0), -np.inf)
    return float(R.max(1).mean())


def calinski_harabasz_index(X: Any, labels: Any) -> float:
    """Calinski–Harabasz index (higher is better).

    ``CH = [B / (k − 1)] / [W / (n − k)]`` with ``B`` the between-cluster and ``W``
    the within-cluster sum of squares. scikit-learn returns 1.0 when ``W = 0``; here
    zero within-cluster spread (or ``n = k``) gives NaN with a warning.

    Examples
    --------
    >>> X = [[0, 0], [0, 2], [4, 0], [4, 2]]
    >>> calinski_harabasz_index(X, [0, 0, 1, 1])
    8.0
    """
    X, codes, names = check_data(X, labels)
    k, n = len(names), len(X)
    if n == k:
        return undefined("Calinski–Harabasz", "every cluster is a single point (n = k)")
    c, counts = _centroids(X, codes, k)
    W = float(((X - c[codes]) ** 2).sum())
    B = float((counts * (c**2).sum(1)).sum())  # X is centred: global mean is 0
    if W == 0.0:
        return undefined("Calinski–Harabasz", "every cluster has zero spread")
    return B * (n - k) / (W * (k - 1))


def xie_beni_index(
    X: Any,
    labels: Any = None,
    *,
    memberships: Any = None,
    m: float = 2.0,
) -> float:
    """Xie–Beni index (lower is better), crisp or fuzzy.

    Crisp (``labels``): ``XB = Σ_i Σ_{x∈C_i} ‖x − c_i‖² / (n · min_{i≠j} ‖c_i − c_j‖²)``.
    Fuzzy (``memberships`` ``U`` of shape ``(k, n)``, columns summing to 1, exponent
    ``m > 1``): centres ``v_i = Σ_x u_ix^m x / Σ_x u_ix^m`` and
    ``XB = Σ_i Σ_x u_ix^m ‖x − v_i‖² / (n · min_{i≠j} ‖v_i − v_j‖²)``.

    Examples
    --------
    >>> X = [[0, 0], [0, 2], [4, 0], [4, 2]]
    >>> xie_beni_index(X, [0, 0, 1, 1])
    0.0625
    """
    if (labels is None) == (memberships is None):
        raise ValueError("pass exactly one of labels= (crisp) or memberships= (fuzzy)")
    if memberships is None:
        Xc, codes, names = check_data(X, labels)
        k = len(names)
        centres, _ = _centroids(Xc, codes, k)
        num = float(((Xc - centres[codes]) ** 2).sum())
    else:
        Xc = check_matrix(X)
        U = np.asarray(memberships, dtype=np.float64)
        if U.ndim != 2 or U.shape[1] != Xc.shape[0]:
            raise ValueError(
                f"memberships must have shape (k, n) = (k, {Xc.shape[0]}), got {U.shape}"
            )
        if not np.isfinite(U).all() or (U < 0).any() or not np.allclose(U.sum(0), 1.0, atol=1e-6):
            raise ValueError("memberships must be finite, non-negative, each column summing to 1")
        if not m > 1:
            raise ValueError(f"m={m!r}; the fuzzy exponent must be > 1")
        if U.shape[0] < 2:
            raise ValueError(f"memberships have {U.shape[0]} cluster(s); need at least 2")
        Um = U**m
        weight = Um.sum(1)
        if (weight == 0).any():
            return undefined("Xie–Beni", "a cluster has zero total membership")
        centres = (Um @ Xc) / weight[:, None]
        d2 = ((Xc[None, :, :] - centres[:, None, :]) ** 2).sum(-1)
        num = float((Um * d2).sum())
        k = U.shape[0]
    sep = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    sep = sep[~np.eye(k, dtype=bool)].min()
    if _all_identical(Xc):
        return undefined("Xie–Beni", "all points are identical")
    if sep == 0:
        return undefined("Xie–Beni", "two clusters have the same centroid")
    return num / (len(Xc) * float(sep))


def silhouette_index(
    X: Any, labels: Any, *, max_samples: int | None = None, random_state: int = 0
) -> float:
    """Mean silhouette coefficient (higher is better, in [-1, 1]).

    Computed by :func:`sklearn.metrics.silhouette_score` (chunked, bounded memory) on
    float64 data centred here (scikit-learn's float32 path loses precision far from
    the origin). ``max_samples`` sub-samples rows. All points identical: NaN with a
    warning (scikit-learn would report 0).

    Examples
    --------
    >>> X = [[0, 0], [0, 1], [10, 0], [10, 1]]
    >>> round(silhouette_index(X, [0, 0, 1, 1]), 4)
    0.9002
    """
    from sklearn.metrics import silhouette_score

    X, codes, names = check_data(X, labels)
    if len(names) >= len(X):
        raise ValueError(
            f"silhouette needs 2 <= n_labels <= n_samples - 1, got {len(names)} labels "
            f"for {len(X)} samples"
        )
    if _all_identical(X):
        return undefined("silhouette", "all points are identical")
    return float(silhouette_score(X, codes, sample_size=max_samples, random_state=random_state))


@dataclass(frozen=True)
class DunnResult:
    """A Dunn-type index with its parts.

    ``value = separation / diameter``; ``subsampled`` says whether ``max_samples``
    reduced the data (``n_used`` of ``n_total`` rows, stratified by label).
    """

    value: float
    separation: float
    diameter: float
    variant: str
    n_used: int
    n_total: int
    subsampled: bool

    def __float__(self) -> float:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        sub = f", subsampled {self.n_used}/{self.n_total}" if self.subsampled else ""
        return (
            f"DunnResult({self.variant}={self.value:.6g}: separation {self.separation:.6g} / "
            f"diameter {self.diameter:.6g}{sub})"
        )


def _subsample(
    X: np.ndarray, codes: np.ndarray, max_samples: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    if max_samples is None or len(X) <= max_samples:
        return X, codes, False
    if max_samples < 2 * (codes.max() + 1):
        raise ValueError(f"max_samples={max_samples} leaves fewer than 2 rows per cluster")
    rng = np.random.default_rng(seed)
    keep = []
    k = codes.max() + 1
    for c in range(k):  # stratified: each cluster keeps its share, at least 2 rows
        idx = np.flatnonzero(codes == c)
        take = max(2, round(max_samples * len(idx) / len(X)))
        keep.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    sel = np.sort(np.concatenate(keep))
    return X[sel], codes[sel], True


def dunn_index(
    X: Any,
    labels: Any,
    *,
    max_samples: int | None = None,
    device: str | torch.device = "cpu",
    random_state: int = 0,
) -> DunnResult:
    """Classic Dunn index (higher is better), exact, in bounded memory.

    ``D = min_{i≠j} min_{x∈C_i, y∈C_j} ‖x − y‖ / max_k max_{x,y∈C_k} ‖x − y‖``.
    Never builds the ``n × n`` matrix (blocked products, see ``_pairwise``);
    ``device="cuda"`` runs it on a GPU; ``max_samples`` makes it approximate, and
    the result says so.

    Returns NaN with a warning when every cluster has zero diameter (single
    points or duplicates): the ratio is then undefined, not infinitely good.

    Examples
    --------
    >>> X = [[0, 0], [0, 1], [10, 0], [10, 1]]
    >>> float(dunn_index(X, [0, 0, 1, 1]))
    10.0
    """
    Xc, codes, names = check_data(X, labels, sort=True)
    n_total = len(Xc)
    Xc, codes, sub = _subsample(Xc, codes, max_samples, random_state)
    ext = cluster_extremes(Xc, codes, len(names), device=device)
    sep, diam = float(ext.min_link.min()), float(ext.diameter.max())
    value = sep / diam if diam > 0 else undefined("Dunn", "every cluster has zero diameter")
    return DunnResult(value, sep, diam, "dunn", len(Xc), n_total, sub)


_GD_VARIANTS = ("gd33", "gd43", "gd53")


def generalized_dunn_index(
    X: Any,
    labels: Any,
    variant: str = "gd33",
    *,
    max_samples: int | None = None,
    device: str | torch.device = "cpu",
    random_state: int = 0,
) -> DunnResult:
    """Generalised Dunn indices of Bezdek & Pal (higher is better).

    All three use the compactness ``Δ3(C) = (2/|C|) Σ_{x∈C} ‖x − c‖`` (twice the mean
    distance to the centroid) and differ in the separation:

    - ``gd33``: ``δ3`` average link, mean of all ``‖x − y‖``, ``x ∈ C_i, y ∈ C_j``;
    - ``gd43``: ``δ4`` centroid distance ``‖c_i − c_j‖``;
    - ``gd53``: ``δ5 = (Σ_{x∈C_i} ‖x − c_j‖ + Σ_{y∈C_j} ‖y − c_i‖) / (|C_i| + |C_j|)``.

    ``GD = min_{i≠j} δ(C_i, C_j) / max_k Δ3(C_k)``.

    Examples
    --------
    >>> X = [[0, 0], [0, 2], [4, 0], [4, 2]]
    >>> float(generalized_dunn_index(X, [0, 0, 1, 1], "gd43"))
    2.0
    """
    if variant not in _GD_VARIANTS:
        raise ValueError(
            f"variant={variant!r}; expected one of {', '.join(map(repr, _GD_VARIANTS))}"
        )
    Xc, codes, names = check_data(X, labels, sort=True)
    n_total = len(Xc)
    Xc, codes, sub = _subsample(Xc, codes, max_samples, random_state)
    k = len(names)
    c, counts = _centroids(Xc, codes, k)
    to_own = np.sqrt(((Xc - c[codes]) ** 2).sum(1))
    delta3 = 2 * np.bincount(codes, weights=to_own, minlength=k) / counts
    diam = float(delta3.max())
    iu = np.triu_indices(k, 1)
    if variant == "gd33":
        sep_mat = cluster_extremes(Xc, codes, k, mean_link=True, device=device).mean_link
        sep = float(sep_mat[iu].min())  # type: ignore[index]
    elif variant == "gd43":
        sep = float(np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))[iu].min())
    else:
        S = np.zeros((k, k))  # S[i, j] = Σ_{x∈C_i} ‖x − c_j‖
        for j in range(k):  # one centroid at a time: O(n) memory
            S[:, j] = np.bincount(codes, weights=np.sqrt(((Xc - c[j]) ** 2).sum(1)), minlength=k)
        d5 = (S + S.T) / (counts[:, None] + counts[None, :])
        sep = float(d5[iu].min())
    value = sep / diam if diam > 0 else undefined(variant.upper(), "every cluster has zero spread")
    return DunnResult(value, sep, diam, variant, len(Xc), n_total, sub)
